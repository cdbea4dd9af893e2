import TensorCore

/// A matrix held as a truncated singular value decomposition W ≈ U·diag(σ)·Vᵀ (METHODS §1.1).
///
/// Layout (the CP layout, as in the factor files): `weights` holds the R singular values σ_1 ≥ … ≥ σ_R,
/// `factors[0]` is U ∈ ℝ^{I×R} and `factors[1]` is V ∈ ℝ^{O×R}, both with orthonormal columns. The rank-R
/// truncation is optimal in the Frobenius and spectral norms (Eckart–Young), with
/// ‖W − W_R‖_F² = Σ_{i>R} σ_i². For a factorized layer use `balancedFactors()` (A = U√Σ, B = V√Σ, W ≈ ABᵀ).
public struct MatrixLowRank<Scalar: TensorScalar>: TensorDecomposition {
    /// "svd".
    public static var formatName: String { "svd" }

    /// The R singular values kept, non-increasing.
    public var weights: Tensor<Scalar>
    /// `[U, V]`: U ∈ ℝ^{I×R} and V ∈ ℝ^{O×R} with orthonormal columns.
    public var factors: [Tensor<Scalar>]

    /// A low-rank matrix from its singular values and factors.
    ///
    /// - Precondition: `weights` has R entries, `u` is I×R and `v` is O×R.
    public init(weights: Tensor<Scalar>, u: Tensor<Scalar>, v: Tensor<Scalar>) {
        precondition(weights.rank == 1, "MatrixLowRank: weights must be a vector, got shape \(weights.shape)")
        let r = weights.shape[0]
        precondition(u.rank == 2 && u.shape[1] == r && v.rank == 2 && v.shape[1] == r,
                     "MatrixLowRank: U \(u.shape) and V \(v.shape) need \(r) columns to match weights \(weights.shape)")
        self.weights = weights
        self.factors = [u, v]
    }

    /// U ∈ ℝ^{I×R}.
    public var u: Tensor<Scalar> { factors[0] }
    /// V ∈ ℝ^{O×R}.
    public var v: Tensor<Scalar> { factors[1] }
    /// The rank R.
    public var rank: Int { weights.shape[0] }
    /// [I, O].
    public var shape: [Int] { [factors[0].shape[0], factors[1].shape[0]] }
    /// [R].
    public var ranks: [Int] { [rank] }
    /// R(I + O + 1): both factors and the singular values.
    public var parameterCount: Int { rank * (shape[0] + shape[1] + 1) }

    /// U·diag(σ)·Vᵀ.
    public func reconstruct() -> Tensor<Scalar> {
        Tensor.matmul(u * weights.reshaped([1, rank]), v, transposeB: true)
    }

    /// The balanced split W ≈ A·Bᵀ with A = U·Σ^{1/2} ∈ ℝ^{I×R} and B = V·Σ^{1/2} ∈ ℝ^{O×R} (METHODS §1.1,
    /// FC form: z = Aᵀx, y = Bz). Storage R(I + O).
    public func balancedFactors() -> (a: Tensor<Scalar>, b: Tensor<Scalar>) {
        let root = weights.map { $0.squareRoot() }.reshaped([1, rank])
        return (u * root, v * root)
    }

    /// How the singular subspace is computed.
    public enum Method: Sendable, Equatable {
        /// Exact thin SVD (LAPACK divide and conquer) for small matrices and every tolerance target; the randomized
        /// SVD for explicit ranks R ≤ min(I, O)/4 on matrices with min(I, O) ≥ 512.
        case automatic
        /// Exact thin SVD (LAPACK `gesdd`).
        case exact
        /// Randomized SVD (Halko, Martinsson & Tropp 2011, not in the survey's reference list): Gaussian sketch with
        /// `oversampling` extra columns and `powerIterations` passes, seeded. Explicit ranks and ratios only.
        case randomized(oversampling: Int = 10, powerIterations: Int = 2, seed: UInt64 = 0)
    }

    /// Truncated SVD of a matrix (METHODS §1.1).
    ///
    /// Targets: `.ranks([R])` keeps R triplets (clamped to min(I, O)); `.relativeError(ε)` keeps the smallest R
    /// with (Σ_{i>R} σ_i²)^{1/2} ≤ ε‖W‖_F; `.compressionRatio(c)` keeps the largest R with R(I+O+1) ≤ IO/c.
    /// - Throws: `DecompositionError.nonFiniteInput` for NaN/∞, `.invalidRanks` for a rank below 1,
    ///   `.invalidTarget` for a negative ε or an unreachable ratio, `.shapeMismatch` for a non-matrix or an empty
    ///   matrix, `.unsupportedTarget` for ε with the randomized method.
    public static func decompose(_ matrix: Tensor<Scalar>, target: RankTarget<Scalar>,
                                 method: Method = .automatic) throws -> MatrixLowRank {
        let format = formatName
        guard matrix.rank == 2 else {
            throw DecompositionError.shapeMismatch(format: format, problem: "expected a matrix (order 2), got shape \(matrix.shape); reshape the tensor to rows × columns first")
        }
        try FactorKernels.requireNonEmpty(matrix, format: format)
        try validate(matrix, target: target, format: format)
        let (m, n) = (matrix.shape[0], matrix.shape[1])
        let full = Swift.min(m, n)
        var rank: Int? = nil
        switch target {
        case let .ranks(r):
            guard r.count == 1 else {
                throw DecompositionError.invalidRanks(format: format, problem: "a matrix has one rank, got \(r.count) (\(r)); pass a single rank")
            }
            rank = Swift.min(r[0], full)
        case let .compressionRatio(c):
            rank = try FactorKernels.rankForRatio(format: format, ratio: c, fullSize: m * n, upper: full) { $0 * (m + n + 1) }
        case .relativeError:
            break
        }
        var useRandomized = false
        var sketch = (oversampling: 10, powerIterations: 2, seed: UInt64(0))
        switch method {
        case .exact: break
        case .automatic:
            if let r = rank, full >= 512, r * 4 <= full { useRandomized = true }
        case let .randomized(o, q, s):
            guard rank != nil else {
                throw DecompositionError.unsupportedTarget(format: format, problem: "the randomized SVD cannot guarantee a tolerance ε; use method: .exact (or .automatic) with .relativeError, or pass .ranks")
            }
            useRandomized = true
            sketch = (o, q, s)
        }
        let svd: SingularValueDecomposition<Scalar>
        if useRandomized, let r = rank {
            var generator = SeededGenerator(seed: sketch.seed)
            svd = try matrix.randomizedSVD(rank: r, oversampling: sketch.oversampling,
                                           powerIterations: sketch.powerIterations, generator: &generator)
        } else {
            let exact = try matrix.svd()
            if let r = rank {
                svd = exact.truncated(to: r)
            } else if case let .relativeError(eps) = target {
                let s = exact.s.scalars
                let total = s.reduce(0.0) { $0 + Double($1) * Double($1) }
                svd = exact.truncated(to: FactorKernels.tailRank(s, tolerance: Double(eps) * total.squareRoot()))
            } else {
                svd = exact
            }
        }
        return MatrixLowRank(weights: svd.s, u: svd.u, v: svd.vt.transposed)
    }
}

// MARK: - Kernels shared by the decompositions of this module

/// Numerical building blocks shared by the SVD, CP, Tucker, TT and TR code (internal).
enum FactorKernels {
    /// Throws `.shapeMismatch` when a mode has size 0 or the order is below `minimumOrder`.
    static func requireNonEmpty<S>(_ tensor: Tensor<S>, format: String, minimumOrder: Int = 1) throws {
        guard tensor.rank >= minimumOrder else {
            throw DecompositionError.shapeMismatch(format: format, problem: "needs a tensor of order ≥ \(minimumOrder), got shape \(tensor.shape); reshape it (e.g. add a mode of size 1)")
        }
        guard tensor.shape.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.shapeMismatch(format: format, problem: "every mode must have size ≥ 1, got shape \(tensor.shape); remove the empty modes")
        }
    }

    /// The smallest rank R ≥ 1 whose discarded tail (Σ_{i>R} σ_i²)^{1/2} is at most `tolerance` (0 for no values).
    static func tailRank<S: TensorScalar>(_ s: [S], tolerance: Double) -> Int {
        guard !s.isEmpty else { return 0 }
        let allowed = tolerance * tolerance
        var tail = 0.0
        var r = s.count
        while r > 1 {
            let next = tail + Double(s[r - 1]) * Double(s[r - 1])
            if next > allowed { break }
            tail = next
            r -= 1
        }
        return r
    }

    /// The largest uniform rank r in 1...upper whose parameter count `cost(r)` is ≤ fullSize/ratio.
    /// - Throws: `.invalidTarget` when even rank 1 stores more than the ratio allows.
    static func rankForRatio(format: String, ratio: Double, fullSize: Int, upper: Int,
                             cost: (Int) -> Int) throws -> Int {
        let budget = Double(fullSize) / ratio
        let smallest = cost(1)
        guard Double(smallest) <= budget * (1 + 1e-12) else {
            let best = short(Double(fullSize) / Double(smallest))
            throw DecompositionError.invalidTarget(format: format, problem: "compression ratio \(ratio) cannot be reached: rank 1 already stores \(smallest) parameters (ratio \(best)); ask for a ratio ≤ \(best) or use another format")
        }
        return largestRank(upTo: Swift.max(1, upper), within: budget * (1 + 1e-12), cost: cost)
    }

    /// A number with about four significant digits, for messages.
    static func short(_ x: Double) -> String {
        guard x.isFinite, x != 0 else { return "\(x)" }
        var scale = 1.0
        while Swift.abs(x) * scale < 1000 && scale < 1e12 { scale *= 10 }
        return "\((x * scale).rounded() / scale)"
    }

    /// ‖a − b‖_F² accumulated in SIMD lanes of `S`, blocks summed in Double.
    static func squaredDistance<S: TensorScalar>(_ a: Tensor<S>, _ b: Tensor<S>) -> Double {
        precondition(a.scalarCount == b.scalarCount, "squaredDistance: sizes \(a.shape) and \(b.shape) differ")
        return a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in
            guard let pa = ab.baseAddress, let pb = bb.baseAddress else { return 0 }
            let n = ab.count
            var total = 0.0
            var start = 0
            while start < n {
                let end = Swift.min(start + 4096, n)
                var acc = SIMD16<S>(repeating: 0)
                var i = start
                while i + 16 <= end {
                    let d = UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD16<S>.self)
                        - UnsafeRawPointer(pb + i).loadUnaligned(as: SIMD16<S>.self)
                    acc += d * d
                    i += 16
                }
                var block = Double(acc.sum())
                while i < end { let d = Double(pa[i]) - Double(pb[i]); block += d * d; i += 1 }
                total += block
                start = end
            }
            return total
        } }
    }

    /// ‖a‖_F² with blocks summed in Double.
    static func squaredNorm<S: TensorScalar>(_ a: Tensor<S>) -> Double {
        a.withUnsafeBufferPointer { ab in
            guard let pa = ab.baseAddress else { return 0 }
            let n = ab.count
            var total = 0.0
            var start = 0
            while start < n {
                let end = Swift.min(start + 4096, n)
                var acc = SIMD16<S>(repeating: 0)
                var i = start
                while i + 16 <= end {
                    let v = UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD16<S>.self)
                    acc += v * v
                    i += 16
                }
                var block = Double(acc.sum())
                while i < end { block += Double(pa[i]) * Double(pa[i]); i += 1 }
                total += block
                start = end
            }
            return total
        }
    }

    /// X_(k)·X_(k)ᵀ ∈ ℝ^{J_k×J_k} for the mode-k unfolding, computed as Σ_p X_p X_pᵀ over the leading
    /// index p of the (pre, J_k, post) view, so the tensor is never permuted.
    static func modeGram<S: TensorScalar>(_ x: Tensor<S>, mode k: Int) -> Tensor<S> {
        let j = x.shape[k]
        let pre = x.shape[..<k].reduce(1, *), post = x.shape[(k + 1)...].reduce(1, *)
        if post == 1 {
            let m = x.reshaped([pre, j])
            return Tensor.matmul(m, m, transposeA: true)
        }
        var gram = Tensor<S>.zeros([j, j])
        gram.withUnsafeMutableBufferPointer { g in
            x.withUnsafeBufferPointer { xp in
                for p in 0..<pre {
                    S.gemm(transposeA: false, transposeB: true, m: j, n: j, k: post, alpha: 1,
                           a: xp.baseAddress! + p * j * post, lda: post, b: xp.baseAddress! + p * j * post, ldb: post,
                           beta: p == 0 ? 0 : 1, c: g.baseAddress!, ldc: j)
                }
            }
        }
        return gram
    }

    /// The leading `rank` left singular vectors of the mode-k unfolding (J_k × min(rank, J_k)) and the
    /// singular values (non-increasing, at most J_k of them).
    ///
    /// Wide unfoldings (more than 2·J_k columns) go through the eigendecomposition of the Gram matrix
    /// X_(k)X_(k)ᵀ, whose cost is one GEMM and which needs no permutation of the tensor; the others through the
    /// SVD of the unfolding. The Gram route resolves σ_i only down to about √(unit roundoff)·σ_1, so callers that
    /// choose ranks from a tolerance use the SVD of the unfolding instead.
    static func leadingLeftVectors<S: TensorScalar>(_ x: Tensor<S>, mode k: Int, rank: Int) throws
        -> (basis: Tensor<S>, values: [S]) {
        let j = x.shape[k]
        let rest = x.scalarCount / Swift.max(j, 1)
        let r = Swift.min(rank, j)
        if rest > 2 * j {
            let gram = modeGram(x, mode: k)
            let (values, vectors) = try gram.symmetricEigen()  // ascending
            let lambda = values.scalars
            let sigma = lambda.reversed().map { Swift.max($0, 0).squareRoot() }
            // Columns in descending order of eigenvalue.
            let basis = Tensor<S>(shape: [j, r]) { out in
                vectors.withUnsafeBufferPointer { v in
                    for row in 0..<j { for c in 0..<r { out[row * r + c] = v[row * j + (j - 1 - c)] } }
                }
            }
            return (basis, Array(sigma))
        }
        let svd = try x.unfolded(mode: k).svd()
        return (svd.u.slice(axis: 1, start: 0, count: Swift.min(r, svd.rank)), svd.s.scalars)
    }

    /// A truncated split C ≈ U·W of an m×n matrix, U ∈ ℝ^{m×r} with orthonormal columns and W = UᵀC ∈ ℝ^{r×n}
    /// (= ΣVᵀ of the truncated SVD), with r chosen by a tail tolerance and/or a cap.
    ///
    /// Wide matrices (n ≥ 4m) with a pure rank cap take the Gram route: eigenvectors of CCᵀ (one GEMM of cost
    /// m²n) and W = UᵀC, an exact projection onto the computed subspace; everything else (and every tolerance,
    /// which needs accurate small singular values) takes the thin SVD.
    static func truncatedSplit<S: TensorScalar>(_ c: Tensor<S>, cap: Int?, tolerance: Double?) throws
        -> (u: Tensor<S>, w: Tensor<S>) {
        let (m, n) = (c.shape[0], c.shape[1])
        if tolerance == nil, let cap, n >= 4 * m {
            let gram = Tensor.matmul(c, c, transposeB: true)
            let (_, vectors) = try gram.symmetricEigen()  // ascending
            let r = Swift.max(1, Swift.min(cap, m))
            let u = Tensor<S>(shape: [m, r]) { out in
                vectors.withUnsafeBufferPointer { v in
                    for row in 0..<m { for col in 0..<r { out[row * r + col] = v[row * m + (m - 1 - col)] } }
                }
            }
            return (u, Tensor.matmul(u, c, transposeA: true))
        }
        let svd = try c.svd()
        var r = svd.rank
        if let tolerance { r = tailRank(svd.s.scalars, tolerance: tolerance) }
        if let cap { r = Swift.min(r, cap) }
        r = Swift.max(1, Swift.min(r, svd.rank))
        return (svd.u.slice(axis: 1, start: 0, count: r),
                scaleRows(svd.vt.slice(axis: 0, start: 0, count: r), by: svd.s.slice(axis: 0, start: 0, count: r)))
    }

    /// diag(s)·M for an r×n matrix M and r values s (contiguous row scaling).
    static func scaleRows<S: TensorScalar>(_ m: Tensor<S>, by s: Tensor<S>) -> Tensor<S> {
        let (r, n) = (m.shape[0], m.shape[1])
        return Tensor<S>(shape: [r, n]) { out in
            m.withUnsafeBufferPointer { src in s.withUnsafeBufferPointer { sp in
                for row in 0..<r {
                    let f = sp[row]
                    for col in 0..<n { out[row * n + col] = src[row * n + col] * f }
                }
            } }
        }
    }

    /// rhs·(gram + μI)^† for a symmetric positive semi-definite `gram` (R×R) and `rhs` (M×R), solved in Double.
    /// Eigenvalues below R·ε_S·λ_max count as zero, so a singular system gives the minimum-norm solution and never
    /// NaN: through the symmetric eigendecomposition when the Cholesky factor's reciprocal condition estimate is
    /// within 100× of that cutoff (or the factorization fails), else (the usual case, where the pseudo-inverse is the
    /// inverse) by the Cholesky solve (the eigendecompositions were a quarter of TR-ALS's time on the benchmark
    /// workload, R ≤ 36).
    static func solveNormalEquations<S: TensorScalar>(gram: Tensor<S>, rhs: Tensor<S>, ridge: Double = 0) throws -> Tensor<S> {
        let r = gram.shape[0]
        var g: Tensor<Double> = gram.converted()
        if ridge > 0 {
            g.withUnsafeMutableBufferPointer { p in for i in 0..<r { p[i * r + i] += ridge } }
        }
        // Symmetrize against rounding in the GEMM that built the Gram matrix.
        g = (g + g.transposed) * 0.5
        let relativeCutoff = Double(Swift.max(r, 1)) * Double(S.unitRoundoff)
        if let solution = choleskySolve(g, rhs: rhs.converted(to: Double.self), minimumReciprocalCondition: 100 * relativeCutoff) {
            return solution.converted(to: S.self)
        }
        let (values, vectors) = try g.symmetricEigen()
        let lambda = values.scalars
        let top = lambda.map { Swift.abs($0) }.max() ?? 0
        let cutoff = relativeCutoff * top
        let inverse = Tensor<Double>(lambda.map { $0 > cutoff ? 1 / $0 : 0 }).reshaped([1, r])
        let pinv = Tensor.matmul(vectors * inverse, vectors, transposeB: true)
        return Tensor.matmul(rhs, pinv.converted(to: S.self))
    }

    /// rhs·A⁻¹ for a symmetric A (R×R) by Cholesky (`potrf`, `potrs`), or nil when A is not numerically positive
    /// definite or its estimated 1-norm reciprocal condition (`pocon`) is below `minimumReciprocalCondition`.
    /// The row-major M×R `rhs` is the column-major R×M rhsᵀ, so A·Y = rhsᵀ is solved in place with no transposes.
    static func choleskySolve(_ a: Tensor<Double>, rhs: Tensor<Double>, minimumReciprocalCondition: Double) -> Tensor<Double>? {
        let r = a.shape[0], m = rhs.shape[0]
        guard r > 0 && a.isFinite else { return nil }
        var factor = a
        var norm1 = 0.0
        a.withUnsafeBufferPointer { p in
            for j in 0..<r { norm1 = Swift.max(norm1, (0..<r).reduce(0) { $0 + Swift.abs(p[$1 * r + j]) }) }
        }
        var reciprocalCondition = 0.0
        let ok = factor.withUnsafeMutableBufferPointer { f -> Bool in
            guard Double.potrf(n: r, a: f.baseAddress!, lda: r) == 0 else { return false }
            return Double.pocon(n: r, a: f.baseAddress!, lda: r, norm1: norm1, reciprocalCondition: &reciprocalCondition) == 0
        }
        guard ok && reciprocalCondition >= minimumReciprocalCondition else { return nil }
        var solution = rhs
        let info = solution.withUnsafeMutableBufferPointer { b in factor.withUnsafeBufferPointer { f in
            Double.potrs(n: r, nrhs: m, a: f.baseAddress!, lda: r, b: b.baseAddress!, ldb: r)
        } }
        return info == 0 ? solution : nil
    }

    /// Khatri–Rao product of J_i×R matrices in the given order (the first matrix's row index slowest, as
    /// `Tensor.khatriRao`), built row by row with contiguous R-wide products; an empty list gives a 1×R row of
    /// ones.
    static func khatriRao<S: TensorScalar>(_ matrices: ArraySlice<Tensor<S>>, columns r: Int) -> Tensor<S> {
        guard var result = matrices.first else { return Tensor<S>.ones([1, r]) }
        for next in matrices.dropFirst() {
            let rows = result.shape[0], nextRows = next.shape[0]
            let previous = result
            result = Tensor<S>(shape: [rows * nextRows, r]) { out in
                previous.withUnsafeBufferPointer { a in next.withUnsafeBufferPointer { b in
                    let pa = a.baseAddress!, pb = b.baseAddress!, po = out.baseAddress!
                    for i in 0..<rows {
                        let rowA = pa + i * r
                        for i2 in 0..<nextRows {
                            let rowB = pb + i2 * r, rowO = po + (i * nextRows + i2) * r
                            for c in 0..<r { rowO[c] = rowA[c] * rowB[c] }
                        }
                    }
                } }
            }
        }
        return result
    }

    /// Scales each column of a J×R matrix to unit norm; returns the norms (a zero column keeps its old values
    /// from `fallback` when given, else stays zero, and reports norm 0).
    static func normalizeColumns<S: TensorScalar>(_ a: inout Tensor<S>, fallback: Tensor<S>? = nil) -> [S] {
        let (j, r) = (a.shape[0], a.shape[1])
        var norms = [Double](repeating: 0, count: r)
        a.withUnsafeBufferPointer { p in
            for row in 0..<j { for c in 0..<r { let v = Double(p[row * r + c]); norms[c] += v * v } }
        }
        let roots = norms.map { $0.squareRoot() }
        let fb = fallback?.scalars
        a.withUnsafeMutableBufferPointer { p in
            for c in 0..<r {
                if roots[c] > 0 && roots[c].isFinite {
                    let inv = S(1 / roots[c])
                    for row in 0..<j { p[row * r + c] *= inv }
                } else if let fb {
                    for row in 0..<j { p[row * r + c] = fb[row * r + c] }
                }
            }
        }
        return roots.map { $0.isFinite ? S($0) : 0 }
    }
}
