import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

// Tensorized networks trained from scratch (the pre-set road, METHODS §2.2; Pan et al. [72]): every Conv2D and
// Linear layer of a flat reference model, except optionally the first conv and the last FC, becomes a pre-set
// `FactorizedConv2D` / `FactorizedLinear` of one format. The resolved per-layer ranks and modes are recorded in
// the checkpoint's architecture record, so the same network is rebuilt exactly for evaluation or resuming.

/// A user-facing format name and the FC and conv formats it stands for (METHODS §1).
public enum TensorizationFormat: String, CaseIterable, Codable, Sendable {
    /// TT-matrix [45] / TT-conv [38].
    case tt
    /// TR-matrix / TRN [14].
    case tr
    /// Tucker (FC) / Tucker-2 (conv) [9].
    case tucker
    /// CP (FC) / 4-layer CP conv [12].
    case cp
    /// Two thin factors (FC) / K×K conv to R channels then 1×1 (conv).
    case svd
    /// Hierarchical Tucker.
    case ht
    /// Block-term [39].
    case btd
    /// Kronecker products: KPD (FC) [50] / GKPD (conv) [36]; also spelled `gkpd`.
    case kpd
    /// Semi-tensor ring [37]: STR-matrix (FC) / STR-conv, with STP factor t (`TensorizationRequest.stpFactor`). A
    /// layer whose output modes or ranks t does not divide (a 10-way classifier at t = 2) stays dense.
    case str
    /// Semi-tensor train [37] on the FC layers, with STP factor t; LowRank has no STT conv form, so convolutions stay
    /// dense.
    case stt

    /// Whether the format links cores by the semi-tensor product (takes an STP factor t).
    public var usesSemiTensorProduct: Bool { self == .str || self == .stt }

    /// The format named `name` (`gkpd` is `kpd`).
    ///
    /// - Throws: `CompressionError.unsupportedFormat` naming the formats for an unknown name.
    public init(name: String) throws {
        let key = name.lowercased() == "gkpd" ? "kpd" : name.lowercased()
        guard let format = TensorizationFormat(rawValue: key) else {
            throw CompressionError.unsupportedFormat(layer: "--format", problem:
                "unknown format '\(name)'; use one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")) (or gkpd)")
        }
        self = format
    }

    /// The format of a factorized fully connected layer.
    public var linearFormat: FactorizedFormat {
        switch self {
        case .tt: return .tensorTrain
        case .tr: return .tensorRing
        case .tucker: return .tucker
        case .cp: return .cp
        case .svd: return .svd
        case .ht: return .hierarchicalTucker
        case .btd: return .blockTerm
        case .kpd: return .kronecker
        case .str: return .semiTensorRing
        case .stt: return .semiTensorTrain
        }
    }

    /// The format of a factorized convolution, or nil for `stt` (no conv form).
    public var convFormat: FactorizedConvFormat? {
        switch self {
        case .tt: return .tensorTrain
        case .tr: return .tensorRing
        case .tucker: return .tucker2
        case .cp: return .cp
        case .svd: return .svdChannel
        case .ht: return .hierarchicalTucker
        case .btd: return .blockTerm
        case .kpd: return .gkpd
        case .str: return .semiTensorRing
        case .stt: return nil
        }
    }
}

/// What to tensorize and how: the format, the ranks (given, or chosen for a compression ratio), which ends stay
/// dense, and how the factorized layers run.
public struct TensorizationRequest: Sendable, Equatable {
    /// How the ranks are set.
    public enum Ranks: Sendable, Equatable {
        /// The same value for every rank of every replaced layer.
        case uniform(Int)
        /// Per layer, the largest uniform rank whose cores and bias are at most 1/ratio of the dense layer's
        /// weights and bias (so every replaced layer, and their sum, has ≥ ratio× fewer parameters).
        case compressionRatio(Double)
    }

    /// The format of every replaced layer.
    public var format: TensorizationFormat
    /// The ranks.
    public var ranks: Ranks
    /// Keep the first Conv2D dense (default true: it has few parameters and sees the raw image).
    public var keepFirstConv = true
    /// Keep the last Linear (the classifier) dense (default false).
    public var keepLastLinear = false
    /// N_b for `btd`.
    public var blocks = 2
    /// How the factorized layers run.
    public var executionMode: ExecutionMode = .auto
    /// The STP factor t for `str` and `stt` (ranks of the ratio search step in multiples of t).
    public var stpFactor = 2

    /// A request with the default ends (first conv dense, classifier factorized).
    public init(format: TensorizationFormat, ranks: Ranks, keepFirstConv: Bool = true, keepLastLinear: Bool = false,
                blocks: Int = 2, executionMode: ExecutionMode = .auto, stpFactor: Int = 2) {
        self.format = format
        self.ranks = ranks
        self.keepFirstConv = keepFirstConv
        self.keepLastLinear = keepLastLinear
        self.blocks = blocks
        self.executionMode = executionMode
        self.stpFactor = stpFactor
    }

    /// A request from command-line values: a format name, exactly one of `rank` and `ratio`, an execution
    /// mode name (`auto`, `factorized`, `reconstructed`) and the STP factor of `str` and `stt`.
    ///
    /// - Throws: `CompressionError` naming the option and the valid values.
    public init(format name: String, rank: Int?, ratio: Double?, execution: String = "auto", stpFactor: Int = 2) throws {
        let format = try TensorizationFormat(name: name)
        let ranks: Ranks
        switch (rank, ratio) {
        case let (rank?, nil) where rank >= 1: ranks = .uniform(rank)
        case let (nil, ratio?) where ratio >= 1 && ratio.isFinite: ranks = .compressionRatio(ratio)
        default:
            throw CompressionError.invalidRanks(layer: "--ranks/--ratio", problem:
                "give exactly one of a rank ≥ 1 (--ranks 8) or a compression ratio ≥ 1 (--ratio 5), got \(rank.map { "--ranks \($0)" } ?? "no --ranks") and \(ratio.map { "--ratio \($0)" } ?? "no --ratio")")
        }
        guard let mode = executionModeNames.first(where: { $0.name == execution })?.mode else {
            throw CompressionError.unsupportedFormat(layer: "--execution", problem:
                "unknown execution mode '\(execution)'; use \(executionModeNames.map(\.name).joined(separator: ", "))")
        }
        guard stpFactor >= 1 else {
            throw CompressionError.invalidRanks(layer: "--stp-factor", problem: "the STP factor must be at least 1, got \(stpFactor)")
        }
        self.init(format: format, ranks: ranks, executionMode: mode, stpFactor: stpFactor)
    }

    /// t for the layers of this request: `stpFactor` for `str` and `stt`, 1 for the other formats.
    var linkFactor: Int { format.usesSemiTensorProduct ? stpFactor : 1 }
}

/// The resolved setting of one replaced layer: what the architecture record stores to rebuild it.
public struct TensorizedLayerPlan: Codable, Equatable, Sendable {
    /// The layer's dotted path in the model, the prefix of its parameters (`"15"`, `"layer2.1.conv1"`).
    public var name: String
    /// The ranks, expanded (as the layer's format documents them).
    public var ranks: [Int]
    /// The input modes (FC: I_k; conv: channel modes, for GKPD [C_1, C_2]); empty for formats using them whole.
    public var inputModes: [Int]
    /// The output modes (FC: O_k; conv: channel modes, for GKPD [F_1, F_2]).
    public var outputModes: [Int]
    /// GKPD only: [K_h1, K_h2] and [K_w1, K_w2].
    public var kernelModes: [[Int]]?
    /// N_b (`btd`; 1 otherwise).
    public var blocks: Int

    enum CodingKeys: String, CodingKey {
        case name, ranks, blocks
        case inputModes = "input_modes"
        case outputModes = "output_modes"
        case kernelModes = "kernel_modes"
    }
}

extension TensorizedLayerPlan {
    private enum LegacyKeys: String, CodingKey { case index }

    /// Decodes a layer plan. Records written before ResNets could be tensorized name the layer by its position in
    /// the model's `Sequential` (`"index": 15`), which is its path there.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let name = try container.decodeIfPresent(String.self, forKey: .name) {
            self.name = name
        } else {
            name = String(try decoder.container(keyedBy: LegacyKeys.self).decode(Int.self, forKey: .index))
        }
        ranks = try container.decode([Int].self, forKey: .ranks)
        inputModes = try container.decode([Int].self, forKey: .inputModes)
        outputModes = try container.decode([Int].self, forKey: .outputModes)
        kernelModes = try container.decodeIfPresent([[Int]].self, forKey: .kernelModes)
        blocks = try container.decode(Int.self, forKey: .blocks)
    }
}

/// Everything needed to rebuild a tensorized model from its registry model: stored under `"tensorized"` in the
/// checkpoint's architecture record.
public struct TensorizationPlan: Codable, Equatable, Sendable {
    /// The format of every replaced layer.
    public var format: TensorizationFormat
    /// The execution mode's name (`auto`, `factorized`, `reconstructed`).
    public var execution: String
    /// The replaced layers, in model order.
    public var layers: [TensorizedLayerPlan]
    /// The STP factor t of `str` and `stt` (nil for the other formats).
    public var stpFactor: Int?

    enum CodingKeys: String, CodingKey {
        case format, execution, layers
        case stpFactor = "stp_factor"
    }

    /// t for the recorded layers: `stpFactor` for `str` and `stt` (records written before it was stored used 2), 1
    /// for the other formats, as `TensorizationRequest.linkFactor`.
    var linkFactor: Int { format.usesSemiTensorProduct ? stpFactor ?? 2 : 1 }
}

/// One Conv2D or Linear layer of a tensorized model: replaced or kept dense, with its parameters and per-image
/// multiply-adds before and after.
public struct TensorizedLayerSummary: Sendable, Equatable {
    /// The child name in the model (`"15"`).
    public var name: String
    /// The dense layer's description.
    public var denseDescription: String
    /// The factorized format (`tensorTrain`, `tucker2`, …), or nil when the layer stays dense.
    public var format: String?
    /// The expanded ranks (empty when dense).
    public var ranks: [Int]
    /// Weights and bias of the dense layer.
    public var denseParameters: Int
    /// Cores and bias of the factorized layer (the dense count when kept dense).
    public var parameters: Int
    /// Multiply-adds of the dense layer for one image.
    public var denseMultiplyAdds: Int
    /// Exact multiply-adds of the factorized contraction for one image (the dense count when kept dense).
    public var multiplyAdds: Int
    /// Why the layer stays dense (nil when replaced).
    public var reason: String?

    /// Whether the layer was replaced.
    public var isReplaced: Bool { format != nil }
}

/// A model built from an architecture record, tensorized or not.
public struct TensorizedModelBuild<Scalar: TensorScalar> {
    /// The model.
    public let model: any ShapedLayer<Scalar>
    /// The architecture record to store in checkpoints (the registry record plus `"tensorized"` when there is a
    /// plan).
    public let architectureJSON: String
    /// The plan, or nil for a dense model.
    public let plan: TensorizationPlan?
    /// One summary per Conv2D or Linear position of the registry model (empty for a dense model).
    public let layers: [TensorizedLayerSummary]

    /// Σ dense parameters of the replaced layers over Σ their factorized parameters (1 when none is replaced).
    public var compressionRatio: Double {
        let replaced = layers.filter(\.isReplaced)
        let dense = replaced.reduce(0) { $0 + $1.denseParameters }, factorized = replaced.reduce(0) { $0 + $1.parameters }
        return factorized == 0 ? 1 : Double(dense) / Double(factorized)
    }

    /// One line for logs: format, layers replaced, their parameters before and after, the ratio.
    public var summaryLine: String? {
        guard let plan else { return nil }
        let replaced = layers.filter(\.isReplaced)
        let dense = replaced.reduce(0) { $0 + $1.denseParameters }, factorized = replaced.reduce(0) { $0 + $1.parameters }
        var line = "tensorized (\(plan.format.rawValue), \(plan.execution)): \(replaced.count) of \(layers.count) conv/linear layers, "
            + "\(dense) → \(factorized) parameters in them (" + String(format: "%.2f", compressionRatio) + "× fewer)"
        for layer in layers where !layer.isReplaced {
            line += "; layer \(layer.name) dense: \(layer.reason ?? "")"
        }
        return line
    }
}

/// Builds tensorized versions of the reference models (`fmnist-cnn`, `lenet5`, the ResNets), replacing their
/// Conv2D and Linear layers wherever `ModelSurgery` finds them (inside residual blocks too).
///
/// ```swift
/// let request = TensorizationRequest(format: .tt, ranks: .compressionRatio(5))
/// let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
///     architectureJSON: ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10).json,
///     request: request, seed: 0)
/// ```
public enum TensorizedModel {
    /// The registry model an architecture record describes, tensorized by the record's `"tensorized"` plan when it
    /// has one, else by `request` when given, else dense. Weights are initialized from `seed` (the registry's
    /// initialization, then the pre-set factorized layers drawn from a stream of the same seed).
    ///
    /// - Throws: `ModelError` for a bad record; `CompressionError` when both a recorded plan and a request are
    ///   given, or a recorded plan no longer fits the model.
    public static func build<Scalar: TensorScalar>(architectureJSON: String, request: TensorizationRequest? = nil,
                                                   seed: UInt64, as type: Scalar.Type = Scalar.self) throws
        -> TensorizedModelBuild<Scalar>
    {
        let architecture = try ModelArchitecture(json: architectureJSON)
        let recorded = try? JSONDecoder().decode(ArchitectureRecord.self, from: Data(architectureJSON.utf8)).tensorized
        let model: any ShapedLayer<Scalar> = try ModelRegistry.make(architecture, seed: seed)
        if recorded != nil && request != nil {
            throw CompressionError.unsupportedFormat(layer: architecture.model, problem:
                "the record is already tensorized (\(recorded!.format.rawValue)); drop the tensorization options")
        }
        guard recorded != nil || request != nil else {
            return TensorizedModelBuild(model: model, architectureJSON: architecture.json, plan: nil, layers: [])
        }
        guard let container = model as? any LayerContainer<Scalar> else {
            throw CompressionError.unsupportedFormat(layer: architecture.model, problem:
                "\(architecture.model) does not list its layers for replacement (LayerContainer); it cannot be tensorized")
        }
        var generator = SeededGenerator(seed: seed ^ presetStream)
        let plan: TensorizationPlan, layers: [TensorizedLayerSummary]
        if let recorded {
            layers = try apply(recorded, to: container, inputShape: architecture.inputShape, generator: &generator)
            plan = recorded
        } else {
            let result = tensorize(container, inputShape: architecture.inputShape, request: request!, generator: &generator)
            plan = result.plan
            layers = result.layers
        }
        let record = ArchitectureRecord(model: architecture.model, inputShape: architecture.inputShape,
                                        classes: architecture.classes, tensorized: plan)
        return TensorizedModelBuild(model: model, architectureJSON: record.json, plan: plan, layers: layers)
    }

    /// Replaces, in place, every Conv2D and Linear layer of `model` (`ModelSurgery.compressibleLayers`, except the
    /// ends the request keeps) by a pre-set factorized layer. A layer the format cannot take at the requested ranks,
    /// or whose factorized form would not have fewer parameters, stays dense; its summary says why.
    ///
    /// - Parameter inputShape: the per-sample input `[H, W, C]`.
    /// - Returns: the plan that rebuilds the same layers, and one summary per Conv2D or Linear layer.
    public static func tensorize<Scalar: TensorScalar>(_ model: any LayerContainer<Scalar>, inputShape: [Int],
                                                       request: TensorizationRequest, generator: inout SeededGenerator)
        -> (plan: TensorizationPlan, layers: [TensorizedLayerSummary])
    {
        let candidates = ModelSurgery.compressibleLayers(of: model, inputShape: inputShape)
        let firstConv = candidates.first { $0.isConvolution }?.name
        let lastLinear = candidates.last { !$0.isConvolution }?.name
        var plans: [TensorizedLayerPlan] = [], summaries: [TensorizedLayerSummary] = []
        for candidate in candidates {
            if request.keepFirstConv && candidate.name == firstConv {
                summaries.append(summary(candidate, nil, reason: "the first convolution is kept dense"))
                continue
            }
            if request.keepLastLinear && candidate.name == lastLinear {
                summaries.append(summary(candidate, nil, reason: "the last linear layer is kept dense"))
                continue
            }
            do {
                let (plan, parameters) = try layerPlan(candidate, request: request)
                let dense = candidate.layer.parameterCount
                guard parameters < dense else {
                    summaries.append(summary(candidate, nil, reason:
                        "\(request.format.rawValue) at ranks \(plan.ranks) has \(parameters) parameters, not fewer than the dense \(dense); lower the ranks"))
                    continue
                }
                let layer = try factorized(candidate, plan: plan, format: request.format, stpFactor: request.linkFactor,
                                           mode: request.executionMode, generator: &generator)
                ModelSurgery.replace(candidate, with: layer)
                plans.append(plan)
                summaries.append(summary(candidate, layer, ranks: plan.ranks))
            } catch {
                summaries.append(summary(candidate, nil, reason: "\(error)"))
            }
        }
        let plan = TensorizationPlan(format: request.format, execution: name(of: request.executionMode), layers: plans,
                                     stpFactor: request.format.usesSemiTensorProduct ? request.stpFactor : nil)
        return (plan, summaries)
    }

    /// Replaces, in place, the layers a recorded plan names by freshly initialized factorized layers.
    ///
    /// - Returns: one summary per Conv2D or Linear layer.
    /// - Throws: `CompressionError` when a planned layer is not a dense Conv2D or Linear of `model`, or its setting
    ///   no longer fits the layer.
    public static func apply<Scalar: TensorScalar>(_ plan: TensorizationPlan, to model: any LayerContainer<Scalar>, inputShape: [Int],
                                                   generator: inout SeededGenerator) throws -> [TensorizedLayerSummary] {
        guard let mode = executionModeNames.first(where: { $0.name == plan.execution })?.mode else {
            throw CompressionError.unsupportedFormat(layer: "tensorized record", problem:
                "unknown execution mode '\(plan.execution)'; use \(executionModeNames.map(\.name).joined(separator: ", "))")
        }
        let candidates = ModelSurgery.compressibleLayers(of: model, inputShape: inputShape)
        var replaced: [String: (layer: any ShapedLayer<Scalar>, ranks: [Int])] = [:]
        for layerPlan in plan.layers {
            guard let candidate = candidates.first(where: { $0.name == layerPlan.name }) else {
                throw CompressionError.unsupportedFormat(layer: "layer \(layerPlan.name)", problem:
                    "the tensorized record names a layer that is not a dense Conv2D or Linear of this model; rebuild the record from the model")
            }
            let layer = try factorized(candidate, plan: layerPlan, format: plan.format, stpFactor: plan.linkFactor, mode: mode,
                                       generator: &generator)
            ModelSurgery.replace(candidate, with: layer)
            replaced[candidate.name] = (layer, layerPlan.ranks)
        }
        return candidates.map { candidate in
            replaced[candidate.name].map { summary(candidate, $0.layer, ranks: $0.ranks) }
                ?? summary(candidate, nil, reason: "kept dense by the recorded plan")
        }
    }
}

// MARK: Internals

private let presetStream: UInt64 = 0x5445_4E53_4F52_495A  // "TENSORIZ"

private let executionModeNames: [(name: String, mode: ExecutionMode)] =
    [("auto", .auto), ("factorized", .factorized), ("reconstructed", .reconstructed)]

private func name(of mode: ExecutionMode) -> String { executionModeNames.first { $0.mode == mode }!.name }

/// The registry record with the optional plan (sorted keys, like `ModelArchitecture.json`).
private struct ArchitectureRecord: Codable {
    var model: String
    var inputShape: [Int]
    var classes: Int
    var tensorized: TensorizationPlan?

    enum CodingKeys: String, CodingKey {
        case model, classes, tensorized
        case inputShape = "input_shape"
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

extension TensorizedModel {
    /// The number of prime factors of n, with multiplicity.
    private static func primeFactorCount(_ n: Int) -> Int {
        var rest = n, count = 0, p = 2
        while p * p <= rest {
            while rest % p == 0 { rest /= p; count += 1 }
            p += 1
        }
        return count + (rest > 1 ? 1 : 0)
    }

    /// FC modes: SVD uses I and O whole, KPD two factors, the others d = min(4, max(Ω(I), Ω(O))) ≥ 2 balanced
    /// factors (`balancedFactorization`, padded with 1s): 3136 → 256 becomes [8, 8, 7, 7] → [4, 4, 4, 4].
    private static func linearModes(inputs: Int, outputs: Int, format: FactorizedFormat) -> ([Int], [Int]) {
        let d: Int
        switch format {
        case .svd: d = 1
        case .kronecker: d = 2
        default: d = Swift.min(4, Swift.max(2, primeFactorCount(inputs), primeFactorCount(outputs)))
        }
        return (balancedFactorization(of: inputs, into: d), balancedFactorization(of: outputs, into: d))
    }

    /// Modes and ranks for one layer (given ranks, or the uniform-rank search for the ratio), with the planned
    /// layer's cores and bias counted from its wiring before any core is allocated.
    fileprivate static func layerPlan<Scalar>(_ candidate: CompressibleLayer<Scalar>, request: TensorizationRequest) throws
        -> (plan: TensorizedLayerPlan, parameters: Int)
    {
        let blocks = request.format == .btd ? request.blocks : 1
        if let conv = candidate.layer as? Conv2D<Scalar> {
            let name = "layer \(candidate.name) (\(conv.layerDescription))"
            let format = try convFormat(request.format, layer: name)
            let geometry = ConvGeometry(inChannels: conv.inChannels, outChannels: conv.outChannels,
                                        kernelHeight: conv.kernelSize.height, kernelWidth: conv.kernelSize.width, params: conv.params)
            let modes = try FactorizedConv2D<Scalar>.resolvedModes(format, geometry, nil, layer: name)
            var ranks: [Int]
            switch request.ranks {
            case let .uniform(r): ranks = [r]
            case let .compressionRatio(ratio):
                let weights = conv.outChannels * conv.inChannels * geometry.kernelHeight * geometry.kernelWidth
                let coreRatio = try coreCompressionRatio(ratio, weights: weights, bias: conv.bias == nil ? 0 : conv.outChannels, layer: name)
                ranks = try FactorizedConv2D<Scalar>.uniformRanks(format: format, inChannels: conv.inChannels, outChannels: conv.outChannels,
                                                                  kernelHeight: geometry.kernelHeight, kernelWidth: geometry.kernelWidth,
                                                                  channelModes: modes, blocks: blocks, stpFactor: request.linkFactor,
                                                                  compressionRatio: coreRatio, name: name)
            }
            let (wiring, expanded) = try FactorizedConv2D<Scalar>.wiring(format, geometry, ranks: ranks, modes: modes, blocks: blocks,
                                                                         stpFactor: request.linkFactor, layer: name)
            let plan = TensorizedLayerPlan(name: candidate.name, ranks: expanded, inputModes: modes.input, outputModes: modes.output,
                                           kernelModes: format == .gkpd ? [modes.kernelHeight, modes.kernelWidth] : nil, blocks: blocks)
            return (plan, try plannedCount(wiring.coreShapes, bias: conv.bias?.value.scalarCount ?? 0, ranks: expanded, layer: name))
        }
        let linear = candidate.layer as! Linear<Scalar>
        let format = request.format.linearFormat
        let name = "layer \(candidate.name) (\(linear.layerDescription))"
        let (inputModes, outputModes) = linearModes(inputs: linear.inputFeatures, outputs: linear.outputFeatures, format: format)
        let t = request.linkFactor
        var ranks: [Int]
        switch request.ranks {
        case let .uniform(r): ranks = [r]
        case let .compressionRatio(ratio):
            let weights = linear.inputFeatures * linear.outputFeatures
            let budget = Double(weights) / (try coreCompressionRatio(ratio, weights: weights, bias: linear.bias == nil ? 0 : linear.outputFeatures, layer: name))
            /// The cores' parameters at uniform rank r·t (ranks of an STP format are multiples of t), or nil when the
            /// format cannot take it or the count overflows.
            func parameters(_ r: Int) -> Int? {
                (try? FactorizedLinear<Scalar>.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                       ranks: [r * t], blocks: blocks, stpFactor: t, layer: name)).flatMap { scalarCount($0.0.coreShapes) }
            }
            guard let atOne = parameters(1), Double(atOne) <= budget else {
                // The smallest rank's own error (modes or t that do not fit) names the problem best.
                _ = try FactorizedLinear<Scalar>.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                         ranks: [t], blocks: blocks, stpFactor: t, layer: name)
                let best = parameters(1).map { String(format: "%.2f", Double(weights) / Double($0)) } ?? "nothing"
                throw CompressionError.invalidRanks(layer: name, problem:
                    "no uniform rank reaches a compression ratio of \(ratio) in \(format) with modes \(inputModes) → \(outputModes); rank \(t) gives \(best); ask for less or use another format")
            }
            var low = 1, high = Swift.max(linear.inputFeatures, linear.outputFeatures)
            while low < high {
                let middle = (low + high + 1) / 2
                if let count = parameters(middle), Double(count) <= budget { low = middle } else { high = middle - 1 }
            }
            ranks = [low * t]
        }
        let rankCount = FactorizedLinear<Scalar>.rankCount(format, d: inputModes.count)
        if ranks.count == 1 && rankCount != 1 { ranks = [Int](repeating: ranks[0], count: rankCount) }
        let network = try FactorizedLinear<Scalar>.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                           ranks: ranks, blocks: blocks, stpFactor: t, layer: name).0
        let plan = TensorizedLayerPlan(name: candidate.name, ranks: ranks, inputModes: inputModes, outputModes: outputModes,
                                       kernelModes: nil, blocks: blocks)
        return (plan, try plannedCount(network.coreShapes, bias: linear.bias?.value.scalarCount ?? 0, ranks: ranks, layer: name))
    }

    /// Σ ∏ shape over the core shapes, or nil when it overflows `Int` (ranks far too large).
    private static func scalarCount(_ shapes: [[Int]]) -> Int? {
        var total = 0
        for shape in shapes {
            var size = 1
            for n in shape {
                let (product, overflow) = size.multipliedReportingOverflow(by: n)
                if overflow { return nil }
                size = product
            }
            let (sum, overflow) = total.addingReportingOverflow(size)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    /// The planned layer's cores plus bias.
    ///
    /// - Throws: `CompressionError.invalidRanks` when the count overflows.
    private static func plannedCount(_ shapes: [[Int]], bias: Int, ranks: [Int], layer: String) throws -> Int {
        guard let cores = scalarCount(shapes), cores <= Int.max - bias else {
            throw CompressionError.invalidRanks(layer: layer, problem: "ranks \(ranks) give more core parameters than can be counted; lower the ranks")
        }
        return cores + bias
    }

    /// The weights-only ratio W / C that makes cores C plus bias b at most (W + b)/ratio: C ≤ (W + b)/ratio − b.
    private static func coreCompressionRatio(_ ratio: Double, weights: Int, bias: Int, layer: String) throws -> Double {
        let budget = Double(weights + bias) / ratio - Double(bias)
        guard budget >= 1 else {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "a compression ratio of \(ratio) leaves no parameters for the cores next to the \(bias) bias entries; ask for at most \(String(format: "%.2f", Double(weights + bias) / Double(bias + 1)))")
        }
        return Double(weights) / budget
    }

    /// The conv format of `format`.
    ///
    /// - Throws: `CompressionError.unsupportedFormat` for `stt`, which has no conv form.
    private static func convFormat(_ format: TensorizationFormat, layer: String) throws -> FactorizedConvFormat {
        guard let convFormat = format.convFormat else {
            throw CompressionError.unsupportedFormat(layer: layer, problem:
                "\(format.rawValue) has no convolution form in LowRank; the convolution stays dense (str covers convolutions too)")
        }
        return convFormat
    }

    /// The pre-set factorized layer a plan describes for a dense candidate (its geometry and bias kept).
    fileprivate static func factorized<Scalar>(_ candidate: CompressibleLayer<Scalar>, plan: TensorizedLayerPlan,
                                               format: TensorizationFormat, stpFactor: Int, mode: ExecutionMode,
                                               generator: inout SeededGenerator) throws -> any ShapedLayer<Scalar> {
        if let conv = candidate.layer as? Conv2D<Scalar> {
            let modes = plan.inputModes.isEmpty ? nil
                : ConvChannelModes(input: plan.inputModes, output: plan.outputModes, kernelHeight: plan.kernelModes?.first ?? [],
                                   kernelWidth: plan.kernelModes?.last ?? [])
            return try FactorizedConv2D<Scalar>(format: convFormat(format, layer: candidate.name), inChannels: conv.inChannels, outChannels: conv.outChannels,
                                                kernelHeight: conv.kernelSize.height, kernelWidth: conv.kernelSize.width,
                                                params: conv.params, ranks: plan.ranks, channelModes: modes, blocks: plan.blocks,
                                                stpFactor: stpFactor, bias: conv.bias != nil, executionMode: mode,
                                                generator: &generator)
        }
        let linear = candidate.layer as! Linear<Scalar>
        let layer = try FactorizedLinear<Scalar>(inputModes: plan.inputModes, outputModes: plan.outputModes, format: format.linearFormat,
                                                 ranks: plan.ranks, blocks: plan.blocks, stpFactor: stpFactor,
                                                 bias: linear.bias != nil, executionMode: mode, generator: &generator)
        guard layer.inputFeatures == linear.inputFeatures, layer.outputFeatures == linear.outputFeatures else {
            throw CompressionError.invalidModes(layer: layer.name, problem:
                "modes \(plan.inputModes) → \(plan.outputModes) do not multiply to \(linear.inputFeatures) → \(linear.outputFeatures); use \(balancedFactorization(of: linear.inputFeatures, into: 4)) → \(balancedFactorization(of: linear.outputFeatures, into: 4))")
        }
        return layer
    }

    /// The summary of a candidate, replaced by `layer` or kept dense for `reason`.
    fileprivate static func summary<Scalar>(_ candidate: CompressibleLayer<Scalar>, _ layer: (any ShapedLayer<Scalar>)?,
                                            ranks: [Int] = [], reason: String? = nil) -> TensorizedLayerSummary {
        let dense = candidate.layer as! any ShapedLayer<Scalar>  // a Linear or a Conv2D
        let denseMACs = dense.multiplyAdds(forInput: candidate.inputShape)
        var result = TensorizedLayerSummary(name: candidate.name, denseDescription: dense.layerDescription, format: nil, ranks: [],
                                            denseParameters: dense.parameterCount, parameters: dense.parameterCount,
                                            denseMultiplyAdds: denseMACs, multiplyAdds: denseMACs, reason: reason)
        if let conv = layer as? FactorizedConv2D<Scalar> {
            result.format = conv.format.rawValue
            result.multiplyAdds = conv.cost(forInput: candidate.inputShape, batch: 1, mode: .factorized).total
        } else if let linear = layer as? FactorizedLinear<Scalar> {
            result.format = linear.format.rawValue
            result.multiplyAdds = linear.cost(batch: 1, mode: .factorized).total
        }
        if let layer {
            result.parameters = layer.parameterCount
            result.ranks = ranks
        }
        return result
    }
}
