import TensorCore

// Block term decomposition (BTD) in rank-(R_1, …, R_d) terms [35] and its ALS (METHODS §1.4).

/// How BTD-ALS starts.
public enum BlockTermInitialization: Sendable, Equatable {
    /// Independent standard normal factor entries from a `SeededGenerator` with this seed, orthonormalized per
    /// block; the cores then follow by least squares.
    case random(seed: UInt64)
    /// Algebraic start by simultaneous block diagonalization (derived), exact for a BTD tensor in generic
    /// position. Needs order ≥ 3 and N_bR_k ≤ min(J_k, ∏_{j≠k} J_j) in at least two modes (the compressible
    /// modes). After compressing those modes to their leading N_bR_k singular vectors, every slice of a mode
    /// pair (p, q) is T_z = A_p·D_z·A_qᵀ with A_p, A_q square and D_z block diagonal, so the pairs (X, Y_q) with
    /// X·T_z = T_z·Y_q for all random slices z and all partner modes q (a null space) are
    /// X = A_p·diag(X_b)·A_p⁻¹, Y_qᵀ = A_q·diag(X_b′)·A_q⁻¹ with X_b′ similar to X_b. For a random element,
    /// the eigenvalues of X are split by their real parts with the matrix sign function
    /// (P = (sign(X − σ₁I) − sign(X − σ₂I))/2 projects onto the eigenvalues with σ₁ < Re λ ≤ σ₂, complex pairs
    /// staying together), the same cuts split every Y_qᵀ, and the pieces are grouped in order into blocks of
    /// R_p (and R_q) dimensions. Pieces smaller than a block occur only when a block has more symmetry than
    /// generic (e.g. a 2×2×2 core, which is then a sum of rank-1 terms, so any grouping is exact). Other modes
    /// come from the SVD of each block's sub-tensor. When a condition fails (or the null space shows no clear
    /// gap) it falls back to `.random(seed:)` and says so in the report's warnings.
    case algebraic(seed: UInt64)
}

/// A tensor as a sum of N_b Tucker blocks, the block term decomposition of De Lathauwer [35]:
///
///     𝒳 ≈ Σ_{b=1}^{N_b} 𝒢_b ×_1 A_b^{(1)} ×_2 ⋯ ×_d A_b^{(d)},
///
/// with cores 𝒢_b ∈ ℝ^{R_1×⋯×R_d} and factors A_b^{(k)} ∈ ℝ^{J_k×R_k} (for d = 3 the blocks have multilinear
/// rank (L, M, N) = (R_1, R_2, R_3)). CP of rank R is the case R_k = 1 with N_b = R; Tucker is N_b = 1.
///
/// Layout: `cores[b]` is 𝒢_b, `factors[b][k]` is A_b^{(k)}; the factors returned by `decompose` have
/// orthonormal columns (the scale lives in the cores). `ranks` is [N_b, R_1, …, R_d].
/// Storage N_b(∏_k R_k + Σ_k J_kR_k).
public struct BlockTerm<Scalar: TensorScalar>: TensorDecomposition {
    /// "btd".
    public static var formatName: String { "btd" }
    /// Shape of the full tensor.
    public let shape: [Int]
    /// The block cores 𝒢_b ∈ ℝ^{R_1×⋯×R_d}.
    public private(set) var cores: [Tensor<Scalar>]
    /// `factors[b][k]` = A_b^{(k)} ∈ ℝ^{J_k×R_k}.
    public private(set) var factors: [[Tensor<Scalar>]]

    /// Wraps given blocks.
    ///
    /// Preconditions: at least one block, every core has the same shape R_1×⋯×R_d and `factors[b][k]` is J_k×R_k.
    public init(shape: [Int], cores: [Tensor<Scalar>], factors: [[Tensor<Scalar>]]) {
        precondition(!cores.isEmpty && cores.count == factors.count,
                     "BlockTerm: \(cores.count) cores and \(factors.count) factor lists; need the same number ≥ 1")
        let blockRanks = cores[0].shape
        precondition(blockRanks.count == shape.count, "BlockTerm: core shape \(blockRanks) does not have the order of \(shape)")
        for (b, core) in cores.enumerated() {
            precondition(core.shape == blockRanks, "BlockTerm: core \(b) has shape \(core.shape), core 0 has \(blockRanks)")
            precondition(factors[b].count == shape.count, "BlockTerm: block \(b) has \(factors[b].count) factors for shape \(shape)")
            for (k, a) in factors[b].enumerated() {
                precondition(a.shape == [shape[k], blockRanks[k]],
                             "BlockTerm: factor (\(b), \(k)) has shape \(a.shape), expected \([shape[k], blockRanks[k]])")
            }
        }
        self.shape = shape
        self.cores = cores
        self.factors = factors
    }

    /// Number of blocks N_b.
    public var blockCount: Int { cores.count }
    /// Multilinear rank (R_1, …, R_d) of every block.
    public var blockRanks: [Int] { cores[0].shape }
    /// [N_b, R_1, …, R_d].
    public var ranks: [Int] { [blockCount] + blockRanks }
    /// N_b(∏_k R_k + Σ_k J_kR_k).
    public var parameterCount: Int {
        blockCount * (blockRanks.reduce(1, *) + zip(shape, blockRanks).reduce(0) { $0 + $1.0 * $1.1 })
    }

    /// Block b alone, 𝒢_b ×_1 A_b^{(1)} ⋯ ×_d A_b^{(d)}.
    public func block(_ b: Int) -> Tensor<Scalar> {
        cores[b].multiModeProduct(factors[b].enumerated().map { (mode: $0.offset, matrix: $0.element) })
    }

    /// Σ_b 𝒢_b ×_1 A_b^{(1)} ⋯ ×_d A_b^{(d)}.
    public func reconstruct() -> Tensor<Scalar> {
        var result = block(0)
        for b in 1..<blockCount { result += block(b) }
        return result
    }

    /// BTD-ALS ([35]; update formulas of METHODS §1.4).
    ///
    /// Each sweep updates, for every mode k, the concatenated factor F_k = [A_1^{(k)} ⋯ A_{N_b}^{(k)}] by least
    /// squares, F_k ← X_(k) M_k^† with M_k the blocks (𝒢_b ×_{j≠k} A_b^{(j)})_(k) stacked over b, then
    /// re-orthonormalizes each A_b^{(k)} = QS (A ← Q, 𝒢_b ← 𝒢_b ×_k S, the model unchanged); after the modes, all
    /// cores are solved jointly by least squares with design [⊗_k A_b^{(k)}]_b through its normal equations
    /// (the Gram blocks are ⊗_k A_b^{(k)ᵀ}A_{b'}^{(k)}, so the design matrix is never formed; minimum-norm
    /// solve, so a singular system never yields NaN). With `lineSearch`, every sweep after the first is followed
    /// by an exact line search along the step just taken (ELS; the squared error is a polynomial of degree
    /// 2(d+1) in the step), accepted only when it lowers the error: it shortens the swamps of plain ALS. The fit
    /// 1 − ‖𝒳 − 𝒳̂‖_F/‖𝒳‖_F is recorded after every sweep; the loop stops when it changes by less than
    /// `tolerance`. The best iterate seen is returned; if the cap is reached first it comes back with
    /// `converged == false`, the fit history and a warning. A zero tensor returns zero cores at once.
    ///
    /// Start: `.algebraic` (default) recovers a BTD tensor in generic position exactly before the first sweep
    /// when N_bR_k ≤ J_k in at least two modes and d ≥ 3 (see `BlockTermInitialization`); otherwise, and with
    /// `.random`, ALS starts from random factors and may end in a degenerate swamp (diverging, cancelling
    /// blocks), which the fit history shows.
    ///
    /// Targets: `.ranks` gives the block multilinear rank (1 or d values); `.compressionRatio(c)` picks the
    /// largest uniform block rank with N_b(∏R_k + ΣJ_kR_k) ≤ (∏J_k)/c (rank 1 when none fits). Clamping rule:
    /// R_k ≤ J_k. `.relativeError` is not supported (ALS has no error guarantee).
    /// - Parameters:
    ///   - blocks: the number of blocks N_b ≥ 1.
    ///   - maxIterations: the sweep cap.
    ///   - initialization: how to start (default `.algebraic(seed: 0)`).
    ///   - tolerance: stop when the fit changes by less than this between sweeps.
    ///   - lineSearch: run the exact line search after each sweep.
    /// - Throws: `DecompositionError` for NaN/∞ input, an order-1 or empty tensor, blocks or ranks < 1, blocks
    ///   and ranks that store far more than the tensor (`oversizedFactorsProblem`), an ε target (`unsupportedTarget`);
    ///   `TensorError` if a LAPACK routine fails.
    public static func decompose(_ tensor: Tensor<Scalar>, blocks: Int, target: RankTarget<Scalar>,
                                 initialization: BlockTermInitialization = .algebraic(seed: 0), maxIterations: Int = 500,
                                 tolerance: Double = 1e-12,
                                 lineSearch: Bool = true) throws -> (decomposition: BlockTerm<Scalar>, report: ConvergenceReport) {
        let format = formatName
        try validate(tensor, target: target, format: format)
        let d = tensor.rank, shape = tensor.shape
        guard d >= 2, shape.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.shapeMismatch(format: format, problem:
                "block term decomposition needs a tensor of order ≥ 2 with non-empty modes, got shape \(shape)")
        }
        guard blocks >= 1 else {
            throw DecompositionError.invalidRanks(format: format, problem: "the number of blocks must be at least 1, got \(blocks)")
        }
        guard maxIterations >= 1 else {
            throw DecompositionError.invalidTarget(format: format, problem: "maxIterations must be at least 1, got \(maxIterations)")
        }
        let ranks: [Int]
        switch target {
        case let .ranks(requested):
            ranks = zip(try expandRanks(requested, count: d, format: format, what: "block ranks"), shape).map { Swift.min($0, $1) }
        case .relativeError:
            throw DecompositionError.unsupportedTarget(format: format, problem:
                "BTD-ALS cannot guarantee a relative error; pass .ranks (block multilinear rank) or .compressionRatio, "
                + "or use HierarchicalTucker or a tensor train with .relativeError")
        case let .compressionRatio(ratio):
            let clamp = { (r: Int) in shape.map { Swift.min(r, $0) } }
            let r = largestRank(upTo: shape.max()!, within: Double(tensor.scalarCount) / ratio) { r in
                let rk = clamp(r)
                return blocks * (rk.reduce(1, *) + zip(shape, rk).reduce(0) { $0 + $1.0 * $1.1 })
            }
            ranks = clamp(r)
        }
        if let problem = oversizedFactorsProblem(shapes: [[blocks] + ranks] + zip(shape, ranks).map { [blocks, $0, $1] },
                                                 entries: tensor.scalarCount) {
            throw DecompositionError.invalidRanks(format: format, problem: "\(blocks) blocks of ranks \(ranks): \(problem)")
        }

        let normX = tensor.frobeniusNorm()
        if normX == 0 {
            let factors = (0..<blocks).map { _ in (0..<d).map { Tensor<Scalar>.identity(shape[$0], columns: ranks[$0]) } }
            let zero = BlockTerm(shape: shape, cores: [Tensor](repeating: .zeros(ranks), count: blocks), factors: factors)
            return (zero, ConvergenceReport(iterations: 0, converged: true, fitHistory: [1]))
        }

        var factors: [[Tensor<Scalar>]]
        var warnings: [String] = []
        var generator: SeededGenerator
        var algebraic: [[Tensor<Scalar>]]? = nil
        switch initialization {
        case let .random(seed):
            generator = SeededGenerator(seed: seed)
        case let .algebraic(seed):
            generator = SeededGenerator(seed: seed)
            algebraic = try btdAlgebraicFactors(tensor, blocks: blocks, ranks: ranks, generator: &generator)
            if algebraic == nil {
                warnings.append("the algebraic initialization does not apply here (it needs order ≥ 3, N_b·R_k ≤ J_k in two modes and a clear null space); started from random factors")
            }
        }
        if let algebraic {
            factors = algebraic
        } else {
            factors = try (0..<blocks).map { _ in
                try (0..<d).map { k in try Tensor<Scalar>.randomNormal([shape[k], ranks[k]], generator: &generator).qr().q }
            }
        }
        var cores = try btdSolveCores(tensor, factors: factors, ranks: ranks)

        var history: [Double] = []
        var best = (fit: -Double.infinity, cores: cores, factors: factors)
        var converged = false
        var iterations = 0
        for _ in 0..<maxIterations {
            iterations += 1
            let start = (cores: cores, factors: factors)
            for k in 0..<d {
                // M_k: the blocks (𝒢_b ×_{j≠k} A_b^{(j)})_(k) stacked over b, N_bR_k × ∏_{j≠k} J_j.
                let m = Tensor.concatenate((0..<blocks).map { b in
                    cores[b].multiModeProduct((0..<d).filter { $0 != k }.map { (mode: $0, matrix: factors[b][$0]) })
                        .unfolded(mode: k)
                }, axis: 0)
                let fk = try Tensor.leastSquares(m.transposed, tensor.unfolded(mode: k).transposed)  // N_bR_k × J_k
                for b in 0..<blocks {
                    let ab = fk.slice(axis: 0, start: b * ranks[k], count: ranks[k]).transposed
                    let (q, s) = try btdOrthonormalize(ab)
                    factors[b][k] = q
                    cores[b] = cores[b].modeProduct(s, mode: k)
                }
            }
            cores = try btdSolveCores(tensor, factors: factors, ranks: ranks)
            var residual = BlockTerm(shape: shape, cores: cores, factors: factors).reconstruct() - tensor
            if lineSearch, iterations > 1,
               let step = btdLineSearch(tensor, from: start, to: (cores, factors), residual: residual) {
                // Accept the extrapolated point only if it really lowers the error; keep the QR gauge.
                var trialCores = step.cores, trialFactors = step.factors
                for b in 0..<blocks {
                    for k in 0..<d {
                        let (q, s) = try btdOrthonormalize(trialFactors[b][k])
                        trialFactors[b][k] = q
                        trialCores[b] = trialCores[b].modeProduct(s, mode: k)
                    }
                }
                let trialResidual = BlockTerm(shape: shape, cores: trialCores, factors: trialFactors).reconstruct() - tensor
                if trialResidual.isFinite && trialResidual.squaredNorm() < residual.squaredNorm() {
                    cores = trialCores
                    factors = trialFactors
                    residual = trialResidual
                }
            }
            let fit = 1 - Double(residual.frobeniusNorm() / normX)
            guard fit.isFinite else {
                warnings.append("the fit became non-finite at sweep \(iterations); returning the best iterate")
                break
            }
            let previous = history.last
            history.append(fit)
            if fit > best.fit { best = (fit, cores, factors) }
            if let previous, Swift.abs(fit - previous) < tolerance {
                converged = true
                break
            }
        }
        if !converged && warnings.isEmpty {
            warnings.append("reached \(maxIterations) sweeps before the fit settled (last change \(history.count > 1 ? Swift.abs(history[history.count - 1] - history[history.count - 2]) : .nan)); raise maxIterations or try another seed")
        }
        let result = BlockTerm(shape: shape, cores: best.cores, factors: best.factors)
        return (result, ConvergenceReport(iterations: iterations, converged: converged, fitHistory: history, warnings: warnings))
    }
}

/// Least-squares cores for fixed factors: normal equations H·g = h with H[b,b'] = ⊗_k A_b^{(k)ᵀ}A_{b'}^{(k)} and
/// h_b = vec(𝒳 ×_1 A_b^{(1)ᵀ} ⋯ ×_d A_b^{(d)ᵀ}) (row-major vec, so the Kronecker factors come in mode order).
private func btdSolveCores<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>, factors: [[Tensor<Scalar>]],
                                                 ranks: [Int]) throws -> [Tensor<Scalar>] {
    let blocks = factors.count, d = ranks.count, size = ranks.reduce(1, *)
    var rows: [Tensor<Scalar>] = []
    for b in 0..<blocks {
        rows.append(Tensor.concatenate((0..<blocks).map { c in
            var gram = Tensor.matmul(factors[b][0], factors[c][0], transposeA: true)
            for k in 1..<d { gram = Tensor.kronecker(gram, Tensor.matmul(factors[b][k], factors[c][k], transposeA: true)) }
            return gram
        }, axis: 1))
    }
    let h = Tensor.concatenate(rows, axis: 0)
    let rhs = Tensor.concatenate((0..<blocks).map { b in
        tensor.multiModeProduct(factors[b].enumerated().map { (mode: $0.offset, matrix: $0.element) }, transposed: true)
            .reshaped([size])
    }, axis: 0)
    // H is symmetric positive semidefinite: an LU solve with a ridge of 16·u·mean(diag H) is ~50× faster than the
    // SVD-based minimum-norm solve on systems of thousands of unknowns; a singular H still gets the latter.
    let n = h.shape[0]
    let ridge = Scalar(16) * Scalar.unitRoundoff * (0..<n).reduce(Scalar(0)) { $0 + h[$1, $1] } / Scalar(n)
    let g: Tensor<Scalar>
    do {
        g = try Tensor.solve(h + Tensor.identity(n) * ridge, rhs)
    } catch TensorError.singularMatrix {
        g = try Tensor.leastSquares(h, rhs)
    }
    return (0..<blocks).map { g.slice(axis: 0, start: $0 * size, count: size).reshaped(ranks) }
}

/// Thin QR A = QS with the diagonal of S made non-negative, so that Q is a continuous function of A (a fixed gauge
/// for the line search).
private func btdOrthonormalize<Scalar: TensorScalar>(_ a: Tensor<Scalar>) throws -> (q: Tensor<Scalar>, s: Tensor<Scalar>) {
    var (q, s) = try a.qr()
    let n = s.shape[0], cols = s.shape[1], rows = q.shape[0]
    let signs = (0..<n).map { s[$0, $0] < 0 ? Scalar(-1) : Scalar(1) }
    q.withUnsafeMutableBufferPointer { qp in
        for i in 0..<rows { for j in 0..<n { qp[i * n + j] *= signs[j] } }
    }
    s.withUnsafeMutableBufferPointer { sp in
        for i in 0..<n { for j in 0..<cols { sp[i * cols + j] *= signs[i] } }
    }
    return (q, s)
}

/// Exact line search (ELS, after Rajih, Comon & Harshman 2008 and Nion & De Lathauwer 2008; not in the survey's
/// reference list) along θ(u) = θ₁ + u(θ₁ − θ₀), u ≥ 0, over all cores and factors. Each block
/// (𝒢 + uΔ𝒢) ×_1 (A_1 + uΔA_1) ⋯ is a polynomial of degree d+1 in u whose coefficient tensors follow exactly
/// by multiplying the modes in one at a time, so ‖𝒳̂(u) − 𝒳‖² is a polynomial of degree 2(d+1) with
/// coefficients from the Gram matrix of the coefficient tensors. Returns the minimizing point when it beats u = 0.
private func btdLineSearch<Scalar: TensorScalar>(
    _ tensor: Tensor<Scalar>, from old: (cores: [Tensor<Scalar>], factors: [[Tensor<Scalar>]]),
    to new: (cores: [Tensor<Scalar>], factors: [[Tensor<Scalar>]]), residual: Tensor<Scalar>
) -> (cores: [Tensor<Scalar>], factors: [[Tensor<Scalar>]])? {
    let blocks = new.cores.count, d = tensor.rank
    var coefficients = [Tensor<Scalar>](repeating: .zeros(tensor.shape), count: d + 2)
    for b in 0..<blocks {
        var poly = [new.cores[b], new.cores[b] - old.cores[b]]
        for k in 0..<d {
            let a = new.factors[b][k], delta = a - old.factors[b][k]
            var next = poly.map { $0.modeProduct(a, mode: k) }
            next.append(poly[poly.count - 1].modeProduct(delta, mode: k))
            for j in 1..<poly.count { next[j] += poly[j - 1].modeProduct(delta, mode: k) }
            poly = next
        }
        for j in 0...(d + 1) { coefficients[j] += poly[j] }
    }
    coefficients[0] = residual
    let n = d + 2
    var p = [Double](repeating: 0, count: 2 * n - 1)
    for i in 0..<n { for j in i..<n {
        let g = Double(Tensor.dot(coefficients[i], coefficients[j]))
        p[i + j] += i == j ? g : 2 * g
    } }
    func value(_ u: Double) -> Double { p.reversed().reduce(0) { $0 * u + $1 } }
    var best = (u: 0.0, e: value(0))
    var u = 0.05
    while u <= 200 {
        let e = value(u)
        if e < best.e { best = (u, e) }
        u *= 1.05
    }
    guard best.u > 0, best.e.isFinite else { return nil }
    // Newton refinement on E'(u) = 0.
    var x = best.u
    for _ in 0..<20 {
        var d1 = 0.0, d2 = 0.0
        for m in stride(from: p.count - 1, through: 1, by: -1) {
            d1 = d1 * x + Double(m) * p[m]
            if m >= 2 { d2 = d2 * x + Double(m * (m - 1)) * p[m] }
        }
        guard d2 > 0 else { break }
        let step = d1 / d2
        x -= step
        if Swift.abs(step) <= 1e-12 * Swift.max(1, Swift.abs(x)) { break }
    }
    if x > 0 && value(x) < best.e { best = (x, value(x)) }
    let step = Scalar(best.u)
    func extrapolate(_ a: Tensor<Scalar>, _ b: Tensor<Scalar>) -> Tensor<Scalar> {
        var result = a
        result.addScaled(a - b, by: step)
        return result
    }
    let cores = (0..<blocks).map { extrapolate(new.cores[$0], old.cores[$0]) }
    let factors = (0..<blocks).map { b in (0..<d).map { k in extrapolate(new.factors[b][k], old.factors[b][k]) } }
    return (cores, factors)
}

/// The algebraic initialization of `BlockTermInitialization.algebraic` (derived); nil when it does not apply.
private func btdAlgebraicFactors<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>, blocks: Int, ranks: [Int],
                                                       generator: inout SeededGenerator) throws -> [[Tensor<Scalar>]]? {
    let d = tensor.rank, shape = tensor.shape
    let total = tensor.scalarCount
    let compressible = (0..<d).filter { blocks * ranks[$0] <= Swift.min(shape[$0], total / shape[$0]) }
    guard d >= 3, compressible.count >= 2 else { return nil }
    var bases = [Tensor<Scalar>?](repeating: nil, count: d)
    for k in compressible {
        bases[k] = try tensor.unfolded(mode: k).svd().u.slice(axis: 1, start: 0, count: blocks * ranks[k])
    }
    let t = tensor.multiModeProduct(compressible.map { (mode: $0, matrix: bases[$0]!) }, transposed: true)
    let n = t.shape
    modes: for p in compressible {
        let partners = compressible.filter { $0 != p }
        let offsets = partners.indices.map { i in n[p] * n[p] + partners.prefix(i).reduce(0) { $0 + n[$1] * n[$1] } }
        let columns = n[p] * n[p] + partners.reduce(0) { $0 + n[$1] * n[$1] }
        guard columns <= 2000 else { continue }
        // Rows X·T_z − T_z·Y_q = 0 for random slices z of every partner pair (p, q).
        var rows: [Tensor<Scalar>] = []
        for q in partners {
            let count = (n[p] * n[p] + n[q] * n[q] + n[p] * n[q] - 1) / (n[p] * n[q]) + 2
            let others = (0..<d).filter { $0 != p && $0 != q }
            for _ in 0..<count {
                var slice = t.multiModeProduct(others.map { (mode: $0, matrix: Tensor<Scalar>.randomNormal([1, n[$0]], generator: &generator)) })
                slice = p < q ? slice.reshaped([n[p], n[q]]) : slice.reshaped([n[q], n[p]]).transposed
                var parts = [Tensor.kronecker(Tensor<Scalar>.identity(n[p]), slice.transposed)]
                for r in partners {
                    parts.append(r == q ? Tensor.kronecker(slice, Tensor<Scalar>.identity(n[q])) * -1
                                        : Tensor<Scalar>.zeros([n[p] * n[q], n[r] * n[r]]))
                }
                rows.append(Tensor.concatenate(parts, axis: 1))
            }
        }
        let f = try Tensor.concatenate(rows, axis: 0).svd()
        let sv = f.s.scalars.map { Double($0) }
        // The intertwiner algebra: the null space, of dimension m ≥ N_b at the clearest gap.
        var m = 0, bestGap = 10.0
        for candidate in blocks...Swift.min(blocks * ranks[p] * ranks[p], sv.count - 1) {
            let gap = sv[sv.count - candidate - 1] / Swift.max(sv[sv.count - candidate], sv[0] * Double(Scalar.unitRoundoff))
            if gap >= bestGap { bestGap = gap; m = candidate }
        }
        guard m > 0 else { continue }
        // A random element (X, Y_q): X = A_p·diag(X_b)·A_p⁻¹ and Y_qᵀ = A_q·diag(X_b')·A_q⁻¹ with the same spectra.
        var element = Tensor<Scalar>.zeros([columns])
        for i in 0..<m {
            element.addScaled(f.vt.slice(axis: 0, start: columns - 1 - i, count: 1).reshaped([columns]), by: Scalar(generator.nextNormal()))
        }
        let x = element.slice(axis: 0, start: 0, count: n[p] * n[p]).reshaped([n[p], n[p]])
        let scale = x.frobeniusNorm()
        guard scale > 0 else { continue }
        let operators = [(p, x / scale)] + partners.enumerated().map { (i, q) in
            (q, element.slice(axis: 0, start: offsets[i], count: n[q] * n[q]).reshaped([n[q], n[q]]).transposed / scale)
        }
        // Spectral clusters of X by real part (matrix sign function), applied alike to every mode's operator.
        guard let clusters = btdSpectralClusters(operators[0].1) else { continue }
        var groups: [[Tensor<Scalar>]] = []         // per block: a basis per operator (mode)
        var current = [Tensor<Scalar>?](repeating: nil, count: operators.count)
        // Cut halfway between clusters, so that the partners' (noisy) copies of each eigenvalue fall in the same piece.
        let cuts = [-10.0] + zip(clusters, clusters.dropFirst()).map { ($0.1 + $1.0) / 2 } + [10.0]
        for (lo, hi) in zip(cuts, cuts.dropFirst()) {
            for (i, (mode, op)) in operators.enumerated() {
                guard let above = btdMatrixSign(op, shift: lo), let below = btdMatrixSign(op, shift: hi) else { continue modes }
                let projector = (above - below) * Scalar(0.5)
                let dimension = Int((Double(projector.withUnsafeBufferPointer { buffer in
                    (0..<n[mode]).reduce(Scalar(0)) { $0 + buffer[$1 * n[mode] + $1] }
                })).rounded())
                guard dimension >= 1 else { continue modes }
                let range = try projector.svd().u.slice(axis: 1, start: 0, count: dimension)
                current[i] = current[i].map { Tensor.concatenate([$0, range], axis: 1) } ?? range
                guard current[i]!.shape[1] <= ranks[mode] else { continue modes }
            }
            if operators.indices.allSatisfy({ current[$0]!.shape[1] == ranks[operators[$0].0] }) {
                groups.append(current.map { $0! })
                current = [Tensor<Scalar>?](repeating: nil, count: operators.count)
            }
        }
        guard groups.count == blocks, current.allSatisfy({ $0 == nil }) else { continue }
        var factors = [[Tensor<Scalar>]](repeating: [Tensor<Scalar>](repeating: .zeros([0, 0]), count: d), count: blocks)
        for b in 0..<blocks {
            for (i, (mode, _)) in operators.enumerated() {
                factors[b][mode] = try Tensor.matmul(bases[mode]!, groups[b][i]).qr().q
            }
        }
        // Remaining (non-compressible) modes: split 𝒯 into blocks through the oblique coordinates of p and one partner.
        let rest = (0..<d).filter { bases[$0] == nil }
        if !rest.isEmpty {
            let q = partners[0]
            let obliqueP = Tensor.concatenate((0..<blocks).map { groups[$0][0] }, axis: 1)
            let obliqueQ = Tensor.concatenate((0..<blocks).map { groups[$0][1] }, axis: 1)
            let split = t.modeProduct(try obliqueP.pseudoInverse(), mode: p).modeProduct(try obliqueQ.pseudoInverse(), mode: q)
            for b in 0..<blocks {
                let sub = split.slice(axis: p, start: b * ranks[p], count: ranks[p]).slice(axis: q, start: b * ranks[q], count: ranks[q])
                for k in rest {
                    let u = try sub.unfolded(mode: k).svd().u
                    let r = Swift.min(ranks[k], u.shape[1])
                    var basis = u.slice(axis: 1, start: 0, count: r)
                    if r < ranks[k] {  // too few directions in this block: complete with random ones
                        let extra = Tensor<Scalar>.randomNormal([shape[k], ranks[k] - r], generator: &generator)
                        basis = try Tensor.concatenate([basis, extra], axis: 1).qr().q
                    }
                    factors[b][k] = basis
                }
            }
        }
        return factors
    }
    return nil
}

/// sign(A − σI) by the scaled Newton iteration S ← (μS + (μS)⁻¹)/2, μ = (‖S⁻¹‖_F/‖S‖_F)^{1/2}; nil if it
/// breaks down (an eigenvalue on the line Re λ = σ).
private func btdMatrixSign<Scalar: TensorScalar>(_ a: Tensor<Scalar>, shift: Double) -> Tensor<Scalar>? {
    let n = a.shape[0], identity = Tensor<Scalar>.identity(n)
    var s = a - identity * Scalar(shift)
    for _ in 0..<100 {
        guard let inverse = try? Tensor.solve(s, identity), inverse.isFinite else { return nil }
        let mu = (inverse.frobeniusNorm() / s.frobeniusNorm()).squareRoot()
        let next = (s * mu + inverse / mu) * Scalar(0.5)
        let change = (next - s).frobeniusNorm()
        s = next
        if change <= Scalar(n) * 100 * Scalar.unitRoundoff * s.frobeniusNorm() { return s }
    }
    return s.isFinite ? s : nil
}

/// Intervals (lo, hi] of the real axis holding the distinct real parts of the eigenvalues of `a` (‖a‖_F = 1), by
/// bisection on the eigenvalue count n_>(σ) = (n + tr sign(a − σI))/2; equal real parts closer than 1e-6 merge.
private func btdSpectralClusters<Scalar: TensorScalar>(_ a: Tensor<Scalar>) -> [(Double, Double)]? {
    let n = a.shape[0]
    func count(_ sigma: Double) -> Int? {
        guard let sign = btdMatrixSign(a, shift: sigma) else { return nil }
        let trace = sign.withUnsafeBufferPointer { buffer in (0..<n).reduce(0.0) { $0 + Double(buffer[$1 * n + $1]) } }
        return Int(((Double(n) + trace) / 2).rounded())
    }
    var clusters: [(Double, Double)] = []
    var stack: [(Double, Double, Int, Int)] = [(-1.01, 1.01, n, 0)]
    while let (lo, hi, above, aboveHi) = stack.popLast() {
        guard above > aboveHi else { continue }
        if hi - lo < 1e-6 {
            clusters.append((lo, hi))
            continue
        }
        let mid = lo + (hi - lo) * 0.4999
        guard let c = count(mid), c <= above, c >= aboveHi else { return nil }
        stack.append((lo, mid, above, c))
        stack.append((mid, hi, c, aboveHi))
    }
    return clusters.sorted { $0.0 < $1.0 }
}
