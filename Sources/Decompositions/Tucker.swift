import TensorCore

/// A tensor held as a Tucker decomposition 𝒳 ≈ 𝒢 ×_1 U^{(1)} ×_2 … ×_d U^{(d)} ([31], [42]; METHODS §1.3).
///
/// Layout (TensorLy's, as in the factor files): `core` 𝒢 ∈ ℝ^{R_1×…×R_d} and `factors[i]` = U^{(modes[i])} ∈
/// ℝ^{J_k×R_k} with orthonormal columns. A partial Tucker (e.g. Tucker-2 of a conv kernel on modes 0 and 1)
/// factors only the listed `modes`; the core keeps the full size J_k on the other modes.
public struct TuckerDecomposition<Scalar: TensorScalar>: TensorDecomposition {
    /// "tucker".
    public static var formatName: String { "tucker" }

    /// The core 𝒢 ∈ ℝ^{R_1×…×R_d} (R_k = J_k on modes that are not factored).
    public var core: Tensor<Scalar>
    /// U^{(k)} ∈ ℝ^{J_k×R_k} for each factored mode, in the order of `modes`.
    public var factors: [Tensor<Scalar>]
    /// The factored modes, increasing (all modes for a full Tucker decomposition).
    public var modes: [Int]

    /// A Tucker decomposition from its core and factors; `modes` defaults to every mode of the core.
    ///
    /// - Precondition: one factor per mode in `modes`, factor i of shape J × core.shape[modes[i]].
    public init(core: Tensor<Scalar>, factors: [Tensor<Scalar>], modes: [Int]? = nil) {
        let modes = modes ?? Array(0..<core.rank)
        precondition(modes.count == factors.count, "TuckerDecomposition: \(factors.count) factors for modes \(modes)")
        precondition(Set(modes).count == modes.count && modes.allSatisfy { $0 >= 0 && $0 < core.rank },
                     "TuckerDecomposition: modes \(modes) are not distinct modes of a core of shape \(core.shape)")
        for (mode, f) in zip(modes, factors) {
            precondition(f.rank == 2 && f.shape[1] == core.shape[mode],
                         "TuckerDecomposition: factor \(f.shape) does not match core mode \(mode) of size \(core.shape[mode]) (core \(core.shape))")
        }
        let order = modes.indices.sorted { modes[$0] < modes[$1] }
        self.core = core
        self.factors = order.map { factors[$0] }
        self.modes = order.map { modes[$0] }
    }

    /// [J_1, …, J_d].
    public var shape: [Int] {
        var s = core.shape
        for (mode, f) in zip(modes, factors) { s[mode] = f.shape[0] }
        return s
    }
    /// The multilinear ranks [R_1, …, R_d] (the core's shape).
    public var ranks: [Int] { core.shape }
    /// ∏R_k + Σ_{factored k} J_kR_k.
    public var parameterCount: Int { core.scalarCount + factors.reduce(0) { $0 + $1.scalarCount } }

    /// 𝒢 ×_k U^{(k)} over the factored modes (largest shrink first).
    public func reconstruct() -> Tensor<Scalar> {
        core.multiModeProduct(zip(modes, factors).map { (mode: $0.0, matrix: $0.1) })
    }

    // MARK: Algorithms

    /// Truncated HOSVD [68] (METHODS §1.3): U^{(k)} = the leading R_k left singular vectors of X_(k), and
    /// 𝒢 = 𝒳 ×_k U^{(k)ᵀ}.
    ///
    /// The error satisfies ‖𝒳 − 𝒳̂‖_F² ≤ Σ_k Σ_{i>R_k} σ_i(X_(k))² (hence ≤ d × the best rank-(R_1..R_d) error).
    /// - Parameters:
    ///   - target: `.ranks` (one value for every factored mode or one per mode), `.relativeError(ε)` (each
    ///     factored mode truncated at δ = ε‖𝒳‖_F/√m, m the number of factored modes, which guarantees
    ///     ‖𝒳 − 𝒳̂‖_F ≤ ε‖𝒳‖_F), or `.compressionRatio(c)` (the largest uniform rank whose parameters fit ∏J/c).
    ///   - modes: the modes to factor (default all); e.g. [0, 1] gives Tucker-2 of a C_out×C_in×K_h×K_w kernel.
    /// - Rank clamping (explicit ranks and ratios): R_k ≤ J_k, then R_k ≤ ∏_{j≠k} R_j repeated to a fixed point
    ///   (a larger R_k cannot be used by any core of the other ranks).
    /// - Throws: `.nonFiniteInput`, `.invalidRanks`, `.invalidTarget`, `.shapeMismatch` (empty modes, bad `modes`).
    public static func hosvd(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, modes: [Int]? = nil) throws -> TuckerDecomposition {
        let (modes, ranks) = try resolve(tensor, target: target, modes: modes)
        var factors: [Tensor<Scalar>] = []
        if case let .relativeError(eps) = target {
            // Exact singular values of every unfolding decide the ranks.
            let delta = Double(eps) * FactorKernels.squaredNorm(tensor).squareRoot() / Double(Swift.max(modes.count, 1)).squareRoot()
            for mode in modes {
                let svd = try tensor.unfolded(mode: mode).svd()
                factors.append(svd.u.slice(axis: 1, start: 0, count: FactorKernels.tailRank(svd.s.scalars, tolerance: delta)))
            }
        } else {
            for (mode, r) in zip(modes, ranks) {
                factors.append(try FactorKernels.leadingLeftVectors(tensor, mode: mode, rank: r).basis)
            }
        }
        let core = tensor.multiModeProduct(zip(modes, factors).map { (mode: $0.0, matrix: $0.1) }, transposed: true)
        return TuckerDecomposition(core: core, factors: factors, modes: modes)
    }

    /// HOOI [68] (METHODS §1.3): start from a truncated HOSVD, then for each factored mode set U^{(k)} to the
    /// leading R_k left singular vectors of Y_(k), 𝒴 = 𝒳 ×_{j≠k} U^{(j)ᵀ}; stop when ‖𝒢‖_F changes by less than
    /// `tolerance`·‖𝒳‖_F (at least 10 × the unit roundoff of the precision) or after `maxIterations` sweeps.
    ///
    /// With explicit ranks the start is the sequentially truncated HOSVD (Vannieuwenhoven, Vandebril & Meerbergen
    /// 2012, not in the survey's reference list: each mode's subspace is taken from the tensor already projected
    /// on the previous modes, which costs a fraction of the HOSVD and satisfies the same kind of bound); pass
    /// `sequentialStart: false` for the plain HOSVD start. A tolerance always starts from the truncated HOSVD.
    /// A sweep reuses the prefix products 𝒳 ×_{j<k} U^{(j)ᵀ}, so only two products touch the full tensor.
    /// Each update maximizes ‖𝒢‖ over one factor, so the error never exceeds that of the start and the ε
    /// guarantee of `.relativeError` carries over. The fit history uses ‖𝒳 − 𝒳̂‖² = ‖𝒳‖² − ‖𝒢‖².
    /// - Throws: as `hosvd`.
    public static func hooi(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, modes: [Int]? = nil,
                            maxIterations: Int = 100, tolerance: Double = 1e-10, sequentialStart: Bool = true) throws
        -> (decomposition: TuckerDecomposition, report: ConvergenceReport) {
        var result: TuckerDecomposition
        if case .relativeError = target {
            result = try hosvd(tensor, target: target, modes: modes)
        } else if sequentialStart {
            let (modes, ranks) = try resolve(tensor, target: target, modes: modes)
            result = try sequentialHOSVD(tensor, modes: modes, ranks: ranks)
        } else {
            result = try hosvd(tensor, target: target, modes: modes)
        }
        let modes = result.modes
        let normX2 = FactorKernels.squaredNorm(tensor)
        let normX = normX2.squareRoot()
        let tol = Swift.max(tolerance, 10 * Double(Scalar.unitRoundoff))
        func fit(_ core: Tensor<Scalar>) -> Double {
            normX2 == 0 ? 1 : 1 - Swift.max(normX2 - FactorKernels.squaredNorm(core), 0).squareRoot() / normX
        }
        var history = [fit(result.core)]
        var previous = FactorKernels.squaredNorm(result.core).squareRoot()
        var converged = modes.isEmpty || normX == 0
        var iterations = 0
        var factors = result.factors
        let ranks = result.core.shape
        while iterations < maxIterations && !converged {
            iterations += 1
            var prefix = tensor  // 𝒳 ×_{j<i} U^{(j)ᵀ} with the factors of this sweep
            for (i, mode) in modes.enumerated() {
                let suffix = ((i + 1)..<modes.count).map { (mode: modes[$0], matrix: factors[$0]) }
                let y = suffix.isEmpty ? prefix : prefix.multiModeProduct(suffix, transposed: true)
                factors[i] = try FactorKernels.leadingLeftVectors(y, mode: mode, rank: ranks[mode]).basis
                prefix = prefix.modeProduct(factors[i], mode: mode, transposed: true)
            }
            let core = prefix
            guard core.isFinite && factors.allSatisfy({ $0.isFinite }) else { break }
            result = TuckerDecomposition(core: core, factors: factors, modes: modes)
            history.append(fit(core))
            let norm = FactorKernels.squaredNorm(core).squareRoot()
            if Swift.abs(norm - previous) <= tol * normX { converged = true }
            previous = norm
        }
        return (result, ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history))
    }

    /// Sequentially truncated HOSVD: modes in decreasing order of J_k/R_k, each subspace from the tensor already
    /// projected on the earlier ones.
    static func sequentialHOSVD(_ tensor: Tensor<Scalar>, modes: [Int], ranks: [Int]) throws -> TuckerDecomposition {
        let shape = tensor.shape
        let order = modes.indices.sorted {
            Double(shape[modes[$0]]) / Double(ranks[$0]) > Double(shape[modes[$1]]) / Double(ranks[$1])
        }
        var projected = tensor
        var factors = [Tensor<Scalar>](repeating: Tensor<Scalar>.zeros([0]), count: modes.count)
        for i in order {
            let basis = try FactorKernels.leadingLeftVectors(projected, mode: modes[i], rank: ranks[i]).basis
            factors[i] = basis
            projected = projected.modeProduct(basis, mode: modes[i], transposed: true)
        }
        return TuckerDecomposition(core: projected, factors: factors, modes: modes)
    }

    /// HOOI with the given target (`hooi` with its defaults); use `hosvd` for the one-pass algorithm.
    /// - Throws: as `hosvd`.
    public static func decompose(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, modes: [Int]? = nil) throws
        -> (decomposition: TuckerDecomposition, report: ConvergenceReport) {
        try hooi(tensor, target: target, modes: modes)
    }

    // MARK: Rank resolution

    /// The factored modes and their ranks (empty ranks for a tolerance: the truncation decides them).
    static func resolve(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, modes: [Int]?) throws
        -> (modes: [Int], ranks: [Int]) {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format)
        try validate(tensor, target: target, format: format)
        let shape = tensor.shape, d = shape.count
        let modes = (modes ?? Array(0..<d)).sorted()
        guard Set(modes).count == modes.count, modes.allSatisfy({ $0 >= 0 && $0 < d }) else {
            throw DecompositionError.shapeMismatch(format: format, problem: "modes \(modes) are not distinct modes of a tensor of order \(d); pass modes in 0..<\(d)")
        }
        switch target {
        case let .ranks(r):
            let expanded = try expandRanks(r, count: modes.count, format: format, what: "ranks (one per factored mode)")
            return (modes, clamp(expanded, modes: modes, shape: shape))
        case let .compressionRatio(c):
            let upper = modes.map { shape[$0] }.max() ?? 1
            let uniform = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: tensor.scalarCount, upper: upper) { r in
                let ranks = clamp([Int](repeating: r, count: modes.count), modes: modes, shape: shape)
                var coreShape = shape
                for (m, rk) in zip(modes, ranks) { coreShape[m] = rk }
                return coreShape.reduce(1, *) + zip(modes, ranks).reduce(0) { $0 + shape[$1.0] * $1.1 }
            }
            return (modes, clamp([Int](repeating: uniform, count: modes.count), modes: modes, shape: shape))
        case .relativeError:
            return (modes, [])
        }
    }

    /// R_k ≤ J_k, then R_k ≤ ∏_{j≠k} R_j (unfactored modes count with J_j) until nothing changes.
    static func clamp(_ ranks: [Int], modes: [Int], shape: [Int]) -> [Int] {
        var full = shape
        for (m, r) in zip(modes, ranks) { full[m] = Swift.min(r, shape[m]) }
        var changed = true
        while changed {
            changed = false
            for m in modes {
                let others = full.indices.filter { $0 != m }.reduce(1) { $0 * full[$1] }
                if full[m] > others { full[m] = others; changed = true }
            }
        }
        return modes.map { full[$0] }
    }
}
