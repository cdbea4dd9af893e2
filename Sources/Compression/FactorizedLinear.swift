import Autodiff
import Decompositions
import Foundation
import NeuralNetworks
import TensorCore

/// The formats of a factorized fully connected layer (METHODS §1; I = ∏I_k, O = ∏O_k, d modes).
///
/// The `ranks` passed with a format mean (one value stands for all of them):
/// * `svd` (§1.1, d = 1 or any d with I, O used whole): [R]; cores A ∈ ℝ^{I×R}, B ∈ ℝ^{O×R}, W = ABᵀ.
/// * `cp` (§1.2, paired modes): [R]; cores A^{(k)} ∈ ℝ^{I_k×O_k×R}. Needs d ≥ 2 (with one core the rank index
///   would be summed out of it alone: a dense matrix).
/// * `tucker` (§1.3, tensorized on the 2d-order 𝒲): 2d values [R_1..R_d, S_1..S_d]; cores U_k^in ∈ ℝ^{I_k×R_k},
///   then the core 𝒢 ∈ ℝ^{R_1×⋯×R_d×S_1×⋯×S_d}, then U_k^out ∈ ℝ^{O_k×S_k}. d = 1 is the matrix Tucker-2.
/// * `tensorTrain` (§1.6, TT-matrix [45]): d−1 inner ranks [R_1..R_{d−1}]; cores ℝ^{R_{k−1}×I_k×O_k×R_k},
///   R_0 = R_d = 1.
/// * `tensorRing` (§1.7 (a), paired TR-matrix [14], [34]): d ranks [R_1..R_d]; cores ℝ^{R_k×I_k×O_k×R_{k+1}},
///   R_{d+1} = R_1. Needs d ≥ 2.
/// * `hierarchicalTucker` (§1.5, paired leaves, balanced tree): 2d−2 ranks of the non-root nodes in post-order
///   (`HierarchicalTucker.nodeModes`); cores: the leaves U_k ∈ ℝ^{I_k×O_k×R_k}, then the transfer tensors in
///   post-order (root last, R_root = 1). Needs d ≥ 2.
/// * `blockTerm` (§1.4, BT-layer [39]): d block ranks [R_1..R_d] with `blocks` N_b; cores
///   A^{(k)} ∈ ℝ^{N_b×I_k×O_k×R_k} (the blocks stacked), then the block cores ℝ^{N_b×R_1×⋯×R_d}.
/// * `kronecker` (§1.8, KPD [50]): [R]; d = 2, cores A ∈ ℝ^{R×I_1×O_1}, B ∈ ℝ^{R×I_2×O_2}, W = Σ_r A_r ⊗ B_r.
/// * `semiTensorTrain` (§1.9, STT [37]) and `semiTensorRing` (STR [37]) with STP factor t: the ranks of
///   `tensorTrain` (d−1 inner ranks) and `tensorRing` (d ranks). A bond k is *linked* (STT: k = 1..d−1; STR: every
///   bond, the ring-closing one included) when it uses the semi-tensor product; its rank R_k and the output mode
///   O_k must then be multiples of t. Core k is stored as ℝ^{(R_k/t_k)×I_k×(O_k/t_k)×(R_{k+1}/t_{k+1})×t_{k+1}}
///   (t_k = t on linked bonds, else 1; the last STT core ends in 1×1): the right bond is split into a part
///   contracted with core k+1 and the STP's pass-through index j ∈ [t], which goes straight to the output mode
///   O_{k+1} = (O_{k+1}/t, t) — the Kronecker-with-identity 𝒢^eff[(α,j),i,(o,j'),r] = δ_{jj'}·𝒢[α,i,o,r] of
///   METHODS §1.9 as a shared letter, so no identity is ever formed. Storage Σ_k (R_k/t_k)·I_k·(O_k/t_k)·R_{k+1}:
///   the TT/TR core ÷ t² on linked cores. Needs d ≥ 2.
public enum FactorizedFormat: String, Sendable, Equatable, CaseIterable {
    case svd, cp, tucker, tensorTrain, tensorRing, hierarchicalTucker, blockTerm, kronecker, semiTensorTrain, semiTensorRing

    /// The format named by `name`: a case name or a short name (svd, cp, tucker, tt, tr, ht, btd, kpd, stt, str),
    /// case-insensitive.
    public init?(name: String) {
        let short: [String: FactorizedFormat] = ["tt": .tensorTrain, "tr": .tensorRing, "ht": .hierarchicalTucker,
                                                 "btd": .blockTerm, "kpd": .kronecker, "stt": .semiTensorTrain,
                                                 "str": .semiTensorRing]
        let key = name.lowercased()
        guard let format = short[key] ?? FactorizedFormat.allCases.first(where: { $0.rawValue.lowercased() == key }) else {
            return nil
        }
        self = format
    }

    /// The short name (tt, tr, stt, …; the case name for svd, cp, tucker).
    public var shortName: String {
        switch self {
        case .tensorTrain: return "tt"
        case .tensorRing: return "tr"
        case .hierarchicalTucker: return "ht"
        case .blockTerm: return "btd"
        case .kronecker: return "kpd"
        case .semiTensorTrain: return "stt"
        case .semiTensorRing: return "str"
        default: return rawValue
        }
    }

    /// Whether the format links cores by the semi-tensor product (takes an STP factor t).
    public var usesSemiTensorProduct: Bool { self == .semiTensorTrain || self == .semiTensorRing }
}

extension FactorizedFormat: CustomStringConvertible {
    /// The short name, as `--format` takes it (messages name formats the way users type them).
    public var description: String { shortName }
}

/// How a pre-set factorized layer draws its cores (METHODS §2.2).
public enum FactorInitialization: Sendable, Equatable {
    /// Target weight variance v = 2/I (Kaiming, ReLU).
    case kaiming
    /// Target weight variance v = 2/(I + O) (Xavier).
    case xavier
    /// A given target weight variance v > 0.
    case variance(Double)

    /// v for a layer with I inputs and O outputs.
    public func targetVariance(inputFeatures: Int, outputFeatures: Int) -> Double {
        switch self {
        case .kaiming: return 2 / Double(inputFeatures)
        case .xavier: return 2 / Double(inputFeatures + outputFeatures)
        case let .variance(v): return v
        }
    }
}

/// A fully connected layer y = x·W + b whose weight W ∈ ℝ^{I×O} is held in one of the `FactorizedFormat`s and
/// contracted with the input by the einsum engine (see `FactorizedLayer`).
///
/// Build it from scratch (pre-set, METHODS §2.2) with `init(inputModes:outputModes:format:ranks:…)`, or from a
/// trained dense weight (pre-train, §2.1) with `converting(_:format:inputModes:outputModes:target:…)`.
public final class FactorizedLinear<Scalar: TensorScalar>: FactorizedLayer {
    /// The format.
    public let format: FactorizedFormat
    /// The STP factor t of `semiTensorTrain` and `semiTensorRing` (1 for the other formats).
    public let stpFactor: Int
    /// The wiring.
    public let network: TensorNetwork
    /// The cores, in the order documented on `FactorizedFormat`.
    public let cores: [Parameter<Scalar>]
    /// b ∈ ℝ^O, or nil.
    public let bias: Parameter<Scalar>?
    /// How the forward pass runs (default `.auto`).
    public var executionMode: ExecutionMode
    /// The cached contraction paths.
    public let planCache = ContractionPlanCache()
    /// The weight last rebuilt from constant cores (`RebuiltWeightCache`).
    public let rebuiltWeight = RebuiltWeightCache<Scalar>()
    /// The name used in error messages and reports.
    public let name: String
    /// The absorption order the closed-form costs of METHODS §1 describe (operand positions of the forward
    /// expression, 0 = the input): cores 1..F in order, post-order over the tree for HT.
    public let referenceSchedule: [Int]

    /// A layer from given core values (shapes as documented on `FactorizedFormat`).
    ///
    /// - Throws: `CompressionError` when the modes, the core shapes or the ranks they imply do not fit the format.
    public init(format: FactorizedFormat, inputModes: [Int], outputModes: [Int], cores coreValues: [Tensor<Scalar>],
                bias: Tensor<Scalar>? = nil, executionMode: ExecutionMode = .auto,
                name: String? = nil) throws {
        let name = name ?? FactorizedLinear.defaultName(format, inputModes, outputModes)
        let (inputModes, outputModes) = try FactorizedLinear.normalizedModes(format, inputModes, outputModes, layer: name)
        let (ranks, blocks, t) = try FactorizedLinear.ranks(of: format, cores: coreValues, modeCount: inputModes.count, layer: name)
        let (network, schedule) = try FactorizedLinear.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                               ranks: ranks, blocks: blocks, stpFactor: t, layer: name)
        guard coreValues.map(\.shape) == network.coreShapes else {
            throw CompressionError.invalidRanks(layer: name, problem:
                "core shapes \(coreValues.map(\.shape)) do not fit the \(format) wiring, which expects \(network.coreShapes)")
        }
        if let bias, bias.shape != [network.outputFeatures] {
            throw CompressionError.invalidModes(layer: name, problem: "bias \(bias.shape) does not match \(network.outputFeatures) outputs")
        }
        self.format = format
        self.stpFactor = t
        self.network = network
        self.cores = coreValues.map { Parameter($0) }
        self.bias = bias.map { Parameter($0) }
        self.executionMode = executionMode
        self.name = name
        self.referenceSchedule = schedule
    }

    /// A pre-set layer (METHODS §2.2): cores with i.i.d. N(0, σ²) entries, σ² = (v/N_terms)^{1/F}, so that every
    /// weight entry, a sum of N_terms products of one entry from each of the F cores, has variance v
    /// (`initialization`, Kaiming 2/I by default) for any ranks and any number of cores.
    ///
    /// Products of many factors are heavy-tailed, so one draw can miss v by tens of percent; with `calibrated`
    /// (the default; METHODS §2.2's derived rescaling, done on the weight instead of on a batch) the cores are then
    /// scaled by a common factor so the reconstructed weight's mean square equals v exactly. The bias starts at 0.
    ///
    /// - Parameters:
    ///   - inputModes, outputModes: factorizations of I and O with the same number of factors (pad with 1s).
    ///   - ranks: as documented on `FactorizedFormat` (one value = every rank).
    ///   - blocks: N_b for `blockTerm`.
    ///   - stpFactor: t for `semiTensorTrain` and `semiTensorRing` (ignored by the other formats).
    /// - Throws: `CompressionError` for modes that do not fit, ranks of the wrong count, below 1, above the full
    ///   rank (SVD, KPD, Tucker) or storing far more than the weight (`oversizedFactorsProblem`), or a format that
    ///   does not apply (the message proposes a valid setting).
    public convenience init(inputModes: [Int], outputModes: [Int], format: FactorizedFormat, ranks: [Int],
                            blocks: Int = 1, stpFactor: Int = 2, bias: Bool = true, initialization: FactorInitialization = .kaiming,
                            calibrated: Bool = true, executionMode: ExecutionMode = .auto, name: String? = nil,
                            generator: inout SeededGenerator) throws {
        let name = name ?? FactorizedLinear.defaultName(format, inputModes, outputModes)
        let (inputModes, outputModes) = try FactorizedLinear.normalizedModes(format, inputModes, outputModes, layer: name)
        let (network, _) = try FactorizedLinear.network(format: format, inputModes: inputModes, outputModes: outputModes,
                                                        ranks: ranks, blocks: blocks, stpFactor: stpFactor, layer: name)
        let v = initialization.targetVariance(inputFeatures: network.inputFeatures, outputFeatures: network.outputFeatures)
        guard v > 0, v.isFinite else {
            throw CompressionError.invalidRanks(layer: name, problem: "the target weight variance must be positive and finite, got \(v)")
        }
        let f = Double(network.coreCount)
        let sigma = network.presetStandardDeviation(targetVariance: v)
        var values = network.coreShapes.map { Tensor<Scalar>.randomNormal($0, standardDeviation: Scalar(sigma), generator: &generator) }
        try self.init(format: format, inputModes: inputModes, outputModes: outputModes, cores: values,
                      bias: bias ? Tensor.zeros([network.outputFeatures]) : nil,
                      executionMode: executionMode, name: name)
        if calibrated {
            let w = reconstructWeight()
            let meanSquare = Double(w.squaredNorm()) / Double(w.scalarCount)
            if meanSquare > 0 {
                let scale = Scalar(pow(v / meanSquare, 1 / (2 * f)))
                values = cores.map { $0.value * scale }
                for (core, value) in zip(cores, values) { core.value = value }
            }
        }
    }

    static func defaultName(_ format: FactorizedFormat, _ inputModes: [Int], _ outputModes: [Int]) -> String {
        "FactorizedLinear[\(format.rawValue)](\(inputModes.reduce(1, *)) → \(outputModes.reduce(1, *)))"
    }
}

extension FactorizedLinear: ShapedLayer {
    /// `[..., I]` → `[..., O]`.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.last == inputFeatures, "\(name): input \(shape) for \(inputFeatures) input features")
        return Array(shape.dropLast()) + [outputFeatures]
    }

    /// Exact MACs of one forward pass for the rows of `shape`, in the execution mode.
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        macs(batch: Swift.max(1, shape.dropLast().reduce(1, *)))
    }

    public var layerDescription: String {
        "\(name), modes \(network.inputModes) → \(network.outputModes), \(coreParameterCount) core parameters (CR \(String(format: "%.1f", compressionRatio))×)"
    }
}
