import Autodiff
import Testing
import TensorCore

@Suite struct PoolingGradientTests {
    static let windows: [(Pooling2D, String)] = [
        (Pooling2D(kernel: 2), "2x2 stride 2"),
        (Pooling2D(kernel: 3, stride: 2, padding: 1), "3x3 stride 2 pad 1"),
        (Pooling2D(kernel: 3, stride: 1), "3x3 overlapping"),
        (Pooling2D(kernelHeight: 2, kernelWidth: 3, strideHeight: 1, strideWidth: 2, paddingTop: 1, paddingBottom: 0,
                   paddingLeft: 0, paddingRight: 2), "asymmetric"),
    ]

    @Test(arguments: windows)
    func maxPoolGradients(_ entry: (Pooling2D, String)) {
        let x = distinctValues([2, 5, 6, 3], seed: 150)
        expectGradientsMatch([x], "maxPool \(entry.1)") { maxPool2D($0[0], params: entry.0) }
    }

    @Test(arguments: windows)
    func avgPoolGradients(_ entry: (Pooling2D, String)) {
        let x = randn([2, 5, 6, 3], seed: 151)
        for includePadding in [true, false] {
            expectGradientsMatch([x], "avgPool \(entry.1) includePadding \(includePadding)") {
                avgPool2D($0[0], params: entry.0, countIncludesPadding: includePadding)
            }
        }
    }

    @Test func globalAveragePool() {
        let x = randn([2, 3, 4, 5], seed: 152)
        expectGradientsMatch([x], "global average pool") { globalAvgPool2D($0[0]).squared() }
        let y = globalAvgPool2D(Variable(constant: x)).value
        #expect(y.isApproximatelyEqual(to: x.mean(axes: [1, 2]), relativeTolerance: 1e-14, absoluteTolerance: 1e-15))
    }

    /// The Float path (oneDNN where available, indices kept by the kernel) matches the Double reference.
    @Test func floatPoolingMatchesDouble() {
        let x = distinctValues([2, 6, 6, 8], seed: 158), g = randn([2, 3, 3, 8], seed: 159)
        let params = Pooling2D(kernel: 3, stride: 2, padding: 1)
        func run<S: TensorScalar>(_ type: S.Type, max: Bool) -> [Tensor<Double>] {
            let tape = Tape<S>()
            let v = tape.variable(x.converted())
            let y = max ? maxPool2D(v, params: params) : avgPool2D(v, params: params, countIncludesPadding: false)
            return [y.value.converted(), tape.gradients(of: y, seed: g.converted())[0]!.converted()]
        }
        for max in [true, false] {
            for (s, d) in zip(run(Float.self, max: max), run(Double.self, max: max)) {
                #expect(s.relativeError(to: d) <= 1e-6, "pooling max \(max): Float and Double differ")
            }
        }
    }

    /// A small CNN end to end: convolution, batch norm, ReLU, pooling, linear head, cross-entropy.
    @Test func smallNetworkEndToEnd() {
        let x = randn([2, 6, 6, 2], seed: 153), w = randn([3, 2, 3, 3], seed: 154) * 0.5
        let gamma = uniform([3], 0.5, 1.5, seed: 155), beta = randn([3], seed: 156), head = randn([3, 4], seed: 157)
        expectGradientsMatch([x, w, gamma, beta, head], "conv-bn-pool-linear-CE") { v in
            let h = conv2d(v[0], weight: v[1], params: Convolution2D(padding: 1))
            let n = batchNorm(h, scale: v[2], offset: v[3]).output.tanh()
            let pooled = globalAvgPool2D(avgPool2D(n, params: Pooling2D(kernel: 2)))
            return crossEntropy(logits: matmul(pooled, v[4]), labels: [1, 3], labelSmoothing: 0.1)
        }
    }
}
