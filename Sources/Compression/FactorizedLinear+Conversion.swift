import Decompositions
import Foundation
import NeuralNetworks
import TensorCore

extension FactorizedLinear {
    /// Converts a trained dense weight into `format` through the decompositions (the pre-train path, METHODS §2.1).
    ///
    /// W ∈ ℝ^{I×O} is reshaped to 𝒲 ∈ ℝ^{I_1×⋯×I_d×O_1×⋯×O_d} (METHODS §0.2). Formats with paired modes (CP, TT,
    /// TR, HT, BTD) decompose the paired tensor of modes I_kO_k; Tucker decomposes 𝒲 itself (2d modes); SVD and
    /// KPD decompose W. Algorithms: truncated SVD (§1.1), CP-ALS [68] (λ folded into the factors as |λ|^{1/d}),
    /// HOOI (§1.3), TT-SVD [33], TR-SVD for ε and TR-ALS for ranks or ratios [34], HSVD [32], BTD-ALS [35], the
    /// nearest Kronecker product (§1.8), and STT/STR-ALS [37] (§1.9) on the paired tensor, whose small cores
    /// (R_k/t)×(I_kO_k/t)×R_{k+1} are the layer's cores reshaped (the pass-through sub-index is the minor part of
    /// O_k, as the paired mode index i_k·O_k + o_k = (i_k·O_k/t + o'_k)·t + j requires). The converted layer's output differs from the dense one's by x·(W − Ŵ),
    /// so its relative error is bounded by the decomposition's ‖W − Ŵ‖_F/‖W‖_F times ‖x‖‖W‖/‖xW‖; at full ranks
    /// it is exact up to rounding.
    ///
    /// - Parameters:
    ///   - weight: W, I×O (transpose an O×I framework weight first).
    ///   - bias: b ∈ ℝ^O, copied unchanged.
    ///   - target: ranks (meaning as on `FactorizedFormat`), ε or a compression ratio, as the decomposition of the
    ///     format accepts them (CP and BTD reject ε: ALS has no guarantee).
    ///   - blocks: N_b for `blockTerm`.
    ///   - stpFactor: t for `semiTensorTrain` and `semiTensorRing` (ranks and ratios only: their ALS rejects ε).
    ///   - cpOptions: CP-ALS settings for `cp` (the defaults stop at a fit change of 1e-8; lower `tolerance` to fit
    ///     an exactly CP weight to rounding); its `maxIterations` also caps the BTD and STT/STR-ALS sweeps.
    /// - Throws: `CompressionError` when the modes do not multiply to I and O (the message proposes a
    ///   factorization) or the format does not apply; `DecompositionError` from the decomposition.
    public static func converting(_ weight: Tensor<Scalar>, bias: Tensor<Scalar>? = nil, format: FactorizedFormat,
                                  inputModes: [Int], outputModes: [Int], target: RankTarget<Scalar>, blocks: Int = 1,
                                  stpFactor: Int = 2, cpOptions: CPALSOptions<Scalar> = CPALSOptions(),
                                  executionMode: ExecutionMode = .auto, name: String? = nil) throws -> FactorizedLinear {
        let name = name ?? defaultName(format, inputModes, outputModes)
        guard weight.rank == 2 else {
            throw CompressionError.invalidModes(layer: name, problem: "expected an I×O weight, got shape \(weight.shape)")
        }
        let (inputs, outputs) = (weight.shape[0], weight.shape[1])
        let (modesIn, modesOut) = try normalizedModes(format, inputModes, outputModes, layer: name)
        guard modesIn.reduce(1, *) == inputs, modesOut.reduce(1, *) == outputs else {
            let d = Swift.max(inputModes.count, 1)
            throw CompressionError.invalidModes(layer: name, problem:
                "modes \(inputModes) → \(outputModes) multiply to \(inputModes.reduce(1, *)) → \(outputModes.reduce(1, *)), but the weight is \(inputs)×\(outputs); use for example \(balancedFactorization(of: inputs, into: d)) → \(balancedFactorization(of: outputs, into: d))")
        }
        if format == .kronecker && modesIn.count != 2
            || [.tensorRing, .hierarchicalTucker, .cp, .semiTensorTrain, .semiTensorRing].contains(format) && modesIn.count < 2 {
            _ = try network(format: format, inputModes: modesIn, outputModes: modesOut, ranks: [1], blocks: 1, layer: name)
        }
        if format.usesSemiTensorProduct {
            // The output modes must take the pass-through index (the ranks are checked by the decomposition).
            let linked = linkedBonds(format, stpFactor: stpFactor, modeCount: modesIn.count)
            try checkSemiTensorProduct(format, t: stpFactor, ranks: [Int](repeating: stpFactor, count: modesIn.count + 1),
                                       outputModes: modesOut, linked: linked, layer: name)
        }
        let d = modesIn.count
        let cores: [Tensor<Scalar>]
        switch format {
        case .svd:
            let (a, b) = try MatrixLowRank.decompose(weight, target: target).balancedFactors()
            cores = [a, b]
        case .kronecker:
            let kpd = try KroneckerDecomposition.decompose(weight, leftShape: [modesIn[0], modesOut[0]], target: target)
            cores = [kpd.left, kpd.right]
        case .tucker:
            let tucker = try TuckerDecomposition.decompose(weight.reshaped(modesIn + modesOut), target: target).decomposition
            cores = Array(tucker.factors[0..<d]) + [tucker.core] + Array(tucker.factors[d...])
        case .tensorTrain:
            let ttm = try TTMatrix.decompose(weight, inputModes: modesIn, outputModes: modesOut, target: target)
            cores = ttm.cores
        case .cp:
            let cp = try CPDecomposition.decompose(paired(weight, modesIn, modesOut), target: target, options: cpOptions).decomposition
            let lambda = cp.weights.scalars
            let r = lambda.count
            cores = cp.factors.enumerated().map { k, factor in
                let scales = lambda.map { l -> Scalar in
                    let magnitude = Scalar(pow(Double(Swift.abs(l)), 1 / Double(d)))
                    return k == 0 && l < 0 ? -magnitude : magnitude
                }
                return (factor * Tensor(shape: [r], scalars: scales)).reshaped([modesIn[k], modesOut[k], r])
            }
        case .tensorRing:
            let ring = try TensorRing.decompose(paired(weight, modesIn, modesOut), target: target).decomposition
            cores = ring.cores.enumerated().map { k, c in c.reshaped([c.shape[0], modesIn[k], modesOut[k], c.shape[2]]) }
        case .hierarchicalTucker:
            let ht = try HierarchicalTucker.decompose(paired(weight, modesIn, modesOut), target: target, tree: .balanced(order: d))
            cores = ht.leafBases.enumerated().map { k, u in u.reshaped([modesIn[k], modesOut[k], u.shape[1]]) }
                + ht.transferTensors
        case .blockTerm:
            let btd = try BlockTerm.decompose(paired(weight, modesIn, modesOut), blocks: blocks, target: target,
                                              maxIterations: cpOptions.maxIterations).decomposition
            let n = btd.blockCount
            cores = (0..<d).map { k in
                Tensor.concatenate((0..<n).map { b in
                    btd.factors[b][k].reshaped([1, modesIn[k], modesOut[k], btd.factors[b][k].shape[1]])
                }, axis: 0)
            } + [Tensor.concatenate(btd.cores.map { $0.reshaped([1] + $0.shape) }, axis: 0)]
        case .semiTensorTrain:
            let stt = try SemiTensorTrain.decompose(paired(weight, modesIn, modesOut), stpFactor: stpFactor, target: target,
                                                   maxIterations: cpOptions.maxIterations).decomposition
            cores = semiTensorCores(stt.cores, t: stpFactor, ring: false, modesIn, modesOut)
        case .semiTensorRing:
            let str = try SemiTensorRing.decompose(paired(weight, modesIn, modesOut), stpFactor: stpFactor, target: target,
                                                  maxIterations: cpOptions.maxIterations).decomposition
            cores = semiTensorCores(str.cores, t: stpFactor, ring: true, modesIn, modesOut)
        }
        return try FactorizedLinear(format: format, inputModes: modesIn, outputModes: modesOut, cores: cores, bias: bias,
                                    executionMode: executionMode, name: name)
    }

    /// Converts a dense `Linear` layer (weight and bias) into `format` (see `converting(_:bias:format:…)`).
    ///
    /// - Throws: as `converting(_:bias:format:inputModes:outputModes:target:blocks:cpOptions:executionMode:name:)`.
    public static func converting(_ layer: Linear<Scalar>, format: FactorizedFormat, inputModes: [Int],
                                  outputModes: [Int], target: RankTarget<Scalar>, blocks: Int = 1, stpFactor: Int = 2,
                                  cpOptions: CPALSOptions<Scalar> = CPALSOptions(), executionMode: ExecutionMode = .auto,
                                  name: String? = nil) throws -> FactorizedLinear {
        try converting(layer.weight.value, bias: layer.bias?.value, format: format, inputModes: inputModes,
                       outputModes: outputModes, target: target, blocks: blocks, stpFactor: stpFactor, cpOptions: cpOptions,
                       executionMode: executionMode, name: name)
    }
}

/// The layer cores of an STT/STR decomposition of the paired weight: stored core k, (R_k/t_k)×(I_kO_k/t_k)×R_{k+1},
/// becomes (R_k/t_k)×I_k×(O_k/t_k)×(R_{k+1}/t_{k+1})×t_{k+1} (t_k = t on linked bonds, else 1).
private func semiTensorCores<Scalar>(_ cores: [Tensor<Scalar>], t: Int, ring: Bool, _ inputModes: [Int],
                                     _ outputModes: [Int]) -> [Tensor<Scalar>] {
    let d = cores.count
    let tk = (0...d).map { k in ring || (k >= 1 && k < d) ? t : 1 }
    return cores.enumerated().map { k, core in
        let right = core.shape[2]
        return core.reshaped([core.shape[0], inputModes[k], outputModes[k] / tk[k], right / tk[k + 1], tk[k + 1]])
    }
}

/// The paired layout of W (METHODS §0.2): reshape to (I_1..I_d, O_1..O_d), permute to (I_1, O_1, …, I_d, O_d) and
/// merge each pair into a mode of size I_kO_k.
func paired<Scalar: TensorScalar>(_ weight: Tensor<Scalar>, _ inputModes: [Int], _ outputModes: [Int]) -> Tensor<Scalar> {
    let d = inputModes.count
    return weight.reshaped(inputModes + outputModes)
        .permuted((0..<d).flatMap { [$0, d + $0] })
        .reshaped(zip(inputModes, outputModes).map { $0.0 * $0.1 })
}
