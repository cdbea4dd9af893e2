import TensorCore

/// A tensor held in the tensor-train format 𝒳(j_1,…,j_d) = G_1[j_1] G_2[j_2] ⋯ G_d[j_d] ([33]; METHODS §1.6).
///
/// Layout (TensorLy's, as in the factor files): `cores[k]` 𝒢_k ∈ ℝ^{R_{k−1}×J_k×R_k} with R_0 = R_d = 1, so
/// G_k[j_k] = 𝒢_k[:, j_k, :] is an R_{k−1}×R_k matrix. `ranks` lists all d+1 ranks, boundaries included.
public struct TensorTrain<Scalar: TensorScalar>: TensorDecomposition {
    /// "tt".
    public static var formatName: String { "tt" }

    /// The cores 𝒢_k ∈ ℝ^{R_{k−1}×J_k×R_k}.
    public var cores: [Tensor<Scalar>]

    /// A tensor train from its cores.
    ///
    /// - Precondition: at least one core, every core of order 3, consecutive ranks equal, R_0 = R_d = 1.
    public init(cores: [Tensor<Scalar>]) {
        precondition(!cores.isEmpty, "TensorTrain: at least one core is needed")
        for (k, c) in cores.enumerated() {
            precondition(c.rank == 3, "TensorTrain: core \(k) must be R×J×R', got shape \(c.shape)")
            if k > 0 {
                precondition(cores[k - 1].shape[2] == c.shape[0],
                             "TensorTrain: core \(k - 1) \(cores[k - 1].shape) and core \(k) \(c.shape) disagree on their shared rank")
            }
        }
        precondition(cores[0].shape[0] == 1 && cores[cores.count - 1].shape[2] == 1,
                     "TensorTrain: boundary ranks must be 1, got \(cores[0].shape[0]) and \(cores[cores.count - 1].shape[2])")
        self.cores = cores
    }

    /// [J_1, …, J_d].
    public var shape: [Int] { cores.map { $0.shape[1] } }
    /// [R_0 = 1, R_1, …, R_{d−1}, R_d = 1].
    public var ranks: [Int] { [cores[0].shape[0]] + cores.map { $0.shape[2] } }
    /// Σ_k R_{k−1}J_kR_k.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }

    /// Contracts the cores left to right: (J_1⋯J_k × R_k)·(R_k × J_{k+1}R_{k+1}) GEMMs.
    public func reconstruct() -> Tensor<Scalar> {
        var left = cores[0].reshaped([cores[0].shape[1], cores[0].shape[2]])
        for core in cores.dropFirst() {
            left = Tensor.matmul(left, core.reshaped([core.shape[0], core.shape[1] * core.shape[2]]))
                .reshaped([-1, core.shape[2]])
        }
        return left.reshaped(shape)
    }

    // MARK: TT-SVD

    /// TT-SVD [33] (METHODS §1.6): sequential truncated SVDs of the (R_{k−1}J_k) × (J_{k+1}⋯J_d) reshapings.
    /// With fixed ranks, wide reshapings take the leading eigenvectors of their Gram matrix instead of an SVD
    /// (one GEMM; the remainder is the exact projection UᵀC), several times faster on long trains.
    ///
    /// - Parameters:
    ///   - target: `.relativeError(ε)`: each SVD drops the longest tail ≤ δ = ε‖𝒳‖_F/√(d−1), which guarantees
    ///     ‖𝒳 − 𝒳_TT‖_F ≤ ε‖𝒳‖_F (without a cap; with `maxRank` the cap wins); `.ranks`: one value for every
    ///     bond, the d−1 inner ranks, or all d+1 ranks with boundaries 1 (TensorLy style); `.compressionRatio(c)`:
    ///     the largest uniform rank cap whose parameters fit ∏J/c.
    ///   - maxRank: an optional cap on every rank.
    /// - Rank clamping: R_k ≤ min(∏_{j≤k}J_j, ∏_{j>k}J_j, R_{k−1}J_k, J_{k+1}R_{k+1}) (the rank of the k-th
    ///   unfolding and of the neighbouring cores), applied to explicit ranks and caps.
    /// - Throws: `.nonFiniteInput`, `.invalidRanks`, `.invalidTarget`, `.shapeMismatch` (empty modes).
    public static func decompose(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, maxRank: Int? = nil) throws -> TensorTrain {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format)
        try validate(tensor, target: target, format: format)
        if let cap = maxRank, cap < 1 {
            throw DecompositionError.invalidRanks(format: format, problem: "maxRank must be at least 1, got \(cap)")
        }
        let shape = tensor.shape, d = shape.count
        var caps: [Int]? = nil
        var tolerance: Double? = nil
        switch target {
        case let .ranks(r):
            caps = try innerRanks(r, order: d, format: format)
        case let .relativeError(eps):
            if d > 1 {
                tolerance = Double(eps) * FactorKernels.squaredNorm(tensor).squareRoot() / Double(d - 1).squareRoot()
            }
        case let .compressionRatio(c):
            let uniform = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: tensor.scalarCount,
                                                         upper: Swift.min(maxRank ?? tensor.scalarCount, tensor.scalarCount)) { r in
                parameters(shape: shape, ranks: clamp([Int](repeating: r, count: Swift.max(d - 1, 0)), shape: shape))
            }
            caps = [Int](repeating: uniform, count: Swift.max(d - 1, 0))
        }
        if let cap = maxRank {
            caps = (caps ?? [Int](repeating: cap, count: Swift.max(d - 1, 0))).map { Swift.min($0, cap) }
        }
        if let c = caps { caps = clamp(c, shape: shape) }
        return try ttSVD(tensor.reshaped([1] + shape + [1]), leftRank: 1, caps: caps, tolerance: tolerance)
    }

    /// TT-SVD of a tensor given as (R_left, J_1, …, J_d, R_right): returns cores whose first core has R_left rows
    /// and whose last core has R_right columns (R_right is kept as the last core's right rank).
    static func ttSVD(_ tensor: Tensor<Scalar>, leftRank: Int, caps: [Int]?, tolerance: Double?) throws -> TensorTrain {
        let full = tensor.shape
        let modes = Array(full[1..<(full.count - 1)])
        let right = full[full.count - 1]
        let cores = try sequentialSVD(tensor.reshaped([-1]), leftRank: leftRank, modes: modes, rightRank: right,
                                      caps: caps, tolerance: tolerance)
        return TensorTrain(uncheckedCores: cores)
    }

    /// The cores of a TT-SVD sweep over `modes`, starting from a left rank and ending with the right rank
    /// attached to the last core (used by TT-SVD and TR-SVD).
    static func sequentialSVD(_ data: Tensor<Scalar>, leftRank: Int, modes: [Int], rightRank: Int,
                              caps: [Int]?, tolerance: Double?) throws -> [Tensor<Scalar>] {
        var cores: [Tensor<Scalar>] = []
        var rest = data
        var r0 = leftRank
        var remaining = data.scalarCount / Swift.max(leftRank, 1)
        for k in 0..<(modes.count - 1) {
            let j = modes[k]
            remaining /= j
            let (u, w) = try FactorKernels.truncatedSplit(rest.reshaped([r0 * j, remaining]), cap: caps?[k], tolerance: tolerance)
            let r = u.shape[1]
            cores.append(u.reshaped([r0, j, r]))
            rest = w
            r0 = r
        }
        cores.append(rest.reshaped([r0, modes[modes.count - 1], rightRank]))
        return cores
    }

    // MARK: TT-rounding

    /// TT-rounding [33] (METHODS §1.6): orthogonalize right to left with QR, then truncate left to right with SVDs.
    ///
    /// With `.relativeError(ε)` every SVD drops the longest tail ≤ δ = ε‖𝒯‖_F/√(d−1), so the result is within
    /// ε‖𝒯‖_F of this train; ranks that were inflated (a redundant representation) fall back to the minimal ones.
    /// With `.ranks` (or `maxRank`) the ranks are capped instead; `.compressionRatio(c)` picks the largest uniform
    /// cap whose parameters fit ∏J/c.
    /// - Throws: `.invalidRanks`, `.invalidTarget` for a bad target, `.nonFiniteInput` for non-finite cores.
    public func rounded(_ target: RankTarget<Scalar>, maxRank: Int? = nil) throws -> TensorTrain {
        let format = Self.formatName
        guard cores.allSatisfy({ $0.isFinite }) else { throw DecompositionError.nonFiniteInput(format: format) }
        try validate(Tensor<Scalar>.zeros([1]), target: target, format: format)
        if let cap = maxRank, cap < 1 {
            throw DecompositionError.invalidRanks(format: format, problem: "maxRank must be at least 1, got \(cap)")
        }
        let d = cores.count, shape = self.shape
        var caps: [Int]? = nil
        switch target {
        case let .ranks(r): caps = try Self.innerRanks(r, order: d, format: format)
        case .relativeError: break
        case let .compressionRatio(c):
            let size = shape.reduce(1, *)
            let uniform = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: size,
                                                         upper: Swift.max(1, ranks.max() ?? 1)) { r in
                Self.parameters(shape: shape, ranks: Self.clamp([Int](repeating: r, count: d - 1), shape: shape))
            }
            caps = [Int](repeating: uniform, count: d - 1)
        }
        if let cap = maxRank { caps = (caps ?? [Int](repeating: cap, count: d - 1)).map { Swift.min($0, cap) } }
        var g = cores
        // Right-to-left orthogonalization: core k = L·Q with orthonormal rows of Q.
        for k in stride(from: d - 1, to: 0, by: -1) {
            let (r0, j, r1) = (g[k].shape[0], g[k].shape[1], g[k].shape[2])
            let (q, r) = try g[k].reshaped([r0, j * r1]).transposed.qr()
            let t = q.shape[1]
            g[k] = q.transposed.reshaped([t, j, r1])
            let prev = g[k - 1]
            g[k - 1] = Tensor.matmul(prev.reshaped([-1, r0]), r, transposeB: true).reshaped([prev.shape[0], prev.shape[1], t])
        }
        var tolerance: Double? = nil
        if case let .relativeError(eps) = target, d > 1 {
            tolerance = Double(eps) * FactorKernels.squaredNorm(g[0]).squareRoot() / Double(d - 1).squareRoot()
        }
        // Left-to-right truncation.
        for k in 0..<(d - 1) {
            let (r0, j, r1) = (g[k].shape[0], g[k].shape[1], g[k].shape[2])
            let svd = try g[k].reshaped([r0 * j, r1]).svd()
            var r = svd.rank
            if let tolerance { r = FactorKernels.tailRank(svd.s.scalars, tolerance: tolerance) }
            if let caps { r = Swift.min(r, caps[k]) }
            r = Swift.max(1, Swift.min(r, svd.rank))
            g[k] = svd.u.slice(axis: 1, start: 0, count: r).reshaped([r0, j, r])
            let sv = svd.vt.slice(axis: 0, start: 0, count: r) * svd.s.slice(axis: 0, start: 0, count: r).reshaped([r, 1])
            let next = g[k + 1]
            g[k + 1] = Tensor.matmul(sv, next.reshaped([r1, -1])).reshaped([r, next.shape[1], next.shape[2]])
        }
        return TensorTrain(uncheckedCores: g)
    }

    // MARK: Helpers

    init(uncheckedCores: [Tensor<Scalar>]) { self.cores = uncheckedCores }

    /// Inner ranks R_1..R_{d−1} from 1, d−1 or d+1 values (the last form must have boundary ranks 1).
    static func innerRanks(_ r: [Int], order d: Int, format: String) throws -> [Int] {
        let inner = Swift.max(d - 1, 0)
        if r.count == 1 { return [Int](repeating: r[0], count: inner) }
        if r.count == inner { return r }
        if r.count == d + 1 {
            guard r.first == 1 && r.last == 1 else {
                throw DecompositionError.invalidRanks(format: format, problem: "with \(d + 1) ranks the boundary ranks must be 1, got \(r); drop the boundaries or set them to 1")
            }
            return Array(r[1..<d])
        }
        throw DecompositionError.invalidRanks(format: format, problem: "expected 1, \(inner) or \(d + 1) ranks for a tensor of order \(d), got \(r.count) (\(r))")
    }

    /// R_k ≤ min(∏_{j≤k}J_j, ∏_{j>k}J_j), then R_k ≤ R_{k−1}J_k (forward) and R_k ≤ J_{k+1}R_{k+1} (backward).
    static func clamp(_ inner: [Int], shape: [Int]) -> [Int] {
        let d = shape.count
        guard d > 1 else { return [] }
        var r = [1] + inner + [1]
        var left = 1.0
        let total = Double(shape.reduce(1, *))
        for k in 1..<d {
            left *= Double(shape[k - 1])
            let bound = Swift.min(left, total / left)
            r[k] = Swift.max(1, Int(Swift.min(Double(r[k]), bound)))
        }
        for k in 1..<d { r[k] = Swift.min(r[k], r[k - 1] * shape[k - 1]) }
        for k in stride(from: d - 1, through: 1, by: -1) { r[k] = Swift.min(r[k], shape[k] * r[k + 1]) }
        return Array(r[1..<d])
    }

    /// Σ_k R_{k−1}J_kR_k for inner ranks.
    static func parameters(shape: [Int], ranks inner: [Int]) -> Int {
        let r = [1] + inner + [1]
        return shape.indices.reduce(0) { $0 + r[$1] * shape[$1] * r[$1 + 1] }
    }
}
