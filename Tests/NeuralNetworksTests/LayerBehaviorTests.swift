import Autodiff
import NeuralNetworks
import Testing
import TensorCore

/// Per-channel mean and biased variance of a channels-last tensor, computed directly from the definition.
private func channelStatistics(_ x: Tensor<Double>) -> (mean: [Double], variance: [Double], count: Int) {
    let channels = x.shape.last!, values = x.scalars, rows = values.count / channels
    var mean = [Double](repeating: 0, count: channels), variance = mean
    for r in 0..<rows { for c in 0..<channels { mean[c] += values[r * channels + c] / Double(rows) } }
    for r in 0..<rows {
        for c in 0..<channels {
            let d = values[r * channels + c] - mean[c]
            variance[c] += d * d / Double(rows)
        }
    }
    return (mean, variance, rows)
}

private func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct LayerBehaviorTests {
    @Test func batchNormRunningStatisticsFollowPyTorch() {
        let norm = BatchNorm<Double>(channels: 3)
        #expect(norm.namedParameters().map(\.name) == ["weight", "bias", "running_mean", "running_var"])
        #expect(norm.trainableParameterCount == 6 && norm.parameterCount == 12)
        var expectedMean = [0.0, 0, 0], expectedVariance = [1.0, 1, 1]
        for step in 0..<3 {
            let x = Tensor<Double>.randomNormal([4, 2, 2, 3], mean: Double(step), standardDeviation: 2, seed: UInt64(step))
            let y = norm(Variable(constant: x), mode: .training).value
            let (mean, variance, m) = channelStatistics(x)
            for c in 0..<3 {
                expectedMean[c] = 0.9 * expectedMean[c] + 0.1 * mean[c]
                expectedVariance[c] = 0.9 * expectedVariance[c] + 0.1 * variance[c] * Double(m) / Double(m - 1)
            }
            #expect(maxDifference(norm.runningMean.value.scalars, expectedMean) < 1e-12)
            #expect(maxDifference(norm.runningVariance.value.scalars, expectedVariance) < 1e-12)
            // Training output: per channel, mean 0 and biased variance 1/(1 + ε/σ²) (γ = 1, β = 0).
            let (outMean, outVariance, _) = channelStatistics(y)
            #expect(outMean.allSatisfy { abs($0) < 1e-12 })
            for c in 0..<3 { #expect(abs(outVariance[c] - variance[c] / (variance[c] + 1e-5)) < 1e-12) }
        }
        // Inference uses the running statistics and leaves them alone.
        norm.weight.value = Tensor([2, 1, 0.5])
        norm.bias.value = Tensor([0, -1, 1])
        let x = Tensor<Double>.randomNormal([2, 3, 3, 3], seed: 9)
        let y = norm(Variable(constant: x), mode: .inference).value
        let values = x.scalars, out = y.scalars
        for i in values.indices {
            let c = i % 3
            let expected = [2, 1, 0.5][c] * (values[i] - expectedMean[c]) / (expectedVariance[c] + 1e-5).squareRoot()
                + [0, -1, 1][c]
            #expect(abs(out[i] - expected) < 1e-12)
        }
        #expect(maxDifference(norm.runningMean.value.scalars, expectedMean) < 1e-12)
    }

    @Test func floatLayersAgreeWithDouble() {
        // The Float path (oneDNN) and the Double path (reference kernels) compute the same functions.
        var generator = SeededGenerator(seed: 5)
        let conv = Conv2D<Double>(inChannels: 3, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, generator: &generator)
        let convFloat = Conv2D<Float>(weight: conv.weight.value.converted(), bias: conv.bias!.value.converted(),
                                      params: conv.params)
        let x = Tensor<Double>.randomNormal([4, 9, 9, 3], seed: 6)
        let y = conv(Variable(constant: x), mode: .training).value
        let yFloat = convFloat(Variable(constant: x.converted(to: Float.self)), mode: .training).value
        #expect(yFloat.converted(to: Double.self).relativeError(to: y) < 1e-5)
        let norm = BatchNorm<Double>(channels: 8), normFloat = BatchNorm<Float>(channels: 8)
        let z = Sequential<Double>(norm, ReLU<Double>())(Variable(constant: y), mode: .training).value
        let zFloat = Sequential<Float>(normFloat, ReLU<Float>())(Variable(constant: yFloat), mode: .training).value
        #expect(zFloat.converted(to: Double.self).relativeError(to: z) < 1e-5)
        #expect(normFloat.runningVariance.value.converted(to: Double.self).relativeError(to: norm.runningVariance.value) < 1e-5)
        let pool = MaxPool2D<Double>(kernelSize: 2)(Variable(constant: z), mode: .training).value
        let poolFloat = MaxPool2D<Float>(kernelSize: 2)(Variable(constant: zFloat), mode: .training).value
        #expect(poolFloat.converted(to: Double.self).relativeError(to: pool) < 1e-5)
    }

    @Test func sequentialFusionIsTheSameFunction() {
        // BatchNorm + ReLU fused by Sequential equals BatchNorm then ReLU applied one after the other.
        let fused = BatchNorm<Double>(channels: 4), separate = BatchNorm<Double>(channels: 4)
        let x = Tensor<Double>.randomNormal([3, 2, 2, 4], seed: 3)
        let a = Sequential<Double>(fused, ReLU<Double>())(Variable(constant: x), mode: .training).value
        let b = separate(Variable(constant: x), mode: .training).value.relu()
        #expect(a.maxAbsoluteDifference(to: b) < 1e-12)
        #expect(fused.runningMean.value == separate.runningMean.value)
    }

    @Test func initializationMatchesItsDistribution() {
        // PyTorch's default: uniform on ±1/√fan-in, so every |w| ≤ b and Var(w) = b²/3.
        var generator = SeededGenerator(seed: 7)
        let linear = Linear<Double>(inputFeatures: 400, outputFeatures: 300, generator: &generator)
        let bound = 1 / 400.0.squareRoot()
        let w = linear.weight.value.scalars
        #expect(w.allSatisfy { abs($0) <= bound })
        #expect(linear.bias!.value.scalars.allSatisfy { abs($0) <= bound })
        // The sample variance of n = 120,000 uniforms has relative standard error √(0.8/n) ≈ 0.26%; allow 2%.
        let variance = w.reduce(0) { $0 + $1 * $1 } / Double(w.count)
        #expect(abs(variance / (bound * bound / 3) - 1) < 0.02)
        // Kaiming normal (fan-in, ReLU gain √2): σ² = 2/fan-in, fan-in = (C/groups)·KH·KW.
        let conv = Conv2D<Double>(inChannels: 64, outChannels: 256, kernelSize: 3, bias: false,
                                  initializer: .kaimingNormal(), generator: &generator)
        let c = conv.weight.value.scalars
        let convVariance = c.reduce(0) { $0 + $1 * $1 } / Double(c.count)
        #expect(abs(convVariance / (2.0 / 576) - 1) < 0.03)  // n = 147,456: relative s.e. √(2/n) ≈ 0.37%
        // Xavier uniform: bound √(6/(fan-in + fan-out)).
        #expect(Initializer.xavierUniform().scale(fanIn: 100, fanOut: 200) == (6.0 / 300).squareRoot())
        #expect(abs(Initializer.kaimingUniform(a: 5.0.squareRoot()).scale(fanIn: 49, fanOut: 1) - 1.0 / 7) < 1e-15)
        // Seeded: the same seed gives the same weights, in Float and Double up to rounding.
        var g1 = SeededGenerator(seed: 11), g2 = SeededGenerator(seed: 11), g3 = SeededGenerator(seed: 12)
        let a = Linear<Double>(inputFeatures: 8, outputFeatures: 4, generator: &g1)
        let b = Linear<Float>(inputFeatures: 8, outputFeatures: 4, generator: &g2)
        let d = Linear<Double>(inputFeatures: 8, outputFeatures: 4, generator: &g3)
        #expect(b.weight.value == a.weight.value.converted(to: Float.self))
        #expect(a.weight.value != d.weight.value)
    }

    @Test func dropoutMasksAreSeededAndUnbiased() {
        let dropout = Dropout<Double>(rate: 0.25, seed: 3)
        let x = Tensor<Double>(repeating: 2, shape: [100, 100])
        #expect(dropout(Variable(constant: x), mode: .inference).value == x)
        let y = dropout(Variable(constant: x), mode: .training).value.scalars
        // Kept values are scaled by 1/(1 − p); the zero fraction is ≈ p (s.e. √(p(1−p)/n) ≈ 0.43%).
        #expect(y.allSatisfy { $0 == 0 || $0 == 2 / 0.75 })
        let zeros = Double(y.filter { $0 == 0 }.count) / Double(y.count)
        #expect(abs(zeros - 0.25) < 0.02)
        dropout.reseed(42)
        let first = dropout(Variable(constant: x), mode: .training).value
        dropout.reseed(42)
        #expect(dropout(Variable(constant: x), mode: .training).value == first)
        // Inside a Sequential each stochastic child gets its own derived seed.
        let d1 = Dropout<Double>(rate: 0.5), d2 = Dropout<Double>(rate: 0.5)
        let model = Sequential<Double>(d1, d2)
        model.reseed(7)
        var c1 = d1.generator, c2 = d2.generator
        #expect(c1.next() != c2.next())
    }

    @Test func shapesAndMultiplyAddsMatchTheForwardPass() {
        var generator = SeededGenerator(seed: 13)
        let layers: [any ShapedLayer<Float>] = [
            Conv2D<Float>(inChannels: 3, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, generator: &generator),
            Conv2D<Float>(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 2, dilation: 2, groups: 8,
                          generator: &generator),
            MaxPool2D<Float>(kernelSize: 3, stride: 2, padding: 1),
            AvgPool2D<Float>(kernelSize: 2),
            GlobalAvgPool2D<Float>(),
            Linear<Float>(inputFeatures: 8, outputFeatures: 5, generator: &generator),
        ]
        var shape = [15, 13, 3]
        var x = Variable(constant: Tensor<Float>.randomNormal([2] + shape, seed: 1))
        for layer in layers {
            x = layer(x, mode: .inference)
            shape = layer.outputShape(forInput: shape)
            #expect(x.shape == [2] + shape, "\(layer.layerDescription)")
        }
        // Conv MACs = H'·W'·O·(C/groups)·KH·KW.
        #expect(layers[0].multiplyAdds(forInput: [15, 13, 3]) == 8 * 7 * 8 * 3 * 9)
        #expect(layers[1].multiplyAdds(forInput: [8, 7, 8]) == 8 * 7 * 8 * 1 * 9)
        #expect(layers[5].multiplyAdds(forInput: [8]) == 40)
    }

    @Test func sequentialNamesChildren() {
        var generator = SeededGenerator(seed: 17)
        let inner = Sequential<Float>(Linear<Float>(inputFeatures: 2, outputFeatures: 3, generator: &generator),
                                      ReLU<Float>(), BatchNorm<Float>(channels: 3))
        let outer = Sequential<Float>(named: [("features", inner),
                                              ("classifier", Linear<Float>(inputFeatures: 3, outputFeatures: 1, bias: false,
                                                                            generator: &generator))])
        #expect(outer.namedParameters().map(\.name) == [
            "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
            "features.2.running_mean", "features.2.running_var", "classifier.weight",
        ])
        #expect(outer.trainableParameterCount == 6 + 3 + 3 + 3 + 3)
        #expect(outer.layerSummaries(prefix: "", inputShape: [2]).map(\.name)
                == ["features.0", "features.1", "features.2", "classifier"])
    }
}
