import Decompositions
import Foundation
import NeuralNetworks
import TensorCore

/// A decomposition format a compression run asks for, by the names of the survey's Table 1 and the `lowrank` tool
/// (METHODS §1, §9). Whether it applies to a given layer is decided per layer by `LayerCompressor`.
public enum CompressionFormat: String, Sendable, Codable, CaseIterable {
    case svd, cp, tucker, tensorTrain, tensorRing, hierarchicalTucker, blockTerm, kronecker, semiTensorTrain, semiTensorRing

    /// The tool's short name: `svd`, `cp`, `tucker`, `tt`, `tr`, `ht`, `btd`, `gkpd`, `stt`, `str`.
    public var shortName: String {
        switch self {
        case .svd: return "svd"
        case .cp: return "cp"
        case .tucker: return "tucker"
        case .tensorTrain: return "tt"
        case .tensorRing: return "tr"
        case .hierarchicalTucker: return "ht"
        case .blockTerm: return "btd"
        case .kronecker: return "gkpd"
        case .semiTensorTrain: return "stt"
        case .semiTensorRing: return "str"
        }
    }

    /// The row label of the survey's Table 1 (`Tucker`, `TT`, `GKPD`, …).
    public var displayName: String {
        switch self {
        case .svd: return "SVD"
        case .cp: return "CP"
        case .tucker: return "Tucker"
        default: return shortName.uppercased()
        }
    }

    /// The format named `name` (a short name or the case name), or nil.
    public init?(name: String) {
        guard let format = Self.allCases.first(where: { $0.shortName == name || $0.rawValue == name }) else { return nil }
        self = format
    }

    /// The factorized FC format of the same name.
    public var linearFormat: FactorizedFormat {
        switch self {
        case .svd: return .svd
        case .cp: return .cp
        case .tucker: return .tucker
        case .tensorTrain: return .tensorTrain
        case .tensorRing: return .tensorRing
        case .hierarchicalTucker: return .hierarchicalTucker
        case .blockTerm: return .blockTerm
        case .kronecker: return .kronecker
        case .semiTensorTrain: return .semiTensorTrain
        case .semiTensorRing: return .semiTensorRing
        }
    }

    /// The factorized conv format of the same name (SVD: the channel variant, a K×K conv to R channels then 1×1;
    /// Tucker: Tucker-2 [9]; KPD: GKPD [36]; STR: STR-conv [37]), or nil where LowRank has no conv form (STT).
    public var convolutionFormat: FactorizedConvFormat? { FactorizedConvFormat(linearFormat) }
}

/// What a compressed layer should keep: a compression ratio, explicit ranks, or an energy share of the singular
/// values (METHODS §3: fixed ratio, fixed ranks, energy / tolerance).
public enum LayerRankTarget: Sendable, Equatable {
    /// Dense parameters over core parameters ≥ r: the largest uniform rank (capped per position where a larger
    /// rank cannot help) whose exact core count meets it, found by binary search (METHODS §3, "fixed ratio").
    case ratio(Double)
    /// Ranks as `FactorizedFormat` documents them (one value = every rank).
    case ranks([Int])
    /// Keep a share e ∈ (0, 1] of the energy Σσ²: the relative Frobenius error ε = √(1 − e) handed to the
    /// decomposition (formats whose algorithm can guarantee ε: not CP, BTD, STT or STR, whose ALS cannot).
    case energy(Double)
}

/// Settings of `LayerCompressor` besides the format and target.
public struct LayerCompressorOptions: Sendable {
    /// N_b for block-term layers.
    public var blocks: Int = 2
    /// Sweeps of CP-ALS, TR-ALS and BTD-ALS at most (conversion time grows linearly with it; fine-tuning follows).
    public var alsIterations: Int = 30
    /// Sweeps of STT/STR-ALS on FC layers at most: each solves least-squares problems with ∏(I_kO_k)/(I_kO_k) rows per core
    /// (seconds per sweep on a 3136×256 weight), so conversion stops early and fine-tuning does the rest.
    public var semiTensorSweeps: Int = 3
    /// t of STT/STR layers (the semi-tensor product's factor; it must divide the output modes it links, and for
    /// STR-conv every channel mode and linked rank).
    public var stpFactor: Int = 2
    /// The largest block-term core system N_b·∏R_k that BTD-ALS may solve (its normal matrix has that size squared).
    public var maximumBlockTermCore: Int = 4096
    /// The default settings.
    public init() {}
}

/// What `LayerCompressor` made of one dense layer.
public enum LayerCompressionOutcome<Scalar: TensorScalar> {
    /// The factorized replacement and the record that rebuilds its structure.
    case replaced(any ShapedLayer<Scalar>, FactorizedLayerRecord)
    /// The format does not apply to this layer; it stays dense, and the reason goes into the report.
    case keptDense(reason: String)
}

/// How a factorized layer is built, enough to rebuild it with placeholder cores before a checkpoint restores
/// them. Stored in the compressed checkpoint's architecture record.
public struct FactorizedLayerRecord: Codable, Equatable, Sendable {
    /// The layer's name in the model (`"15"`, `"layer1.0.conv1"`).
    public var name: String
    /// `linear` or `conv`.
    public var kind: String
    /// The format's short name.
    public var format: String
    /// I_1..I_d (FC) or the conv layer's own structural numbers.
    public var inputModes: [Int]
    /// O_1..O_d.
    public var outputModes: [Int]
    /// The ranks as the format documents them.
    public var ranks: [Int]
    /// N_b (block term).
    public var blocks: Int
    /// Whether the layer has a bias.
    public var bias: Bool
    /// Further integers by name: what a conv format needs (kernel size, stride, padding, …); `stpFactor` for STT/STR.
    public var extra: [String: [Int]]

    /// A record.
    public init(name: String, kind: String, format: String, inputModes: [Int], outputModes: [Int], ranks: [Int],
                blocks: Int = 1, bias: Bool, extra: [String: [Int]] = [:]) {
        self.name = name
        self.kind = kind
        self.format = format
        self.inputModes = inputModes
        self.outputModes = outputModes
        self.ranks = ranks
        self.blocks = blocks
        self.bias = bias
        self.extra = extra
    }
}

/// The per-layer compressor seam of the pre-train pipeline (METHODS §2.1 steps 3–4): given a dense layer, its
/// name and per-sample input shape, a format and a rank target, it returns a factorized replacement initialized
/// from the decomposition of the trained weight, or the reason why the format does not apply (the layer then
/// stays dense and the report says so).
///
/// FC layers use `FactorizedLinear.converting` with mode factorizations from `balancedFactorization`
/// (`modeCount(for:)` modes). Conv layers go through `compressConvolution`, the one place the conv formats plug in.
public enum LayerCompressor {
    /// The number of modes d an FC layer is split into for `format` (SVD uses I and O whole; KPD needs d = 2;
    /// Tucker is tensorized on the 2d-order weight, so d = 2 already gives an order-4 core; HT has a balanced tree
    /// of 4 leaves; CP and the chain and ring formats use 3 paired modes; BTD uses 2, because BTD-ALS solves for all
    /// block cores at once, a system of size N_b·∏R_k that grows with the power d of the ranks).
    public static func modeCount(for format: FactorizedFormat) -> Int {
        switch format {
        case .svd: return 1
        case .kronecker, .tucker, .blockTerm: return 2
        case .hierarchicalTucker: return 4
        case .cp, .tensorTrain, .tensorRing, .semiTensorTrain, .semiTensorRing: return 3
        }
    }

    /// The mode factorizations an `inputs` → `outputs` FC layer gets in `format` (`balancedFactorization` into
    /// `modeCount(for:)` modes), or nil when a format of two or more modes would get a mode of size 1.
    static func linearModes(inputs: Int, outputs: Int, format: FactorizedFormat) -> (input: [Int], output: [Int])? {
        let d = modeCount(for: format)
        let modes = (balancedFactorization(of: inputs, into: d), balancedFactorization(of: outputs, into: d))
        return d >= 2 && (modes.0.contains(1) || modes.1.contains(1)) ? nil : modes
    }

    /// Compresses one dense layer (`Linear` or `Conv2D`); any other layer is kept with a reason.
    ///
    /// - Throws: `CompressionError` for a target that is invalid whatever the layer (a ratio below 1, an energy
    ///   outside (0, 1], an energy target for CP or BTD, ranks of the wrong count for the layer);
    ///   `DecompositionError` when the decomposition fails.
    public static func compress<Scalar: TensorScalar>(_ layer: any Layer<Scalar>, name: String, inputShape: [Int],
                                                      format: CompressionFormat, target: LayerRankTarget,
                                                      options: LayerCompressorOptions = LayerCompressorOptions()) throws
        -> LayerCompressionOutcome<Scalar>
    {
        try validate(target, format: format, layer: name)
        if let linear = layer as? Linear<Scalar> {
            return try compressLinear(linear, name: name, format: format, target: target, options: options)
        }
        if let conv = layer as? Conv2D<Scalar> {
            return try compressConvolution(conv, name: name, inputShape: inputShape, format: format, target: target,
                                           options: options)
        }
        return .keptDense(reason: "\(type(of: layer)) has no factorized form")
    }

    /// The factorized replacement of a `Conv2D` in `format` (`CompressionFormat.convolutionFormat`: SVD channel,
    /// CP [12], Tucker-2 [9], TT [38], TR [14], HT, BTD, GKPD [36], STR [37]) through `FactorizedConv2D.converting`, with
    /// two balanced channel factors and, for a ratio, the largest uniform rank that reaches it
    /// (`FactorizedConv2D.uniformRanks`); or the reason it does not apply (no conv form, a grouped conv, a ratio
    /// no rank reaches, channels that do not split).
    public static func compressConvolution<Scalar: TensorScalar>(_ conv: Conv2D<Scalar>, name: String, inputShape: [Int],
                                                                 format: CompressionFormat, target: LayerRankTarget,
                                                                 options: LayerCompressorOptions) throws
        -> LayerCompressionOutcome<Scalar>
    {
        guard let convFormat = format.convolutionFormat else {
            return .keptDense(reason: "\(format.displayName) has no convolution form in LowRank")
        }
        let (kh, kw) = conv.kernelSize
        let blocks = convFormat == .blockTerm ? options.blocks : 1
        let stpFactor = convFormat == .semiTensorRing ? options.stpFactor : 1
        var cpOptions = CPALSOptions<Scalar>()
        // Kernels are small: STR-conv gets the full ALS budget (`semiTensorSweeps` caps the FC weights' sweeps).
        cpOptions.maxIterations = options.alsIterations
        let layer: FactorizedConv2D<Scalar>
        do {
            let decompositionTarget: RankTarget<Scalar>
            switch target {
            case let .ranks(ranks): decompositionTarget = .ranks(ranks)
            case let .energy(e): decompositionTarget = .relativeError(Scalar((1 - e).squareRoot()))
            case let .ratio(ratio):
                decompositionTarget = .ranks(try FactorizedConv2D<Scalar>.uniformRanks(
                    format: convFormat, inChannels: conv.inChannels, outChannels: conv.outChannels, kernelHeight: kh,
                    kernelWidth: kw, blocks: blocks, stpFactor: stpFactor, compressionRatio: ratio, name: name))
            }
            if convFormat == .blockTerm, case let .ranks(ranks) = decompositionTarget, ranks.count > 1,
               let reason = blockTermSystemTooLarge(blocks * ranks.reduce(1, *), options: options) {
                return .keptDense(reason: reason)
            }
            layer = try FactorizedConv2D.converting(conv, format: convFormat, target: decompositionTarget, blocks: blocks,
                                                    stpFactor: stpFactor, cpOptions: cpOptions, name: name)
        } catch let error as CompressionError {
            return .keptDense(reason: error.description)
        }
        let modes = layer.channelModes
        let record = FactorizedLayerRecord(
            name: name, kind: "conv", format: format.shortName, inputModes: modes.input, outputModes: modes.output,
            ranks: layer.ranks, blocks: layer.blocks, bias: layer.bias != nil,
            extra: ["channels": [layer.inChannels, layer.outChannels], "kernel": [kh, kw],
                    "kernelModes": modes.kernelHeight + modes.kernelWidth,
                    "geometry": [layer.params.strideHeight, layer.params.strideWidth, layer.params.paddingTop,
                                 layer.params.paddingBottom, layer.params.paddingLeft, layer.params.paddingRight,
                                 layer.params.dilationHeight, layer.params.dilationWidth]]
                .merging(convFormat == .semiTensorRing ? ["stpFactor": [stpFactor]] : [:]) { $1 })
        return .replaced(layer, record)
    }

    /// Rebuilds a factorized conv layer from its record (cores drawn at random; a checkpoint then restores them).
    ///
    /// - Throws: `CompressionError` when the record does not describe a valid layer.
    public static func rebuildConvolution<Scalar: TensorScalar>(_ record: FactorizedLayerRecord, as type: Scalar.Type)
        throws -> any ShapedLayer<Scalar>
    {
        guard let format = CompressionFormat(name: record.format)?.convolutionFormat,
              let channels = record.extra["channels"], channels.count == 2,
              let kernel = record.extra["kernel"], kernel.count == 2,
              let g = record.extra["geometry"], g.count == 8 else {
            throw CompressionError.unsupportedFormat(layer: record.name, problem:
                "the record of this factorized convolution is incomplete or names no conv format ('\(record.format)'); re-run the compression")
        }
        let kernelModes = record.extra["kernelModes"] ?? []
        let half = kernelModes.count / 2
        let modes = ConvChannelModes(input: record.inputModes, output: record.outputModes,
                                     kernelHeight: Array(kernelModes.prefix(half)), kernelWidth: Array(kernelModes.suffix(half)))
        let params = Convolution2D(strideHeight: g[0], strideWidth: g[1], paddingTop: g[2], paddingBottom: g[3],
                                   paddingLeft: g[4], paddingRight: g[5], dilationHeight: g[6], dilationWidth: g[7])
        var generator = SeededGenerator(seed: 0)
        return try FactorizedConv2D<Scalar>(format: format, inChannels: channels[0], outChannels: channels[1],
                                            kernelHeight: kernel[0], kernelWidth: kernel[1], params: params,
                                            ranks: record.ranks, channelModes: modes, blocks: record.blocks,
                                            stpFactor: record.extra["stpFactor"]?.first ?? 1, bias: record.bias, calibrated: false,
                                            name: record.name, generator: &generator)
    }

    /// Rebuilds a factorized layer from its record with zero cores (a checkpoint then restores them).
    ///
    /// - Throws: `CompressionError` when the record does not describe a valid layer.
    public static func rebuild<Scalar: TensorScalar>(_ record: FactorizedLayerRecord, as type: Scalar.Type = Scalar.self)
        throws -> any ShapedLayer<Scalar>
    {
        switch record.kind {
        case "linear":
            guard let format = CompressionFormat(name: record.format)?.linearFormat else {
                throw CompressionError.unsupportedFormat(layer: record.name, problem: "'\(record.format)' is no FC format")
            }
            let (network, _) = try FactorizedLinear<Scalar>.network(format: format, inputModes: record.inputModes,
                                                                   outputModes: record.outputModes, ranks: record.ranks,
                                                                   blocks: record.blocks,
                                                                   stpFactor: record.extra["stpFactor"]?.first ?? 1,
                                                                   layer: record.name)
            return try FactorizedLinear<Scalar>(format: format, inputModes: record.inputModes, outputModes: record.outputModes,
                                                cores: network.coreShapes.map { Tensor.zeros($0) },
                                                bias: record.bias ? Tensor.zeros([network.outputFeatures]) : nil,
                                                name: record.name)
        case "conv":
            return try rebuildConvolution(record, as: Scalar.self)
        default:
            throw CompressionError.unsupportedFormat(layer: record.name, problem:
                "unknown factorized layer kind '\(record.kind)' (expected linear or conv)")
        }
    }

    // MARK: FC layers

    static func compressLinear<Scalar: TensorScalar>(_ linear: Linear<Scalar>, name: String, format: CompressionFormat,
                                                     target: LayerRankTarget, options: LayerCompressorOptions) throws
        -> LayerCompressionOutcome<Scalar>
    {
        let fcFormat = format.linearFormat
        let (inputs, outputs) = (linear.inputFeatures, linear.outputFeatures)
        let d = modeCount(for: fcFormat)
        guard let modes = linearModes(inputs: inputs, outputs: outputs, format: fcFormat) else {
            return .keptDense(reason: "\(inputs) → \(outputs) features do not split into \(d) modes > 1 "
                              + "(\(balancedFactorization(of: inputs, into: d)) → \(balancedFactorization(of: outputs, into: d))); "
                              + "\(format.displayName) needs \(d)")
        }
        let (inputModes, outputModes) = modes
        if fcFormat.usesSemiTensorProduct {
            // t must divide every output mode the semi-tensor product links (all for STR, O_2..O_d for STT).
            let t = options.stpFactor
            let linked = FactorizedLinear<Scalar>.linkedBonds(fcFormat, stpFactor: t, modeCount: d)
            do {
                try FactorizedLinear<Scalar>.checkSemiTensorProduct(fcFormat, t: t, ranks: [Int](repeating: t, count: d + 1),
                                                                    outputModes: outputModes, linked: linked, layer: name)
            } catch let error as CompressionError {
                return .keptDense(reason: error.description)
            }
        }
        let blocks = fcFormat == .blockTerm ? options.blocks : 1
        let decompositionTarget: RankTarget<Scalar>
        switch target {
        case let .ranks(ranks):
            decompositionTarget = .ranks(ranks)
        case let .energy(e):
            decompositionTarget = .relativeError(Scalar((1 - e).squareRoot()))
        case let .ratio(ratio):
            guard let ranks = try uniformRanks(fcFormat, inputModes: inputModes, outputModes: outputModes, blocks: blocks,
                                               stpFactor: options.stpFactor, budget: Double(inputs * outputs) / ratio, layer: name) else {
                let t = fcFormat.usesSemiTensorProduct ? options.stpFactor : 1
                let (smallest, _) = try FactorizedLinear<Scalar>.network(format: fcFormat, inputModes: inputModes,
                                                                        outputModes: outputModes, ranks: [t],
                                                                        blocks: blocks, stpFactor: t, layer: name)
                return .keptDense(reason: String(format: "even rank 1 keeps %d of %d parameters (%.1f×), short of %.1f×",
                                                 smallest.parameterCount, inputs * outputs,
                                                 Double(inputs * outputs) / Double(smallest.parameterCount), ratio))
            }
            decompositionTarget = .ranks(ranks)
        }
        if fcFormat == .blockTerm, case let .ranks(ranks) = decompositionTarget,
           let reason = blockTermSystemTooLarge(blocks * (ranks.count == 1 ? ranks[0] * ranks[0] : ranks.reduce(1, *)),
                                                options: options) {
            return .keptDense(reason: reason)
        }
        var cpOptions = CPALSOptions<Scalar>()
        cpOptions.maxIterations = fcFormat.usesSemiTensorProduct ? options.semiTensorSweeps : options.alsIterations
        let layer: FactorizedLinear<Scalar>
        do {
            if fcFormat == .tensorRing, case let .ranks(ranks) = decompositionTarget {
                // TR-ALS from one random start with a bounded number of sweeps: the default four probed starts and 500
                // sweeps take minutes on a 3136×256 weight, and fine-tuning follows anyway.
                let ring = try TensorRing.als(paired(linear.weight.value, inputModes, outputModes), target: .ranks(ranks),
                                              options: TRALSOptions(maxIterations: options.alsIterations, restarts: 1)).decomposition
                let cores = ring.cores.enumerated().map { k, core in
                    core.reshaped([core.shape[0], inputModes[k], outputModes[k], core.shape[2]])
                }
                layer = try FactorizedLinear(format: .tensorRing, inputModes: inputModes, outputModes: outputModes, cores: cores,
                                             bias: linear.bias?.value, name: name)
            } else {
                layer = try FactorizedLinear.converting(linear, format: fcFormat, inputModes: inputModes, outputModes: outputModes,
                                                        target: decompositionTarget, blocks: blocks, stpFactor: options.stpFactor,
                                                        cpOptions: cpOptions, name: name)
            }
        } catch let DecompositionError.invalidRanks(decomposition, problem) {
            // Ranks the decomposition refuses (far too large) keep the layer dense, as on the conv path.
            return .keptDense(reason: "\(decomposition): \(problem)")
        }
        let (ranks, realBlocks, t) = try FactorizedLinear<Scalar>.ranks(of: fcFormat, cores: layer.cores.map(\.value),
                                                                        modeCount: layer.network.inputModes.count, layer: name)
        // An STT/STR network's outputs split each linked O_k into (O_k/t, t); the record keeps the O_k.
        let record = FactorizedLayerRecord(name: name, kind: "linear", format: format.shortName,
                                           inputModes: layer.network.inputModes,
                                           outputModes: fcFormat.usesSemiTensorProduct ? outputModes : layer.network.outputModes,
                                           ranks: ranks, blocks: realBlocks, bias: layer.bias != nil,
                                           extra: fcFormat.usesSemiTensorProduct ? ["stpFactor": [t]] : [:])
        return .replaced(layer, record)
    }

    /// Why BTD-ALS may not solve a block-core system of `unknowns` = N_b·∏R_k unknowns (nil when it may).
    static func blockTermSystemTooLarge(_ unknowns: Int, options: LayerCompressorOptions) -> String? {
        guard unknowns > options.maximumBlockTermCore else { return nil }
        return "BTD-ALS would solve a system of \(unknowns) block-core unknowns (more than "
            + "\(options.maximumBlockTermCore)); use fewer blocks or smaller ranks"
    }

    /// The largest uniform rank r (each position capped where a larger rank cannot lower the error) whose exact core
    /// count is ≤ `budget`; nil when even r = 1 exceeds it. The core count is non-decreasing in r, so a binary search
    /// finds it.
    static func uniformRanks(_ format: FactorizedFormat, inputModes: [Int], outputModes: [Int], blocks: Int,
                             stpFactor t: Int, budget: Double, layer: String) throws -> [Int]? {
        let caps = rankCaps(format, inputModes: inputModes, outputModes: outputModes)
        // STT/STR ranks are multiples of t: r counts steps of t.
        let step = format.usesSemiTensorProduct ? t : 1
        func ranks(_ r: Int) -> [Int] { caps.map { Swift.max(step, Swift.min(r * step, $0 / step * step)) } }
        func network(_ r: Int) throws -> TensorNetwork {
            try FactorizedLinear<Float>.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                ranks: ranks(r), blocks: blocks, stpFactor: step, layer: layer).0
        }
        // Rank 1 must fit the format (its error names the problem); a larger rank that does not stores far more than
        // the weight (`oversizedFactorsProblem`), so it costs too much.
        guard Double(try network(1).parameterCount) <= budget else { return nil }
        func cost(_ r: Int) -> Int { (try? network(r))?.parameterCount ?? Int.max }
        var low = 1, high = Swift.max(1, (caps.max() ?? 1) / step)
        if Double(cost(high)) <= budget { return ranks(high) }
        while high - low > 1 {  // cost(low) ≤ budget < cost(high)
            let middle = (low + high) / 2
            if Double(cost(middle)) <= budget { low = middle } else { high = middle }
        }
        return ranks(low)
    }

    /// The largest useful rank at each rank position of `format` (as many entries as the format takes ranks): the
    /// mode size for Tucker, the smaller side of the unfolding for SVD, KPD and TT, the paired mode size for a
    /// leaf (HT, BTD) and the smaller side of a node's unfolding otherwise; CP and TR ranks are bounded by the
    /// size of the whole weight only.
    static func rankCaps(_ format: FactorizedFormat, inputModes: [Int], outputModes: [Int]) -> [Int] {
        let d = inputModes.count
        let paired = zip(inputModes, outputModes).map { $0.0 * $0.1 }
        let total = paired.reduce(1, *)
        func unfolding(_ inside: Int) -> Int { Swift.min(inside, total / inside) }
        switch format {
        case .svd:
            return [Swift.min(inputModes.reduce(1, *), outputModes.reduce(1, *))]
        case .kronecker:
            return [Swift.min(paired[0], paired[1])]
        case .tucker:
            return inputModes + outputModes
        case .tensorTrain, .semiTensorTrain:
            return (1..<d).map { unfolding(paired[..<$0].reduce(1, *)) }
        case .blockTerm:
            return paired
        case .hierarchicalTucker:
            var caps: [Int] = []
            func visit(_ tree: DimensionTree) -> Int {
                switch tree {
                case let .leaf(k):
                    caps.append(unfolding(paired[k]))
                    return paired[k]
                case let .node(left, right):
                    let inside = visit(left) * visit(right)
                    caps.append(unfolding(inside))
                    return inside
                }
            }
            _ = visit(.balanced(order: d))
            return Array(caps.dropLast())  // the root has rank 1
        case .cp, .tensorRing, .semiTensorRing:
            return [Int](repeating: total, count: FactorizedLinear<Float>.rankCount(format, d: d))
        }
    }

    static func validate(_ target: LayerRankTarget, format: CompressionFormat, layer: String) throws {
        switch target {
        case let .ratio(ratio):
            guard ratio >= 1, ratio.isFinite else {
                throw CompressionError.invalidRanks(layer: layer, problem: "the compression ratio must be ≥ 1, got \(ratio); for example 5")
            }
        case let .ranks(ranks):
            guard !ranks.isEmpty, ranks.allSatisfy({ $0 >= 1 }) else {
                throw CompressionError.invalidRanks(layer: layer, problem: "ranks must be ≥ 1, got \(ranks); for example [8]")
            }
        case let .energy(e):
            guard e > 0, e <= 1 else {
                throw CompressionError.invalidRanks(layer: layer, problem: "the energy share must lie in (0, 1], got \(e); for example 0.9")
            }
            if [.cp, .blockTerm, .semiTensorTrain, .semiTensorRing].contains(format) {
                throw CompressionError.unsupportedFormat(layer: layer, problem:
                    "\(format.displayName) is fitted by ALS, which cannot guarantee an energy share; give a ratio or ranks instead")
            }
        }
    }
}
