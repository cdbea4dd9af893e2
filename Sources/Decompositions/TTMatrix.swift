import TensorCore

/// A matrix W ∈ ℝ^{I×O} (inputs × outputs, METHODS §0.2) held as a TT-matrix / MPO [45] (METHODS §1.6):
/// 𝒲((i_1,o_1),…,(i_d,o_d)) = G_1[i_1,o_1] ⋯ G_d[i_d,o_d], with I = ∏I_k, O = ∏O_k and i, o row-major
/// linear indices.
///
/// Layout: `cores[k]` ∈ ℝ^{R_{k−1}×I_k×O_k×R_k}, R_0 = R_d = 1. Storage Σ_k R_{k−1}I_kO_kR_k. `matmul` applies the
/// matrix to a batch without forming it.
public struct TTMatrix<Scalar: TensorScalar>: TensorDecomposition {
    /// "ttm".
    public static var formatName: String { "ttm" }

    /// The cores 𝒢_k ∈ ℝ^{R_{k−1}×I_k×O_k×R_k}.
    public var cores: [Tensor<Scalar>]

    /// A TT-matrix from its cores.
    ///
    /// - Precondition: at least one core, every core of order 4, consecutive ranks equal, R_0 = R_d = 1.
    public init(cores: [Tensor<Scalar>]) {
        precondition(!cores.isEmpty, "TTMatrix: at least one core is needed")
        for (k, c) in cores.enumerated() {
            precondition(c.rank == 4, "TTMatrix: core \(k) must be R×I×O×R', got shape \(c.shape)")
            if k > 0 {
                precondition(cores[k - 1].shape[3] == c.shape[0],
                             "TTMatrix: core \(k - 1) \(cores[k - 1].shape) and core \(k) \(c.shape) disagree on their shared rank")
            }
        }
        precondition(cores[0].shape[0] == 1 && cores[cores.count - 1].shape[3] == 1,
                     "TTMatrix: boundary ranks must be 1, got \(cores[0].shape[0]) and \(cores[cores.count - 1].shape[3])")
        self.cores = cores
    }

    /// [I_1, …, I_d].
    public var inputModes: [Int] { cores.map { $0.shape[1] } }
    /// [O_1, …, O_d].
    public var outputModes: [Int] { cores.map { $0.shape[2] } }
    /// I = ∏I_k.
    public var inputSize: Int { inputModes.reduce(1, *) }
    /// O = ∏O_k.
    public var outputSize: Int { outputModes.reduce(1, *) }
    /// The matrix shape [I, O].
    public var shape: [Int] { [inputSize, outputSize] }
    /// [R_0 = 1, R_1, …, R_d = 1].
    public var ranks: [Int] { [cores[0].shape[0]] + cores.map { $0.shape[3] } }
    /// Σ_k R_{k−1}I_kO_kR_k.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }

    /// The train of the paired tensor (modes I_kO_k, METHODS §0.2 "paired layout").
    public var tensorTrain: TensorTrain<Scalar> {
        TensorTrain(cores: cores.map { $0.reshaped([$0.shape[0], $0.shape[1] * $0.shape[2], $0.shape[3]]) })
    }

    /// Multiply–accumulates per input row of `matmul` (schedule "absorb cores 1..d", METHODS §1.6):
    /// Σ_k R_{k−1}R_k·(∏_{j≤k}O_j)·(∏_{j≥k}I_j).
    public var multiplyAccumulatesPerSample: Int {
        let r = ranks, i = inputModes, o = outputModes
        var total = 0
        for k in cores.indices {
            total += r[k] * r[k + 1] * o[...k].reduce(1, *) * i[k...].reduce(1, *)
        }
        return total
    }

    /// The dense matrix W ∈ ℝ^{I×O} (reconstructs the paired tensor, then un-pairs the modes).
    public func reconstructMatrix() -> Tensor<Scalar> {
        let d = cores.count
        let paired = tensorTrain.reconstruct().reshaped(zip(inputModes, outputModes).flatMap { [$0.0, $0.1] })
        // (I_1,O_1,…,I_d,O_d) → (I_1,…,I_d,O_1,…,O_d).
        let permutation = (0..<d).map { 2 * $0 } + (0..<d).map { 2 * $0 + 1 }
        return paired.permuted(permutation).reshaped([inputSize, outputSize])
    }

    /// The dense matrix W ∈ ℝ^{I×O} (same as `reconstructMatrix()`).
    public func reconstruct() -> Tensor<Scalar> { reconstructMatrix() }

    /// Y = X·W for a batch X ∈ ℝ^{B×I}, without forming W.
    ///
    /// Absorbs the cores left to right: the state (B·O_1⋯O_{k−1}, R_{k−1}I_k, I_{k+1}⋯I_d) is multiplied by
    /// 𝒢_k viewed as (R_{k−1}I_k)×(O_kR_k), giving (B·O_1⋯O_k, R_kI_{k+1}, I_{k+2}⋯I_d) with no permutation
    /// between steps (a batched GEMM, or one GEMM with two transposes when the trailing block is short).
    /// Cost B·Σ_k R_{k−1}R_k(∏_{j≤k}O_j)(∏_{j≥k}I_j) multiply–accumulates (`multiplyAccumulatesPerSample`).
    /// - Precondition: `x` is B×I.
    public func matmul(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        precondition(x.rank == 2 && x.shape[1] == inputSize,
                     "TTMatrix.matmul: input \(x.shape) does not match a B×\(inputSize) batch for W of shape \(shape)")
        let batch = x.shape[0]
        let ins = inputModes, outs = outputModes, r = ranks
        var state = x
        var leading = batch  // B·O_1⋯O_{k−1}
        for (k, core) in cores.enumerated() {
            let q = r[k] * ins[k]
            let n = outs[k] * r[k + 1]
            let trailing = ins[(k + 1)...].reduce(1, *)
            let g = core.reshaped([q, n])
            if trailing == 1 {
                state = Tensor.matmul(state.reshaped([leading, q]), g)
            } else if trailing >= 16 {
                state = Tensor.batchedMatmul(g.reshaped([1, q, n]), state.reshaped([leading, q, trailing]), transposeA: true)
            } else {
                let moved = state.reshaped([leading, q, trailing]).permuted([0, 2, 1]).reshaped([leading * trailing, q])
                state = Tensor.matmul(moved, g).reshaped([leading, trailing, n]).permuted([0, 2, 1])
            }
            leading *= outs[k]
        }
        return state.reshaped([batch, outputSize])
    }

    /// y = Wᵀx for one input x ∈ ℝ^I (the FC layer of METHODS §0.2, a batch of one), without forming W.
    /// - Precondition: `x` has I entries.
    public func matvec(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        precondition(x.rank == 1 && x.shape[0] == inputSize,
                     "TTMatrix.matvec: input \(x.shape) does not match I = \(inputSize)")
        return matmul(x.reshaped([1, inputSize])).reshaped([outputSize])
    }

    /// Converts a dense W ∈ ℝ^{I×O} (METHODS §1.6): reshape to (I_1..I_d, O_1..O_d), permute to the paired
    /// layout (I_1,O_1,…,I_d,O_d), merge each pair, and run TT-SVD on the order-d tensor of modes I_kO_k.
    ///
    /// - Parameters:
    ///   - matrix: I×O (inputs × outputs; transpose an O×I framework weight first).
    ///   - inputModes, outputModes: factorizations of I and O with the same number of factors (pad with 1s).
    ///   - target, maxRank: as `TensorTrain.decompose` (`.relativeError(ε)` guarantees ‖W − Ŵ‖_F ≤ ε‖W‖_F).
    /// - Throws: `.shapeMismatch` when the modes do not multiply to I and O or their counts differ, and the
    ///   errors of `TensorTrain.decompose`.
    public static func decompose(_ matrix: Tensor<Scalar>, inputModes: [Int], outputModes: [Int],
                                 target: RankTarget<Scalar>, maxRank: Int? = nil) throws -> TTMatrix {
        let format = formatName
        guard matrix.rank == 2 else {
            throw DecompositionError.shapeMismatch(format: format, problem: "expected an I×O matrix, got shape \(matrix.shape); reshape the weight to inputs × outputs")
        }
        guard inputModes.count == outputModes.count, !inputModes.isEmpty else {
            throw DecompositionError.shapeMismatch(format: format, problem: "input modes \(inputModes) and output modes \(outputModes) need the same number of factors; pad the shorter list with 1s")
        }
        guard inputModes.allSatisfy({ $0 >= 1 }) && outputModes.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.shapeMismatch(format: format, problem: "every mode size must be ≥ 1, got \(inputModes) and \(outputModes)")
        }
        guard inputModes.reduce(1, *) == matrix.shape[0], outputModes.reduce(1, *) == matrix.shape[1] else {
            throw DecompositionError.shapeMismatch(format: format, problem: "input modes \(inputModes) multiply to \(inputModes.reduce(1, *)) and output modes \(outputModes) to \(outputModes.reduce(1, *)), but the matrix is \(matrix.shape[0])×\(matrix.shape[1]); choose factorizations of I = \(matrix.shape[0]) and O = \(matrix.shape[1])")
        }
        let d = inputModes.count
        try validate(matrix, target: target, format: format)
        let permutation = (0..<d).flatMap { [$0, d + $0] }
        let paired = matrix.reshaped(inputModes + outputModes).permuted(permutation)
            .reshaped(zip(inputModes, outputModes).map { $0.0 * $0.1 })
        let train = try TensorTrain.decompose(paired, target: target, maxRank: maxRank)
        return TTMatrix(cores: zip(train.cores, zip(inputModes, outputModes)).map { core, modes in
            core.reshaped([core.shape[0], modes.0, modes.1, core.shape[2]])
        })
    }
}
