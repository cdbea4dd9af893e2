import Foundation
import TensorCore

/// A tensor held in the tensor-ring format 𝒳(j_1,…,j_d) = Tr(G_1[j_1] G_2[j_2] ⋯ G_d[j_d]) ([34]; METHODS §1.7).
///
/// Layout (TensorLy's, as in the factor files): `cores[k]` 𝒢_k ∈ ℝ^{R_k×J_k×R_{k+1}} with R_{d+1} = R_1: the ring
/// closes through the trace. `ranks` lists R_1, …, R_d. The format is invariant under cyclic shifts of the modes
/// (`shifted(by:)`).
public struct TensorRing<Scalar: TensorScalar>: TensorDecomposition {
    /// "tr".
    public static var formatName: String { "tr" }

    /// The cores 𝒢_k ∈ ℝ^{R_k×J_k×R_{k+1}}.
    public var cores: [Tensor<Scalar>]

    /// A tensor ring from its cores.
    ///
    /// - Precondition: at least one core, every core of order 3, consecutive ranks equal and the last core's
    ///   right rank equal to the first core's left rank.
    public init(cores: [Tensor<Scalar>]) {
        precondition(!cores.isEmpty, "TensorRing: at least one core is needed")
        for (k, c) in cores.enumerated() {
            precondition(c.rank == 3, "TensorRing: core \(k) must be R×J×R', got shape \(c.shape)")
            let next = cores[(k + 1) % cores.count]
            precondition(c.shape[2] == next.shape[0],
                         "TensorRing: core \(k) \(c.shape) and core \((k + 1) % cores.count) \(next.shape) disagree on their shared rank")
        }
        self.cores = cores
    }

    /// [J_1, …, J_d].
    public var shape: [Int] { cores.map { $0.shape[1] } }
    /// [R_1, …, R_d] (R_{d+1} = R_1).
    public var ranks: [Int] { cores.map { $0.shape[0] } }
    /// Σ_k R_kJ_kR_{k+1}.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }

    /// Merges cores 1..d−1 into (R_1, J_1⋯J_{d−1}, R_d) by GEMMs, then closes the ring against 𝒢_d with one GEMM
    /// over the pair (r_d, r_1).
    public func reconstruct() -> Tensor<Scalar> {
        let d = cores.count
        let r1 = cores[0].shape[0]
        if d == 1 {
            // Tr(G[j]) for each j.
            let c = cores[0], j = c.shape[1], r = c.shape[0]
            return Tensor<Scalar>(shape: [j]) { out in
                c.withUnsafeBufferPointer { p in
                    for jj in 0..<j { var t = Scalar(0); for a in 0..<r { t += p[(a * j + jj) * r + a] }; out[jj] = t }
                }
            }
        }
        let left = Self.merge(cores[0..<(d - 1)])  // (R_1, N', R_d)
        let last = cores[d - 1]  // (R_d, J_d, R_1)
        let rd = last.shape[0], jd = last.shape[1]
        let n = left.scalarCount / (r1 * rd)
        let l = left.reshaped([r1, n, rd]).permuted([1, 2, 0]).reshaped([n, rd * r1])  // (n', (b, a))
        let g = last.permuted([0, 2, 1]).reshaped([rd * r1, jd])  // ((b, a), j)
        return Tensor.matmul(l, g).reshaped(shape)
    }

    /// The ring with modes cyclically shifted: mode s becomes the first. Its reconstruction equals
    /// `reconstruct().permuted([s, s+1, …, d−1, 0, …, s−1])` (cyclic-shift invariance of the format).
    public func shifted(by s: Int) -> TensorRing {
        let d = cores.count
        let start = ((s % d) + d) % d
        return TensorRing(cores: Array(cores[start...] + cores[..<start]))
    }

    /// Merges consecutive cores (R_a, J, R_b)(R_b, J', R_c)… into one (R_a, J·J'⋯, R_z) core by GEMMs.
    static func merge(_ chain: ArraySlice<Tensor<Scalar>>) -> Tensor<Scalar> {
        var result = chain.first!
        let ra = result.shape[0]
        for core in chain.dropFirst() {
            let rb = core.shape[0]
            result = Tensor.matmul(result.reshaped([-1, rb]), core.reshaped([rb, core.shape[1] * core.shape[2]]))
                .reshaped([-1, core.shape[2]])
        }
        return result.reshaped([ra, -1, result.shape[result.rank - 1]])
    }

    // MARK: TR-SVD

    /// TR-SVD ([34]; METHODS §1.7): a δ_1-truncated SVD of X_(1) whose rank r = R_1·R_2 is split with the factor
    /// pair closest to √r (R_1 ≤ R_2), then TT-SVD steps with δ for cores 2..d−1, the last core closing the ring.
    ///
    /// - `.relativeError(ε)`: δ_1 = √2·ε‖𝒳‖_F/√d and δ = ε‖𝒳‖_F/√d guarantee ‖𝒳 − 𝒳_TR‖_F ≤ ε‖𝒳‖_F (the ranks grow
    ///   as needed; an exactly low-rank ring is recovered to ε, possibly at larger ranks).
    /// - `.ranks`: the truncations use the given ranks (clamped: R_1R_2 ≤ min(J_1, ∏_{j>1}J_j) by lowering R_2, then
    ///   R_1; later ranks by the SVD sizes). There is no error guarantee at fixed ranks: this is the algorithm
    ///   TensorLy runs, useful as an ALS start; use `als` or `decompose` for a fixed-rank fit.
    /// - `.compressionRatio(c)`: the largest uniform rank whose parameters dR²-ish fit ∏J/c, then as `.ranks`.
    /// - Throws: `.nonFiniteInput`, `.invalidRanks`, `.invalidTarget`, `.shapeMismatch` (order < 2, empty modes).
    public static func svd(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>) throws -> TensorRing {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format, minimumOrder: 2)
        try validate(tensor, target: target, format: format)
        let shape = tensor.shape, d = shape.count
        var fixed: [Int]? = nil
        var delta1: Double? = nil, delta: Double? = nil
        switch target {
        case let .relativeError(eps):
            let norm = FactorKernels.squaredNorm(tensor).squareRoot()
            delta1 = (2.0).squareRoot() * Double(eps) * norm / Double(d).squareRoot()
            delta = Double(eps) * norm / Double(d).squareRoot()
        case .ranks, .compressionRatio:
            fixed = try resolveRanks(tensor, target: target)
        }
        let j1 = shape[0], rest = tensor.scalarCount / j1
        let r1: Int, r2: Int
        let u: Tensor<Scalar>, w: Tensor<Scalar>
        if var ranks = fixed {
            let bound = Swift.min(j1, rest)
            ranks[0] = Swift.min(ranks[0], bound)
            ranks[1 % d] = Swift.max(1, Swift.min(ranks[1 % d], bound / ranks[0]))
            (r1, r2) = (ranks[0], ranks[1 % d])
            fixed = ranks
            (u, w) = try FactorKernels.truncatedSplit(tensor.reshaped([j1, rest]), cap: r1 * r2, tolerance: nil)
        } else {
            (u, w) = try FactorKernels.truncatedSplit(tensor.reshaped([j1, rest]), cap: nil, tolerance: delta1!)
            (r1, r2) = closestFactorPair(u.shape[1])
        }
        let first = u.reshaped([j1, r1, r2]).permuted([1, 0, 2])
        // S·Vᵀ as (R_1, R_2·rest), R_1 moved to the end: (R_2, J_2, …, J_d, R_1).
        let moved = w.reshaped([r1, r2 * rest]).transposed
        let caps = fixed.map { Array($0[2...]) }  // R_3..R_d cap the TT steps over J_2..J_{d−1}
        let tail = try TensorTrain<Scalar>.sequentialSVD(moved.reshaped([-1]), leftRank: r2, modes: Array(shape[1...]),
                                                         rightRank: r1, caps: caps, tolerance: delta)
        return TensorRing(cores: [first] + tail)
    }

    /// The factor pair (a, b), a ≤ b, a·b = r, with a closest to √r.
    static func closestFactorPair(_ r: Int) -> (Int, Int) {
        var a = Swift.max(1, Int(Double(r).squareRoot()))
        while a > 1 && r % a != 0 { a -= 1 }
        return (a, r / a)
    }

    /// Ranks R_1..R_d from `.ranks` (1, d, or d+1 values with the last equal to the first) or a ratio, clamped:
    /// R_{k+1} ≤ R_kJ_k and R_k ≤ J_kR_{k+1} (cyclically, to a fixed point).
    static func resolveRanks(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>) throws -> [Int] {
        let format = formatName
        let shape = tensor.shape, d = shape.count
        switch target {
        case let .ranks(r):
            var ranks = r
            if r.count == d + 1 {
                guard r[0] == r[d] else {
                    throw DecompositionError.invalidRanks(format: format, problem: "with \(d + 1) ranks the last must equal the first (the ring closes), got \(r); pass the \(d) ranks R_1..R_d")
                }
                ranks = Array(r[..<d])
            }
            let resolved = clamp(try expandRanks(ranks, count: d, format: format, what: "ranks R_1..R_d"), shape: shape)
            if let problem = oversizedFactorsProblem(shapes: (0..<d).map { [resolved[$0], shape[$0], resolved[($0 + 1) % d]] },
                                                     entries: tensor.scalarCount) {
                throw DecompositionError.invalidRanks(format: format, problem: "ranks \(resolved): \(problem)")
            }
            return resolved
        case let .compressionRatio(c):
            let uniform = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: tensor.scalarCount,
                                                         upper: tensor.scalarCount) { r in
                parameters(shape: shape, ranks: clamp([Int](repeating: r, count: d), shape: shape))
            }
            return clamp([Int](repeating: uniform, count: d), shape: shape)
        case .relativeError:
            throw DecompositionError.unsupportedTarget(format: format, problem: "fixed-rank TR algorithms take .ranks or .compressionRatio; use TensorRing.svd or .adaptive for a tolerance")
        }
    }

    /// Cyclic clamp R_{k+1} ≤ R_kJ_k, R_k ≤ J_kR_{k+1} until nothing changes.
    static func clamp(_ ranks: [Int], shape: [Int]) -> [Int] {
        var r = ranks
        let d = shape.count
        var changed = true
        while changed {
            changed = false
            for k in 0..<d {
                let next = (k + 1) % d
                if r[next] > r[k] * shape[k] { r[next] = r[k] * shape[k]; changed = true }
                if r[k] > shape[k] * r[next] { r[k] = shape[k] * r[next]; changed = true }
            }
        }
        return r
    }

    /// Σ_k R_kJ_kR_{k+1}.
    static func parameters(shape: [Int], ranks: [Int]) -> Int {
        shape.indices.reduce(0) { $0 + ranks[$1] * shape[$1] * ranks[($1 + 1) % shape.count] }
    }
}

/// Settings of TR-ALS (METHODS §1.7).
public struct TRALSOptions<Scalar: TensorScalar>: Sendable {
    /// How the cores start.
    public enum Initialization: Sendable {
        /// Seeded Gaussian cores, entries of variance 1/(J_kR_k) scaled so the expected norm matches ‖𝒳‖; several
        /// starts are probed (`restarts`, `probeSweeps`).
        case random
        /// TR-SVD at the requested ranks (one start).
        case svd
        /// Given cores (one start; their ranks override the target's).
        case given(TensorRing<Scalar>)
    }

    /// Initialization (default `.random`).
    public var initialization: Initialization
    /// Seed of the random initialization and of the rank-adaptive padding.
    public var seed: UInt64
    /// Maximum number of sweeps of the kept start, probe sweeps included (default 500; per rank stage in
    /// `adaptive`).
    public var maxIterations: Int
    /// Stop when the relative error changes by less than this between sweeps (default 1e-8; raised to 10 × the
    /// unit roundoff of the precision, below which a change is rounding noise).
    public var tolerance: Double
    /// Ridge μ ≥ 0 added to the normal equations of each core (default 0).
    public var ridge: Double
    /// Random starts probed before committing to one (default 4). TR-ALS has local minima and swamps: on small
    /// exactly low-rank rings (5×4×6×4, ranks (2,3,2,3)) a single random start reached 1e-10 in 27 of 40 cases and
    /// the best of four 20-sweep probes in 40 of 40 (our measurement).
    public var restarts: Int
    /// Sweeps per probe (default 20); probing ends early at the first start that converges within them.
    public var probeSweeps: Int
    /// Extrapolation after sweep n: try G_old + n^{1/p}(G_new − G_old) on every core and keep it when the error
    /// drops; p starts at 3 and grows after 4 consecutive rejections (default on; skipped when `ridge` > 0).
    public var lineSearch: Bool

    /// Options with the defaults above; every argument can be overridden.
    public init(initialization: Initialization = .random, seed: UInt64 = 0, maxIterations: Int = 500,
                tolerance: Double = 1e-8, ridge: Double = 0, restarts: Int = 4, probeSweeps: Int = 20,
                lineSearch: Bool = true) {
        self.initialization = initialization
        self.seed = seed
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        self.ridge = ridge
        self.restarts = restarts
        self.probeSweeps = probeSweeps
        self.lineSearch = lineSearch
    }
}

extension TensorRing {
    /// TR-ALS [34] (METHODS §1.7): for each core k, merge the other cores in cyclic order k+1..d,1..k−1 into
    /// 𝒢^{≠k} (R_{k+1} × ∏_{j≠k}J_j × R_k) and solve the least-squares problem X_⟨k⟩ ≈ G_k,(2)·(𝒢^{≠k}_(2))ᵀ
    /// through its normal equations (Gram matrix (R_kR_{k+1})², pseudo-inverse in Double, optional ridge).
    ///
    /// X_⟨k⟩ is one 2-D transpose of the tensor (the cyclic unfolding). The relative error after each sweep comes
    /// from the normal-equation identity, or directly from the last core's product when the identity is below the
    /// rounding level. With random starts, `restarts` seeded starts are probed for `probeSweeps` sweeps each (ending
    /// at the first that converges) and the best one continues. Stops when the error changes by less than
    /// `tolerance`; returns the best iterate, flagged `converged == false` at the iteration cap, and never NaN
    /// (non-finite values stop the sweeps). The report covers the kept start.
    /// - Parameters:
    ///   - target: `.ranks` (1, d, or d+1 values, TensorLy style) or `.compressionRatio`; ranks clamped as in
    ///     `svd`. Ignored with `.given` initial cores.
    /// - Throws: `.nonFiniteInput`, `.invalidRanks`, `.invalidTarget` (also for a negative ridge), `.shapeMismatch`,
    ///   `.unsupportedTarget` for `.relativeError` (use `svd` or `adaptive`), `.degenerate` when the first sweep is
    ///   not finite.
    public static func als(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>,
                           options: TRALSOptions<Scalar> = TRALSOptions()) throws
        -> (decomposition: TensorRing, report: ConvergenceReport) {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format, minimumOrder: 2)
        try validate(tensor, target: target, format: format)
        try validateRidge(options.ridge)
        let settings = (max: options.maxIterations, tol: options.tolerance, lineSearch: options.lineSearch && options.ridge == 0)
        var starts: [[Tensor<Scalar>]] = []
        switch options.initialization {
        case let .given(ring):
            precondition(ring.shape == tensor.shape, "TR-ALS: given cores for shape \(ring.shape) do not match tensor \(tensor.shape)")
            starts = [ring.cores]
        case .svd:
            let ranks = try resolveRanks(tensor, target: target)
            starts = [try svd(tensor, target: .ranks(ranks)).cores]
        case .random:
            let ranks = try resolveRanks(tensor, target: target)
            var generator = SeededGenerator(seed: options.seed)
            let norm = FactorKernels.squaredNorm(tensor).squareRoot()
            starts = (0..<Swift.max(1, options.restarts)).map { _ in
                randomCores(shape: tensor.shape, ranks: ranks, norm: norm, generator: &generator)
            }
        }
        var best: (solver: TRALSSolver<Scalar>, report: ConvergenceReport, error: Double)? = nil
        let probe = starts.count > 1 ? Swift.min(Swift.max(1, options.probeSweeps), settings.max) : settings.max
        for cores in starts {
            var solver = TRALSSolver(tensor: tensor, cores: cores, ridge: options.ridge)
            let (report, error) = try solver.run(maxIterations: probe, tolerance: settings.tol, lineSearch: settings.lineSearch)
            if best == nil || error < best!.error { best = (solver, report, error) }
            if report.converged { break }
        }
        var (solver, report, _) = best!
        let remaining = settings.max - report.iterations
        if !report.converged && remaining > 0 {
            let (more, _) = try solver.run(maxIterations: remaining, tolerance: settings.tol, lineSearch: settings.lineSearch,
                                           previousError: 1 - (report.fitHistory.last ?? 0))
            report = ConvergenceReport(iterations: report.iterations + more.iterations, converged: more.converged,
                                       fitHistory: report.fitHistory + more.fitHistory, warnings: report.warnings + more.warnings)
        }
        return (TensorRing(cores: solver.cores), report)
    }

    /// Rank-adaptive TR: greedy rank increments with ALS refits (the greedy scheme of Hashemizadeh et al.,
    /// "Adaptive tensor learning with tensor networks", 2020; not in the survey's reference list).
    ///
    /// Starts from all ranks 1; fits by TR-ALS; while the relative error exceeds `tolerance`, tries growing each
    /// bond by one (the new slice of the left core zero, of the right core seeded random, so the tensor is
    /// unchanged) with two ALS sweeps starting at that bond, keeps the bond that lowers the error most, and refits.
    /// The error is measured at every stage, so `converged == true` means ‖𝒳 − 𝒳_TR‖_F ≤ tolerance·‖𝒳‖_F holds.
    /// Stops unconverged (with a warning) when no bond can grow below `maxRank` or the ring would store more
    /// parameters than the tensor.
    /// - Throws: `.nonFiniteInput`, `.invalidTarget` (negative tolerance, maxRank < 1), `.shapeMismatch`.
    public static func adaptive(_ tensor: Tensor<Scalar>, tolerance: Scalar, maxRank: Int = 16,
                                options: TRALSOptions<Scalar> = TRALSOptions()) throws
        -> (decomposition: TensorRing, report: ConvergenceReport) {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format, minimumOrder: 2)
        try validate(tensor, target: .relativeError(tolerance), format: format)
        try validateRidge(options.ridge)
        guard maxRank >= 1 else {
            throw DecompositionError.invalidTarget(format: format, problem: "maxRank must be at least 1, got \(maxRank)")
        }
        let shape = tensor.shape, d = shape.count
        var generator = SeededGenerator(seed: options.seed)
        let norm = FactorKernels.squaredNorm(tensor).squareRoot()
        var solver = TRALSSolver(tensor: tensor, cores: randomCores(shape: shape, ranks: [Int](repeating: 1, count: d),
                                                                    norm: norm, generator: &generator), ridge: options.ridge)
        let first = try solver.run(maxIterations: options.maxIterations, tolerance: options.tolerance, lineSearch: options.lineSearch && options.ridge == 0)
        var error = first.1
        var history = first.0.fitHistory
        var iterations = first.0.iterations
        var warnings: [String] = []
        let target = Double(tolerance)
        while error > target {
            let ranks = solver.cores.map { $0.shape[0] }
            var best: (solver: TRALSSolver<Scalar>, error: Double)? = nil
            for bond in 0..<d {
                var grown = ranks
                grown[bond] += 1
                guard grown[bond] <= maxRank, clamp(grown, shape: shape) == grown,
                      parameters(shape: shape, ranks: grown) <= tensor.scalarCount else { continue }
                var probe = solver
                probe.grow(bond: bond, generator: &generator)
                var probeError = error
                for _ in 0..<2 { probeError = try probe.sweep(start: (bond - 1 + d) % d) }
                iterations += 2
                if probeError.isFinite && (best == nil || probeError < best!.error) { best = (probe, probeError) }
            }
            guard let chosen = best else {
                warnings.append("rank-adaptive TR stopped at ranks \(ranks) with relative error \(FactorKernels.short(error)) > \(target): no bond can grow below maxRank \(maxRank) (or the ring would outgrow the tensor); raise maxRank or the tolerance")
                break
            }
            solver = chosen.solver
            let stage = try solver.run(maxIterations: options.maxIterations, tolerance: options.tolerance, lineSearch: options.lineSearch && options.ridge == 0)
            error = stage.1
            history += stage.0.fitHistory
            iterations += stage.0.iterations
        }
        // Measured on the returned cores.
        let ring = TensorRing(cores: solver.cores)
        let measured = norm == 0 ? 0 : FactorKernels.squaredDistance(tensor, ring.reconstruct()).squareRoot() / norm
        let converged = measured <= target
        return (ring,
                ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history, warnings: warnings))
    }

    /// TR with the given target: `.relativeError(ε)` runs TR-SVD (guaranteed ε); `.ranks` and `.compressionRatio`
    /// run TR-ALS with `options` (random start by default).
    /// - Throws: as `svd` and `als`.
    public static func decompose(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>,
                                 options: TRALSOptions<Scalar> = TRALSOptions()) throws
        -> (decomposition: TensorRing, report: ConvergenceReport) {
        if case .relativeError = target {
            let ring = try svd(tensor, target: target)
            let fit = 1 - Double(ring.relativeError(to: tensor))
            return (ring, ConvergenceReport(iterations: 0, converged: true, fitHistory: [fit]))
        }
        return try als(tensor, target: target, options: options)
    }

    /// Throws `.invalidTarget` for a negative or non-finite ridge.
    static func validateRidge(_ ridge: Double) throws {
        guard ridge >= 0 && ridge.isFinite else {
            throw DecompositionError.invalidTarget(format: formatName, problem: "the ridge μ must be a finite number ≥ 0, got \(ridge)")
        }
    }

    /// Seeded Gaussian cores with variance 1/(J_kR_k), scaled by ‖𝒳‖^{1/d}, so E‖𝒳_TR‖² = ‖𝒳‖².
    static func randomCores(shape: [Int], ranks: [Int], norm: Double, generator: inout SeededGenerator) -> [Tensor<Scalar>] {
        let d = shape.count
        let scale = norm > 0 ? pow(norm, 1 / Double(d)) : 1
        return (0..<d).map { k in
            let sd = scale / (Double(shape[k] * ranks[k])).squareRoot()
            return Tensor<Scalar>.randomNormal([ranks[k], shape[k], ranks[(k + 1) % d]], standardDeviation: Scalar(sd),
                                               generator: &generator)
        }
    }
}

/// The state of one TR-ALS run (internal).
struct TRALSSolver<Scalar: TensorScalar> {
    let x: Tensor<Scalar>
    let normX2: Double
    let ridge: Double
    var cores: [Tensor<Scalar>]
    /// The cyclic unfoldings X_⟨s⟩ used as sweep starts, kept while they total at most 2^26 scalars.
    var unfoldings: [Int: Tensor<Scalar>] = [:]

    init(tensor: Tensor<Scalar>, cores: [Tensor<Scalar>], ridge: Double) {
        x = tensor
        normX2 = FactorKernels.squaredNorm(tensor)
        self.ridge = ridge
        self.cores = cores
    }

    var order: Int { x.rank }

    /// X_⟨k⟩ ∈ ℝ^{J_k × (J_{k+1}⋯J_d J_1⋯J_{k−1})}: one 2-D transpose of the (pre, rest) view.
    static func cyclicUnfolding(_ x: Tensor<Scalar>, _ k: Int) -> Tensor<Scalar> {
        let j = x.shape[k]
        if k == 0 { return x.reshaped([j, -1]) }
        let pre = x.shape[..<k].reduce(1, *)
        return x.reshaped([pre, x.scalarCount / pre]).transposed.reshaped([j, -1])
    }

    /// X_⟨k⟩, from the cache when it is there.
    mutating func unfolding(_ k: Int) -> Tensor<Scalar> {
        if let cached = unfoldings[k] { return cached }
        let result = Self.cyclicUnfolding(x, k)
        if k > 0 && (unfoldings.count + 1) * x.scalarCount <= 1 << 26 { unfoldings[k] = result }
        return result
    }

    /// E_j = Σ_i G_j[:, i, :] ⊗ G_j[:, i, :] as an (R_j²)×(R_{j+1}²) matrix with rows (x, x′) and columns (y, y′).
    static func transfer(_ core: Tensor<Scalar>) -> Tensor<Scalar> {
        let (r0, j, r1) = (core.shape[0], core.shape[1], core.shape[2])
        let f = core.permuted([1, 0, 2]).reshaped([j, r0 * r1])
        return Tensor.matmul(f, f, transposeA: true).reshaped([r0, r1, r0, r1]).permuted([0, 2, 1, 3])
            .reshaped([r0 * r0, r1 * r1])
    }

    /// The bond a sweep starts at by default: the smallest R_s (then the smallest R_sR_{s+1}), since every partial
    /// contraction of the sweep carries R_s.
    var cheapestCut: Int {
        let d = order
        return (0..<d).min { a, b in
            (cores[a].shape[0], cores[a].shape[2]) < (cores[b].shape[0], cores[b].shape[2])
        }!
    }

    /// One sweep over the cores s, s+1, …, s−1 (cyclically, s = `start`, default `cheapestCut`); returns the
    /// relative error after it (measured at the last update only).
    ///
    /// Nothing of size ∏J is formed per core. Before the sweep, the cores from each position i on merge from the end
    /// into Q_i[c, r_k, J_k⋯J_{s−1}] (k = s+i, c = the cut bond R_s; Q_i is R_s GEMMs of G_k with Q_{i+1}); as the
    /// sweep goes, the updated cores are contracted into the data: P_i[c, r_k, J_k⋯J_{s−1}] = Σ X_⟨s⟩·G_s⋯G_{k−1}
    /// (P_{i+1} is R_s GEMMs of P_i with the new G_k). Then M_k = X_⟨k⟩·(𝒢^{≠k})_(2) = Σ_c P_i[c]·Q_{i+1}[c]ᵀ, so a
    /// sweep costs about 2·R_sR_{s+1}·∏J multiply-adds plus a geometric tail, instead of d·R_kR_{k+1}·∏J for
    /// multiplying X with every sub-chain. The transfer matrices of the Gram products are made once per core per sweep.
    mutating func sweep(start: Int? = nil) throws -> Double {
        let d = order, s = start ?? cheapestCut
        let xs = unfolding(s)                       // J_s × (J_{s+1}⋯J_{s−1})
        let rc = cores[s].shape[0]
        var right = [Tensor<Scalar>](repeating: Tensor<Scalar>.identity(rc).reshaped([rc, rc, 1]), count: d + 1)
        for i in stride(from: d - 1, through: 1, by: -1) { right[i] = Self.prepend(cores[(s + i) % d], to: right[i + 1]) }
        var transfers = cores.map(Self.transfer)
        var partial = xs                            // P_i, flattened
        var residual = 0.0
        for i in 0..<d {
            let k = (s + i) % d
            let (ra, j, rb) = (cores[k].shape[0], cores[k].shape[1], cores[k].shape[2])
            let q = right[i + 1], rest = q.shape[2]
            // T[(c or a, j), (b, a or c)] = Σ_rest P[c, …, rest]·Q[c, b, rest]; at i = 0 P is X_⟨s⟩ and a = c.
            let t = Tensor<Scalar>(shape: i == 0 ? [j, rc * rb] : [ra * j, rb]) { tp in partial.withUnsafeBufferPointer { pp in q.withUnsafeBufferPointer { qp in
                for c in 0..<rc {
                    let b = qp.baseAddress! + c * rb * rest
                    if i == 0 {
                        Scalar.gemm(transposeA: false, transposeB: true, m: j, n: rb, k: rest, alpha: 1, a: pp.baseAddress!, lda: rest,
                                    b: b, ldb: rest, beta: 0, c: tp.baseAddress! + c * rb, ldc: rc * rb)
                    } else {
                        Scalar.gemm(transposeA: false, transposeB: true, m: ra * j, n: rb, k: rest, alpha: 1,
                                    a: pp.baseAddress! + c * ra * j * rest, lda: rest, b: b, ldb: rest,
                                    beta: c == 0 ? 0 : 1, c: tp.baseAddress!, ldc: rb)
                    }
                }
            } } }
            // M[j, (b, a)].
            let m = i == 0 ? t.reshaped([j, rc, rb]).permuted([0, 2, 1]).reshaped([j, rb * ra])
                           : t.reshaped([ra, j, rb]).permuted([1, 2, 0]).reshaped([j, rb * ra])
            if let r = try update(k, m: m, transfers: transfers, measure: i == d - 1) { residual = r }
            guard i < d - 1 else { break }
            let g = cores[k]
            transfers[k] = Self.transfer(g)
            if i == 0 {
                // P_1[(c, b), rest] = Σ_j G_s[c, j, b]·X_⟨s⟩[j, rest].
                partial = Tensor.matmul(g.permuted([1, 0, 2]).reshaped([j, ra * rb]), xs, transposeA: true)
            } else {
                // P_{i+1}[c, b, rest] = Σ_{a, j} G_k[a, j, b]·P_i[c, a, j, rest].
                let previous = partial
                partial = Tensor<Scalar>(shape: [rc * rb * rest]) { np in previous.withUnsafeBufferPointer { pp in g.withUnsafeBufferPointer { gp in
                    for c in 0..<rc {
                        Scalar.gemm(transposeA: true, transposeB: false, m: rb, n: rest, k: ra * j, alpha: 1,
                                    a: gp.baseAddress!, lda: rb, b: pp.baseAddress! + c * ra * j * rest, ldb: rest,
                                    beta: 0, c: np.baseAddress! + c * rb * rest, ldc: rest)
                    }
                } } }
            }
        }
        return relative(Swift.max(residual, 0))
    }

    /// Q′[c, a, (J, rest)] = Σ_b G[a, J, b]·Q[c, b, rest]: the core G (R_a, J, R_b) put in front of the merged chain
    /// Q (c, R_b, rest), one GEMM per c.
    static func prepend(_ core: Tensor<Scalar>, to q: Tensor<Scalar>) -> Tensor<Scalar> {
        let (ra, j, rb) = (core.shape[0], core.shape[1], core.shape[2])
        let (rc, rest) = (q.shape[0], q.shape[2])
        return Tensor<Scalar>(shape: [rc, ra, j * rest]) { op in q.withUnsafeBufferPointer { qp in core.withUnsafeBufferPointer { gp in
            for c in 0..<rc {
                Scalar.gemm(transposeA: false, transposeB: false, m: ra * j, n: rest, k: rb, alpha: 1, a: gp.baseAddress!, lda: rb,
                            b: qp.baseAddress! + c * rb * rest, ldb: rest, beta: 0, c: op.baseAddress! + c * ra * j * rest, ldc: rest)
            }
        } } }
    }

    /// Solves the normal equations of core k given M = X_⟨k⟩·C_(2) (columns ordered (r_{k+1}, r_k), with the
    /// sub-chain C = 𝒢^{≠k} stored as (R_{k+1}, L, R_k)) and the cores' transfer matrices; with `measure`, also
    /// returns ‖𝒳 − 𝒳̂‖² after it.
    ///
    /// The Gram matrix C_(2)ᵀC_(2) is either R_{k+1}² GEMMs over the sub-chain or, when cheaper, the product of the
    /// transfer matrices E_{k+1}⋯E_{k−1} (cost Σ J_jR⁴ + dR⁶ instead of L·R⁴). G_k,(2) = M·Γ⁺.
    ///
    /// The fit needs no reconstruction: ‖𝒳 − 𝒳̂‖² = ‖𝒳‖² − 2⟨G, M⟩ + ⟨G·Γ, G⟩ (⟨𝒳, 𝒳̂⟩ = ⟨G, M⟩, ‖𝒳̂‖² = ⟨G·Γ, G⟩).
    /// When that difference is within the rounding level of its terms, it is measured directly with
    /// X̂_⟨k⟩ = Σ_b G_b·C_bᵀ.
    mutating func update(_ k: Int, m: Tensor<Scalar>, transfers: [Tensor<Scalar>], measure: Bool) throws -> Double? {
        let d = order
        let rk = cores[k].shape[0], rk1 = cores[k].shape[2], j = x.shape[k]
        let p = rk * rk1
        let others = (1..<d).map { (k + $0) % d }
        let l = x.scalarCount / j
        // Γ[(b, a), (b′, a′)] = Σ_l C[b, l, a]·C[b′, l, a′].
        let directCost = Double(l) * Double(p) * Double(p)
        var transferCost = 0.0
        for (i, o) in others.enumerated() {
            let (r0, r1) = (cores[o].shape[0], cores[o].shape[2])
            transferCost += Double(cores[o].shape[1]) * Double(r0 * r1) * Double(r0 * r1)
            if i > 0 { transferCost += Double(rk1 * rk1) * Double(r0 * r0) * Double(r1 * r1) }
        }
        var subChain: Tensor<Scalar>? = nil
        func chain() -> Tensor<Scalar> {
            if subChain == nil { subChain = TensorRing<Scalar>.merge(others.map { cores[$0] }[...]) }  // (R_{k+1}, L, R_k)
            return subChain!
        }
        let gram: Tensor<Scalar>
        if transferCost < directCost {
            var product = transfers[others[0]]
            for o in others.dropFirst() { product = Tensor.matmul(product, transfers[o]) }
            gram = product.reshaped([rk1, rk1, rk, rk]).permuted([0, 2, 1, 3]).reshaped([p, p])
        } else {
            let c = chain()
            gram = Tensor<Scalar>(shape: [p, p]) { gp in c.withUnsafeBufferPointer { cp in
                for b in 0..<rk1 {
                    for b2 in 0..<rk1 {
                        Scalar.gemm(transposeA: true, transposeB: false, m: rk, n: rk, k: l, alpha: 1,
                                    a: cp.baseAddress! + b * l * rk, lda: rk, b: cp.baseAddress! + b2 * l * rk, ldb: rk,
                                    beta: 0, c: gp.baseAddress! + b * rk * p + b2 * rk, ldc: p)
                    }
                }
            } }
        }
        let g = try FactorKernels.solveNormalEquations(gram: gram, rhs: m, ridge: ridge)  // J × (R_{k+1}R_k)
        cores[k] = g.reshaped([j, rk1, rk]).permuted([2, 0, 1])
        guard measure else { return nil }
        let eps = Double(Scalar.unitRoundoff)
        let inner = Double(Tensor.dot(g, m))
        let model = Double(Tensor.dot(Tensor.matmul(g, gram), g))
        let residual = normX2 - 2 * inner + model
        if residual >= 1e4 * eps * (normX2 + model) { return residual }
        let c = chain()
        let xhat = Tensor<Scalar>(shape: [j, l]) { hp in g.withUnsafeBufferPointer { gp in c.withUnsafeBufferPointer { cp in
            for b in 0..<rk1 {
                Scalar.gemm(transposeA: false, transposeB: true, m: j, n: l, k: rk, alpha: 1, a: gp.baseAddress! + b * rk,
                            lda: p, b: cp.baseAddress! + b * l * rk, ldb: rk, beta: b == 0 ? 0 : 1, c: hp.baseAddress!, ldc: l)
            }
        } } }
        return FactorKernels.squaredDistance(unfolding(k), xhat)
    }

    func relative(_ residual: Double) -> Double {
        normX2 == 0 ? residual.squareRoot() : (residual / normX2).squareRoot()
    }

    var isFinite: Bool { cores.allSatisfy { $0.isFinite } }

    /// Sweeps until the relative error changes by less than `tolerance` (at least 10 unit roundoffs) or
    /// `maxIterations`, with optional extrapolation; keeps the best iterate. Returns the report and the final
    /// relative error.
    mutating func run(maxIterations: Int, tolerance: Double, lineSearch: Bool = true,
                      previousError: Double = .infinity) throws -> (ConvergenceReport, Double) {
        if normX2 == 0 {
            cores = cores.map { Tensor.zeros($0.shape) }
            return (ConvergenceReport(iterations: 0, converged: true, fitHistory: [1]), 0)
        }
        let tol = Swift.max(tolerance, 10 * Double(Scalar.unitRoundoff))
        var history: [Double] = []
        var warnings: [String] = []
        var best: (cores: [Tensor<Scalar>], error: Double)? = nil
        var previous = previousError
        var converged = false
        var iterations = 0
        var exponent = 3.0, failures = 0
        for sweepIndex in 1...Swift.max(1, maxIterations) {
            iterations = sweepIndex
            let before = cores
            var error = try sweep()
            guard error.isFinite && isFinite else {
                warnings.append("TR-ALS produced non-finite values at sweep \(sweepIndex); returned the best earlier iterate (set ridge, e.g. 1e-6, or lower the ranks)")
                if let b = best { cores = b.cores }
                break
            }
            if lineSearch && sweepIndex > 1 {
                let step = Scalar(Swift.max(1, pow(Double(sweepIndex), 1 / exponent)))
                let trial = zip(before, cores).map { old, new in old + (new - old) * step }
                if trial.allSatisfy({ $0.isFinite }) {
                    let trialError = relative(FactorKernels.squaredDistance(x, TensorRing<Scalar>(cores: trial).reconstruct()))
                    if trialError < error {
                        cores = trial
                        error = trialError
                        failures = 0
                    } else {
                        failures += 1
                        if failures >= 4 { exponent += 1; failures = 0 }
                    }
                }
            }
            history.append(1 - error)
            if best == nil || error <= best!.error { best = (cores, error) }
            if Swift.abs(previous - error) < tol { converged = true; break }
            previous = error
        }
        guard let chosen = best else {
            throw DecompositionError.degenerate(format: TensorRing<Scalar>.formatName, problem: "TR-ALS produced non-finite values in its first sweep; set ridge (e.g. 1e-6), lower the ranks or rescale the tensor")
        }
        cores = chosen.cores
        return (ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history, warnings: warnings), chosen.error)
    }

    /// Grows bond `bond` (R_bond, between core bond−1 and core bond) by one: a zero slice on the left core and a
    /// seeded random slice on the right core, so the represented tensor is unchanged.
    mutating func grow(bond: Int, generator: inout SeededGenerator) {
        let d = order
        let left = (bond - 1 + d) % d
        let l = cores[left]
        cores[left] = Tensor.concatenate([l, Tensor.zeros([l.shape[0], l.shape[1], 1])], axis: 2)
        let r = cores[bond]
        let scale = (FactorKernels.squaredNorm(r) / Double(Swift.max(r.scalarCount, 1))).squareRoot()
        let slice = Tensor<Scalar>.randomNormal([1, r.shape[1], r.shape[2]], standardDeviation: Scalar(Swift.max(scale, 1e-3)),
                                                generator: &generator)
        // The new index is the last one on both sides of the bond.
        cores[bond] = Tensor.concatenate([r, slice], axis: 0)
    }
}
