/// A thin singular value decomposition A = U·diag(s)·Vᵀ of an m×n matrix, k = Swift.min(m, n) (or the truncated rank).
public struct SingularValueDecomposition<Scalar: TensorScalar>: Sendable {
    /// m×k, orthonormal columns.
    public var u: Tensor<Scalar>
    /// k singular values, non-increasing.
    public var s: Tensor<Scalar>
    /// k×n, orthonormal rows.
    public var vt: Tensor<Scalar>

    public init(u: Tensor<Scalar>, s: Tensor<Scalar>, vt: Tensor<Scalar>) {
        self.u = u; self.s = s; self.vt = vt
    }

    /// The number of singular triplets kept.
    public var rank: Int { s.shape[0] }

    /// U·diag(s)·Vᵀ.
    public func reconstruct() -> Tensor<Scalar> {
        Tensor.matmul(u * s.reshaped([1, rank]), vt)
    }

    /// The leading `rank` triplets.
    public func truncated(to rank: Int) -> SingularValueDecomposition {
        let r = Swift.min(Swift.max(rank, 0), self.rank)
        return SingularValueDecomposition(u: u.slice(axis: 1, start: 0, count: r), s: s.slice(axis: 0, start: 0, count: r),
                                          vt: vt.slice(axis: 0, start: 0, count: r))
    }
}

/// How many singular values a truncation keeps.
public enum TruncationRule<Scalar: TensorScalar>: Sendable, Equatable {
    /// Exactly R (clamped to the number available).
    case rank(Int)
    /// The smallest R with (Σ_{i>R} σ_i²)^{1/2} ≤ ε·‖A‖_F, so the relative Frobenius error is at most ε.
    case relativeError(Scalar)
    /// The smallest R with Σ_{i≤R} σ_i² ≥ e·Σ σ_i² (0 < e ≤ 1).
    case energy(Scalar)

    /// The rank this rule keeps for non-increasing singular values `s` (at least 1 unless all are zero).
    /// - Throws: `TensorError.invalidArgument` for a negative rank, ε < 0 or e outside (0, 1].
    public func rank(for singularValues: [Scalar]) throws -> Int {
        let squares = singularValues.map { $0 * $0 }
        let total = squares.reduce(0, +)
        switch self {
        case let .rank(r):
            guard r >= 1 else { throw TensorError.invalidArgument("truncation rank must be at least 1, got \(r)") }
            return Swift.min(r, singularValues.count)
        case let .relativeError(eps):
            guard eps >= 0, eps.isFinite else {
                throw TensorError.invalidArgument("relative error tolerance must be a finite number ≥ 0, got \(eps)")
            }
            let allowed = eps * eps * total
            var tail: Scalar = 0
            var r = singularValues.count
            while r > 0 && tail + squares[r - 1] <= allowed { tail += squares[r - 1]; r -= 1 }
            return total == 0 ? Swift.min(1, singularValues.count) : r
        case let .energy(e):
            guard e > 0 && e <= 1 else { throw TensorError.invalidArgument("energy threshold must be in (0, 1], got \(e)") }
            if total == 0 { return Swift.min(1, singularValues.count) }
            var kept: Scalar = 0
            for (i, sq) in squares.enumerated() {
                kept += sq
                if kept >= e * total * (1 - 4 * Scalar.unitRoundoff) { return i + 1 }
            }
            return singularValues.count
        }
    }
}

extension Tensor {
    private func requireFinite(_ operation: String) throws {
        guard isFinite else { throw TensorError.nonFinite(operation: operation) }
    }

    /// Thin SVD of a matrix through LAPACK `gesdd` (divide and conquer), falling back to `gesvd` (QR iteration)
    /// when `gesdd` does not converge; well-conditioned Float matrices with min(m, n) ≥ 512 go through
    /// `crossProductSVD` instead.
    ///
    /// A row-major m×n matrix is LAPACK's column-major Aᵀ; its SVD Aᵀ = U'ΣV'ᵀ gives A = V'ΣU'ᵀ, so the routine
    /// writes Vᵀ and U of A straight into row-major buffers with no transposing copies.
    /// - Throws: `TensorError.nonFinite` for NaN/∞ input, `TensorError.lapackFailure` if both routines fail.
    public func svd() throws -> SingularValueDecomposition<Scalar> {
        precondition(rank == 2, "svd: expected a matrix, got shape \(shape)")
        try requireFinite("svd")
        let m = shape[0], n = shape[1], k = Swift.min(m, n)
        if k == 0 {
            return SingularValueDecomposition(u: .zeros([m, 0]), s: .zeros([0]), vt: .zeros([0, n]))
        }
        if let fast = try crossProductSVD() { return fast }
        var u = Tensor.zeros([m, k]), s = Tensor.zeros([k]), vt = Tensor.zeros([k, n])
        for useGesdd in [true, false] {
            var work = self
            let info = work.withUnsafeMutableBufferPointer { a in
                u.withUnsafeMutableBufferPointer { up in s.withUnsafeMutableBufferPointer { sp in
                    vt.withUnsafeMutableBufferPointer { vp in
                        useGesdd
                            ? Scalar.gesdd(jobz: UInt8(ascii: "S"), m: n, n: m, a: a.baseAddress!, lda: n,
                                           s: sp.baseAddress!, u: vp.baseAddress!, ldu: n, vt: up.baseAddress!, ldvt: k)
                            : Scalar.gesvd(jobu: UInt8(ascii: "S"), jobvt: UInt8(ascii: "S"), m: n, n: m,
                                           a: a.baseAddress!, lda: n, s: sp.baseAddress!, u: vp.baseAddress!, ldu: n,
                                           vt: up.baseAddress!, ldvt: k)
                    }
                } }
            }
            if info == 0 { return SingularValueDecomposition(u: u, s: s, vt: vt) }
            if info < 0 {
                throw TensorError.lapackFailure(routine: useGesdd ? "gesdd" : "gesvd", info: info,
                                                hint: "argument \(-info) was rejected; this is a bug in LowRank, please report it")
            }
        }
        throw TensorError.lapackFailure(routine: "gesvd", info: 1,
                                        hint: "the SVD did not converge (gesdd then gesvd); rescale the matrix or check it for extreme values")
    }

    /// For a Float matrix with k = min(m, n) ≥ 512, where `gesdd`'s bidiagonalization (half of it memory-bound
    /// matrix–vector products) dominates: the thin SVD from the eigendecomposition, in Double, of the k×k Gram
    /// matrix (AᵀA, or AAᵀ when wide; `syevd`), σ_i = √λ_i and the other factor A·v_i/σ_i (or Σ⁻¹UᵀA), all BLAS-3.
    /// The relative errors of σ_i and of that factor's orthonormality grow like ε_D·(σ_1/σ_i)², so it is used only
    /// when σ_1/σ_k ≤ 10⁵ (errors ≤ ε_D·10¹⁰ ≈ 2·10⁻⁶, at Float's own level); nil otherwise, and for Double
    /// matrices (the caller runs `gesdd`). Measured at 2048² (`lowrank bench decompositions`): 1.2 s against
    /// `gesdd`'s 1.8 s on 2 threads, 1.9 s against 2.4 s on one.
    private func crossProductSVD() throws -> SingularValueDecomposition<Scalar>? {
        let m = shape[0], n = shape[1], k = Swift.min(m, n)
        guard Scalar.self == Float.self, k >= 512 else { return nil }
        let a: Tensor<Double> = converted()
        let wide = n > m
        let gram = Tensor<Double>.gram(a, ofRows: wide)
        let (values, vectors) = try gram.symmetricEigen()  // ascending
        let lambda = values.scalars
        guard let top = lambda.last, top > 0, lambda[0] >= 1e-10 * top else { return nil }
        let sigma = lambda.reversed().map { $0.squareRoot() }
        // The eigenvectors in descending order of λ.
        let w = Tensor<Double>(shape: [k, k]) { out in vectors.withUnsafeBufferPointer { v in
            for row in 0..<k { for col in 0..<k { out[row * k + col] = v[row * k + k - 1 - col] } }
        } }
        let inverse = Tensor<Double>(sigma.map { 1 / $0 }).reshaped([1, k])
        let s: Tensor<Scalar> = Tensor<Double>(sigma).converted()
        if wide {
            // A = WΣVᵀ with Vᵀ = Σ⁻¹WᵀA = (WΣ⁻¹)ᵀA.
            return SingularValueDecomposition(u: w.converted(), s: s, vt: Tensor<Double>.matmul(w * inverse, a, transposeA: true).converted())
        }
        // A = UΣWᵀ with U = AWΣ⁻¹.
        return SingularValueDecomposition(u: (Tensor<Double>.matmul(a, w) * inverse).converted(), s: s, vt: w.transposed.converted())
    }

    /// Singular values only (non-increasing).
    public func singularValues() throws -> Tensor {
        precondition(rank == 2, "singularValues: expected a matrix, got shape \(shape)")
        try requireFinite("singularValues")
        let m = shape[0], n = shape[1], k = Swift.min(m, n)
        if k == 0 { return .zeros([0]) }
        var s = Tensor.zeros([k])
        var work = self
        let info = work.withUnsafeMutableBufferPointer { a in
            s.withUnsafeMutableBufferPointer { sp in
                Scalar.gesdd(jobz: UInt8(ascii: "N"), m: n, n: m, a: a.baseAddress!, lda: n, s: sp.baseAddress!,
                             u: nil, ldu: 1, vt: nil, ldvt: 1)
            }
        }
        if info != 0 { return try svd().s }
        return s
    }

    /// Truncated SVD keeping the triplets `rule` selects. The discarded error is (Σ_{i>R} σ_i²)^{1/2}
    /// (Eckart–Young: optimal in Frobenius and spectral norm).
    public func truncatedSVD(_ rule: TruncationRule<Scalar>) throws -> SingularValueDecomposition<Scalar> {
        let full = try svd()
        return full.truncated(to: try rule.rank(for: full.s.scalars))
    }

    /// Randomized SVD of rank `rank` (Halko, Martinsson & Tropp 2011, Algorithms 4.4 and 5.1):
    /// sample Y = AΩ with `oversampling` extra columns, refine with `powerIterations` re-orthonormalized
    /// passes (AAᵀ)^q, then take the exact SVD of the small QᵀA.
    public func randomizedSVD(rank targetRank: Int, oversampling: Int = 10, powerIterations: Int = 2,
                              generator: inout SeededGenerator) throws -> SingularValueDecomposition<Scalar> {
        precondition(self.rank == 2, "randomizedSVD: expected a matrix, got shape \(shape)")
        guard targetRank >= 1 else { throw TensorError.invalidArgument("randomizedSVD: rank must be at least 1, got \(targetRank)") }
        try requireFinite("randomizedSVD")
        let m = shape[0], n = shape[1]
        let l = Swift.min(targetRank + Swift.max(0, oversampling), Swift.min(m, n))
        if l == Swift.min(m, n) { return try svd().truncated(to: targetRank) }
        let omega = Tensor.randomNormal([n, l], generator: &generator)
        var q = try Tensor.matmul(self, omega).qr().q
        for _ in 0..<Swift.max(0, powerIterations) {
            let z = try Tensor.matmul(self, q, transposeA: true).qr().q
            q = try Tensor.matmul(self, z).qr().q
        }
        let small = try Tensor.matmul(q, self, transposeA: true).svd()
        return SingularValueDecomposition(u: Tensor.matmul(q, small.u), s: small.s, vt: small.vt).truncated(to: targetRank)
    }

    /// Thin QR factorization A = QR of an m×n matrix: Q is m×k with orthonormal columns, R is k×n upper
    /// triangular, k = Swift.min(m, n) (LAPACK `geqrf` + `orgqr`).
    public func qr() throws -> (q: Tensor, r: Tensor) {
        precondition(rank == 2, "qr: expected a matrix, got shape \(shape)")
        try requireFinite("qr")
        let m = shape[0], n = shape[1], k = Swift.min(m, n)
        if k == 0 { return (.zeros([m, 0]), .zeros([0, n])) }
        var a = transposed  // row-major n×m = column-major m×n
        var tau = Tensor.zeros([k])
        let info = a.withUnsafeMutableBufferPointer { ap in tau.withUnsafeMutableBufferPointer { tp in
            Scalar.geqrf(m: m, n: n, a: ap.baseAddress!, lda: m, tau: tp.baseAddress!)
        } }
        guard info == 0 else { throw TensorError.lapackFailure(routine: "geqrf", info: info, hint: "check the matrix for extreme values") }
        let columnMajor = a.scalars
        var r = Tensor.zeros([k, n])
        r.withUnsafeMutableBufferPointer { rp in
            for j in 0..<n { for i in 0...Swift.min(j, k - 1) { rp[i * n + j] = columnMajor[j * m + i] } }
        }
        var qBuffer = Tensor(shape: [k, m], scalars: Array(columnMajor[0..<(k * m)]))  // column-major m×k
        let info2 = qBuffer.withUnsafeMutableBufferPointer { qp in tau.withUnsafeBufferPointer { tp in
            Scalar.orgqr(m: m, n: k, k: k, a: qp.baseAddress!, lda: m, tau: tp.baseAddress!)
        } }
        guard info2 == 0 else { throw TensorError.lapackFailure(routine: "orgqr", info: info2, hint: "check the matrix for extreme values") }
        return (qBuffer.transposed, r)
    }

    /// Eigendecomposition of a symmetric matrix A = V·diag(λ)·Vᵀ (LAPACK `syevd`); eigenvalues ascending,
    /// eigenvectors in the columns of V. Only the upper triangle is read.
    public func symmetricEigen() throws -> (values: Tensor, vectors: Tensor) {
        precondition(rank == 2 && shape[0] == shape[1], "symmetricEigen: expected a square matrix, got shape \(shape)")
        try requireFinite("symmetricEigen")
        let n = shape[0]
        if n == 0 { return (.zeros([0]), .zeros([0, 0])) }
        var a = transposed  // column-major view of A; LAPACK's upper triangle is A's upper triangle
        var w = Tensor.zeros([n])
        let info = a.withUnsafeMutableBufferPointer { ap in w.withUnsafeMutableBufferPointer { wp in
            Scalar.syevd(n: n, a: ap.baseAddress!, lda: n, w: wp.baseAddress!)
        } }
        guard info == 0 else {
            throw TensorError.lapackFailure(routine: "syevd", info: info, hint: "the eigensolver did not converge; check the matrix for extreme values")
        }
        return (w, a.transposed)
    }

    /// Solves A·X = B for square non-singular A (LAPACK `gesv`, LU with partial pivoting).
    /// `b` is n or n×k. - Throws: `TensorError.singularMatrix`.
    public static func solve(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        precondition(a.rank == 2 && a.shape[0] == a.shape[1], "solve: expected a square matrix, got shape \(a.shape)")
        precondition((b.rank == 1 || b.rank == 2) && b.shape[0] == a.shape[0],
                     "solve: right-hand side \(b.shape) does not match matrix \(a.shape)")
        try a.requireFinite("solve"); try b.requireFinite("solve")
        let n = a.shape[0], rhs = b.rank == 1 ? 1 : b.shape[1]
        if n == 0 || rhs == 0 { return b }
        var ac = a.transposed
        var bc = b.reshaped([n, rhs]).transposed
        let info = ac.withUnsafeMutableBufferPointer { ap in bc.withUnsafeMutableBufferPointer { bp in
            Scalar.gesv(n: n, nrhs: rhs, a: ap.baseAddress!, lda: n, b: bp.baseAddress!, ldb: n)
        } }
        if info > 0 { throw TensorError.singularMatrix(pivot: info) }
        guard info == 0 else { throw TensorError.lapackFailure(routine: "gesv", info: info, hint: "invalid argument; please report") }
        return bc.transposed.reshaped(b.shape)
    }

    /// Minimum-norm least-squares solution of min ‖A·X − B‖_F (LAPACK `gelsd`, SVD-based; through the pseudo-inverse
    /// when its SVD does not converge).
    /// Singular values below `rcond`·σ_max are treated as zero (default: Swift.max(m, n)·ε).
    public static func leastSquares(_ a: Tensor, _ b: Tensor, rcond: Scalar? = nil) throws -> Tensor {
        precondition(a.rank == 2, "leastSquares: expected a matrix, got shape \(a.shape)")
        precondition((b.rank == 1 || b.rank == 2) && b.shape[0] == a.shape[0],
                     "leastSquares: right-hand side \(b.shape) does not match matrix \(a.shape)")
        try a.requireFinite("leastSquares"); try b.requireFinite("leastSquares")
        let m = a.shape[0], n = a.shape[1], rhs = b.rank == 1 ? 1 : b.shape[1], ldb = Swift.max(1, m, n)
        let outShape = b.rank == 1 ? [n] : [n, rhs]
        if m == 0 || n == 0 || rhs == 0 { return .zeros(outShape) }
        var ac = a.transposed
        var bc = Tensor.zeros([rhs, ldb])  // column-major ldb×rhs
        let bt = b.reshaped([m, rhs]).transposed
        bc.withUnsafeMutableBufferPointer { out in bt.withUnsafeBufferPointer { src in
            for j in 0..<rhs { for i in 0..<m { out[j * ldb + i] = src[j * m + i] } }
        } }
        var rank = 0
        let cond = rcond ?? Scalar(Swift.max(m, n)) * Scalar.unitRoundoff
        let info = ac.withUnsafeMutableBufferPointer { ap in bc.withUnsafeMutableBufferPointer { bp in
            Scalar.gelsd(m: m, n: n, nrhs: rhs, a: ap.baseAddress!, lda: m, b: bp.baseAddress!, ldb: ldb,
                         rcond: cond, rank: &rank)
        } }
        if info > 0 {
            // gelsd's divide-and-conquer SVD did not converge (ill-conditioned Float systems): the same minimum-norm
            // solution through the pseudo-inverse, whose SVD falls back to gesvd.
            return Tensor.matmul(try a.pseudoInverse(rcond: cond), b.reshaped([m, rhs])).reshaped(outShape)
        }
        guard info == 0 else {
            throw TensorError.lapackFailure(routine: "gelsd", info: info, hint: "an argument of least squares was invalid")
        }
        return bc.slice(axis: 1, start: 0, count: n).transposed.reshaped(outShape)
    }

    /// Moore–Penrose pseudo-inverse V·diag(1/σ)·Uᵀ, dropping σ ≤ rcond·σ_max (default Swift.max(m, n)·ε).
    public func pseudoInverse(rcond: Scalar? = nil) throws -> Tensor {
        precondition(rank == 2, "pseudoInverse: expected a matrix, got shape \(shape)")
        let f = try svd()
        let cutoff = (rcond ?? Scalar(Swift.max(shape[0], shape[1])) * Scalar.unitRoundoff) * (f.s.scalars.first ?? 0)
        let inverted = f.s.map { $0 > cutoff ? 1 / $0 : 0 }
        return Tensor.matmul(f.vt * inverted.reshaped([-1, 1]), f.u, transposeA: true, transposeB: true)
    }

    /// Cholesky factor L (lower triangular, A = L·Lᵀ) of a symmetric positive-definite matrix (LAPACK `potrf`).
    /// - Throws: `TensorError.notPositiveDefinite`.
    public func cholesky() throws -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "cholesky: expected a square matrix, got shape \(shape)")
        try requireFinite("cholesky")
        let n = shape[0]
        if n == 0 { return self }
        var a = self  // column-major Aᵀ = A (symmetric)
        let info = a.withUnsafeMutableBufferPointer { Scalar.potrf(n: n, a: $0.baseAddress!, lda: n) }
        if info > 0 { throw TensorError.notPositiveDefinite(minorOrder: info) }
        guard info == 0 else { throw TensorError.lapackFailure(routine: "potrf", info: info, hint: "invalid argument; please report") }
        // Column-major upper U (A = UᵀU) read row-major is L = Uᵀ; clear the untouched strict upper part.
        a.withUnsafeMutableBufferPointer { p in for i in 0..<n { for j in (i + 1)..<Swift.max(i + 1, n) { p[i * n + j] = 0 } } }
        return a
    }
}
