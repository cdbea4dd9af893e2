import Testing
import TensorCore

@Suite struct CreationTests {
    @Test func constructors() {
        #expect(Tensor<Double>.zeros([2, 3]).scalars == [Double](repeating: 0, count: 6))
        #expect(Tensor<Float>.ones([4]).sum() == 4)
        #expect(Tensor<Double>.filled([2], with: 7).scalars == [7, 7])
        let eye = Tensor<Double>.identity(3)
        for i in 0..<3 { for j in 0..<3 { #expect(eye[i, j] == (i == j ? 1 : 0)) } }
        #expect(Tensor<Double>.identity(2, columns: 3).shape == [2, 3])
        #expect(Tensor<Double>.linspace(from: -1, to: 1, count: 5).scalars == [-1, -0.5, 0, 0.5, 1])
        #expect(Tensor<Double>.linspace(from: 0, to: 1, count: 0).shape == [0])
        #expect(Tensor<Double>.arange(to: 5).scalars == [0, 1, 2, 3, 4])
        #expect(Tensor<Double>.arange(from: 1, to: 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
        #expect(Tensor<Double>.arange(from: 3, to: 0, step: -1).scalars == [3, 2, 1])
        #expect(Tensor<Double>(scalar: 3).rank == 0)
        #expect(Tensor<Double>.diagonal(Tensor([1, 2])).scalars == [1, 0, 0, 2])
    }

    @Test func generatorMatchesPublishedAlgorithm() {
        // Reference values from an independent Python implementation of SplitMix64 seeding + xoshiro256**.
        var g = SeededGenerator(seed: 42)
        #expect(g.next() == 0x1578_0b2e_0c2e_c716)
        #expect(g.next() == 0x6104_d986_6d11_3a7e)
        #expect(g.next() == 0xae17_5332_39e4_99a1)
    }

    @Test func seededRandomTensorsAreReproducibleAndDistributed() {
        let a = Tensor<Double>.randomNormal([200, 100], seed: 7)
        let b = Tensor<Double>.randomNormal([200, 100], seed: 7)
        #expect(a == b)
        #expect(a != Tensor<Double>.randomNormal([200, 100], seed: 8))
        // 20,000 standard normals: mean within 4σ/√n, variance within 4·√(2/n).
        let n = 20_000.0
        #expect(abs(a.mean()) < 4 / n.squareRoot())
        let variance = a.squaredNorm() / n - a.mean() * a.mean()
        #expect(abs(variance - 1) < 4 * (2 / n).squareRoot())
        let u = Tensor<Float>.randomUniform([10_000], low: -2, high: 3, seed: 1)
        #expect(u.min() >= -2 && u.max() < 3)
        #expect(abs(Double(u.mean()) - 0.5) < 4 * (25.0 / 12 / 10_000).squareRoot())
        var g = SeededGenerator(seed: 3)
        let p = g.permutation(50)
        #expect(p.sorted() == Array(0..<50))
    }

    @Test func copyOnWrite() {
        let a = Tensor<Double>.zeros([3])
        var b = a
        b[1] = 5
        #expect(a.scalars == [0, 0, 0])
        #expect(b.scalars == [0, 5, 0])
        #expect(a.converted(to: Float.self).shape == [3])
    }
}

@Suite struct ShapeTests {
    @Test func reshapeAndSqueeze() {
        let t = Tensor<Double>.arange(to: 24).reshaped([2, -1, 4])
        #expect(t.shape == [2, 3, 4])
        #expect(t[1, 2, 3] == 23)
        #expect(t.reshaped([1, 24, 1]).squeezed().shape == [24])
        #expect(t.reshaped([1, 24, 1]).squeezed(axes: [0]).shape == [24, 1])
        #expect(t.expandingShape(at: 1).shape == [2, 1, 3, 4])
        #expect(t.expandingShape(at: -1).shape == [2, 3, 4, 1])
        #expect(Tensor<Double>.zeros([0, 3]).reshaped([3, 0]).shape == [3, 0])
    }

    @Test func permuteMatchesNaiveOverManyShapes() {
        // Float copies from 16 K scalars go to oneDNN's reorder, the rest and every Double copy to the Swift kernel.
        checkPermutesAgainstNaive(Float.self)
        checkPermutesAgainstNaive(Double.self)
    }

    private func checkPermutesAgainstNaive<Scalar: TensorScalar>(_: Scalar.Type) {
        var g = SeededGenerator(seed: 11)
        for trial in 0..<120 {
            let rank = 1 + trial % 5
            let shape = randomShape(rank: rank, maxDim: trial % 3 == 0 ? 40 : 5, allowZero: true, generator: &g)
            // Keep the element count modest.
            guard shape.reduce(1, *) <= 200_000 else { continue }
            let x = Tensor<Scalar>.randomNormal(shape, generator: &g)
            let permutation = g.permutation(rank)
            let y = x.permuted(permutation)
            #expect(y.shape == permutation.map { shape[$0] })
            for index in Naive.indices(shape) {
                let outIndex = permutation.map { index[$0] }
                if y[indices: outIndex] != x[indices: index] {
                    Issue.record("permute \(Scalar.self) \(shape) by \(permutation) wrong at \(index)")
                    break
                }
            }
        }
    }

    @Test func permuteLargeTensorsUsesParallelPathCorrectly() {
        // Float: oneDNN's reorder; Double: the Swift kernel's multi-threaded split (≥ 2^18 elements).
        checkLargePermutes(Float.self)
        checkLargePermutes(Double.self)
    }

    private func checkLargePermutes<Scalar: TensorScalar>(_: Scalar.Type) {
        let x = Tensor<Scalar>.randomUniform([64, 48, 96], seed: 5)
        for permutation in [[2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1]] {
            let y = x.permuted(permutation)
            let shape = x.shape
            var g = SeededGenerator(seed: 9)
            for _ in 0..<2000 {
                let index = shape.map { g.nextInt(below: $0) }
                #expect(y[indices: permutation.map { index[$0] }] == x[indices: index])
            }
            #expect(y.permuted(inversePermutation(permutation)) == x)
        }
        // A short axis (3 wide) moved innermost, split across workers along axis 0 and along the rows; short rows
        // (4 wide) kept innermost with two axes swapped above them (the three-axis inner loop).
        let rows = Tensor<Scalar>.randomUniform([40, 30, 60, 4], seed: 8)
        let swapped = rows.permuted([0, 2, 1, 3])
        #expect(swapped[39, 17, 29, 3] == rows[39, 29, 17, 3])
        #expect(swapped.permuted([0, 2, 1, 3]) == rows)
        let short = Tensor<Scalar>.randomUniform([300, 3, 350], seed: 7)
        for permutation in [[0, 2, 1], [2, 0, 1]] {
            let y = short.permuted(permutation)
            #expect(y.permuted(inversePermutation(permutation)) == short)
            #expect(y[indices: permutation.map { [299, 2, 17][$0] }] == short[299, 2, 17])
        }
    }

    @Test func blockedTransposeCoversEdgeBlocks() {
        // Sizes beyond one 128×128 block and not multiples of the 16×16 tile.
        let x = Tensor<Float>.randomUniform([3, 300, 260], seed: 6)
        let y = x.permuted([0, 2, 1])
        for b in 0..<3 { for i in stride(from: 0, to: 300, by: 7) { for j in 0..<260 {
            if y[b, j, i] != x[b, i, j] { Issue.record("transpose wrong at \(b),\(i),\(j)"); return }
        } } }
        #expect(y.permuted([0, 2, 1]) == x)
    }

    private func inversePermutation(_ p: [Int]) -> [Int] {
        var inverse = [Int](repeating: 0, count: p.count)
        for (i, axis) in p.enumerated() { inverse[axis] = i }
        return inverse
    }

    @Test func sliceConcatenateStack() {
        let t = Tensor<Double>.arange(to: 24).reshaped([2, 3, 4])
        let s = t.slice(axis: 1, start: 1, count: 2)
        #expect(s.shape == [2, 2, 4])
        #expect(s[1, 0, 2] == t[1, 1, 2])
        #expect(t.slice(axis: -1, 1..<1).shape == [2, 3, 0])
        let parts = [t.slice(axis: 2, 0..<1), t.slice(axis: 2, 1..<3), t.slice(axis: 2, 3..<4)]
        #expect(Tensor.concatenate(parts, axis: 2) == t)
        #expect(Tensor.concatenate([t, Tensor<Double>.zeros([2, 0, 4])], axis: 1) == t)
        let stacked = Tensor.stack([t, t * 2], axis: 1)
        #expect(stacked.shape == [2, 2, 3, 4])
        #expect(stacked[1, 1, 2, 3] == 2 * t[1, 2, 3])
    }
}

@Suite struct ElementwiseTests {
    @Test func broadcastingMatchesNaive() {
        var g = SeededGenerator(seed: 21)
        for trial in 0..<60 {
            let rank = 1 + trial % 4
            let outShape = randomShape(rank: rank, maxDim: 5, allowZero: trial % 7 == 0, generator: &g)
            // Each operand keeps or collapses each axis, and may drop leading axes.
            func operandShape() -> [Int] {
                let drop = g.nextInt(below: rank)
                return outShape.dropFirst(drop).map { g.nextInt(below: 2) == 0 ? 1 : $0 }
            }
            let sa = operandShape(), sb = operandShape()
            let a = Tensor<Double>.randomNormal(sa, generator: &g), b = Tensor<Double>.randomNormal(sb, generator: &g)
            let expectedShape = Tensor<Double>.broadcastShape(sa, sb)
            for (op, f) in [("+", { (x: Double, y: Double) in x + y }), ("*", { $0 * $1 }), ("-", { $0 - $1 })] {
                let c: Tensor<Double> = op == "+" ? a + b : op == "*" ? a * b : a - b
                #expect(c.shape == expectedShape)
                for index in Naive.indices(expectedShape) {
                    let ia = Array(index.suffix(sa.count)).enumerated().map { sa[$0.offset] == 1 ? 0 : $0.element }
                    let ib = Array(index.suffix(sb.count)).enumerated().map { sb[$0.offset] == 1 ? 0 : $0.element }
                    if c[indices: index] != f(a[indices: ia], b[indices: ib]) {
                        Issue.record("\(sa) \(op) \(sb) wrong at \(index)")
                        break
                    }
                }
            }
        }
    }

    @Test func scalarOpsAndMath() {
        let x = Tensor<Double>([-2, -0.5, 0, 1, 3])
        #expect((x * 2 + 1).scalars == [-3, 0, 1, 3, 7])
        #expect((1 - x).scalars == [3, 1.5, 1, 0, -2])
        #expect(x.relu().scalars == [0, 0, 0, 1, 3])
        #expect(x.abs().scalars == [2, 0.5, 0, 1, 3])
        #expect(x.clamped(to: -1, 1).scalars == [-1, -0.5, 0, 1, 1])
        #expect(x.exp().log().isApproximatelyEqual(to: x, relativeTolerance: 1e-14, absoluteTolerance: 1e-15))
        #expect(x.sigmoid().scalars.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(abs(x.sigmoid()[2] - 0.5) < 1e-15)
        #expect((x.sin().squared() + x.cos().squared()).isApproximatelyEqual(to: .ones([5]), relativeTolerance: 1e-14))
        #expect(x.tanh()[3] == Double.tanh(1))
        #expect(Tensor<Double>([4, 9]).sqrt().scalars == [2, 3])
        #expect(Tensor<Double>([2, 3]).pow(3).scalars == [8, 27])
        #expect(x.maximum(Tensor([0])).scalars == x.relu().scalars)
        #expect(!Tensor<Double>([1, .nan]).isFinite)
        var y = x
        y += Tensor([1])
        y.addScaled(x, by: -1)
        #expect(y.scalars == [1, 1, 1, 1, 1])
    }
}

@Suite struct ReductionTests {
    @Test func reductionsMatchNaive() {
        var g = SeededGenerator(seed: 31)
        for trial in 0..<40 {
            let rank = 1 + trial % 4
            let shape = randomShape(rank: rank, maxDim: 6, allowZero: false, generator: &g)
            let x = Tensor<Double>.randomNormal(shape, generator: &g)
            let axes = (0..<rank).filter { _ in g.nextInt(below: 2) == 0 }
            guard !axes.isEmpty else { continue }
            let kept = shape.indices.filter { !axes.contains($0) }
            let sum = x.sum(axes: axes, keepingDimensions: false)
            let maxima = x.max(axes: axes)
            let minima = x.min(axes: axes)
            #expect(sum.shape == kept.map { shape[$0] })
            #expect(x.sum(axes: axes, keepingDimensions: true).shape == shape.indices.map { axes.contains($0) ? 1 : shape[$0] })
            var expectedSum = [Double](repeating: 0, count: sum.scalarCount)
            var expectedMax = [Double](repeating: -.infinity, count: sum.scalarCount)
            var expectedMin = [Double](repeating: .infinity, count: sum.scalarCount)
            let keptStrides = Tensor<Double>.strides(for: kept.map { shape[$0] })
            for index in Naive.indices(shape) {
                let o = kept.enumerated().reduce(0) { $0 + index[$1.element] * keptStrides[$1.offset] }
                expectedSum[o] += x[indices: index]
                expectedMax[o] = Swift.max(expectedMax[o], x[indices: index])
                expectedMin[o] = Swift.min(expectedMin[o], x[indices: index])
            }
            #expect(Tensor(shape: sum.shape, scalars: expectedSum).isApproximatelyEqual(to: sum, relativeTolerance: 1e-12, absoluteTolerance: 1e-12))
            #expect(maxima.scalars == expectedMax)
            #expect(minima.scalars == expectedMin)
            let count = Double(axes.reduce(1) { $0 * shape[$1] })
            #expect(x.mean(axes: axes).isApproximatelyEqual(to: sum / count, relativeTolerance: 1e-12, absoluteTolerance: 1e-12))
        }
    }

    @Test func fullReductionsNormsArgmax() {
        var g = SeededGenerator(seed: 2)
        for n in [0, 1, 15, 16, 17, 1000] {
            let x = Tensor<Double>.randomNormal([n], generator: &g)
            let naiveSum = x.scalars.reduce(0, +), naiveSquares = x.scalars.reduce(0) { $0 + $1 * $1 }
            #expect(abs(x.sum() - naiveSum) <= 1e-12 * Swift.max(1, abs(naiveSum)))
            #expect(abs(x.squaredNorm() - naiveSquares) <= 1e-12 * Swift.max(1, naiveSquares))
            #expect(abs(x.frobeniusNorm() - naiveSquares.squareRoot()) <= 1e-12 * Swift.max(1, naiveSquares))
        }
        let m = Tensor<Double>(shape: [2, 3], scalars: [1, 5, 5, -1, -3, -2])
        #expect(m.argmax(axis: 1) == [1, 0])
        #expect(m.argmax(axis: 0) == [0, 0, 0])
        #expect(m.max() == 5 && m.min() == -3)
        #expect(m.norm(axes: [1]).isApproximatelyEqual(to: Tensor([Double(51).squareRoot(), Double(14).squareRoot()]), relativeTolerance: 1e-15))
        #expect(Tensor<Double>([1, .nan]).max().isNaN)
        #expect(Tensor<Double>([3, 4]).relativeError(to: Tensor([3, 4])) == 0)
        #expect(Tensor<Double>([3, 4]).maxAbsoluteDifference(to: Tensor([3, 5])) == 1)
    }
}
