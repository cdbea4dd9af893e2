import Autodiff
import Testing
import TensorCore

@Suite struct ReductionGradientTests {
    static let axisSets: [[Int]] = [[0], [1], [2], [0, 2], [-1], [0, 1, 2]]

    @Test(arguments: axisSets)
    func sumAndMeanAlongAxes(_ axes: [Int]) {
        let x = randn([2, 3, 4], seed: 80)
        for keep in [true, false] {
            expectGradientsMatch([x], "sum \(axes) keep \(keep)") { $0[0].sum(axes: axes, keepingDimensions: keep).squared() }
            expectGradientsMatch([x], "mean \(axes) keep \(keep)") { $0[0].mean(axes: axes, keepingDimensions: keep).exp() }
        }
    }

    @Test func sumAndMeanOfEverything() {
        let x = randn([3, 4], seed: 81)
        expectGradientsMatch([x], "sum") { ($0[0].sum() * $0[0]).squared() }
        expectGradientsMatch([x], "mean") { $0[0].exp().mean() }
        expectGradientsMatch([x], "variadic") { $0[0].sum(alongAxes: 1) * $0[0].mean(squeezingAxes: 0) }
        let tape = Tape<Double>()
        let v = tape.variable(x)
        let grads = tape.gradients(of: v.mean())
        #expect(grads[0] == Tensor.filled([3, 4], with: 1.0 / 12))
        #expect(v.mean().value.scalar == x.mean())
    }

    @Test(arguments: [0, 1, 2])
    func maxAlongAxis(_ axis: Int) {
        let x = distinctValues([3, 4, 5], seed: 82)
        for keep in [true, false] {
            expectGradientsMatch([x], "max axis \(axis) keep \(keep)") { $0[0].max(axis: axis, keepingDimensions: keep).squared() }
        }
    }

    @Test func maxGradientGoesToTheArgmax() {
        let x = Tensor<Double>(shape: [2, 3], scalars: [1, 5, 2, 7, 3, 7])
        let tape = Tape<Double>()
        let v = tape.variable(x)
        let y = v.max(axis: 1)
        #expect(y.value.scalars == [5, 7])
        let grads = tape.gradients(of: y, seed: Tensor([10, 20]))
        // Row 0: argmax 1. Row 1: tie between 0 and 2, the first one wins.
        #expect(grads[0]?.scalars == [0, 10, 0, 20, 0, 0])
    }
}
