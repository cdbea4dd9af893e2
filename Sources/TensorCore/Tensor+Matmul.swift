extension Tensor {
    /// Matrix product of 2-D tensors through BLAS gemm; transposes are passed to BLAS, never copied.
    ///
    /// `op(a)` is m×k and `op(b)` is k×n, where op transposes when the flag is set.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul: expected matrices, got shapes \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0], n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") × \(b.shape)\(transposeB ? "ᵀ" : "")")
        var c = Tensor(shape: [m, n]) { _ in }
        gemm(a, b, into: &c, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k)
        return c
    }

    /// The Gram matrix AᵀA of a matrix's columns (or AAᵀ of its rows with `ofRows`) through BLAS `syrk`: half the
    /// multiply-adds of `matmul(a, a, transposeA: true)`, the lower triangle mirrored from the upper.
    public static func gram(_ a: Tensor, ofRows: Bool = false) -> Tensor {
        precondition(a.rank == 2, "gram: expected a matrix, got shape \(a.shape)")
        let (rows, columns) = (a.shape[0], a.shape[1])
        let n = ofRows ? rows : columns, k = ofRows ? columns : rows
        return Tensor(shape: [n, n]) { c in
            guard n > 0 else { return }
            if k == 0 { c.initialize(repeating: 0); return }
            a.withUnsafeBufferPointer { ap in
                Scalar.syrk(transposeA: !ofRows, n: n, k: k, a: ap.baseAddress!, lda: columns, c: c.baseAddress!, ldc: n)
            }
            for i in 0..<n { for j in 0..<i { c[i * n + j] = c[j * n + i] } }
        }
    }

    /// c ← op(a)·op(b) (or c + op(a)·op(b) when `accumulate`); c must already have shape m×n.
    static func gemm(_ a: Tensor, _ b: Tensor, into c: inout Tensor, transposeA: Bool, transposeB: Bool,
                     m: Int, n: Int, k: Int, accumulate: Bool = false) {
        c.withUnsafeMutableBufferPointer { cp in
            guard m > 0 && n > 0 else { return }
            if k == 0 {
                if !accumulate { cp.initialize(repeating: 0) }
                return
            }
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                Scalar.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                            a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                            beta: accumulate ? 1 : 0, c: cp.baseAddress!, ldc: n)
            } }
        }
    }

    /// Matrix product of the last two dimensions, batched over the leading ones with broadcasting
    /// (a batch dimension of size 1 is reused). 2-D operands reduce to `matmul`.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false,
                                     transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "batchedMatmul: operands need two or more dimensions, got \(a.shape) and \(b.shape)")
        if a.rank == 2 && b.rank == 2 { return matmul(a, b, transposeA: transposeA, transposeB: transposeB) }
        let ar = a.shape.suffix(2), br = b.shape.suffix(2)
        let (ra, ca) = (ar.first!, ar.last!), (rb, cb) = (br.first!, br.last!)
        let m = transposeA ? ca : ra, k = transposeA ? ra : ca
        let kb = transposeB ? cb : rb, n = transposeB ? rb : cb
        precondition(k == kb, "batchedMatmul: inner dimensions differ: \(a.shape) × \(b.shape)")
        let batchShape = broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)))
        let batch = batchShape.reduce(1, *)
        let aStrides = broadcastStrides(of: Array(a.shape.dropLast(2)), to: batchShape)
        let bStrides = broadcastStrides(of: Array(b.shape.dropLast(2)), to: batchShape)
        let batchStrides = Tensor.strides(for: batchShape)
        return Tensor(shape: batchShape + [m, n]) { out in
            guard m > 0 && n > 0 else { return }
            if k == 0 { out.initialize(repeating: 0); return }
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                for t in 0..<batch {
                    var ia = 0, ib = 0, rem = t
                    for d in 0..<batchShape.count {
                        let idx = rem / batchStrides[d]
                        rem -= idx * batchStrides[d]
                        ia += idx * aStrides[d]
                        ib += idx * bStrides[d]
                    }
                    Scalar.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                                a: ap.baseAddress! + ia * ra * ca, lda: ca,
                                b: bp.baseAddress! + ib * rb * cb, ldb: cb,
                                beta: 0, c: out.baseAddress! + t * m * n, ldc: n)
                }
            } }
        }
    }

    /// Matrix–vector product `op(a)·x` through BLAS gemv.
    public static func matvec(_ a: Tensor, _ x: Tensor, transposeA: Bool = false) -> Tensor {
        precondition(a.rank == 2 && x.rank == 1, "matvec: expected a matrix and a vector, got \(a.shape) and \(x.shape)")
        let rows = transposeA ? a.shape[1] : a.shape[0], cols = transposeA ? a.shape[0] : a.shape[1]
        precondition(cols == x.shape[0], "matvec: \(a.shape)\(transposeA ? "ᵀ" : "") cannot multiply a vector of \(x.shape[0])")
        return Tensor(shape: [rows]) { out in
            guard rows > 0 else { return }
            if cols == 0 { out.initialize(repeating: 0); return }
            a.withUnsafeBufferPointer { ap in x.withUnsafeBufferPointer { xp in
                Scalar.gemv(transpose: transposeA, m: a.shape[0], n: a.shape[1], alpha: 1, a: ap.baseAddress!,
                            lda: a.shape[1], x: xp.baseAddress!, beta: 0, y: out.baseAddress!)
            } }
        }
    }

    /// Inner product of two tensors of the same shape, ⟨a, b⟩ = Σ a_i b_i.
    public static func dot(_ a: Tensor, _ b: Tensor) -> Scalar {
        precondition(a.shape == b.shape, "dot: shapes \(a.shape) and \(b.shape) differ")
        guard a.scalarCount > 0 else { return 0 }
        return a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            Scalar.dot(n: ap.count, x: ap.baseAddress!, y: bp.baseAddress!)
        } }
    }
}

/// Matrix product of 2-D tensors (`Tensor.matmul`).
public func matmul<Scalar>(_ a: Tensor<Scalar>, _ b: Tensor<Scalar>, transposeA: Bool = false,
                           transposeB: Bool = false) -> Tensor<Scalar> {
    Tensor.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
}
