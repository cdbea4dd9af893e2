import Autodiff
import Testing
import TensorCore

@Suite struct BatchNormGradientTests {
    @Test(arguments: [[4, 3], [2, 3, 3, 4]])
    func trainingModeThroughTheStatistics(_ shape: [Int]) {
        let c = shape.last!
        let x = randn(shape, seed: 160) * 2 + 1, gamma = uniform([c], 0.5, 1.5, seed: 161), beta = randn([c], seed: 162)
        expectGradientsMatch([x, gamma, beta], "batchNorm train \(shape)") {
            batchNorm($0[0], scale: $0[1], offset: $0[2]).output
        }
    }

    @Test func trainingModeWithFusedReLU() throws {
        let x = randn([3, 2, 2, 4], seed: 163), gamma = uniform([4], 0.5, 1.5, seed: 164), beta = randn([4], seed: 165) * 0.3
        // The check needs every pre-activation at least 2h = 2e-3 from the ReLU kink.
        let pre = batchNorm(Variable(constant: x), scale: Variable(constant: gamma), offset: Variable(constant: beta)).output.value
        try #require(pre.abs().min() > 0.01)
        expectGradientsMatch([x, gamma, beta], "batchNorm train + ReLU") {
            batchNorm($0[0], scale: $0[1], offset: $0[2], applyingReLU: true).output
        }
    }

    /// The Float path (oneDNN where available) matches the Double reference, with and without fused ReLU.
    @Test(arguments: [false, true])
    func floatMatchesDouble(_ relu: Bool) {
        let x = randn([4, 3, 3, 6], seed: 173), gamma = uniform([6], 0.5, 1.5, seed: 174), beta = randn([6], seed: 175)
        let g = randn([4, 3, 3, 6], seed: 176)
        func run<S: TensorScalar>(_ type: S.Type) -> [Tensor<Double>] {
            let tape = Tape<S>()
            let vx = tape.variable(x.converted()), vg = tape.variable(gamma.converted()), vb = tape.variable(beta.converted())
            let y = batchNorm(vx, scale: vg, offset: vb, applyingReLU: relu).output
            let grads = tape.gradients(of: y, seed: g.converted())
            return [y.value.converted()] + (0..<3).map { grads[$0]!.converted() }
        }
        for (s, d) in zip(run(Float.self), run(Double.self)) {
            #expect(s.relativeError(to: d) <= 1e-5, "batch norm relu \(relu): Float and Double differ")
        }
    }

    @Test func trainingStatisticsAndNormalization() {
        let x = randn([6, 5], seed: 166) * 3 + 2
        let (y, stats) = batchNorm(Variable(constant: x), scale: Variable(constant: .ones([5])),
                                   offset: Variable(constant: .zeros([5])), epsilon: 0)
        #expect(stats.mean.isApproximatelyEqual(to: x.mean(axes: [0]), relativeTolerance: 1e-13))
        let variance = (x - x.mean(axes: [0], keepingDimensions: true)).squared().mean(axes: [0])
        #expect(stats.variance.isApproximatelyEqual(to: variance, relativeTolerance: 1e-12))
        #expect(stats.unbiasedVariance.isApproximatelyEqual(to: variance * (6.0 / 5), relativeTolerance: 1e-12))
        // With ε = 0, every channel of the output has mean 0 and biased variance 1.
        #expect(y.value.mean(axes: [0]).abs().max() <= 1e-14)
        #expect(y.value.squared().mean(axes: [0]).isApproximatelyEqual(to: .ones([5]), relativeTolerance: 1e-12))
    }

    @Test(arguments: [false, true])
    func inferenceModeUsesRunningStatistics(_ relu: Bool) throws {
        let x = randn([2, 3, 3, 4], seed: 167), gamma = uniform([4], 0.5, 1.5, seed: 168), beta = randn([4], seed: 172)
        let mean = randn([4], seed: 170), variance = uniform([4], 0.5, 2, seed: 171)
        let y = batchNormInference(Variable(constant: x), scale: Variable(constant: gamma), offset: Variable(constant: beta),
                                   runningMean: mean, runningVariance: variance, epsilon: 1e-3).value
        let expected = (x - mean) / (variance + 1e-3).sqrt() * gamma + beta
        #expect(y.isApproximatelyEqual(to: expected, relativeTolerance: 1e-13, absoluteTolerance: 1e-14))
        if relu { try #require(y.abs().min() > 0.01) }
        expectGradientsMatch([x, gamma, beta], "batchNorm inference relu \(relu)") {
            batchNormInference($0[0], scale: $0[1], offset: $0[2], runningMean: mean, runningVariance: variance,
                               epsilon: 1e-3, applyingReLU: relu)
        }
    }
}
