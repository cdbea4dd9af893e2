// Tensor algebra in LowRank's row-major convention (METHODS §0.1).
//
// Mode-k unfolding X_(k) has J_k rows; its columns run over the remaining modes in increasing mode order,
// row-major (the last mode fastest). Kolda & Bader [68] order the columns column-major (the first remaining
// mode fastest); the two unfoldings differ only by a permutation of columns, so their singular values, left
// singular vectors and ranks are identical, and X_(k) = U X_(k) for mode products holds in both. TensorLy uses
// the same row-major convention as LowRank.

extension Tensor {
    /// Mode-k unfolding X_(k) ∈ ℝ^{J_k × ∏_{l≠k} J_l} (row-major column order; see the note above).
    public func unfolded(mode: Int) -> Tensor {
        let k = normalizeAxis(mode)
        let rest = shape.indices.filter { $0 != k }
        return permuted([k] + rest).reshaped([shape[k], rest.reduce(1) { $0 * shape[$1] }])
    }

    /// Inverse of `unfolded(mode:)`: rebuilds a tensor of `shape` from its mode-k unfolding.
    public static func folded(_ matrix: Tensor, mode: Int, shape: [Int]) -> Tensor {
        precondition(mode >= 0 && mode < shape.count, "folded: mode \(mode) out of range for shape \(shape)")
        let rest = shape.indices.filter { $0 != mode }
        precondition(matrix.shape == [shape[mode], rest.reduce(1) { $0 * shape[$1] }],
                     "folded: matrix \(matrix.shape) is not a mode-\(mode) unfolding of shape \(shape)")
        let moved = matrix.reshaped([shape[mode]] + rest.map { shape[$0] })
        var inverse = [Int](repeating: 0, count: shape.count)
        for (position, axis) in ([mode] + rest).enumerated() { inverse[axis] = position }
        return moved.permuted(inverse)
    }

    /// Mode-k product 𝒳 ×_k U for U ∈ ℝ^{P×J_k}: (𝒳 ×_k U)_(k) = U·X_(k).
    ///
    /// Runs as a strided batch of GEMMs over the leading modes (U·X[pre] for each leading index), with no
    /// permutation of 𝒳. With `transposed: true` it applies Uᵀ (U ∈ ℝ^{J_k×P}) without copying U.
    public func modeProduct(_ matrix: Tensor, mode: Int, transposed: Bool = false) -> Tensor {
        let k = normalizeAxis(mode)
        precondition(matrix.rank == 2, "modeProduct: expected a matrix, got shape \(matrix.shape)")
        let (p, j) = transposed ? (matrix.shape[1], matrix.shape[0]) : (matrix.shape[0], matrix.shape[1])
        precondition(j == shape[k], "modeProduct: matrix \(matrix.shape)\(transposed ? "ᵀ" : "") cannot act on mode \(k) of size \(shape[k]) (shape \(shape))")
        let pre = shape[..<k].reduce(1, *), post = shape[(k + 1)...].reduce(1, *)
        var newShape = shape
        newShape[k] = p
        if post == 1 {
            // X as (pre × J_k) times Uᵀ: one GEMM.
            return Tensor.matmul(reshaped([pre, j]), matrix, transposeB: !transposed).reshaped(newShape)
        }
        return Tensor.batchedMatmul(matrix.reshaped([1, matrix.shape[0], matrix.shape[1]]),
                                    reshaped([pre, j, post]), transposeA: transposed).reshaped(newShape)
    }

    /// 𝒳 ×_{k₁} U₁ ×_{k₂} U₂ ⋯ for the given (mode, matrix) pairs, applied from the mode whose product shrinks
    /// the tensor most.
    public func multiModeProduct(_ factors: [(mode: Int, matrix: Tensor)], transposed: Bool = false) -> Tensor {
        var result = self
        let ordered = factors.sorted { a, b in
            let ra = transposed ? a.matrix.shape[1] : a.matrix.shape[0], ca = transposed ? a.matrix.shape[0] : a.matrix.shape[1]
            let rb = transposed ? b.matrix.shape[1] : b.matrix.shape[0], cb = transposed ? b.matrix.shape[0] : b.matrix.shape[1]
            return Double(ra) / Double(Swift.max(ca, 1)) < Double(rb) / Double(Swift.max(cb, 1))
        }
        for (mode, matrix) in ordered { result = result.modeProduct(matrix, mode: mode, transposed: transposed) }
        return result
    }

    /// Kronecker product A ⊗ B of matrices: (A⊗B)[i₁·rows(B)+i₂, j₁·cols(B)+j₂] = A[i₁,j₁]·B[i₂,j₂].
    public static func kronecker(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "kronecker: expected matrices, got \(a.shape) and \(b.shape)")
        let (p, q) = (a.shape[0], a.shape[1]), (r, s) = (b.shape[0], b.shape[1])
        // Outer product (p,q,r,s) permuted to (p,r,q,s).
        return outer(a, b).permuted([0, 2, 1, 3]).reshaped([p * r, q * s])
    }

    /// Khatri–Rao (column-wise Kronecker) product of matrices with R columns each:
    /// column r of the result is a_r ⊗ b_r ⊗ ⋯ (the first matrix's row index slowest).
    public static func khatriRao(_ matrices: [Tensor]) -> Tensor {
        precondition(!matrices.isEmpty, "khatriRao: no matrices given")
        let r = matrices[0].shape.count == 2 ? matrices[0].shape[1] : -1
        for m in matrices {
            precondition(m.rank == 2 && m.shape[1] == r, "khatriRao: every matrix needs \(r) columns, got \(m.shape)")
        }
        var result = matrices[0]
        for next in matrices.dropFirst() {
            let rows = result.shape[0], nextRows = next.shape[0]
            result = (result.reshaped([rows, 1, r]) * next.reshaped([1, nextRows, r])).reshaped([rows * nextRows, r])
        }
        return result
    }

    /// Outer product 𝒜 ∘ ℬ of any two tensors: shape a.shape + b.shape.
    public static func outer(_ a: Tensor, _ b: Tensor) -> Tensor {
        let result = a.reshaped([a.scalarCount, 1]) * b.reshaped([1, b.scalarCount])
        return result.reshaped(a.shape + b.shape)
    }

    /// Hadamard (elementwise) product of two tensors of the same shape.
    public static func hadamard(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "hadamard: shapes \(a.shape) and \(b.shape) differ")
        return a * b
    }
}
