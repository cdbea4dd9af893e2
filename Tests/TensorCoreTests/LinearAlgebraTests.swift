import Testing
import Foundation
import TensorCore

/// Tolerances of the issue: relative error ≤ 1e-5 in Float, ≤ 1e-12 in Double.
private func tolerance<S: TensorScalar>(_: S.Type) -> S { S.self == Float.self ? 1e-5 : 1e-12 }

@Suite struct MatmulTests {
    @Test func matmulMatchesNaiveWithTransposes() {
        var g = SeededGenerator(seed: 41)
        for (m, k, n) in [(1, 1, 1), (3, 4, 5), (7, 1, 3), (16, 33, 9), (0, 3, 2), (3, 0, 2), (2, 3, 0)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor<Double>.randomNormal(ta ? [k, m] : [m, k], generator: &g)
                let b = Tensor<Double>.randomNormal(tb ? [n, k] : [k, n], generator: &g)
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                #expect(c.shape == [m, n])
                let ar = ta ? Naive.transpose(m == 0 ? [] : Naive.rows(a), columns: m) : Naive.rows(a)
                let br = tb ? Naive.transpose(Naive.rows(b), columns: k) : Naive.rows(b)
                if m > 0 && n > 0 {
                    let expected = Naive.matmul(k == 0 ? [[Double]](repeating: [], count: m) : ar,
                                                k == 0 ? [] : br)
                    let flat = expected.flatMap { $0.isEmpty ? [Double](repeating: 0, count: n) : $0 }
                    #expect(c.isApproximatelyEqual(to: Tensor(shape: [m, n], scalars: flat), relativeTolerance: 1e-12, absoluteTolerance: 1e-12))
                }
            }
        }
    }

    @Test func batchedMatmulBroadcastsBatches() {
        var g = SeededGenerator(seed: 42)
        let a = Tensor<Double>.randomNormal([2, 1, 3, 4], generator: &g)
        let b = Tensor<Double>.randomNormal([5, 4, 2], generator: &g)
        let c = Tensor.batchedMatmul(a, b)
        #expect(c.shape == [2, 5, 3, 2])
        for i in 0..<2 { for j in 0..<5 {
            let expected = Tensor.matmul(a.slice(axis: 0, start: i, count: 1).reshaped([3, 4]),
                                         b.slice(axis: 0, start: j, count: 1).reshaped([4, 2]))
            #expect(c.slice(axis: 0, start: i, count: 1).slice(axis: 1, start: j, count: 1).reshaped([3, 2]) == expected)
        } }
        let bt = Tensor.batchedMatmul(a, b.permuted([0, 2, 1]), transposeB: true)
        #expect(bt.isApproximatelyEqual(to: c, relativeTolerance: 1e-14))
        let v = Tensor<Double>.randomNormal([4], generator: &g)
        let m = Tensor<Double>.randomNormal([3, 4], generator: &g)
        #expect(Tensor.matvec(m, v).isApproximatelyEqual(to: Tensor.matmul(m, v.reshaped([4, 1])).reshaped([3]), relativeTolerance: 1e-14))
        #expect(abs(Tensor.dot(v, v) - v.squaredNorm()) < 1e-12)
    }
}

@Suite struct FactorizationTests {
    static let shapes = [[1, 1], [1, 7], [7, 1], [5, 5], [12, 5], [5, 12], [40, 33]]

    func checkSVD<S: TensorScalar>(_: S.Type) throws {
        var g = SeededGenerator(seed: 51)
        for shape in Self.shapes {
            let a = Tensor<S>.randomNormal(shape, generator: &g)
            let f = try a.svd()
            let k = Swift.min(shape[0], shape[1])
            #expect(f.u.shape == [shape[0], k] && f.s.shape == [k] && f.vt.shape == [k, shape[1]])
            #expect(f.reconstruct().relativeError(to: a) <= tolerance(S.self))
            #expect(Tensor.matmul(f.u, f.u, transposeA: true).relativeError(to: .identity(k)) <= tolerance(S.self))
            #expect(Tensor.matmul(f.vt, f.vt, transposeB: true).relativeError(to: .identity(k)) <= tolerance(S.self))
            let s = f.s.scalars
            #expect(zip(s, s.dropFirst()).allSatisfy { $0 >= $1 } && s.allSatisfy { $0 >= 0 })
            let valuesOnly = try a.singularValues()
            #expect(valuesOnly.relativeError(to: f.s) <= tolerance(S.self))
        }
        let empty = try Tensor<S>.zeros([0, 3]).svd()
        #expect(empty.s.shape == [0] && empty.u.shape == [0, 0] && empty.vt.shape == [0, 3])
    }

    @Test func svdReconstructsAndIsOrthogonal() throws {
        try checkSVD(Float.self)
        try checkSVD(Double.self)
    }

    /// Float matrices with min(m, n) ≥ 512 take the Double Gram-eigendecomposition route when σ_1/σ_k ≤ 10⁵: tall,
    /// wide, and an ill-conditioned one (κ = 10⁷, which must fall back to gesdd) all meet the Float tolerances, and
    /// the singular values equal the Double gesdd ones to 1e-5.
    @Test func largeFloatSVDMeetsTheFloatTolerances() throws {
        var g = SeededGenerator(seed: 52)
        let graded: Tensor<Float> = {
            let q1 = try! Tensor<Double>.randomNormal([520, 512], generator: &g).qr().q
            let q2 = try! Tensor<Double>.randomNormal([512, 512], generator: &g).qr().q
            let s = Tensor<Double>((0..<512).map { pow(10, -7 * Double($0) / 511) }).reshaped([1, 512])
            return Tensor.matmul(q1 * s, q2, transposeB: true).converted()
        }()
        for a in [Tensor<Float>.randomNormal([700, 512], generator: &g), Tensor<Float>.randomNormal([512, 600], generator: &g), graded] {
            let f = try a.svd()
            let k = Swift.min(a.shape[0], a.shape[1])
            #expect(f.reconstruct().relativeError(to: a) <= 1e-5)
            #expect(Tensor.matmul(f.u, f.u, transposeA: true).relativeError(to: .identity(k)) <= 1e-5)
            #expect(Tensor.matmul(f.vt, f.vt, transposeB: true).relativeError(to: .identity(k)) <= 1e-5)
            let reference = try a.converted(to: Double.self).singularValues()
            #expect(f.s.converted(to: Double.self).relativeError(to: reference) <= 1e-5)
        }
    }

    @Test func gramMatrixAndConversions() {
        var g = SeededGenerator(seed: 53)
        for shape in [[7, 4], [4, 7], [1, 3], [0, 2]] {
            let a = Tensor<Double>.randomNormal(shape, generator: &g)
            #expect(Tensor.gram(a).isApproximatelyEqual(to: Tensor.matmul(a, a, transposeA: true), relativeTolerance: 1e-14, absoluteTolerance: 1e-14))
            #expect(Tensor.gram(a, ofRows: true).isApproximatelyEqual(to: Tensor.matmul(a, a, transposeB: true), relativeTolerance: 1e-14, absoluteTolerance: 1e-14))
            let f: Tensor<Float> = a.converted()
            #expect(f.scalars == a.scalars.map { Float($0) })
            #expect(f.converted(to: Double.self).scalars == f.scalars.map { Double($0) })
            #expect(a.converted(to: Double.self) == a)
        }
    }

    @Test func svdRejectsNonFiniteInput() {
        var a = Tensor<Double>.ones([3, 3])
        a[1, 1] = .nan
        #expect(throws: TensorError.nonFinite(operation: "svd")) { try a.svd() }
        a[1, 1] = .infinity
        #expect(throws: TensorError.self) { try a.qr() }
        #expect(throws: TensorError.self) { try Tensor.solve(a, Tensor([1, 2, 3])) }
    }

    @Test func truncationRulesFollowTheirDefinitions() throws {
        // A matrix with known singular values 8, 4, 2, 1, 0.5.
        var g = SeededGenerator(seed: 52)
        let sigma: [Double] = [8, 4, 2, 1, 0.5]
        let q1 = try Tensor<Double>.randomNormal([9, 5], generator: &g).qr().q
        let q2 = try Tensor<Double>.randomNormal([7, 5], generator: &g).qr().q
        let a = Tensor.matmul(q1 * Tensor(sigma).reshaped([1, 5]), q2, transposeB: true)
        let total = sigma.reduce(0) { $0 + $1 * $1 }  // 85.25
        for r in 1...5 {
            let t = try a.truncatedSVD(.rank(r))
            let discarded = sigma[r...].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs((t.reconstruct() - a).frobeniusNorm() - discarded) <= 1e-12 * total.squareRoot())
        }
        // ε: smallest R with tail ≤ ε‖A‖. Tail after R=2 is √5.25 ≈ 2.291, ‖A‖ ≈ 9.233.
        #expect(try TruncationRule<Double>.relativeError(0.25).rank(for: sigma) == 2)
        #expect(try TruncationRule<Double>.relativeError(0.24).rank(for: sigma) == 3)
        #expect(try TruncationRule<Double>.relativeError(0).rank(for: sigma) == 5)
        // energy e: smallest R with Σ_{i≤R} σ² ≥ e·Σσ²: (64+16)/85.25 = 0.938.
        #expect(try TruncationRule<Double>.energy(0.938).rank(for: sigma) == 2)
        #expect(try TruncationRule<Double>.energy(0.94).rank(for: sigma) == 3)
        #expect(try TruncationRule<Double>.rank(9).rank(for: sigma) == 5)
        #expect(throws: TensorError.self) { try TruncationRule<Double>.rank(0).rank(for: sigma) }
        #expect(throws: TensorError.self) { try TruncationRule<Double>.relativeError(-1).rank(for: sigma) }
        #expect(throws: TensorError.self) { try TruncationRule<Double>.energy(1.5).rank(for: sigma) }
        #expect(try a.truncatedSVD(.relativeError(0.25)).rank == 2)
    }

    @Test func randomizedSVDIsNearOptimalOnDecayingSpectrum() throws {
        var g = SeededGenerator(seed: 53)
        let n = 300, rank = 20
        let q1 = try Tensor<Double>.randomNormal([n, n], generator: &g).qr().q
        let q2 = try Tensor<Double>.randomNormal([n, n], generator: &g).qr().q
        let sigma = Tensor<Double>((0..<n).map { Double.pow(0.85, Double($0)) })
        let a = Tensor.matmul(q1 * sigma.reshaped([1, n]), q2, transposeB: true)
        let optimal = sigma.scalars[rank...].reduce(0) { $0 + $1 * $1 }.squareRoot()
        let approx = try a.randomizedSVD(rank: rank, generator: &g)
        #expect(approx.rank == rank)
        let error = (approx.reconstruct() - a).frobeniusNorm()
        #expect(error <= 1.05 * optimal)
        let f = try Tensor<Float>.randomNormal([60, 40], generator: &g).randomizedSVD(rank: 5, oversampling: 5, generator: &g)
        #expect(Tensor.matmul(f.u, f.u, transposeA: true).relativeError(to: .identity(5)) < 1e-5)
    }

    func checkQRAndEigen<S: TensorScalar>(_: S.Type) throws {
        var g = SeededGenerator(seed: 54)
        for shape in Self.shapes {
            let a = Tensor<S>.randomNormal(shape, generator: &g)
            let (q, r) = try a.qr()
            let k = Swift.min(shape[0], shape[1])
            #expect(q.shape == [shape[0], k] && r.shape == [k, shape[1]])
            #expect(Tensor.matmul(q, r).relativeError(to: a) <= tolerance(S.self))
            #expect(Tensor.matmul(q, q, transposeA: true).relativeError(to: .identity(k)) <= tolerance(S.self))
            for i in 0..<k { for j in 0..<Swift.min(i, shape[1]) { #expect(r[i, j] == 0) } }
        }
        for n in [1, 4, 17] {
            let b = Tensor<S>.randomNormal([n, n], generator: &g)
            let sym = b + b.transposed
            let (values, vectors) = try sym.symmetricEigen()
            let rebuilt = Tensor.matmul(vectors * values.reshaped([1, n]), vectors, transposeB: true)
            #expect(rebuilt.relativeError(to: sym) <= tolerance(S.self))
            #expect(Tensor.matmul(vectors, vectors, transposeA: true).relativeError(to: .identity(n)) <= tolerance(S.self))
            let v = values.scalars
            #expect(zip(v, v.dropFirst()).allSatisfy { $0 <= $1 })
        }
    }

    @Test func qrAndSymmetricEigen() throws {
        try checkQRAndEigen(Float.self)
        try checkQRAndEigen(Double.self)
    }

    @Test func solveLeastSquaresPseudoInverseCholesky() throws {
        var g = SeededGenerator(seed: 55)
        let a = Tensor<Double>.randomNormal([6, 6], generator: &g)
        let x = Tensor<Double>.randomNormal([6, 2], generator: &g)
        let b = Tensor.matmul(a, x)
        #expect(try Tensor.solve(a, b).relativeError(to: x) < 1e-10)
        #expect(try Tensor.solve(a, b.slice(axis: 1, 0..<1).reshaped([6])).relativeError(to: x.slice(axis: 1, 0..<1).reshaped([6])) < 1e-10)
        var singular = a
        for j in 0..<6 { singular[5, j] = singular[4, j] }
        #expect(throws: TensorError.self) { try Tensor.solve(singular, b) }

        // Tall full-rank least squares equals the normal-equation solution (AᵀA)⁻¹Aᵀb.
        let tall = Tensor<Double>.randomNormal([20, 4], generator: &g)
        let rhs = Tensor<Double>.randomNormal([20, 3], generator: &g)
        let ls = try Tensor.leastSquares(tall, rhs)
        let normal = try Tensor.solve(Tensor.matmul(tall, tall, transposeA: true), Tensor.matmul(tall, rhs, transposeA: true))
        #expect(ls.relativeError(to: normal) < 1e-10)
        // Wide system: the minimum-norm solution satisfies A x = b exactly and equals A⁺b.
        let wide = Tensor<Double>.randomNormal([3, 8], generator: &g)
        let wb = Tensor<Double>.randomNormal([3], generator: &g)
        let wx = try Tensor.leastSquares(wide, wb)
        #expect(Tensor.matvec(wide, wx).relativeError(to: wb) < 1e-10)
        let pinv = try wide.pseudoInverse()
        #expect(Tensor.matvec(pinv, wb).relativeError(to: wx) < 1e-10)
        // Penrose conditions on a rank-deficient matrix.
        let deficient = Tensor.matmul(Tensor<Double>.randomNormal([7, 2], generator: &g), Tensor<Double>.randomNormal([2, 5], generator: &g))
        let p = try deficient.pseudoInverse()
        #expect(Tensor.matmul(Tensor.matmul(deficient, p), deficient).relativeError(to: deficient) < 1e-10)
        #expect(Tensor.matmul(Tensor.matmul(p, deficient), p).relativeError(to: p) < 1e-10)

        let spd = Tensor.matmul(a, a, transposeB: true) + Tensor.identity(6)
        let l = try spd.cholesky()
        #expect(Tensor.matmul(l, l, transposeB: true).relativeError(to: spd) < 1e-12)
        for i in 0..<6 { for j in (i + 1)..<6 { #expect(l[i, j] == 0) } }
        #expect(throws: TensorError.notPositiveDefinite(minorOrder: 2)) {
            try Tensor<Double>(shape: [2, 2], scalars: [1, 2, 2, 1]).cholesky()
        }
    }

    @Test func errorMessagesSayWhatToDo() {
        #expect(TensorError.singularMatrix(pivot: 3).description.contains("leastSquares"))
        #expect(TensorError.nonFinite(operation: "svd").description.contains("NaN"))
    }
}
