import Foundation
import TensorCore

// The semi-tensor product (STP) [51] and the STP decompositions STTu, STT and STR [37], in the formulation of
// METHODS §1.9 (derived: the exact core shapes of [37] are not reproduced there).

infix operator ⋉ : MultiplicationPrecedence

extension Tensor {
    /// The (left) semi-tensor product [51] of A ∈ ℝ^{a×b} and C ∈ ℝ^{p×q} with s = lcm(b, p):
    ///
    ///     A ⋉ C = (A ⊗ I_{s/b})(C ⊗ I_{s/p})  ∈ ℝ^{(a·s/b)×(q·s/p)}.
    ///
    /// It is associative and equals the ordinary product when b = p. When b = t·p it is A(C ⊗ I_t), entry-wise
    /// (A ⋉ C)[x,(c,j)] = Σ_α A[x,(α,j)]·C[α,c]; when p = t·b it is (A ⊗ I_t)C. Both cases run as one GEMM with
    /// no identity formed; other shapes form A ⊗ I_{s/b} first.
    public static func semiTensorProduct(_ a: Tensor, _ c: Tensor) -> Tensor {
        precondition(a.rank == 2 && c.rank == 2, "semiTensorProduct: expected matrices, got \(a.shape) and \(c.shape)")
        let (rows, b) = (a.shape[0], a.shape[1]), (p, q) = (c.shape[0], c.shape[1])
        precondition(b >= 1 && p >= 1, "semiTensorProduct: empty inner dimension in \(a.shape) ⋉ \(c.shape)")
        if b % p == 0 {
            let t = b / p
            // A(C ⊗ I_t): A as (rows, p, t) → (rows, t, p), times C → (rows, t, q) → (rows, q, t).
            let moved = a.reshaped([rows, p, t]).permuted([0, 2, 1]).reshaped([rows * t, p])
            return Tensor.matmul(moved, c).reshaped([rows, t, q]).permuted([0, 2, 1]).reshaped([rows, q * t])
        }
        if p % b == 0 {
            let t = p / b
            // (A ⊗ I_t)C: row (x, j) is Σ_β A[x,β]·C[(β,j), :].
            return Tensor.matmul(a, c.reshaped([b, t * q])).reshaped([rows * t, q])
        }
        let s = stpLCM(b, p)
        return semiTensorProduct(kronecker(a, .identity(s / b)), c)
    }

    /// A ⋉ C, the semi-tensor product (`semiTensorProduct`).
    public static func ⋉ (lhs: Tensor, rhs: Tensor) -> Tensor { semiTensorProduct(lhs, rhs) }

    /// The semi-tensor mode product (METHODS §1.9): 𝒳 ⋉_k U := 𝒳 ×_k (U ⊗ I_t) for U ∈ ℝ^{P×(J_k/t)}, where
    /// t = J_k / cols(U); mode k of the result has size P·t. Runs as an ordinary mode product on the split mode
    /// (J_k/t, t), never forming U ⊗ I_t.
    public func semiTensorModeProduct(_ factor: Tensor, mode: Int) -> Tensor {
        let k = normalizeAxis(mode)
        precondition(factor.rank == 2 && factor.shape[1] >= 1 && shape[k] % factor.shape[1] == 0,
                     "semiTensorModeProduct: factor \(factor.shape) needs a column count dividing mode \(k) of size \(shape[k]) (shape \(shape))")
        let t = shape[k] / factor.shape[1]
        var split = shape
        split.replaceSubrange(k...k, with: [factor.shape[1], t])
        var merged = shape
        merged[k] = factor.shape[0] * t
        return reshaped(split).modeProduct(factor, mode: k).reshaped(merged)
    }
}

private func stpGCD(_ a: Int, _ b: Int) -> Int { b == 0 ? a : stpGCD(b, a % b) }
private func stpLCM(_ a: Int, _ b: Int) -> Int { a / stpGCD(a, b) * b }

/// Throws unless t ≥ 1 divides `size`, listing the valid choices.
private func stpCheckDivides(_ t: Int, _ size: Int, what: String, format: String) throws {
    guard t >= 1, size % t == 0 else {
        let divisors = (1...Swift.max(size, 1)).filter { size % $0 == 0 }
        throw DecompositionError.shapeMismatch(format: format, problem:
            "the STP factor t = \(t) must be ≥ 1 and divide \(what) = \(size); choose t among \(divisors)")
    }
}

/// Throws unless a requested rank is a multiple of t.
private func stpCheckMultiple(_ rank: Int, of t: Int, what: String, format: String) throws {
    guard rank % t == 0 else {
        let lower = rank / t * t
        let suggestion = lower >= t ? "\(lower) or \(lower + t)" : "\(t)"
        throw DecompositionError.invalidRanks(format: format, problem:
            "\(what) = \(rank) must be a multiple of the STP factor t = \(t); use \(suggestion)")
    }
}

/// Smallest R ≥ 1 whose discarded tail Σ_{i>R} σ_i² is at most `budget`.
private func stpTailRank<Scalar: TensorScalar>(_ s: [Scalar], budget: Scalar) -> Int {
    var tail: Scalar = 0
    var r = s.count
    while r > 1 && tail + s[r - 1] * s[r - 1] <= budget {
        tail += s[r - 1] * s[r - 1]
        r -= 1
    }
    return Swift.max(r, 1)
}

// MARK: - STTu

/// Semi-tensor Tucker (STTu) [37], formulation of METHODS §1.9:
///
///     𝒳 ≈ 𝒢 ⋉_1 U_1 ⋯ ⋉_d U_d = 𝒢 ×_1 (U_1 ⊗ I_{t_1}) ⋯ ×_d (U_d ⊗ I_{t_d}),
///
/// with core 𝒢 ∈ ℝ^{R_1×⋯×R_d} and small factors U_k ∈ ℝ^{(J_k/t_k)×(R_k/t_k)}: an ordinary Tucker
/// decomposition whose factors are the structured J_k×R_k matrices U_k ⊗ I_{t_k} (`effectiveFactors`).
/// `ranks` are the R_k (Tucker-comparable). Storage ∏_k R_k + Σ_k J_kR_k/t_k², against ∏R_k + ΣJ_kR_k for Tucker.
public struct SemiTensorTucker<Scalar: TensorScalar>: TensorDecomposition {
    /// "sttu".
    public static var formatName: String { "sttu" }
    /// Shape of the full tensor.
    public let shape: [Int]
    /// The core 𝒢 ∈ ℝ^{R_1×⋯×R_d}.
    public private(set) var core: Tensor<Scalar>
    /// The small factors U_k ∈ ℝ^{(J_k/t_k)×(R_k/t_k)}.
    public private(set) var factors: [Tensor<Scalar>]
    /// The STP factors t_k.
    public let stpFactors: [Int]

    /// Wraps given factors (preconditions: `factors[k]` is (J_k/t_k)×(R_k/t_k) for the core's R_k).
    public init(shape: [Int], core: Tensor<Scalar>, factors: [Tensor<Scalar>], stpFactors: [Int]) {
        precondition(core.rank == shape.count && factors.count == shape.count && stpFactors.count == shape.count,
                     "SemiTensorTucker: core \(core.shape), \(factors.count) factors and t \(stpFactors) do not fit shape \(shape)")
        for k in shape.indices {
            let t = stpFactors[k]
            precondition(t >= 1 && shape[k] % t == 0 && core.shape[k] % t == 0 && factors[k].shape == [shape[k] / t, core.shape[k] / t],
                         "SemiTensorTucker: factor \(k) has shape \(factors[k].shape); with t = \(t), J = \(shape[k]), R = \(core.shape[k]) it must be \([shape[k] / Swift.max(t, 1), core.shape[k] / Swift.max(t, 1)])")
        }
        self.shape = shape
        self.core = core
        self.factors = factors
        self.stpFactors = stpFactors
    }

    /// The R_k.
    public var ranks: [Int] { core.shape }
    /// ∏R_k + Σ_k (J_k/t_k)(R_k/t_k).
    public var parameterCount: Int { core.scalarCount + factors.reduce(0) { $0 + $1.scalarCount } }
    /// The ordinary Tucker factors U_k ⊗ I_{t_k} ∈ ℝ^{J_k×R_k}.
    public var effectiveFactors: [Tensor<Scalar>] {
        zip(factors, stpFactors).map { Tensor.kronecker($0, .identity($1)) }
    }

    /// 𝒢 ⋉_1 U_1 ⋯ ⋉_d U_d.
    public func reconstruct() -> Tensor<Scalar> {
        var result = core
        for (k, u) in factors.enumerated() { result = result.semiTensorModeProduct(u, mode: k) }
        return result
    }

    /// STTu by a truncated partial HOSVD (derived). Splitting every mode as J_k = (J_k/t_k)·t_k turns STTu into a
    /// Tucker decomposition of the order-2d tensor 𝒴 that leaves the t_k sub-modes alone, so U_k = the leading
    /// R_k/t_k left singular vectors of the unfolding of 𝒴 on sub-mode (J_k/t_k) and
    /// 𝒢 = 𝒴 ×_k U_kᵀ (all k), regrouped to R_1×⋯×R_d. Exact for a tensor of STTu ranks R_k; in general
    /// ‖𝒳 − 𝒳̂‖_F ≤ (Σ_k tail_k²)^{1/2} ≤ √d·best (as HOSVD [31, 42]).
    ///
    /// Targets: `.ranks` (1 or d values R_k, each a multiple of t_k, clamped to J_k and to the size of the
    /// complementary unfolding); `.relativeError(ε)` truncates each mode at δ = ε‖𝒳‖_F/√d, guaranteeing
    /// ‖𝒳 − 𝒳̂‖_F ≤ ε‖𝒳‖_F; `.compressionRatio(c)` the largest uniform R (a multiple of lcm(t_k)) with storage
    /// ≤ (∏J_k)/c (the smallest such R when none fits).
    /// - Parameter stpFactors: t (1 value for every mode, or d values); each t_k must divide J_k.
    /// - Throws: `DecompositionError` for NaN/∞, an empty tensor, a t that does not divide (the message lists
    ///   divisors), ranks that are not multiples of t or < 1, an invalid target; `TensorError` if an SVD fails.
    public static func decompose(_ tensor: Tensor<Scalar>, stpFactors: [Int],
                                 target: RankTarget<Scalar>) throws -> SemiTensorTucker<Scalar> {
        let format = formatName
        try validate(tensor, target: target, format: format)
        let d = tensor.rank, shape = tensor.shape
        guard d >= 1, shape.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.shapeMismatch(format: format, problem: "STTu needs a non-empty tensor of order ≥ 1, got shape \(shape)")
        }
        let t = try expandRanks(stpFactors, count: d, format: format, what: "STP factors t")
        for k in 0..<d { try stpCheckDivides(t[k], shape[k], what: "J_\(k)", format: format) }
        let reduced = (0..<d).map { shape[$0] / t[$0] }
        let total = tensor.scalarCount
        // ρ_k = R_k/t_k ≤ min(J_k/t_k, size of the rest of 𝒴).
        let bound = (0..<d).map { Swift.min(reduced[$0], total / reduced[$0]) }

        var fixed: [Int]? = nil  // reduced ranks ρ_k
        var budget: Scalar = 0
        switch target {
        case let .ranks(requested):
            let r = try expandRanks(requested, count: d, format: format, what: "ranks")
            for k in 0..<d { try stpCheckMultiple(r[k], of: t[k], what: "rank R_\(k)", format: format) }
            fixed = (0..<d).map { Swift.min(r[$0] / t[$0], bound[$0]) }
        case let .relativeError(eps):
            budget = eps * eps * tensor.squaredNorm() / Scalar(d)
        case let .compressionRatio(ratio):
            let step = t.reduce(1, stpLCM)
            let rho = { (m: Int) in (0..<d).map { Swift.min(m * step / t[$0], bound[$0]) } }
            let cost = { (m: Int) -> Int in
                let p = rho(m)
                return (0..<d).reduce(1) { $0 * p[$1] * t[$1] } + (0..<d).reduce(0) { $0 + reduced[$1] * p[$1] }
            }
            let upper = Swift.max(1, shape.max()! / step)
            fixed = rho(largestRank(upTo: upper, within: Double(total) / ratio, cost: cost))
        }

        let split = tensor.reshaped((0..<d).flatMap { [reduced[$0], t[$0]] })
        var factors: [Tensor<Scalar>] = []
        for k in 0..<d {
            let f = try split.unfolded(mode: 2 * k).svd()
            let rho = fixed.map { Swift.min($0[k], f.rank) } ?? stpTailRank(f.s.scalars, budget: budget)
            factors.append(f.u.slice(axis: 1, start: 0, count: rho))
        }
        let core = split.multiModeProduct(factors.enumerated().map { (mode: 2 * $0.offset, matrix: $0.element) }, transposed: true)
        return SemiTensorTucker(shape: shape, core: core.reshaped((0..<d).map { factors[$0].shape[1] * t[$0] }),
                                factors: factors, stpFactors: t)
    }
}

// MARK: - STT and STR

/// The ordinary core equivalent to an STP-linked core (METHODS §1.9):
/// 𝒢^eff[(α,j),(m,j'),r] = δ_{jj'}·𝒢[α,m,r], of shape (A·t)×(M·t)×R for 𝒢 ∈ ℝ^{A×M×R}.
private func stpEffectiveCore<Scalar>(_ core: Tensor<Scalar>, t: Int) -> Tensor<Scalar> {
    if t == 1 { return core }
    let (a, m, r) = (core.shape[0], core.shape[1], core.shape[2])
    // outer(𝒢, I_t)[α,m,r,j,j'] → [α, j, m, j', r]
    return Tensor.outer(core, .identity(t)).permuted([0, 3, 1, 4, 2]).reshaped([a * t, m * t, r])
}

/// Contracts ordinary ring cores 𝒞_k ∈ ℝ^{R_k×J_k×R_{k+1}} (R_d = R_0; R_0 = 1 is a train) into the full tensor:
/// 𝒳[j_1..j_d] = Tr(𝒞_1[:,j_1,:] ⋯ 𝒞_d[:,j_d,:]).
private func stpContractRing<Scalar>(_ cores: [Tensor<Scalar>]) -> Tensor<Scalar> {
    let r0 = cores[0].shape[0]
    var acc = cores[0].reshaped([r0 * cores[0].shape[1], cores[0].shape[2]])  // (R_0·P) × R_k
    for core in cores.dropFirst() {
        acc = Tensor.matmul(acc, core.reshaped([core.shape[0], core.shape[1] * core.shape[2]]))
            .reshaped([acc.shape[0] * core.shape[1], core.shape[2]])
    }
    let shape = cores.map { $0.shape[1] }
    if r0 == 1 { return acc.reshaped(shape) }
    let p = acc.shape[0] / r0
    // Tr over the closing bond: X[p] = Σ_a acc[(a, p), a].
    return Tensor(shape: shape) { out in
        acc.withUnsafeBufferPointer { src in
            for i in 0..<p {
                var s: Scalar = 0
                for a in 0..<r0 { s += src[(a * p + i) * r0 + a] }
                out[i] = s
            }
        }
    }
}

/// STP-linked ring cores: core k is (R_k/t_k)×(J_k/t_k)×R_{k+1}. Shared by STT (t_0 = 1, R_0 = 1) and STR.
private struct STPRing<Scalar: TensorScalar> {
    var cores: [Tensor<Scalar>]
    var t: [Int]

    var effectiveCores: [Tensor<Scalar>] { zip(cores, t).map { stpEffectiveCore($0, t: $1) } }
    func reconstruct() -> Tensor<Scalar> { stpContractRing(effectiveCores) }

    /// ALS on the small cores (derived). With the other cores fixed, let 𝒵 ∈ ℝ^{R_{k+1}×P×R_k} be the product
    /// of the effective cores k+1, …, k−1 (P = the other modes in cyclic order). Since the effective core is
    /// linear in the small one, X[(m,j'), p] = Σ_{α,r} 𝒢_k[α,m,r]·𝒵[r, p, (α,j')], i.e. the reshaped
    /// X_k ∈ ℝ^{(J_k/t)×(t·P)} equals G_k·W with W[(α,r),(j',p)] = 𝒵[r,p,(α,j')]: one linear least-squares problem
    /// (minimum norm, so never NaN). After each update the core is scaled to unit norm and the scale moved to
    /// the next core, which leaves the model unchanged.
    static func als(_ tensor: Tensor<Scalar>, ranks: [Int], t: [Int], seed: UInt64, maxIterations: Int,
                    tolerance: Double) throws -> (STPRing, ConvergenceReport) {
        let d = tensor.rank, shape = tensor.shape
        let right = (0..<d).map { ranks[($0 + 1) % d] }
        let normX = tensor.frobeniusNorm()
        if normX == 0 {
            let zero = STPRing(cores: (0..<d).map { .zeros([ranks[$0] / t[$0], shape[$0] / t[$0], right[$0]]) }, t: t)
            return (zero, ConvergenceReport(iterations: 0, converged: true, fitHistory: [1]))
        }
        var generator = SeededGenerator(seed: seed)
        var ring = STPRing(cores: (0..<d).map { k in
            Tensor<Scalar>.randomNormal([ranks[k] / t[k], shape[k] / t[k], right[k]], generator: &generator)
        }, t: t)
        // X with mode k first, then k+1, …, d−1, 0, …, k−1, as a (J_k/t_k) × (t_k·P) matrix.
        let unfoldings = (0..<d).map { k in
            tensor.permuted((0..<d).map { (k + $0) % d }).reshaped([shape[k] / t[k], -1])
        }
        var history: [Double] = []
        var warnings: [String] = []
        var best = (fit: -Double.infinity, ring: ring)
        var converged = false
        var iterations = 0
        for _ in 0..<maxIterations {
            iterations += 1
            for k in 0..<d {
                var eff = ring.effectiveCores
                let others = (1..<d).map { (k + $0) % d }
                var z = eff[others[0]].reshaped([eff[others[0]].shape[0] * eff[others[0]].shape[1], eff[others[0]].shape[2]])
                for j in others.dropFirst() {
                    z = Tensor.matmul(z, eff[j].reshaped([eff[j].shape[0], eff[j].shape[1] * eff[j].shape[2]]))
                        .reshaped([z.shape[0] * eff[j].shape[1], eff[j].shape[2]])
                }
                eff.removeAll()
                let (rk, rn, tk) = (ranks[k], right[k], t[k])
                let p = z.scalarCount / (rn * rk)
                // W[(α, r), (j', p)] = 𝒵[r, p, (α, j')]
                let w = z.reshaped([rn, p, rk / tk, tk]).permuted([2, 0, 3, 1]).reshaped([(rk / tk) * rn, tk * p])
                let gt = try Tensor.leastSquares(w.transposed, unfoldings[k].transposed)  // (α, r) × m
                var core = gt.reshaped([rk / tk, rn, shape[k] / tk]).permuted([0, 2, 1])
                let norm = core.frobeniusNorm()
                if norm > 0 {
                    core = core / norm
                    ring.cores[(k + 1) % d] = ring.cores[(k + 1) % d] * norm
                }
                ring.cores[k] = core
            }
            let fit = 1 - Double((ring.reconstruct() - tensor).frobeniusNorm() / normX)
            guard fit.isFinite else {
                warnings.append("the fit became non-finite at sweep \(iterations); returning the best iterate")
                break
            }
            let previous = history.last
            history.append(fit)
            if fit > best.fit { best = (fit, ring) }
            if let previous, Swift.abs(fit - previous) < tolerance {
                converged = true
                break
            }
        }
        if !converged && warnings.isEmpty {
            warnings.append("reached \(maxIterations) sweeps before the fit settled; raise maxIterations or try another seed")
        }
        return (best.ring.balanced(), ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history,
                                                         warnings: warnings))
    }

    /// The same ring with every core scaled to the geometric mean of the cores' Frobenius norms (the product, so
    /// the tensor, is unchanged): the sweeps leave the whole scale on one core, which makes gradient steps on the
    /// others far too large when the cores are trained further (a factorized layer being fine-tuned).
    func balanced() -> STPRing {
        let norms = cores.map { Double($0.frobeniusNorm()) }
        guard norms.allSatisfy({ $0 > 0 && $0.isFinite }) else { return self }
        let mean = exp(norms.map(log).reduce(0, +) / Double(norms.count))
        return STPRing(cores: zip(cores, norms).map { $0 * Scalar(mean / $1) }, t: t)
    }
}

/// Validates an STT/STR request and returns the ring ranks R_0..R_{d−1} (R_0 = 1 for a train) and the per-core t.
/// `ringLinks` (STR only) says which links use the STP (nil: all).
private func stpRingSetup<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>, t: Int, target: RankTarget<Scalar>, ring: Bool,
                                                ringLinks: [Bool]? = nil, format: String) throws -> (ranks: [Int], t: [Int]) {
    try validate(tensor, target: target, format: format)
    let d = tensor.rank, shape = tensor.shape
    guard d >= 2, shape.allSatisfy({ $0 >= 1 }) else {
        throw DecompositionError.shapeMismatch(format: format, problem: "\(format.uppercased()) needs a non-empty tensor of order ≥ 2, got shape \(shape)")
    }
    if let ringLinks, ringLinks.count != d {
        throw DecompositionError.shapeMismatch(format: format, problem:
            "\(ringLinks.count) link flags for an order-\(d) tensor; pass one per core (link k enters core k)")
    }
    // Cores whose left link uses the STP.
    let linked = ring ? (0..<d).filter { ringLinks?[$0] ?? true } : Array(1..<d)
    for k in linked { try stpCheckDivides(t, shape[k], what: "J_\(k)", format: format) }
    var tk = [Int](repeating: 1, count: d)
    for k in linked { tk[k] = t }
    let total = tensor.scalarCount
    // Clamping bound per bond: train — min(∏_{i<k} J_i, ∏_{i≥k} J_i); ring — ∏J (no smaller bound per bond).
    let bound = (0..<d).map { k -> Int in
        if ring { return total }
        let before = shape[..<k].reduce(1, *)
        return Swift.min(before, total / before)
    }
    let clamp = { (r: Int, k: Int) -> Int in
        if !ring && k == 0 { return 1 }
        return Swift.max(tk[k], Swift.min(r, bound[k]) / tk[k] * tk[k])
    }
    let storage = { (r: [Int]) -> Int in
        (0..<d).reduce(0) { $0 + r[$1] * shape[$1] * r[($1 + 1) % d] / (tk[$1] * tk[$1]) }
    }
    switch target {
    case let .ranks(requested):
        var r: [Int]
        if ring {
            r = try expandRanks(requested, count: d, format: format, what: "ring ranks R_0..R_{d−1}")
        } else if requested.count == d + 1 && requested.first == 1 && requested.last == 1 {
            r = Array(requested.dropLast())
        } else {
            r = [1] + (try expandRanks(requested, count: d - 1, format: format, what: "interior ranks R_1..R_{d−1} (or d+1 with boundary ones)"))
        }
        for k in linked { try stpCheckMultiple(r[k], of: t, what: "rank R_\(k)", format: format) }
        return ((0..<d).map { clamp(r[$0], $0) }, tk)
    case .relativeError:
        throw DecompositionError.unsupportedTarget(format: format, problem:
            "the \(format.uppercased()) ALS cannot guarantee a relative error; pass .ranks or .compressionRatio, "
            + "or use SemiTensorTucker (STTu) or a tensor train with .relativeError")
    case let .compressionRatio(ratio):
        let uniform = { (m: Int) in (0..<d).map { clamp(m * t, $0) } }
        let m = largestRank(upTo: Swift.max(1, (ring ? shape.max()! * shape.max()! : bound.max()!) / t),
                            within: Double(total) / ratio) { storage(uniform($0)) }
        return (uniform(m), tk)
    }
}

/// Semi-tensor train (STT) [37], formulation of METHODS §1.9: a tensor train whose links k ≥ 1 use the
/// semi-tensor product. Core 0 is ordinary, 𝒢_0 ∈ ℝ^{1×J_0×R_1}; core k ≥ 1 stores 𝒢_k ∈ ℝ^{(R_k/t)×(J_k/t)×R_{k+1}}
/// (0-based, R_d = 1) and acts as the ordinary TT core 𝒢_k^eff[(α,j),(m,j'),r] = δ_{jj'}·𝒢_k[α,m,r] of shape
/// R_k×J_k×R_{k+1} (`effectiveCores`). `ranks` is [1, R_1, …, R_{d−1}, 1] (TensorLy's TT convention).
/// Storage J_0R_1 + Σ_{k≥1} R_kJ_kR_{k+1}/t²: the TT storage with every linked core divided by t².
public struct SemiTensorTrain<Scalar: TensorScalar>: TensorDecomposition {
    /// "stt".
    public static var formatName: String { "stt" }
    /// Shape of the full tensor.
    public let shape: [Int]
    /// The stored cores: 1×J_0×R_1, then (R_k/t)×(J_k/t)×R_{k+1}.
    public private(set) var cores: [Tensor<Scalar>]
    /// The STP factor t.
    public let stpFactor: Int

    /// Wraps given cores (preconditions: shapes as documented, consecutive ranks matching).
    public init(cores: [Tensor<Scalar>], stpFactor t: Int) {
        precondition(cores.count >= 2 && t >= 1, "SemiTensorTrain: need at least 2 cores and t ≥ 1, got \(cores.count) cores, t = \(t)")
        precondition(cores[0].rank == 3 && cores[0].shape[0] == 1, "SemiTensorTrain: core 0 must be 1×J×R, got \(cores[0].shape)")
        for k in 1..<cores.count {
            precondition(cores[k].rank == 3 && cores[k].shape[0] * t == cores[k - 1].shape[2],
                         "SemiTensorTrain: core \(k) has shape \(cores[k].shape); its first size times t = \(t) must equal the last size \(cores[k - 1].shape[2]) of core \(k - 1)")
        }
        precondition(cores[cores.count - 1].shape[2] == 1, "SemiTensorTrain: the last core must end in rank 1, got \(cores[cores.count - 1].shape)")
        self.cores = cores
        self.stpFactor = t
        self.shape = cores.enumerated().map { $0.offset == 0 ? $0.element.shape[1] : $0.element.shape[1] * t }
    }

    private var ring: STPRing<Scalar> { STPRing(cores: cores, t: [1] + [Int](repeating: stpFactor, count: cores.count - 1)) }
    /// [1, R_1, …, R_{d−1}, 1].
    public var ranks: [Int] { [1] + cores.map { $0.shape[2] } }
    /// Σ_k stored core sizes.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }
    /// The ordinary TT cores R_k×J_k×R_{k+1}.
    public var effectiveCores: [Tensor<Scalar>] { ring.effectiveCores }
    /// The TT contraction of the effective cores.
    public func reconstruct() -> Tensor<Scalar> { ring.reconstruct() }

    /// STT by ALS on the small cores (derived; see METHODS §1.9): random seeded start, then sweeps that solve
    /// each core exactly by linear least squares (the effective core is linear in the stored one), stopping when
    /// the fit 1 − ‖𝒳 − 𝒳̂‖_F/‖𝒳‖_F changes by less than `tolerance`. Returns the best iterate and a report
    /// (not converged, with the fit history, when the cap is hit).
    ///
    /// Targets: `.ranks` (1 or d−1 interior ranks, or d+1 with boundary ones; each a multiple of t, clamped to the
    /// largest multiple of t not above min(∏_{i<k}J_i, ∏_{i≥k}J_i), at least t); `.compressionRatio(c)` the
    /// largest uniform rank (multiple of t) with storage ≤ (∏J)/c (t when none fits). `.relativeError` is not
    /// supported (ALS has no guarantee).
    /// - Throws: `DecompositionError` for NaN/∞, order < 2, a t that does not divide J_1…J_{d−1} (lists divisors),
    ///   ranks not multiples of t, an ε target; `TensorError` if a least-squares solve fails.
    public static func decompose(_ tensor: Tensor<Scalar>, stpFactor t: Int, target: RankTarget<Scalar>, seed: UInt64 = 0,
                                 maxIterations: Int = 200,
                                 tolerance: Double = 1e-12) throws -> (decomposition: SemiTensorTrain<Scalar>, report: ConvergenceReport) {
        let (ranks, tk) = try stpRingSetup(tensor, t: t, target: target, ring: false, format: formatName)
        guard maxIterations >= 1 else {
            throw DecompositionError.invalidTarget(format: formatName, problem: "maxIterations must be at least 1, got \(maxIterations)")
        }
        let (ring, report) = try STPRing.als(tensor, ranks: ranks, t: tk, seed: seed, maxIterations: maxIterations,
                                             tolerance: tolerance)
        return (SemiTensorTrain(cores: ring.cores, stpFactor: t), report)
    }
}

/// Semi-tensor ring (STR) [37], formulation of METHODS §1.9: a tensor ring whose links use the semi-tensor
/// product. A linked core k stores 𝒢_k ∈ ℝ^{(R_k/t)×(J_k/t)×R_{k+1}} (0-based, R_d = R_0) and acts as the
/// ordinary TR core 𝒢_k^eff[(α,j),(m,j'),r] = δ_{jj'}·𝒢_k[α,m,r] of shape R_k×J_k×R_{k+1} (`effectiveCores`);
/// 𝒳[j_0..j_{d−1}] = Tr(∏_k 𝒢_k^eff[:, j_k, :]). `ranks` is [R_0, …, R_{d−1}] (TensorLy's TR convention
/// without the repeated R_0). Every link is linked by default (storage Σ_k R_kJ_kR_{k+1}/t²: the TR storage
/// divided by t²); `linked` may leave some ordinary (core k then stores R_k×J_k×R_{k+1}), as STR-conv does for the
/// kernel core, whose mode K_hK_w is not a multiple of t in general.
public struct SemiTensorRing<Scalar: TensorScalar>: TensorDecomposition {
    /// "str".
    public static var formatName: String { "str" }
    /// Shape of the full tensor.
    public let shape: [Int]
    /// The stored cores (R_k/t)×(J_k/t)×R_{k+1} (R_k×J_k×R_{k+1} where link k is not linked).
    public private(set) var cores: [Tensor<Scalar>]
    /// The STP factor t.
    public let stpFactor: Int
    /// Whether link k (entering core k) uses the STP.
    public let linked: [Bool]

    /// Wraps given cores (preconditions: shapes as documented, ranks matching around the ring); `linked` nil links
    /// every core.
    public init(cores: [Tensor<Scalar>], stpFactor t: Int, linked: [Bool]? = nil) {
        let linked = linked ?? [Bool](repeating: true, count: cores.count)
        precondition(cores.count >= 2 && t >= 1 && linked.count == cores.count,
                     "SemiTensorRing: need at least 2 cores, t ≥ 1 and one link flag per core, got \(cores.count) cores, t = \(t), \(linked.count) flags")
        for k in 0..<cores.count {
            let previous = cores[(k + cores.count - 1) % cores.count]
            let tk = linked[k] ? t : 1
            precondition(cores[k].rank == 3 && previous.rank == 3 && cores[k].shape[0] * tk == previous.shape[2],
                         "SemiTensorRing: core \(k) has shape \(cores[k].shape); its first size times \(tk) must equal the last size of the previous core \(previous.shape)")
        }
        self.cores = cores
        self.stpFactor = t
        self.linked = linked
        self.shape = zip(cores, linked).map { $0.shape[1] * ($1 ? t : 1) }
    }

    /// The per-core factors t_k (t where linked, else 1).
    private var factors: [Int] { linked.map { $0 ? stpFactor : 1 } }
    private var ring: STPRing<Scalar> { STPRing(cores: cores, t: factors) }
    /// [R_0, …, R_{d−1}].
    public var ranks: [Int] { zip(cores, factors).map { $0.shape[0] * $1 } }
    /// Σ_k stored core sizes.
    public var parameterCount: Int { cores.reduce(0) { $0 + $1.scalarCount } }
    /// The ordinary TR cores R_k×J_k×R_{k+1}.
    public var effectiveCores: [Tensor<Scalar>] { ring.effectiveCores }
    /// The TR contraction (trace) of the effective cores.
    public func reconstruct() -> Tensor<Scalar> { ring.reconstruct() }

    /// STR by ALS on the small cores (derived; as `SemiTensorTrain.decompose`, around the ring).
    ///
    /// Targets: `.ranks` (1 or d ring ranks, each linked one a multiple of t; a ring bond has no per-bond bound
    /// smaller than ∏J, so ranks are only clamped to the largest multiple of t not above ∏J); `.compressionRatio(c)`
    /// the largest uniform rank (multiple of t) with storage ≤ (∏J)/c (t when none fits). `.relativeError` is not
    /// supported.
    /// - Parameter linked: which links use the STP (link k enters core k; nil: all).
    /// - Throws: `DecompositionError` for NaN/∞, order < 2, a t that does not divide the J_k of every linked core
    ///   (lists divisors), linked ranks not multiples of t, an ε target; `TensorError` if a least-squares solve fails.
    public static func decompose(_ tensor: Tensor<Scalar>, stpFactor t: Int, linked: [Bool]? = nil, target: RankTarget<Scalar>,
                                 seed: UInt64 = 0, maxIterations: Int = 200,
                                 tolerance: Double = 1e-12) throws -> (decomposition: SemiTensorRing<Scalar>, report: ConvergenceReport) {
        let (ranks, tk) = try stpRingSetup(tensor, t: t, target: target, ring: true, ringLinks: linked, format: formatName)
        guard maxIterations >= 1 else {
            throw DecompositionError.invalidTarget(format: formatName, problem: "maxIterations must be at least 1, got \(maxIterations)")
        }
        let (ring, report) = try STPRing.als(tensor, ranks: ranks, t: tk, seed: seed, maxIterations: maxIterations,
                                             tolerance: tolerance)
        return (SemiTensorRing(cores: ring.cores, stpFactor: t, linked: linked), report)
    }
}
