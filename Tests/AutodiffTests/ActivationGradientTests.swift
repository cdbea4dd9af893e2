import Autodiff
import Testing
import TensorCore

@Suite struct ActivationGradientTests {
    @Test func pointwiseActivations() {
        let x = awayFromZero([3, 5], seed: 90)
        expectGradientsMatch([x], "relu") { $0[0].relu() }
        expectGradientsMatch([x], "gelu exact") { $0[0].gelu() }
        expectGradientsMatch([x], "gelu tanh") { $0[0].gelu(approximation: .tanh) }
        expectGradientsMatch([x], "tanh") { $0[0].tanh() }
        expectGradientsMatch([x], "sigmoid") { $0[0].sigmoid() }
        let large = x * 20
        expectGradientsMatch([large], "sigmoid large") { $0[0].sigmoid() }
    }

    @Test func activationValues() {
        let x = Tensor<Double>([-3, -0.5, 0, 0.5, 3])
        let v = Variable(constant: x)
        #expect(v.relu().value.scalars == [0, 0, 0, 0.5, 3])
        // GELU(x) − GELU(−x) = x for both forms (Φ(x) + Φ(−x) = 1; tanh is odd), and GELU(0) = 0.
        for approximation in [GELUApproximation.none, .tanh] {
            let y = v.gelu(approximation: approximation).value, yNeg = Variable(constant: -x).gelu(approximation: approximation).value
            #expect((y - yNeg).isApproximatelyEqual(to: x, relativeTolerance: 1e-15, absoluteTolerance: 1e-15))
            #expect(y[2] == 0)
        }
        // Exact GELU at 1: Φ(1) = ½(1 + erf(1/√2)).
        let one = Variable(constant: Tensor<Double>([1])).gelu().value.scalar
        #expect(Swift.abs(one - 0.5 * (1 + Double.erf(1 / 2.0.squareRoot()))) <= 1e-15)
        // σ(x) + σ(−x) = 1, and σ stays finite for huge |x|.
        let s = Variable(constant: Tensor<Double>([-800, -1, 0, 1, 800])).sigmoid().value.scalars
        #expect(s[0] == 0 && s[4] == 1 && s[2] == 0.5 && Swift.abs(s[1] + s[3] - 1) <= 4 * Double.ulpOfOne)
    }

    @Test(arguments: [0, 1, 2, -1])
    func softmaxAndLogSoftmaxAlongAxis(_ axis: Int) {
        let x = randn([2, 3, 4], seed: 91)
        expectGradientsMatch([x], "softmax axis \(axis)") { $0[0].softmax(axis: axis) }
        expectGradientsMatch([x], "logSoftmax axis \(axis)") { $0[0].logSoftmax(axis: axis) }
    }

    @Test func softmaxIsStableAndNormalized() {
        // Shifting the logits by a constant changes nothing, even by 1000 (exp(1000) overflows).
        let x = randn([4, 6], seed: 92)
        let shifted = Variable(constant: x + 1000)
        let p = Variable(constant: x).softmax().value, q = shifted.softmax().value
        #expect(q.isFinite && p.isApproximatelyEqual(to: q, relativeTolerance: 1e-12))
        let rowSums = p.sum(axes: [1], keepingDimensions: false)
        #expect(rowSums.isApproximatelyEqual(to: .ones([4]), relativeTolerance: 1e-15))
        let logP = shifted.logSoftmax().value
        #expect(logP.isFinite && logP.exp().isApproximatelyEqual(to: p, relativeTolerance: 1e-12))
        // Gradients at huge logits stay finite and still match finite differences.
        expectGradientsMatch([x * 50], "logSoftmax large") { $0[0].logSoftmax() }
    }
}
