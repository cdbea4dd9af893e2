import TensorCore

// Kronecker product decompositions: KPD of matrices (Van Loan–Pitsianis nearest Kronecker product; used for
// RNN compression in [50]) and GKPD of 4-way convolution kernels [36] (METHODS §1.8).

extension Tensor {
    /// The d-dimensional Kronecker product of two tensors of the same order (METHODS §1.8):
    ///
    ///     (𝒜 ⊗ ℬ)[a_1B_1 + b_1, …, a_dB_d + b_d] = 𝒜[a_1, …, a_d]·ℬ[b_1, …, b_d],
    ///
    /// of shape [A_1B_1, …, A_dB_d]. For matrices it is `Tensor.kronecker`; for 4-way kernels it is the product
    /// of GKPD [36].
    public static func generalizedKronecker(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == b.rank && a.rank >= 1,
                     "generalizedKronecker: operands need the same order ≥ 1, got \(a.shape) and \(b.shape)")
        let d = a.rank
        let interleave = (0..<d).flatMap { [$0, d + $0] }
        return outer(a, b).permuted(interleave).reshaped(zip(a.shape, b.shape).map { $0 * $1 })
    }
}

/// Checks that every size factors as left × right and returns the right sizes; otherwise throws with the valid
/// factor pairs of each offending dimension.
private func kroneckerRightShape(_ shape: [Int], left: [Int], names: [String], format: String) throws -> [Int] {
    guard left.count == shape.count else {
        throw DecompositionError.shapeMismatch(format: format, problem:
            "expected \(shape.count) left factor sizes (\(names.map { $0 + "1" }.joined(separator: ", "))), got \(left.count): \(left)")
    }
    var problems: [String] = []
    for (k, (size, l)) in zip(shape, left).enumerated() where l < 1 || size % l != 0 {
        let pairs = (1...Swift.max(size, 1)).filter { size % $0 == 0 }.map { "(\($0), \(size / $0))" }
        problems.append("\(names[k]) = \(size) is not divisible by \(names[k])1 = \(l); valid (\(names[k])1, \(names[k])2) pairs: \(pairs.joined(separator: ", "))")
    }
    guard problems.isEmpty else {
        throw DecompositionError.shapeMismatch(format: format, problem: problems.joined(separator: "; "))
    }
    return zip(shape, left).map { $0 / $1 }
}

/// ℛ(𝒲): rows (a_1, …, a_d), columns (b_1, …, b_d), where each index of 𝒲 splits as i_k = a_kB_k + b_k.
private func kroneckerRearrange<Scalar>(_ w: Tensor<Scalar>, left: [Int], right: [Int]) -> Tensor<Scalar> {
    let d = left.count
    let split = w.reshaped((0..<d).flatMap { [left[$0], right[$0]] })
    return split.permuted((0..<d).map { 2 * $0 } + (0..<d).map { 2 * $0 + 1 })
        .reshaped([left.reduce(1, *), right.reduce(1, *)])
}

/// Σ_r 𝒜_r ⊗ ℬ_r from stacked factors (R × left…, R × right…): one GEMM gives ℛ = Σ_r vec(𝒜_r)vec(ℬ_r)ᵀ, then
/// the inverse rearrangement.
private func kroneckerSum<Scalar>(left: Tensor<Scalar>, right: Tensor<Scalar>) -> Tensor<Scalar> {
    let r = left.shape[0], ls = Array(left.shape.dropFirst()), rs = Array(right.shape.dropFirst()), d = ls.count
    let rearranged = Tensor.matmul(left.reshaped([r, ls.reduce(1, *)]), right.reshaped([r, rs.reduce(1, *)]), transposeA: true)
    return rearranged.reshaped(ls + rs).permuted((0..<d).flatMap { [$0, d + $0] }).reshaped(zip(ls, rs).map { $0 * $1 })
}

/// The optimal rank-R factors of ‖𝒲 − Σ_r 𝒜_r ⊗ ℬ_r‖_F through the truncated SVD of ℛ(𝒲).
private func nearestKroneckerFactors<Scalar>(_ w: Tensor<Scalar>, left: [Int], right: [Int], target: RankTarget<Scalar>,
                                             format: String) throws -> (left: Tensor<Scalar>, right: Tensor<Scalar>) {
    let rearranged = kroneckerRearrange(w, left: left, right: right)
    let rows = rearranged.shape[0], cols = rearranged.shape[1], available = Swift.min(rows, cols)
    let rule: TruncationRule<Scalar>
    switch target {
    case let .ranks(requested):
        guard requested.count == 1 else {
            throw DecompositionError.invalidRanks(format: format, problem: "expected one rank (the number of Kronecker terms R), got \(requested)")
        }
        rule = .rank(Swift.min(requested[0], available))
    case let .relativeError(eps):
        rule = .relativeError(eps)
    case let .compressionRatio(ratio):
        rule = .rank(largestRank(upTo: available, within: Double(w.scalarCount) / ratio) { $0 * (rows + cols) })
    }
    let f = try rearranged.truncatedSVD(rule)
    let root = f.s.sqrt()
    let a = (f.u * root.reshaped([1, f.rank])).transposed.reshaped([f.rank] + left)
    let b = (f.vt * root.reshaped([f.rank, 1])).reshaped([f.rank] + right)
    return (a, b)
}

/// A matrix as a sum of Kronecker products, W ≈ Σ_{r=1}^R A_r ⊗ B_r (KPD; METHODS §1.8, [50]).
///
/// W ∈ ℝ^{I×O} with I = I_1I_2 and O = O_1O_2; A_r ∈ ℝ^{I_1×O_1}, B_r ∈ ℝ^{I_2×O_2}, and ⊗ is `Tensor.kronecker`
/// ((A⊗B)[i_1I_2+i_2, o_1O_2+o_2] = A[i_1,o_1]·B[i_2,o_2]). Layout: `left` is R×I_1×O_1 (`left[r]` = A_r),
/// `right` is R×I_2×O_2. `ranks` is [R]. Storage R(I_1O_1 + I_2O_2).
public struct KroneckerDecomposition<Scalar: TensorScalar>: TensorDecomposition {
    /// "kpd".
    public static var formatName: String { "kpd" }
    /// [I, O] = [I_1I_2, O_1O_2].
    public let shape: [Int]
    /// The A_r stacked: R×I_1×O_1.
    public private(set) var left: Tensor<Scalar>
    /// The B_r stacked: R×I_2×O_2.
    public private(set) var right: Tensor<Scalar>

    /// Wraps given factors (precondition: both are order 3 with the same number R of terms).
    public init(left: Tensor<Scalar>, right: Tensor<Scalar>) {
        precondition(left.rank == 3 && right.rank == 3 && left.shape[0] == right.shape[0],
                     "KroneckerDecomposition: expected R×I1×O1 and R×I2×O2 factors, got \(left.shape) and \(right.shape)")
        self.left = left
        self.right = right
        self.shape = [left.shape[1] * right.shape[1], left.shape[2] * right.shape[2]]
    }

    /// A_r.
    public func leftFactor(_ r: Int) -> Tensor<Scalar> { left.slice(axis: 0, start: r, count: 1).reshaped(Array(left.shape.dropFirst())) }
    /// B_r.
    public func rightFactor(_ r: Int) -> Tensor<Scalar> { right.slice(axis: 0, start: r, count: 1).reshaped(Array(right.shape.dropFirst())) }
    /// [R].
    public var ranks: [Int] { [left.shape[0]] }
    /// R(I_1O_1 + I_2O_2).
    public var parameterCount: Int { left.scalarCount + right.scalarCount }

    /// Σ_r A_r ⊗ B_r (computed as one GEMM ℛ = Σ_r vec(A_r)vec(B_r)ᵀ and the inverse rearrangement; equal to
    /// summing `Tensor.kronecker(A_r, B_r)`).
    public func reconstruct() -> Tensor<Scalar> { kroneckerSum(left: left, right: right) }

    /// The Van Loan–Pitsianis rearrangement ℛ(W) ∈ ℝ^{(I_1O_1)×(I_2O_2)},
    /// ℛ(W)[(i_1,o_1),(i_2,o_2)] = W[(i_1,i_2),(o_1,o_2)], for which ‖W − Σ A_r⊗B_r‖_F = ‖ℛ(W) − Σ vec(A_r)vec(B_r)ᵀ‖_F.
    /// - Throws: `DecompositionError.shapeMismatch` (listing valid factor pairs) when I_1 ∤ I or O_1 ∤ O.
    public static func rearrangement(of matrix: Tensor<Scalar>, leftShape: [Int]) throws -> Tensor<Scalar> {
        precondition(matrix.rank == 2, "KroneckerDecomposition.rearrangement: expected a matrix, got shape \(matrix.shape)")
        let right = try kroneckerRightShape(matrix.shape, left: leftShape, names: ["I", "O"], format: formatName)
        return kroneckerRearrange(matrix, left: leftShape, right: right)
    }

    /// The nearest sum of R Kronecker products (Van Loan & Pitsianis 1993, not in the survey's reference list):
    /// the rank-R truncated SVD of ℛ(W) = Σ σ_r u_r v_rᵀ gives A_r = √σ_r·reshape(u_r), B_r = √σ_r·reshape(v_r).
    /// It is optimal in the Frobenius norm and the error is exactly (Σ_{r>R} σ_r²)^{1/2}.
    ///
    /// Targets: `.ranks([R])` (R clamped to min(I_1O_1, I_2O_2)); `.relativeError(ε)` keeps the smallest R with
    /// error ≤ ε‖W‖_F (exact, since the truncation is optimal); `.compressionRatio(c)` the largest R with
    /// R(I_1O_1 + I_2O_2) ≤ IO/c (at least 1).
    /// - Parameter leftShape: [I_1, O_1], the shape of every A_r; B_r is (I/I_1)×(O/O_1).
    /// - Throws: `DecompositionError` for NaN/∞, a non-matrix input, sizes that do not divide (the message lists
    ///   valid pairs), invalid ranks or target; `TensorError` if the SVD fails.
    public static func decompose(_ matrix: Tensor<Scalar>, leftShape: [Int],
                                 target: RankTarget<Scalar>) throws -> KroneckerDecomposition<Scalar> {
        try validate(matrix, target: target, format: formatName)
        guard matrix.rank == 2 else {
            throw DecompositionError.shapeMismatch(format: formatName, problem:
                "KPD factors a matrix, got shape \(matrix.shape); reshape the weight to I×O first (for 4-way conv kernels use GKPD)")
        }
        let right = try kroneckerRightShape(matrix.shape, left: leftShape, names: ["I", "O"], format: formatName)
        let (a, b) = try nearestKroneckerFactors(matrix, left: leftShape, right: right, target: target, format: formatName)
        return KroneckerDecomposition(left: a, right: b)
    }
}

/// A 4-way convolution kernel as a sum of 4-D Kronecker products, GKPD [36] (METHODS §1.8):
///
///     𝒦 ≈ Σ_{r=1}^R 𝒜_r ⊗ ℬ_r,   (𝒜⊗ℬ)[f_1F_2+f_2, c_1C_2+c_2, h_1K_{h2}+h_2, w_1K_{w2}+w_2] = 𝒜[f_1,c_1,h_1,w_1]·ℬ[f_2,c_2,h_2,w_2],
///
/// with 𝒦 ∈ ℝ^{F×C×K_h×K_w}, 𝒜_r ∈ ℝ^{F_1×C_1×K_{h1}×K_{w1}}, ℬ_r ∈ ℝ^{F_2×C_2×K_{h2}×K_{w2}} and F = F_1F_2,
/// C = C_1C_2, K_h = K_{h1}K_{h2}, K_w = K_{w1}K_{w2}. Layout: `left` is R×F_1×C_1×K_{h1}×K_{w1}, `right` is
/// R×F_2×C_2×K_{h2}×K_{w2}. `ranks` is [R]. Storage R(F_1C_1K_{h1}K_{w1} + F_2C_2K_{h2}K_{w2}).
public struct GeneralizedKroneckerDecomposition<Scalar: TensorScalar>: TensorDecomposition {
    /// "gkpd".
    public static var formatName: String { "gkpd" }
    /// [F, C, K_h, K_w].
    public let shape: [Int]
    /// The 𝒜_r stacked: R×F_1×C_1×K_{h1}×K_{w1}.
    public private(set) var left: Tensor<Scalar>
    /// The ℬ_r stacked: R×F_2×C_2×K_{h2}×K_{w2}.
    public private(set) var right: Tensor<Scalar>

    /// Wraps given factors (precondition: both are order 5 with the same number R of terms).
    public init(left: Tensor<Scalar>, right: Tensor<Scalar>) {
        precondition(left.rank == 5 && right.rank == 5 && left.shape[0] == right.shape[0],
                     "GeneralizedKroneckerDecomposition: expected R×F1×C1×Kh1×Kw1 and R×F2×C2×Kh2×Kw2 factors, got \(left.shape) and \(right.shape)")
        self.left = left
        self.right = right
        self.shape = (1...4).map { left.shape[$0] * right.shape[$0] }
    }

    /// 𝒜_r.
    public func leftFactor(_ r: Int) -> Tensor<Scalar> { left.slice(axis: 0, start: r, count: 1).reshaped(Array(left.shape.dropFirst())) }
    /// ℬ_r.
    public func rightFactor(_ r: Int) -> Tensor<Scalar> { right.slice(axis: 0, start: r, count: 1).reshaped(Array(right.shape.dropFirst())) }
    /// [R].
    public var ranks: [Int] { [left.shape[0]] }
    /// R(F_1C_1K_{h1}K_{w1} + F_2C_2K_{h2}K_{w2}).
    public var parameterCount: Int { left.scalarCount + right.scalarCount }

    /// Σ_r 𝒜_r ⊗ ℬ_r (one GEMM and the inverse rearrangement; equal to summing `Tensor.generalizedKronecker`).
    public func reconstruct() -> Tensor<Scalar> { kroneckerSum(left: left, right: right) }

    /// The multidimensional nearest Kronecker product of [36]: rearrange 𝒦 into the matrix with rows
    /// (f_1,c_1,h_1,w_1) and columns (f_2,c_2,h_2,w_2), take its truncated SVD Σ σ_r u_r v_rᵀ and reshape
    /// 𝒜_r = √σ_r·u_r, ℬ_r = √σ_r·v_r. Optimal in the Frobenius norm; the error is (Σ_{r>R} σ_r²)^{1/2}.
    ///
    /// Targets: `.ranks([R])` (R clamped to min(F_1C_1K_{h1}K_{w1}, F_2C_2K_{h2}K_{w2})); `.relativeError(ε)`
    /// (exact); `.compressionRatio(c)` the largest R whose storage is at most FCK_hK_w/c (at least 1).
    /// - Parameter leftShape: [F_1, C_1, K_{h1}, K_{w1}]; each must divide the matching kernel dimension.
    /// - Throws: `DecompositionError` for NaN/∞, a kernel that is not 4-way, a factorization that does not
    ///   divide (the message lists the valid pairs of each dimension), invalid ranks or target; `TensorError`
    ///   if the SVD fails.
    public static func decompose(_ kernel: Tensor<Scalar>, leftShape: [Int],
                                 target: RankTarget<Scalar>) throws -> GeneralizedKroneckerDecomposition<Scalar> {
        try validate(kernel, target: target, format: formatName)
        guard kernel.rank == 4 else {
            throw DecompositionError.shapeMismatch(format: formatName, problem:
                "GKPD factors a 4-way kernel F×C×Kh×Kw, got shape \(kernel.shape); use KPD for matrices")
        }
        let right = try kroneckerRightShape(kernel.shape, left: leftShape, names: ["F", "C", "Kh", "Kw"], format: formatName)
        let (a, b) = try nearestKroneckerFactors(kernel, left: leftShape, right: right, target: target, format: formatName)
        return GeneralizedKroneckerDecomposition(left: a, right: b)
    }
}
