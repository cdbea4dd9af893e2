import Testing
import TensorCore

let batchNormShapes: [[Int]] = [[4, 5, 3, 6], [2, 3, 3, 16], [7, 5], [3, 2, 2, 1]]

/// Per-channel mean and biased variance of a channels-last tensor, from the definition.
func naiveMoments(_ x: Tensor<Double>) -> (mean: [Double], variance: [Double]) {
    let c = x.shape.last!, rows = x.scalarCount / c
    let s = x.scalars
    let mean = (0..<c).map { k in (0..<rows).reduce(0) { $0 + s[$1 * c + k] } / Double(rows) }
    let variance = (0..<c).map { k in (0..<rows).reduce(0) { $0 + (s[$1 * c + k] - mean[k]) * (s[$1 * c + k] - mean[k]) } / Double(rows) }
    return (mean, variance)
}

@Suite struct BatchNormTests {
    @Test(arguments: batchNormShapes)
    func trainingForwardMatchesTheDefinition(_ shape: [Int]) {
        let c = shape.last!, rows = shape.reduce(1, *) / c
        let x = Tensor<Double>.randomNormal(shape, mean: 3, standardDeviation: 2, seed: 1)
        let gamma = Tensor<Double>.randomNormal([c], seed: 2), beta = Tensor<Double>.randomNormal([c], seed: 3)
        let eps = 1e-3
        let (y, stats) = batchNormTrainingForward(x, scale: gamma, offset: beta, epsilon: eps)
        let (mean, variance) = naiveMoments(x)
        #expect(stats.mean.relativeError(to: Tensor(mean)) < 1e-13)
        #expect(stats.variance.relativeError(to: Tensor(variance)) < 1e-12)
        #expect(stats.unbiasedVariance.relativeError(to: Tensor(variance.map { $0 * Double(rows) / Double(rows - 1) })) < 1e-12)
        #expect(stats.inverseStandardDeviation.relativeError(to: Tensor(variance.map { 1 / ($0 + eps).squareRoot() })) < 1e-12)
        var expected = x
        for r in 0..<rows { for k in 0..<c {
            let i = r * c + k
            expected.withUnsafeMutableBufferPointer {
                $0[i] = gamma[k] * ($0[i] - mean[k]) / (variance[k] + eps).squareRoot() + beta[k]
            }
        } }
        #expect(y.relativeError(to: expected) < 1e-12)
        let (yRelu, statsRelu) = batchNormTrainingForward(x, scale: gamma, offset: beta, epsilon: eps, applyingReLU: true)
        #expect(yRelu == expected.relu() || yRelu.relativeError(to: expected.relu()) < 1e-12)
        #expect(statsRelu.appliedReLU && !stats.appliedReLU)
    }

    @Test(arguments: batchNormShapes)
    func backwardMatchesFiniteDifferences(_ shape: [Int]) {
        let c = shape.last!
        let x = Tensor<Double>.randomNormal(shape, mean: 1, standardDeviation: 1.5, seed: 4)
        let gamma = Tensor<Double>.randomNormal([c], mean: 1, standardDeviation: 0.5, seed: 5)
        let beta = Tensor<Double>.randomNormal([c], seed: 6)
        let r = Tensor<Double>.randomNormal(shape, seed: 7)
        for relu in [false, true] {
            let (_, stats) = batchNormTrainingForward(x, scale: gamma, offset: beta, epsilon: 1e-5, applyingReLU: relu)
            let (dx, dGamma, dBeta) = batchNormBackward(r, input: x, scale: gamma, statistics: stats)
            func loss(_ x: Tensor<Double>, _ g: Tensor<Double>, _ b: Tensor<Double>) -> Double {
                Tensor.dot(batchNormTrainingForward(x, scale: g, offset: b, epsilon: 1e-5, applyingReLU: relu).output, r)
            }
            #expect(checkGradient(x, gradient: dx, samples: 16, seed: 8) { loss($0, gamma, beta) })
            #expect(checkGradient(gamma, gradient: dGamma, samples: min(c, 6), seed: 9) { loss(x, $0, beta) })
            #expect(checkGradient(beta, gradient: dBeta, samples: min(c, 6), seed: 10) { loss(x, gamma, $0) })
        }
    }

    @Test func inferenceUsesTheGivenStatistics() {
        let x = Tensor<Double>.randomNormal([3, 4, 4, 5], seed: 11)
        let gamma = Tensor<Double>.randomNormal([5], seed: 12), beta = Tensor<Double>.randomNormal([5], seed: 13)
        let mean = Tensor<Double>.randomNormal([5], seed: 14)
        let variance = Tensor<Double>.randomUniform([5], low: 0.5, high: 2, seed: 15)
        let y = batchNormInferenceForward(x, scale: gamma, offset: beta, runningMean: mean, runningVariance: variance,
                                          epsilon: 1e-3)
        let a = gamma / (variance + 1e-3).sqrt()
        let expected = (x - mean) * a + beta
        #expect(y.relativeError(to: expected) < 1e-13)
        let yRelu = batchNormInferenceForward(x, scale: gamma, offset: beta, runningMean: mean, runningVariance: variance,
                                              epsilon: 1e-3, applyingReLU: true)
        #expect(yRelu.relativeError(to: expected.relu()) < 1e-13)
    }

    /// oneDNN (Float) against the reference run in Double: relative error ≤ 1e-4 for the output, the statistics and
    /// the three gradients, with and without the fused ReLU.
    @Test(arguments: batchNormShapes)
    func oneDNNMatchesTheReference(_ shape: [Int]) {
        let c = shape.last!
        let x = Tensor<Float>.randomNormal(shape, mean: 0.5, standardDeviation: 2, seed: 16)
        let gamma = Tensor<Float>.randomNormal([c], mean: 1, standardDeviation: 0.3, seed: 17)
        let beta = Tensor<Float>.randomNormal([c], seed: 18)
        let dy = Tensor<Float>.randomNormal(shape, seed: 19)
        let d = { (t: Tensor<Float>) in t.converted(to: Double.self) }
        for relu in [false, true] {
            let (y, stats) = batchNormTrainingForward(x, scale: gamma, offset: beta, applyingReLU: relu, backend: .oneDNN)
            let (yRef, statsRef) = batchNormTrainingForward(d(x), scale: d(gamma), offset: d(beta), applyingReLU: relu)
            #expect(d(y).relativeError(to: yRef) <= 1e-4)
            #expect(d(stats.mean).relativeError(to: statsRef.mean) <= 1e-4)
            #expect(d(stats.variance).relativeError(to: statsRef.variance) <= 1e-4)
            #expect(d(stats.unbiasedVariance).relativeError(to: statsRef.unbiasedVariance) <= 1e-4)
            #expect(d(stats.inverseStandardDeviation).relativeError(to: statsRef.inverseStandardDeviation) <= 1e-4)
            let (dx, dg, db) = batchNormBackward(dy, input: x, scale: gamma, statistics: stats, backend: .oneDNN)
            let (dxRef, dgRef, dbRef) = batchNormBackward(d(dy), input: d(x), scale: d(gamma), statistics: statsRef)
            #expect(d(dx).relativeError(to: dxRef) <= 1e-4)
            #expect(d(dg).relativeError(to: dgRef) <= 1e-4)
            #expect(d(db).relativeError(to: dbRef) <= 1e-4)
        }
        let runningMean = Tensor<Float>.randomNormal([c], seed: 20)
        let runningVariance = Tensor<Float>.randomUniform([c], low: 0.5, high: 2, seed: 21)
        let yInf = batchNormInferenceForward(x, scale: gamma, offset: beta, runningMean: runningMean,
                                             runningVariance: runningVariance, backend: .oneDNN)
        let yInfRef = batchNormInferenceForward(d(x), scale: d(gamma), offset: d(beta), runningMean: d(runningMean),
                                                runningVariance: d(runningVariance))
        #expect(d(yInf).relativeError(to: yInfRef) <= 1e-4)
        // Every pass ran on oneDNN (a pass oneDNN cannot build or run falls back to the
        // reference and is listed as unsupported instead of cached).
        let rows = shape.reduce(1, *) / c
        for pass in ["forwardTraining", "forwardInference", "backward"] {
            #expect(OneDNN.cachedPrimitiveDescriptions.contains { $0.hasPrefix("batchNorm.\(pass) rows \(rows) channels \(c) ") })
        }
        #expect(OneDNN.unsupportedOperationDescriptions.isEmpty)
    }

    /// Data far from zero (mean 1000, standard deviation 1): storing x in Float already perturbs the normalized
    /// values by about |x|·2⁻²⁴/σ ≈ 6e-5, so both Float paths must stay within 1e-3 of the exact result.
    @Test func floatStatisticsStayAccurateForLargeMeans() {
        let x = Tensor<Float>.randomNormal([64, 6, 6, 4], mean: 1000, standardDeviation: 1, seed: 22)
        let gamma = Tensor<Float>.ones([4]), beta = Tensor<Float>.zeros([4])
        let (exact, _) = batchNormTrainingForward(x.converted(to: Double.self), scale: .ones([4]), offset: .zeros([4]))
        for backend in [ConvolutionBackend.oneDNN, .reference] {
            let (y, _) = batchNormTrainingForward(x, scale: gamma, offset: beta, backend: backend)
            #expect(y.converted(to: Double.self).relativeError(to: exact) <= 1e-3)
        }
    }

    @Test func reluBackwardMasksByTheOutput() {
        let x = Tensor<Double>.randomNormal([5, 7], seed: 23)
        let y = x.relu()
        let dy = Tensor<Double>.randomNormal([5, 7], seed: 24)
        let dx = reluBackward(dy, output: y)
        #expect(dx == dy.zipMap(x) { g, v in v > 0 ? g : 0 })
    }
}
