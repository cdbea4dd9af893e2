import Autodiff
import Testing
import TensorCore

@Suite struct ArithmeticGradientTests {
    /// Shape pairs that broadcast in both directions, with added leading axes and size-1 axes on either side.
    static let broadcastPairs: [([Int], [Int])] = [
        ([3, 4], [3, 4]), ([3, 4], [4]), ([4], [3, 4]), ([3, 1, 4], [2, 4]), ([2, 1], [1, 3]),
        ([2, 3, 4], []), ([], [2, 3]), ([1, 3, 1], [2, 1, 5]),
    ]

    @Test(arguments: broadcastPairs)
    func binaryOperatorsBroadcast(_ shapes: ([Int], [Int])) {
        let a = randn(shapes.0, seed: 1), b = uniform(shapes.1, 0.5, 2, seed: 2)
        expectGradientsMatch([a, b], "+ \(shapes)") { $0[0] + $0[1] }
        expectGradientsMatch([a, b], "- \(shapes)") { $0[0] - $0[1] }
        expectGradientsMatch([a, b], "* \(shapes)") { $0[0] * $0[1] }
        expectGradientsMatch([a, b], "/ \(shapes)") { $0[0] / $0[1] }
        expectGradientsMatch([b, a], "/ reversed \(shapes)") { $0[1] / $0[0] }
    }

    @Test func scalarOperatorsAndNegation() {
        let x = uniform([2, 3], 0.5, 2, seed: 3)
        expectGradientsMatch([x], "x + 2") { $0[0] + 2 }
        expectGradientsMatch([x], "2 + x") { 2 + $0[0] }
        expectGradientsMatch([x], "x - 2") { $0[0] - 2 }
        expectGradientsMatch([x], "2 - x") { 2 - $0[0] }
        expectGradientsMatch([x], "x * 3") { $0[0] * 3 }
        expectGradientsMatch([x], "3 * x") { 3 * $0[0] }
        expectGradientsMatch([x], "x / 3") { $0[0] / 3 }
        expectGradientsMatch([x], "3 / x") { 3 / $0[0] }
        expectGradientsMatch([x], "-x") { -$0[0] }
    }

    @Test func elementaryFunctions() {
        let positive = uniform([3, 4], 0.5, 2, seed: 4)
        let signed = awayFromZero([3, 4], seed: 5)
        expectGradientsMatch([signed], "exp") { $0[0].exp() }
        expectGradientsMatch([positive], "log") { $0[0].log() }
        expectGradientsMatch([positive], "sqrt") { $0[0].sqrt() }
        expectGradientsMatch([signed], "squared") { $0[0].squared() }
        expectGradientsMatch([positive], "pow 2.5") { $0[0].pow(2.5) }
        expectGradientsMatch([signed], "pow 3 (negative bases)") { $0[0].pow(3) }
        expectGradientsMatch([awayFromZero([3, 4], margin: 0.5, seed: 5)], "pow -2") { $0[0].pow(-2) }
        expectGradientsMatch([signed], "abs") { $0[0].abs() }
    }

    @Test func integerPowerOfNegativeBaseIsExact() {
        let y = Variable(constant: Tensor<Double>([-2, 3])).pow(3)
        #expect(y.value.scalars == [-8, 27])
    }

    /// x·x + x uses x three times: the gradients must accumulate to exactly 2x + 1.
    @Test func reuseOfAValueAccumulates() {
        let x = randn([5], seed: 6)
        let tape = Tape<Double>()
        let v = tape.variable(x)
        let y = (v * v + v).sum()
        let gradient = tape.gradients(of: y)[0]
        #expect(gradient?.isApproximatelyEqual(to: x * 2 + 1, relativeTolerance: 1e-15, absoluteTolerance: 1e-15) == true)
        expectGradientsMatch([x], "x*x + x") { $0[0] * $0[0] + $0[0] }
        // A deeper diamond: u = exp(x), z = u·sin-free mix of u twice and x.
        expectGradientsMatch([x], "diamond") { v in
            let u = v[0].exp()
            return u * u / (v[0].squared() + 1) + u
        }
    }

    @Test func reduceToShapeSumsBroadcastAxes() {
        // g of shape [2, 3, 4] reduced to [3, 1]: sums over axis 0 and axis 2.
        let g = Tensor<Double>(shape: [2, 3, 4], scalars: (0..<24).map(Double.init))
        let reduced = reduceToShape(g, [3, 1])
        #expect(reduced.shape == [3, 1])
        for j in 0..<3 {
            var expected = 0.0
            for i in 0..<2 { for k in 0..<4 { expected += g[i, j, k] } }
            #expect(reduced[j, 0] == expected)
        }
        #expect(reduceToShape(g, [2, 3, 4]) == g)
        // Every pattern of reduced and kept axes (leading, trailing, both, interleaved, size-1 and empty axes)
        // agrees with summing the broadcast axes one by one.
        let cases: [([Int], [Int])] = [([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([2, 3, 4], [2, 1, 1]), ([2, 3, 4], [2, 1, 4]),
                                       ([2, 3, 4], [1, 3, 1]), ([2, 1, 4], [1, 1]), ([1, 3], [3]), ([2, 0, 3], [3]),
                                       ([2, 3, 4, 5], [3, 1, 5]), ([5, 4], [1, 1])]
        for (gradientShape, shape) in cases {
            let gradient = randn(gradientShape, seed: 7)
            let extra = gradientShape.count - shape.count
            let axes = gradientShape.indices.filter { $0 < extra || (shape[$0 - extra] == 1 && gradientShape[$0] != 1) }
            let expected = gradient.sum(axes: axes, keepingDimensions: true).reshaped(shape)
            #expect(reduceToShape(gradient, shape).isApproximatelyEqual(to: expected, relativeTolerance: 1e-13, absoluteTolerance: 1e-13),
                    "reduceToShape \(gradientShape) → \(shape)")
        }
        #expect(reduceToShape(g, []).scalar == g.sum())
    }
}
