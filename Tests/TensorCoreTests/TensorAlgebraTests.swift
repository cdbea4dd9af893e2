import Testing
import TensorCore

@Suite struct TensorAlgebraTests {
    @Test func unfoldFollowsRowMajorConventionAndFoldsBack() {
        var g = SeededGenerator(seed: 61)
        let shape = [3, 4, 2, 5]
        let x = Tensor<Double>.randomNormal(shape, generator: &g)
        for mode in 0..<4 {
            let u = x.unfolded(mode: mode)
            let rest = shape.indices.filter { $0 != mode }
            #expect(u.shape == [shape[mode], rest.reduce(1) { $0 * shape[$1] }])
            // Column index: remaining modes in increasing order, row-major (METHODS §0.1).
            for index in Naive.indices(shape) {
                let column = rest.reduce(0) { $0 * shape[$1] + index[$1] }
                if u[index[mode], column] != x[indices: index] { Issue.record("unfold mode \(mode) at \(index)"); break }
            }
            #expect(Tensor.folded(u, mode: mode, shape: shape) == x)
        }
    }

    @Test func modeProductMatchesUnfoldingIdentityAndNaive() {
        var g = SeededGenerator(seed: 62)
        let shape = [3, 4, 5]
        let x = Tensor<Double>.randomNormal(shape, generator: &g)
        for mode in 0..<3 {
            let u = Tensor<Double>.randomNormal([6, shape[mode]], generator: &g)
            let y = x.modeProduct(u, mode: mode)
            var newShape = shape
            newShape[mode] = 6
            #expect(y.shape == newShape)
            // (𝒳 ×_k U)_(k) = U X_(k)
            #expect(y.unfolded(mode: mode).isApproximatelyEqual(to: Tensor.matmul(u, x.unfolded(mode: mode)), relativeTolerance: 1e-12))
            // Naive sum on one entry per output.
            for index in Naive.indices(newShape).prefix(40) {
                var expected = 0.0
                for j in 0..<shape[mode] {
                    var source = index
                    source[mode] = j
                    expected += u[index[mode], j] * x[indices: source]
                }
                #expect(abs(y[indices: index] - expected) < 1e-12)
            }
            let ut = u.transposed
            #expect(x.modeProduct(ut, mode: mode, transposed: true).isApproximatelyEqual(to: y, relativeTolerance: 1e-14))
        }
        let factors = [(mode: 0, matrix: Tensor<Double>.randomNormal([2, 3], generator: &g)),
                       (mode: 2, matrix: Tensor<Double>.randomNormal([2, 5], generator: &g))]
        let sequential = x.modeProduct(factors[0].matrix, mode: 0).modeProduct(factors[1].matrix, mode: 2)
        #expect(x.multiModeProduct(factors).isApproximatelyEqual(to: sequential, relativeTolerance: 1e-12))
    }

    @Test func kroneckerKhatriRaoOuter() {
        var g = SeededGenerator(seed: 63)
        let a = Tensor<Double>.randomNormal([2, 3], generator: &g), b = Tensor<Double>.randomNormal([4, 5], generator: &g)
        let k = Tensor.kronecker(a, b)
        #expect(k.shape == [8, 15])
        for i1 in 0..<2 { for j1 in 0..<3 { for i2 in 0..<4 { for j2 in 0..<5 {
            #expect(k[i1 * 4 + i2, j1 * 5 + j2] == a[i1, j1] * b[i2, j2])
        } } } }
        // vec(A X B) = (A ⊗ Bᵀ) vec(X) in row-major vec.
        let x = Tensor<Double>.randomNormal([3, 4], generator: &g)
        let lhs = Tensor.matmul(Tensor.matmul(a, x), b).reshaped([-1])
        let rhs = Tensor.matvec(Tensor.kronecker(a, b.transposed), x.reshaped([-1]))
        #expect(lhs.isApproximatelyEqual(to: rhs, relativeTolerance: 1e-12))

        let c = Tensor<Double>.randomNormal([3, 2], generator: &g), d = Tensor<Double>.randomNormal([4, 2], generator: &g)
        let e = Tensor<Double>.randomNormal([2, 2], generator: &g)
        let kr = Tensor.khatriRao([c, d, e])
        #expect(kr.shape == [24, 2])
        for r in 0..<2 {
            let column = Tensor.kronecker(Tensor.kronecker(c.slice(axis: 1, r..<(r + 1)), d.slice(axis: 1, r..<(r + 1))),
                                          e.slice(axis: 1, r..<(r + 1)))
            #expect(kr.slice(axis: 1, r..<(r + 1)) == column)
        }
        let o = Tensor.outer(a, Tensor<Double>([1, 2]))
        #expect(o.shape == [2, 3, 2] && o[1, 2, 1] == 2 * a[1, 2])
        #expect(Tensor.hadamard(a, a) == a.squared())
    }
}
