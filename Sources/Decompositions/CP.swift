import Foundation
import TensorCore

/// A tensor held as a CP (CANDECOMP/PARAFAC) decomposition 𝒳 ≈ Σ_{r=1}^R λ_r a_r^{(1)} ∘ … ∘ a_r^{(d)}
/// (METHODS §1.2, [68]).
///
/// Layout (TensorLy's, as in the factor files): `weights` λ ∈ ℝ^R and `factors[k]` = A^{(k)} ∈ ℝ^{J_k×R}.
/// Decompositions returned by `decompose` have unit-norm factor columns, with the scale in λ ≥ 0. In the
/// row-major convention X_(k) = A^{(k)} diag(λ) (A^{(1)} ⊙ … ⊙ A^{(k−1)} ⊙ A^{(k+1)} ⊙ … ⊙ A^{(d)})ᵀ, Khatri–Rao
/// factors in increasing mode order.
public struct CPDecomposition<Scalar: TensorScalar>: TensorDecomposition {
    /// "cp".
    public static var formatName: String { "cp" }

    /// The weights λ ∈ ℝ^R.
    public var weights: Tensor<Scalar>
    /// The factor matrices A^{(k)} ∈ ℝ^{J_k×R}, one per mode.
    public var factors: [Tensor<Scalar>]

    /// A CP decomposition from weights and factors (the columns need not be normalized).
    ///
    /// - Precondition: at least one factor; every factor is J_k×R with R = weights.count.
    public init(weights: Tensor<Scalar>, factors: [Tensor<Scalar>]) {
        precondition(!factors.isEmpty, "CPDecomposition: at least one factor matrix is needed")
        precondition(weights.rank == 1, "CPDecomposition: weights must be a vector, got shape \(weights.shape)")
        let r = weights.shape[0]
        for f in factors {
            precondition(f.rank == 2 && f.shape[1] == r,
                         "CPDecomposition: factor of shape \(f.shape) does not have R = \(r) columns (weights \(weights.shape))")
        }
        self.weights = weights
        self.factors = factors
    }

    /// The CP rank R (number of components).
    public var rank: Int { weights.shape[0] }
    /// [J_1, …, J_d].
    public var shape: [Int] { factors.map { $0.shape[0] } }
    /// [R].
    public var ranks: [Int] { [rank] }
    /// R·(1 + Σ_k J_k): the weights and every factor.
    public var parameterCount: Int { rank * (1 + shape.reduce(0, +)) }

    /// Σ_r λ_r a_r^{(1)} ∘ … ∘ a_r^{(d)}, computed as (A^{(1)}diag(λ) ⊙ A^{(2)} ⊙ … ⊙ A^{(d−1)})·A^{(d)ᵀ} (one
    /// Khatri–Rao product and one GEMM).
    public func reconstruct() -> Tensor<Scalar> {
        let r = rank
        let first = factors[0] * weights.reshaped([1, r])
        if factors.count == 1 { return Tensor.matmul(first, Tensor.ones([r, 1])).reshaped(shape) }
        var chain = [first]
        chain.append(contentsOf: factors[1..<(factors.count - 1)])
        let left = FactorKernels.khatriRao(chain[...], columns: r)
        return Tensor.matmul(left, factors[factors.count - 1], transposeB: true).reshaped(shape)
    }

    /// The same tensor with unit-norm factor columns, the scale moved into λ ≥ 0 (signs stay in the factors), and
    /// components sorted by decreasing weight. A component with a zero column gets λ_r = 0.
    public func normalized() -> CPDecomposition {
        var lambda = weights.scalars
        var newFactors = factors
        for k in newFactors.indices {
            let norms = FactorKernels.normalizeColumns(&newFactors[k])
            for c in 0..<rank { lambda[c] *= norms[c] }
        }
        // Move signs of λ into the first factor.
        for c in 0..<rank where lambda[c] < 0 {
            lambda[c] = -lambda[c]
            newFactors[0].withUnsafeMutableBufferPointer { p in
                for row in 0..<shape[0] { p[row * rank + c] = -p[row * rank + c] }
            }
        }
        let order = (0..<rank).sorted { lambda[$0] > lambda[$1] }
        let sortedFactors = newFactors.map { f in
            Tensor<Scalar>.concatenate(order.map { f.slice(axis: 1, start: $0, count: 1) }, axis: 1)
        }
        return CPDecomposition(weights: Tensor(order.map { lambda[$0] }), factors: sortedFactors)
    }

    /// Congruences C_rs = ∏_k cos∠(a_r^{(k)}, a_s^{(k)}) ∈ [−1, 1] between components (R×R, unit diagonal).
    ///
    /// Degenerate CP sequences [60]–[62] show pairs with C_rs → −1 and growing λ: components that diverge
    /// and cancel.
    public func congruences() -> Tensor<Scalar> {
        var result = Tensor<Scalar>.ones([rank, rank])
        for f in factors {
            var unit = f
            _ = FactorKernels.normalizeColumns(&unit)
            result = result * Tensor.matmul(unit, unit, transposeA: true)
        }
        return result
    }

    /// Sensitivity ss = Σ_k J_k Σ_r λ_r² ∏_{j≠k} ‖a_r^{(j)}‖² (METHODS §1.2, cf. [66]): the expected squared change
    /// of the reconstruction under unit-variance i.i.d. perturbation of every factor entry, to first order.
    /// It grows without bound along a degenerate (diverging) CP sequence.
    public var sensitivity: Scalar {
        let r = rank
        let norms: [[Double]] = factors.map { f in
            var n = [Double](repeating: 0, count: r)
            f.withUnsafeBufferPointer { p in
                for row in 0..<f.shape[0] { for c in 0..<r { n[c] += Double(p[row * r + c]) * Double(p[row * r + c]) } }
            }
            return n
        }
        let lambda = weights.scalars.map { Double($0) }
        var total = 0.0
        for k in factors.indices {
            var inner = 0.0
            for c in 0..<r {
                var product = lambda[c] * lambda[c]
                for j in factors.indices where j != k { product *= norms[j][c] }
                inner += product
            }
            total += Double(factors[k].shape[0]) * inner
        }
        return Scalar(total)
    }
}

/// Settings of CP-ALS (METHODS §1.2). Defaults follow METHODS: SVD initialization, |Δfit| < 1e-8 or 500 sweeps.
public struct CPALSOptions<Scalar: TensorScalar>: Sendable {
    /// How the factors start.
    public enum Initialization: Sendable {
        /// Leading R left singular vectors of each unfolding X_(k), padded with seeded random columns if R > J_k.
        case svd
        /// Seeded standard normal factors.
        case random
        /// Given factors (required for fixed modes); their weights are ignored except for fixed modes' scale.
        case given(CPDecomposition<Scalar>)
    }

    /// Initialization (default `.svd`).
    public var initialization: Initialization
    /// Seed of every random draw (random initialization, padding columns).
    public var seed: UInt64
    /// Maximum number of sweeps (default 500).
    public var maxIterations: Int
    /// Stop when the fit changes by less than this between sweeps (default 1e-8; raised to 10 × the unit roundoff
    /// of the precision, below which a change is rounding noise).
    public var tolerance: Double
    /// Ridge μ ≥ 0 added to Γ (each update minimizes ‖X_(k) − A Kᵀ‖² + μ‖A‖²), which bounds Σ_r λ_r² ≤ ‖𝒳‖²/μ:
    /// a guard against degeneracy at the price of a biased fit (default 0).
    public var ridge: Double
    /// Extrapolation ("line search"): after sweep n, try A_old + n^{1/p}(A_new − A_old) on every free factor
    /// and keep it when the fit improves; p starts at 3 and grows after 4 consecutive rejections (default on;
    /// skipped when `ridge` > 0, whose objective is not the fit).
    public var lineSearch: Bool
    /// Modes whose factors stay at their initial values (requires `.given` initialization).
    public var fixedModes: Set<Int>
    /// Throw `DecompositionError.degenerate` instead of returning a flagged result when diverging, cancelling
    /// components are detected (default false: report in `ConvergenceReport.warnings`).
    public var throwOnDegeneracy: Bool

    /// Options with METHODS defaults; every argument can be overridden.
    public init(initialization: Initialization = .svd, seed: UInt64 = 0, maxIterations: Int = 500,
                tolerance: Double = 1e-8, ridge: Double = 0, lineSearch: Bool = true, fixedModes: Set<Int> = [],
                throwOnDegeneracy: Bool = false) {
        self.initialization = initialization
        self.seed = seed
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        self.ridge = ridge
        self.lineSearch = lineSearch
        self.fixedModes = fixedModes
        self.throwOnDegeneracy = throwOnDegeneracy
    }
}

extension CPDecomposition {
    /// CP-ALS [68] (METHODS §1.2): alternating least squares over the factor matrices.
    ///
    /// Each update solves A^{(k)} ← M (Γ + μI)^† with the MTTKRP M = X_(k)(⊙_{j≠k} A^{(j)}) (computed as one GEMM
    /// against the Khatri–Rao product of the modes on the larger side and a cheap contraction with the other side,
    /// so the full Khatri–Rao product is never formed) and Γ = ∗_{j≠k} A^{(j)ᵀ}A^{(j)}, then moves the column norms
    /// into λ. The fit 1 − ‖𝒳 − 𝒳̂‖/‖𝒳‖ comes from ‖𝒳‖² − 2⟨𝒳,𝒳̂⟩ + ‖𝒳̂‖² with ⟨𝒳,𝒳̂⟩ from the last MTTKRP; when
    /// that difference is below the rounding level of the precision, the residual is computed directly.
    ///
    /// Degeneracy guard [60]–[62], [66]: after each sweep, a pair of components with congruence ≤ −0.8 whose
    /// combined energy λ_r² + λ_s² exceeds 2‖𝒳‖² (diverging, cancelling components: without cancellation the
    /// energies of nearly independent components add up to about ‖𝒳̂‖² ≤ ‖𝒳‖²) is reported in the warnings (or
    /// thrown with `throwOnDegeneracy`), together with the sensitivity. Non-finite values stop the iteration and
    /// the best iterate is returned. The result is always the best iterate seen, flagged `converged == false`
    /// when the iteration cap was hit.
    ///
    /// - Parameters:
    ///   - tensor: order ≥ 2.
    ///   - target: `.ranks([R])` or `.compressionRatio(c)` (the largest R with R(1 + ΣJ_k) ≤ ∏J_k/c). R may exceed
    ///     the mode sizes (no clamping: CP rank is not bounded by them).
    /// - Throws: `.nonFiniteInput`, `.invalidRanks` (rank < 1, more than one rank, or factors far larger than the
    ///   tensor: `oversizedFactorsProblem`), `.invalidTarget`
    ///   (unreachable ratio, negative ridge, fixed modes without given factors), `.unsupportedTarget` for `.relativeError`
    ///   (CP-ALS cannot guarantee one), `.shapeMismatch` (order < 2, empty modes), `.degenerate` (with
    ///   `throwOnDegeneracy`, or when not even the first sweep is finite).
    public static func decompose(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>,
                                 options: CPALSOptions<Scalar> = CPALSOptions()) throws
        -> (decomposition: CPDecomposition, report: ConvergenceReport) {
        let format = formatName
        try FactorKernels.requireNonEmpty(tensor, format: format, minimumOrder: 2)
        try validate(tensor, target: target, format: format)
        let shape = tensor.shape, d = shape.count, size = tensor.scalarCount
        let rank: Int
        switch target {
        case let .ranks(r):
            guard r.count == 1 else {
                throw DecompositionError.invalidRanks(format: format, problem: "CP has a single rank R, got \(r.count) values (\(r)); pass one rank")
            }
            rank = r[0]
        case let .compressionRatio(c):
            let perRank = 1 + shape.reduce(0, +)
            rank = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: size, upper: Swift.max(1, size / perRank)) { $0 * perRank }
        case .relativeError:
            throw DecompositionError.unsupportedTarget(format: format, problem: "CP-ALS cannot guarantee a relative error ε (a best rank-R CP approximation may not even exist); pass .ranks([R]) or .compressionRatio, or use Tucker, TT or TR with .relativeError")
        }
        if let problem = oversizedFactorsProblem(shapes: [[rank]] + shape.map { [$0, rank] }, entries: size) {
            throw DecompositionError.invalidRanks(format: format, problem: "rank \(rank): \(problem)")
        }
        guard options.ridge >= 0 && options.ridge.isFinite else {
            throw DecompositionError.invalidTarget(format: format, problem: "the ridge μ must be a finite number ≥ 0, got \(options.ridge)")
        }
        precondition(options.fixedModes.allSatisfy { $0 >= 0 && $0 < d },
                     "CP-ALS: fixed modes \(options.fixedModes.sorted()) out of range for a tensor of order \(d)")
        var solver = try CPALSSolver(tensor: tensor, rank: rank, options: options)
        return try solver.run()
    }
}

/// The state of one CP-ALS run (internal).
struct CPALSSolver<Scalar: TensorScalar> {
    let x: Tensor<Scalar>
    let options: CPALSOptions<Scalar>
    let rank: Int
    let order: Int
    let normX2: Double
    let free: [Int]
    var factors: [Tensor<Scalar>]
    var lambda: [Double]
    var grams: [Tensor<Scalar>]

    init(tensor: Tensor<Scalar>, rank: Int, options: CPALSOptions<Scalar>) throws {
        let format = CPDecomposition<Scalar>.formatName
        x = tensor
        self.options = options
        self.rank = rank
        order = tensor.rank
        normX2 = FactorKernels.squaredNorm(tensor)
        free = (0..<tensor.rank).filter { !options.fixedModes.contains($0) }
        guard !free.isEmpty else {
            throw DecompositionError.invalidTarget(format: format, problem: "every mode is fixed; leave at least one mode free in fixedModes")
        }
        var generator = SeededGenerator(seed: options.seed)
        var initial: [Tensor<Scalar>] = []
        var initialLambda = [Double](repeating: 1, count: rank)
        switch options.initialization {
        case let .given(cp):
            precondition(cp.shape == tensor.shape && cp.rank == rank,
                         "CP-ALS: given factors for shape \(cp.shape) rank \(cp.rank) do not match tensor \(tensor.shape) rank \(rank)")
            initial = cp.factors
            initialLambda = cp.weights.scalars.map { Double($0) }
        case .random:
            guard options.fixedModes.isEmpty else {
                throw DecompositionError.invalidTarget(format: format, problem: "fixed modes need their factors: pass initialization: .given(...)")
            }
            for j in tensor.shape { initial.append(Tensor.randomNormal([j, rank], generator: &generator)) }
        case .svd:
            guard options.fixedModes.isEmpty else {
                throw DecompositionError.invalidTarget(format: format, problem: "fixed modes need their factors: pass initialization: .given(...)")
            }
            for k in 0..<tensor.rank {
                let j = tensor.shape[k]
                var basis = try FactorKernels.leadingLeftVectors(tensor, mode: k, rank: rank).basis
                if basis.shape[1] < rank {
                    let pad = Tensor<Scalar>.randomNormal([j, rank - basis.shape[1]], generator: &generator)
                    basis = Tensor.concatenate([basis, pad], axis: 1)
                }
                initial.append(basis)
            }
        }
        factors = []
        lambda = initialLambda
        for (k, f) in initial.enumerated() {
            var unit = f
            // A zero column is replaced by a seeded random direction so every column has unit norm.
            let fallback = Tensor<Scalar>.randomNormal(f.shape, generator: &generator)
            var unitFallback = fallback
            _ = FactorKernels.normalizeColumns(&unitFallback)
            let norms = FactorKernels.normalizeColumns(&unit, fallback: unitFallback)
            if options.fixedModes.contains(k) { for c in 0..<rank { lambda[c] *= Double(norms[c]) } }
            factors.append(unit)
        }
        grams = factors.map { Tensor.matmul($0, $0, transposeA: true) }
    }

    /// Γ = ∗_{j≠k} A^{(j)ᵀ}A^{(j)}.
    func hadamardOfGrams(excluding k: Int) -> Tensor<Scalar> {
        var gamma = Tensor<Scalar>.ones([rank, rank])
        for j in 0..<order where j != k { gamma = gamma * grams[j] }
        return gamma
    }

    /// ‖𝒳̂‖² = λᵀ(∗_k A^{(k)ᵀ}A^{(k)})λ.
    func modelNormSquared() -> Double {
        var h = Tensor<Scalar>.ones([rank, rank])
        for g in grams { h = h * g }
        let hs = h.scalars
        var total = 0.0
        for a in 0..<rank { for b in 0..<rank { total += lambda[a] * Double(hs[a * rank + b]) * lambda[b] } }
        return total
    }

    var decomposition: CPDecomposition<Scalar> {
        CPDecomposition(weights: Tensor(lambda.map { Scalar($0) }), factors: factors)
    }

    /// Direct ‖𝒳 − 𝒳̂‖² by reconstruction.
    func directResidual() -> Double {
        FactorKernels.squaredDistance(x, decomposition.reconstruct())
    }

    func fit(residualSquared: Double) -> Double {
        normX2 == 0 ? (residualSquared == 0 ? 1 : 0) : 1 - Swift.max(residualSquared, 0).squareRoot() / normX2.squareRoot()
    }

    /// Warning text when a pair of components diverges and cancels, nil otherwise.
    func degeneracyWarning(sweep: Int) -> String? {
        let normX = normX2.squareRoot()
        guard normX > 0 else { return nil }
        var congruence = Tensor<Scalar>.ones([rank, rank])
        for g in grams { congruence = congruence * g }
        let c = congruence.scalars
        var worst: (Int, Int, Double)? = nil
        for a in 0..<rank {
            for b in (a + 1)..<Swift.max(a + 1, rank) where lambda[a] * lambda[a] + lambda[b] * lambda[b] > 2 * normX2 {
                let value = Double(c[a * rank + b])
                if value <= -0.8 && (worst == nil || value < worst!.2) { worst = (a, b, value) }
            }
        }
        guard let (a, b, value) = worst else { return nil }
        let ss = Double(decomposition.sensitivity)
        return "degenerate CP at sweep \(sweep): components \(a) and \(b) have weights \(FactorKernels.short(lambda[a] / normX))·‖X‖ and \(FactorKernels.short(lambda[b] / normX))·‖X‖ with congruence \(FactorKernels.short(value)) (diverging, cancelling components [60–62]; sensitivity \(FactorKernels.short(ss))); lower the rank, set ridge (e.g. 1e-3) or use Tucker/TT"
    }

    /// One ALS update of mode k; returns the MTTKRP used.
    mutating func update(mode k: Int) throws -> Tensor<Scalar> {
        let m = FactorKernels.mttkrp(x, factors: factors, mode: k)
        var a = try FactorKernels.solveNormalEquations(gram: hadamardOfGrams(excluding: k), rhs: m, ridge: options.ridge)
        let norms = FactorKernels.normalizeColumns(&a, fallback: factors[k])
        lambda = norms.map { Double($0) }
        factors[k] = a
        grams[k] = Tensor.matmul(a, a, transposeA: true)
        return m
    }

    var isFinite: Bool { lambda.allSatisfy { $0.isFinite } && factors.allSatisfy { $0.isFinite } }

    mutating func run() throws -> (decomposition: CPDecomposition<Scalar>, report: ConvergenceReport) {
        let format = CPDecomposition<Scalar>.formatName
        if normX2 == 0 {
            lambda = [Double](repeating: 0, count: rank)
            return (decomposition, ConvergenceReport(iterations: 0, converged: true, fitHistory: [1]))
        }
        let eps = Double(Scalar.unitRoundoff)
        let last = free.last!
        var history: [Double] = []
        var warnings: [String] = []
        var best: (factors: [Tensor<Scalar>], lambda: [Double], fit: Double)? = nil
        var converged = false
        var iterations = 0
        var exponent = 3.0, failures = 0
        var previousFit = -Double.infinity
        // A fit change below ten unit roundoffs is rounding noise.
        let tolerance = Swift.max(options.tolerance, 10 * eps)
        for sweep in 1...Swift.max(1, options.maxIterations) {
            iterations = sweep
            let before = (factors: factors, lambda: lambda)
            var lastMTTKRP: Tensor<Scalar>? = nil
            for k in free {
                let m = try update(mode: k)
                if k == last { lastMTTKRP = m }
            }
            guard isFinite else {
                warnings.append("CP-ALS produced non-finite values at sweep \(sweep); returned the best earlier iterate (lower the rank or set ridge)")
                break
            }
            // Fit from the MTTKRP identity, or directly when the identity is below the rounding level.
            let model2 = modelNormSquared()
            var inner = 0.0
            let ms = lastMTTKRP!.scalars, fs = factors[last].scalars
            for i in 0..<ms.count { inner += Double(ms[i]) * Double(fs[i]) * lambda[i % rank] }
            var residual2 = normX2 - 2 * inner + model2
            if residual2 < 1e4 * eps * (normX2 + model2) { residual2 = directResidual() }
            var fit = fit(residualSquared: residual2)
            // Extrapolation along the last update.
            if options.lineSearch && options.ridge == 0 && sweep > 1 {
                let step = Swift.max(1, pow(Double(sweep), 1 / exponent))
                var trial = self
                var trialLambda = [Double](repeating: 1, count: rank)
                for k in free {
                    let oldF = k == last ? before.factors[k] * Tensor(before.lambda.map { Scalar($0) }).reshaped([1, rank]) : before.factors[k]
                    let newF = k == last ? factors[k] * Tensor(lambda.map { Scalar($0) }).reshaped([1, rank]) : factors[k]
                    var f = oldF + (newF - oldF) * Scalar(step)
                    let norms = FactorKernels.normalizeColumns(&f, fallback: factors[k])
                    for c in 0..<rank { trialLambda[c] *= Double(norms[c]) }
                    trial.factors[k] = f
                }
                trial.lambda = trialLambda
                if trial.isFinite {
                    trial.grams = trial.factors.map { Tensor.matmul($0, $0, transposeA: true) }
                    let trialFit = trial.fit(residualSquared: trial.directResidual())
                    if trialFit > fit {
                        self = trial
                        fit = trialFit
                        failures = 0
                    } else {
                        failures += 1
                        if failures >= 4 { exponent += 1; failures = 0 }
                    }
                }
            }
            history.append(fit)
            if let message = degeneracyWarning(sweep: sweep) {
                if options.throwOnDegeneracy { throw DecompositionError.degenerate(format: format, problem: message) }
                if !warnings.contains(where: { $0.hasPrefix("degenerate CP") }) { warnings.append(message) }
            }
            if best == nil || fit >= best!.fit { best = (factors, lambda, fit) }
            if Swift.abs(fit - previousFit) < tolerance { converged = true; break }
            previousFit = fit
        }
        guard let chosen = best else {
            throw DecompositionError.degenerate(format: format, problem: "CP-ALS produced non-finite values in its first sweep; lower the rank, set ridge (e.g. 1e-3) or rescale the tensor")
        }
        factors = chosen.factors
        lambda = chosen.lambda
        return (decomposition, ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history, warnings: warnings))
    }
}

extension FactorKernels {
    /// MTTKRP M = X_(k)(A^{(1)} ⊙ … ⊙ A^{(k−1)} ⊙ A^{(k+1)} ⊙ … ⊙ A^{(d)}) ∈ ℝ^{J_k×R} (row-major convention).
    ///
    /// Viewing 𝒳 as (pre, J_k, post), it runs one GEMM against the Khatri–Rao product of the longer side
    /// (post × R, or pre × R transposed) and then contracts the shorter side row by row, so neither the full
    /// Khatri–Rao product nor a permuted copy of 𝒳 is formed. Cost ∏J·R + (shorter side)·J_k·R.
    static func mttkrp<S: TensorScalar>(_ x: Tensor<S>, factors: [Tensor<S>], mode k: Int) -> Tensor<S> {
        let shape = x.shape, d = shape.count, r = factors[0].shape[1]
        let j = shape[k]
        let pre = shape[..<k].reduce(1, *), post = shape[(k + 1)...].reduce(1, *)
        if pre <= post {
            let krPost = khatriRao(factors[(k + 1)..<d], columns: r)
            let t = Tensor.matmul(x.reshaped([pre * j, post]), krPost)  // (pre·J) × R
            if pre == 1 { return t }
            let krPre = khatriRao(factors[0..<k], columns: r)  // pre × R
            return Tensor<S>(shape: [j, r]) { out in
                out.initialize(repeating: 0)
                t.withUnsafeBufferPointer { tp in krPre.withUnsafeBufferPointer { kp in
                    let po = out.baseAddress!
                    for p in 0..<pre {
                        let w = kp.baseAddress! + p * r
                        let block = tp.baseAddress! + p * j * r
                        for row in 0..<j {
                            let src = block + row * r, dst = po + row * r
                            for c in 0..<r { dst[c] += w[c] * src[c] }
                        }
                    }
                } }
            }
        }
        let krPre = khatriRao(factors[0..<k], columns: r)  // pre × R
        let t = Tensor.matmul(krPre, x.reshaped([pre, j * post]), transposeA: true)  // R × (J·post)
        if post == 1 { return t.transposed }
        let krPostT = khatriRao(factors[(k + 1)..<d], columns: r).transposed  // R × post
        return Tensor<S>(shape: [j, r]) { out in
            t.withUnsafeBufferPointer { tp in krPostT.withUnsafeBufferPointer { kp in
                var column = [S](repeating: 0, count: j)
                for c in 0..<r {
                    column.withUnsafeMutableBufferPointer { col in
                        S.gemv(transpose: false, m: j, n: post, alpha: 1, a: tp.baseAddress! + c * j * post, lda: post,
                               x: kp.baseAddress! + c * post, beta: 0, y: col.baseAddress!)
                    }
                    for row in 0..<j { out[row * r + c] = column[row] }
                }
            } }
        }
    }
}
