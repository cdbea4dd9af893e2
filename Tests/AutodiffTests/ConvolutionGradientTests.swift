import Autodiff
import Testing
import TensorCore

@Suite struct ConvolutionGradientTests {
    /// (input NHWC, weight OIHW, geometry): strided, padded (symmetric and not), dilated, grouped, depthwise, 1×1.
    static let cases: [([Int], [Int], Convolution2D, String)] = [
        ([2, 5, 5, 3], [4, 3, 3, 3], Convolution2D(), "3x3 valid"),
        ([2, 5, 6, 3], [4, 3, 3, 3], Convolution2D(stride: 2, padding: 1), "stride 2 pad 1"),
        ([1, 6, 5, 2], [3, 2, 3, 2], Convolution2D(strideHeight: 2, strideWidth: 1, paddingTop: 0, paddingBottom: 2,
                                                   paddingLeft: 1, paddingRight: 0), "asymmetric"),
        ([1, 7, 7, 2], [2, 2, 3, 3], Convolution2D(padding: 2, dilation: 2), "dilation 2"),
        ([2, 4, 4, 4], [6, 2, 3, 3], Convolution2D(padding: 1, groups: 2), "groups 2"),
        ([2, 5, 5, 3], [3, 1, 3, 3], Convolution2D(stride: 2, padding: 1, groups: 3), "depthwise"),
        ([2, 3, 4, 5], [4, 5, 1, 1], Convolution2D(), "1x1"),
    ]

    @Test(arguments: cases)
    func conv2dGradients(_ entry: ([Int], [Int], Convolution2D, String)) {
        let (inputShape, weightShape, params, label) = entry
        let x = randn(inputShape, seed: 140), w = randn(weightShape, seed: 141) * 0.5
        let b = randn([weightShape[0]], seed: 142)
        expectGradientsMatch([x, w, b], "conv2d \(label) with bias") { conv2d($0[0], weight: $0[1], bias: $0[2], params: params) }
        expectGradientsMatch([x, w], "conv2d \(label)") { conv2d($0[0], weight: $0[1], params: params) }
    }

    /// Only a recorded bias: its gradient is Σ_{n,h,w} g.
    @Test func biasOnlyGradient() {
        let x = Variable(constant: randn([2, 4, 4, 3], seed: 143)), w = Variable(constant: randn([5, 3, 3, 3], seed: 144))
        expectGradientsMatch([randn([5], seed: 145)], "bias only") { conv2d(x, weight: w, bias: $0[0], params: Convolution2D(padding: 1)) }
    }

    /// The Float path (oneDNN where available) has the gradients of the Double reference up to Float rounding.
    @Test func floatGradientsMatchDouble() {
        let params = Convolution2D(stride: 2, padding: 1, groups: 2)
        let x = randn([2, 6, 6, 4], seed: 146), w = randn([6, 2, 3, 3], seed: 147), b = randn([6], seed: 148)
        let g = randn([2, 3, 3, 6], seed: 149)
        func gradients<S: TensorScalar>(_ type: S.Type) -> [Tensor<Double>] {
            let tape = Tape<S>()
            let vx = tape.variable(x.converted()), vw = tape.variable(w.converted()), vb = tape.variable(b.converted())
            let y = conv2d(vx, weight: vw, bias: vb, params: params)
            let grads = tape.gradients(of: y, seed: g.converted())
            return [y.value.converted()] + (0..<3).map { grads[$0]!.converted() }
        }
        let single = gradients(Float.self), double = gradients(Double.self)
        for (s, d) in zip(single, double) {
            #expect(s.relativeError(to: d) <= 1e-5, "Float and Double convolution results differ")
        }
    }
}
