import Autodiff
import Compression
import NeuralNetworks
import Testing
import TensorCore

/// The reconstructed mode keeps the weight it rebuilt from constant cores and rebuilds it when a core changes.
@Suite struct RebuiltWeightCacheTests {
    @Test func rebuildsOnlyWhenTheCoresChange() {
        let cache = RebuiltWeightCache<Double>()
        var rebuilds = 0
        let rebuild = { () -> Tensor<Double> in
            rebuilds += 1
            return Tensor.zeros([2])
        }
        var cores = [Tensor<Double>.randomNormal([3, 2], seed: 1), .randomNormal([2, 2], seed: 2)]
        _ = cache.weight(for: cores, rebuild: rebuild)
        _ = cache.weight(for: cores, rebuild: rebuild)
        // Equal entries in other storage: still the kept weight.
        _ = cache.weight(for: cores.map { $0 + 0 }, rebuild: rebuild)
        #expect(rebuilds == 1)
        // Written in place (copy-on-write leaves the kept cores alone).
        cores[1].withUnsafeMutableBufferPointer { $0[0] += 1 }
        _ = cache.weight(for: cores, rebuild: rebuild)
        #expect(rebuilds == 2)
    }

    /// Inference passes of FC and conv layers in the reconstructed mode follow core updates (in place, as the
    /// optimizers write them, and by assignment), and a pass with recorded cores still gets their gradients.
    @Test func layersFollowCoreUpdates() throws {
        var generator = SeededGenerator(seed: 4)
        let fc = try FactorizedLinear<Double>(inputModes: [2, 3], outputModes: [3, 2], format: .tensorTrain, ranks: [2],
                                              executionMode: .reconstructed, generator: &generator)
        let conv = try FactorizedConv2D<Double>(inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, format: .tensorRing,
                                                ranks: [2], executionMode: .reconstructed, generator: &generator)
        let x = Tensor<Double>.randomNormal([3, 6], seed: 5), image = Tensor<Double>.randomNormal([2, 5, 5, 4], seed: 6)
        func expectMatchesRebuild(_ context: String) {
            let y = fc(Variable(constant: x), mode: .inference).value
            let reference = Tensor.matmul(x, fc.reconstructWeight()) + fc.bias!.value
            #expect(relativeDifference(y, reference) <= 1e-12, "FC \(context)")
            let z = conv(Variable(constant: image), mode: .inference).value
            #expect(relativeDifference(z, conv2dForward(image, weight: conv.reconstructWeight(), bias: conv.bias?.value,
                                                        params: conv.params)) <= 1e-12, "conv \(context)")
        }
        expectMatchesRebuild("first pass")
        expectMatchesRebuild("second pass")
        fc.cores[0].value.withUnsafeMutableBufferPointer { $0[0] += 0.5 }
        conv.cores[1].value.withUnsafeMutableBufferPointer { $0[1] -= 0.5 }
        expectMatchesRebuild("after in-place updates")
        fc.cores[1].value = fc.cores[1].value * 2
        conv.cores[0].value = conv.cores[0].value * 2
        expectMatchesRebuild("after assignments")
        let tape = Tape<Double>()
        let y = withGradientTape(tape) { fc(Variable(constant: x), mode: .training) }
        fc.cores[0].zeroGradient()
        tape.gradients(of: y)
        #expect(fc.cores[0].gradient != nil)
    }

    /// `auto` decides inference passes apart: a TR layer whose factorized pass at batch 1 costs more than
    /// `measuredBand` times its GEMM runs reconstructed there (the kept weight leaves the GEMM alone), and the
    /// training-pass choice that reports read is not set by it.
    @Test func autoDecidesInferenceApart() throws {
        var generator = SeededGenerator(seed: 7)
        let layer = try FactorizedLinear<Double>(inputModes: [8, 8], outputModes: [8, 8], format: .tensorRing, ranks: [32],
                                                 generator: &generator)
        let x = Tensor<Double>.randomNormal([1, 64], seed: 8)
        #expect(layer.cost(batch: 1, mode: .factorized).total > ExecutionMode.measuredBand * layer.cost(batch: 1, mode: .reconstructed).activationSide)
        #expect(layer.autoMode(input: x, cores: layer.cores.map(\.value), bias: layer.bias?.value, constantCores: true) == .reconstructed)
        _ = layer(Variable(constant: x), mode: .inference)
        #expect(layer.planCache.measuredMode(inputShape: [1, 64]) == nil)
        let tape = Tape<Double>()
        tape.gradients(of: withGradientTape(tape) { layer(Variable(constant: x), mode: .training) })
        #expect(layer.planCache.measuredMode(inputShape: [1, 64]) != nil)
    }
}
