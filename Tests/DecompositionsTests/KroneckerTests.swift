import Testing
import TensorCore
import Decompositions

/// ℛ(W)[(i1,o1),(i2,o2)] = W[(i1,i2),(o1,o2)] by explicit loops (independent of the library's reshapes).
private func loopRearrangement(_ w: Tensor<Double>, i1: Int, o1: Int) -> Tensor<Double> {
    let i2 = w.shape[0] / i1, o2 = w.shape[1] / o1
    var r = Tensor<Double>.zeros([i1 * o1, i2 * o2])
    for a in 0..<i1 { for b in 0..<o1 { for c in 0..<i2 { for e in 0..<o2 {
        r.withUnsafeMutableBufferPointer { $0[(a * o1 + b) * (i2 * o2) + c * o2 + e] = w[a * i2 + c, b * o2 + e] }
    } } } }
    return r
}

/// The 4-D rearrangement of [36] by explicit loops: rows (f1,c1,h1,w1), columns (f2,c2,h2,w2).
private func loopRearrangement4(_ k: Tensor<Double>, left: [Int]) -> Tensor<Double> {
    let right = zip(k.shape, left).map { $0 / $1 }
    let rows = left.reduce(1, *), cols = right.reduce(1, *)
    var r = Tensor<Double>.zeros([rows, cols])
    let ls = Tensor<Double>.strides(for: left), rs = Tensor<Double>.strides(for: right)
    for row in 0..<rows {
        let a = (0..<4).map { (row / ls[$0]) % left[$0] }
        for col in 0..<cols {
            let b = (0..<4).map { (col / rs[$0]) % right[$0] }
            let v = k[indices: (0..<4).map { a[$0] * right[$0] + b[$0] }]
            r.withUnsafeMutableBufferPointer { $0[row * cols + col] = v }
        }
    }
    return r
}

private func tail(_ s: [Double], from r: Int) -> Double { s.dropFirst(r).reduce(0) { $0 + $1 * $1 }.squareRoot() }

@Suite("KroneckerTests")
struct KroneckerTests {
    @Test func rearrangementAndReconstructionFollowTheDefinitions() throws {
        let w = Tensor<Double>.randomNormal([6, 12], seed: 1)
        let r = try KroneckerDecomposition.rearrangement(of: w, leftShape: [3, 4])
        #expect(r == loopRearrangement(w, i1: 3, o1: 4))
        let kpd = try KroneckerDecomposition.decompose(w, leftShape: [3, 4], target: .ranks([3]))
        var sum = Tensor<Double>.zeros([6, 12])
        for t in 0..<3 { sum += Tensor.kronecker(kpd.leftFactor(t), kpd.rightFactor(t)) }
        #expect(kpd.reconstruct().relativeError(to: sum) <= 1e-13)
        #expect(kpd.leftFactor(0).shape == [3, 4] && kpd.rightFactor(0).shape == [2, 3])
        #expect(kpd.parameterCount == 3 * (12 + 6))
    }

    @Test func exactRecoveryOfAKroneckerSum() throws {
        var g = SeededGenerator(seed: 2)
        var w = Tensor<Double>.zeros([12, 10])
        for _ in 0..<3 {
            w += Tensor.kronecker(Tensor<Double>.randomNormal([4, 2], generator: &g), Tensor<Double>.randomNormal([3, 5], generator: &g))
        }
        let kpd = try KroneckerDecomposition.decompose(w, leftShape: [4, 2], target: .ranks([3]))
        #expect(kpd.relativeError(to: w) <= 1e-10)
        let eps = try KroneckerDecomposition.decompose(w, leftShape: [4, 2], target: .relativeError(1e-12))
        #expect(eps.ranks == [3])
        let wf = w.converted(to: Float.self)
        let kpdf = try KroneckerDecomposition.decompose(wf, leftShape: [4, 2], target: .ranks([3]))
        #expect(kpdf.relativeError(to: wf) <= 1e-4)
    }

    @Test func errorEqualsDiscardedSingularValues() throws {
        let w = Tensor<Double>.randomNormal([8, 9], seed: 3)
        let s = try loopRearrangement(w, i1: 4, o1: 3).singularValues().scalars  // 12 × 6
        for r in 1...6 {
            let kpd = try KroneckerDecomposition.decompose(w, leftShape: [4, 3], target: .ranks([r]))
            let err = (kpd.reconstruct() - w).frobeniusNorm()
            #expect(Swift.abs(err - tail(s, from: r)) <= 1e-10 * w.frobeniusNorm(), "R = \(r)")
        }
        // ε is exact: the smallest R whose optimal error is ≤ ε‖W‖.
        for eps in [0.9, 0.6, 0.3, 0.1] {
            let kpd = try KroneckerDecomposition.decompose(w, leftShape: [4, 3], target: .relativeError(eps))
            let r = kpd.ranks[0]
            #expect(kpd.relativeError(to: w) <= eps)
            #expect(r == 1 || tail(s, from: r - 1) > eps * w.frobeniusNorm())
        }
    }

    @Test func compressionRatioAndClamping() throws {
        let w = Tensor<Double>.randomNormal([16, 16], seed: 4)
        let kpd = try KroneckerDecomposition.decompose(w, leftShape: [4, 4], target: .compressionRatio(4))
        let r = kpd.ranks[0]
        #expect(r * 32 <= 64 && (r + 1) * 32 > 64)
        // Ranks above min(I1·O1, I2·O2) are clamped; the full rank is exact.
        let full = try KroneckerDecomposition.decompose(w, leftShape: [4, 4], target: .ranks([100]))
        #expect(full.ranks == [16])
        #expect(full.relativeError(to: w) <= 1e-12)
    }

    @Test func edgeCases() throws {
        // Size-1 factors: A_r is 1×1, so W = a·B is exactly one term.
        let w = Tensor<Double>.randomNormal([3, 4], seed: 5)
        let trivial = try KroneckerDecomposition.decompose(w, leftShape: [1, 1], target: .ranks([1]))
        #expect(trivial.relativeError(to: w) <= 1e-14)
        // Rank 1 of a single Kronecker product.
        let a = Tensor<Double>.randomNormal([2, 3], seed: 6), b = Tensor<Double>.randomNormal([2, 2], seed: 7)
        let one = try KroneckerDecomposition.decompose(Tensor.kronecker(a, b), leftShape: [2, 3], target: .ranks([1]))
        #expect(one.relativeError(to: Tensor.kronecker(a, b)) <= 1e-13)
        // Zero matrix: exact zeros, no NaN.
        let zero = try KroneckerDecomposition.decompose(Tensor<Double>.zeros([4, 4]), leftShape: [2, 2], target: .relativeError(0.1))
        #expect(zero.reconstruct().scalars.allSatisfy { $0 == 0 })
    }

    @Test func badInputThrowsActionableErrors() {
        let w = Tensor<Double>.randomNormal([12, 8], seed: 8)
        do {
            _ = try KroneckerDecomposition.decompose(w, leftShape: [5, 2], target: .ranks([1]))
            Issue.record("a non-dividing factorization was accepted")
        } catch let DecompositionError.shapeMismatch(_, problem) {
            #expect(problem.contains("I = 12") && problem.contains("(3, 4)") && problem.contains("(12, 1)"))
        } catch { Issue.record("unexpected \(error)") }
        var bad = w
        bad.withUnsafeMutableBufferPointer { $0[0] = .infinity }
        #expect(throws: DecompositionError.nonFiniteInput(format: "kpd")) { try KroneckerDecomposition.decompose(bad, leftShape: [3, 2], target: .ranks([1])) }
        #expect(throws: DecompositionError.self) { try KroneckerDecomposition.decompose(w, leftShape: [3, 2], target: .ranks([0])) }
        #expect(throws: DecompositionError.self) { try KroneckerDecomposition.decompose(w, leftShape: [3, 2], target: .ranks([1, 2])) }
        #expect(throws: DecompositionError.self) { try KroneckerDecomposition.decompose(w, leftShape: [3, 2], target: .relativeError(-0.5)) }
        #expect(throws: DecompositionError.self) { try KroneckerDecomposition.decompose(w, leftShape: [3], target: .ranks([1])) }
        #expect(throws: DecompositionError.self) {
            try KroneckerDecomposition.decompose(Tensor<Double>.zeros([2, 2, 2]), leftShape: [1, 1], target: .ranks([1]))
        }
    }

    // MARK: GKPD

    @Test func generalizedKroneckerProductFollowsTheDefinition() {
        let a = Tensor<Double>.randomNormal([2, 3, 1, 2], seed: 9), b = Tensor<Double>.randomNormal([3, 1, 2, 2], seed: 10)
        let k = Tensor.generalizedKronecker(a, b)
        #expect(k.shape == [6, 3, 2, 4])
        for f1 in 0..<2 { for c1 in 0..<3 { for w1 in 0..<2 { for f2 in 0..<3 { for h2 in 0..<2 { for w2 in 0..<2 {
            #expect(k[f1 * 3 + f2, c1, h2, w1 * 2 + w2] == a[f1, c1, 0, w1] * b[f2, 0, h2, w2])
        } } } } } }
        // For matrices it is the ordinary Kronecker product.
        let m = Tensor<Double>.randomNormal([2, 3], seed: 11), n = Tensor<Double>.randomNormal([4, 2], seed: 12)
        #expect(Tensor.generalizedKronecker(m, n) == Tensor.kronecker(m, n))
    }

    @Test func gkpdExactRecoveryAndOptimalError() throws {
        let left = [2, 2, 3, 1], right = [3, 2, 1, 3]
        var g = SeededGenerator(seed: 13)
        var kernel = Tensor<Double>.zeros([6, 4, 3, 3])
        for _ in 0..<2 {
            kernel += Tensor.generalizedKronecker(Tensor<Double>.randomNormal(left, generator: &g), Tensor<Double>.randomNormal(right, generator: &g))
        }
        let gkpd = try GeneralizedKroneckerDecomposition.decompose(kernel, leftShape: left, target: .ranks([2]))
        #expect(gkpd.relativeError(to: kernel) <= 1e-10)
        var sum = Tensor<Double>.zeros(kernel.shape)
        for r in 0..<2 { sum += Tensor.generalizedKronecker(gkpd.leftFactor(r), gkpd.rightFactor(r)) }
        #expect(gkpd.reconstruct().relativeError(to: sum) <= 1e-13)
        #expect(gkpd.parameterCount == 2 * (12 + 18))
        let kf = kernel.converted(to: Float.self)
        #expect(try GeneralizedKroneckerDecomposition.decompose(kf, leftShape: left, target: .ranks([2])).relativeError(to: kf) <= 1e-4)

        // A generic kernel: the error equals the discarded singular values of the 4-D rearrangement.
        let random = Tensor<Double>.randomNormal([4, 6, 3, 3], seed: 14)
        let l2 = [2, 3, 3, 1]
        let s = try loopRearrangement4(random, left: l2).singularValues().scalars
        for r in [1, 3, 5] {
            let approx = try GeneralizedKroneckerDecomposition.decompose(random, leftShape: l2, target: .ranks([r]))
            let err = (approx.reconstruct() - random).frobeniusNorm()
            #expect(Swift.abs(err - tail(s, from: r)) <= 1e-10 * random.frobeniusNorm())
        }
        let eps = try GeneralizedKroneckerDecomposition.decompose(random, leftShape: l2, target: .relativeError(0.5))
        #expect(eps.relativeError(to: random) <= 0.5)
        #expect(eps.ranks[0] == 1 || tail(s, from: eps.ranks[0] - 1) > 0.5 * random.frobeniusNorm())
        // Storage R(18 + 12) ≤ 216/2 gives R = 3; R = 4 would not fit.
        let ratio = try GeneralizedKroneckerDecomposition.decompose(random, leftShape: l2, target: .compressionRatio(2))
        #expect(ratio.ranks == [3])
        #expect(Double(ratio.parameterCount) <= Double(random.scalarCount) / 2)
    }

    @Test func gkpdBadFactorizationListsValidPairs() {
        let kernel = Tensor<Double>.randomNormal([4, 6, 3, 3], seed: 15)
        do {
            _ = try GeneralizedKroneckerDecomposition.decompose(kernel, leftShape: [2, 4, 2, 3], target: .ranks([1]))
            Issue.record("a non-dividing factorization was accepted")
        } catch let DecompositionError.shapeMismatch(_, problem) {
            #expect(problem.contains("C = 6") && problem.contains("(2, 3)"))
            #expect(problem.contains("Kh = 3") && problem.contains("(1, 3), (3, 1)"))
            #expect(!problem.contains("Kw = 3"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: DecompositionError.self) {
            try GeneralizedKroneckerDecomposition.decompose(Tensor<Double>.zeros([4, 4]), leftShape: [2, 2], target: .ranks([1]))
        }
        #expect(throws: DecompositionError.self) {
            try GeneralizedKroneckerDecomposition.decompose(kernel, leftShape: [2, 3, 0, 3], target: .ranks([1]))
        }
        let zero = try? GeneralizedKroneckerDecomposition.decompose(Tensor<Double>.zeros([2, 2, 3, 3]), leftShape: [1, 2, 3, 1], target: .ranks([2]))
        #expect(zero?.reconstruct().scalars.allSatisfy { $0 == 0 } == true)
    }
}
