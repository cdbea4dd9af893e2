import Autodiff
import Compression
import NeuralNetworks
import Testing
import TensorCore

/// `FactorizedConv2D.modeCosts`, `trainingMultiplyAdds` and the conv branch of `ModelCost.measure`, counted by hand
/// on Tucker-2 (1×1 C_in→R_in, 3×3 R_in→R_out, 1×1 R_out→C_out).
@Suite struct FactorizedConv2DCostModelTests {
    let batch = 2, h = 5, w = 5, cIn = 8, cOut = 6, rIn = 2, rOut = 3

    private func tucker(stride: Int) throws -> FactorizedConv2D<Float> {
        var generator = SeededGenerator(seed: 5)
        return try FactorizedConv2D<Float>(inChannels: cIn, outChannels: cOut, kernelSize: 3, stride: stride, padding: 1,
                                           format: .tucker2, ranks: [rIn, rOut], generator: &generator)
    }

    /// Factorized: stored = input + B·H·W·R_in + B·H'·W'·R_out, the largest tensor the biggest of those and the
    /// output; reconstructed: the larger of the rebuilt kernel (the weight path's last result) and the output.
    @Test func modeCostsCountedByHand() throws {
        for stride in [1, 2] {
            let conv = try tucker(stride: stride)
            let shape = [h, w, cIn]
            let out = conv.outputShape(forInput: shape)
            let (pixels, outPixels) = (batch * h * w, batch * out[0] * out[1])
            let costs = conv.modeCosts(forInput: shape, batch: batch, weightsOnChip: true)
            #expect(costs.map(\.mode) == [.factorized, .reconstructed])
            let factorized = costs[0], reconstructed = costs[1]
            #expect(factorized.totalMACs == conv.cost(forInput: shape, batch: batch, mode: .factorized).total)
            #expect(factorized.activationSideMACs == pixels * cIn * rIn + outPixels * 9 * rIn * rOut + outPixels * rOut * cOut)
            #expect(factorized.storedForBackward == pixels * cIn + pixels * rIn + outPixels * rOut)
            #expect(factorized.largestIntermediate == Swift.max(pixels * rIn, outPixels * rOut, outPixels * cOut))
            #expect(reconstructed.totalMACs == conv.cost(forInput: shape, batch: batch, mode: .reconstructed).total)
            #expect(reconstructed.largestIntermediate == Swift.max(cOut * cIn * 9, outPixels * cOut))
            #expect(reconstructed.storedForBackward >= pixels * cIn + cOut * cIn * 9)
        }
    }

    /// Backward: ∂core for every step, ∂activation past the first stage (and at it with `inputGradient`).
    @Test func trainingMultiplyAddsCountedByHand() throws {
        let conv = try tucker(stride: 1)
        let shape = [h, w, cIn]
        let pixels = batch * h * w
        let (m1, m2, m3) = (pixels * cIn * rIn, pixels * 9 * rIn * rOut, pixels * rOut * cOut)
        #expect(conv.trainingMultiplyAdds(forInput: shape, batch: batch, mode: .factorized) == 2 * m1 + 3 * m2 + 3 * m3)
        #expect(conv.trainingMultiplyAdds(forInput: shape, batch: batch, mode: .factorized, inputGradient: true) == 3 * (m1 + m2 + m3))
        let rebuilt = conv.cost(forInput: shape, batch: batch, mode: .reconstructed)
        #expect(conv.trainingMultiplyAdds(forInput: shape, batch: batch, mode: .reconstructed)
                == 3 * rebuilt.weightSide + 2 * rebuilt.activationSide)
    }

    /// A conv stand-in in `ModelCost.measure` is priced from its own modes, against the dense conv it replaces.
    @Test func modelCostPricesAConvStandIn() throws {
        var generator = SeededGenerator(seed: 6)
        let dense = Conv2D<Float>(inChannels: cIn, outChannels: cOut, kernelHeight: 3, kernelWidth: 3,
                                  params: Convolution2D(padding: 1), generator: &generator)
        let model = Sequential<Float>([dense])
        let name = try #require(ModelCost.leafLayers(of: model).keys.first)
        let conv = try tucker(stride: 1)
        let shape = [h, w, cIn]
        let cost = ModelCost.measure(model, inputShape: shape, batch: batch, replacing: [name: conv])
        let layer = try #require(cost.layers.first)
        #expect(layer.parameters == conv.parameterCount)
        #expect(layer.denseParameters == dense.parameterCount)
        #expect(layer.denseMACsPerImage == dense.multiplyAdds(forInput: shape))
        #expect(layer.modes == conv.modeCosts(forInput: shape, batch: batch, weightsOnChip: cost.weightsOnChip))
        #expect(layer.chosenMode == conv.resolvedMode(forInput: shape, batch: batch))
        #expect(layer.chosen.totalMACs == layer.modes.map(\.totalMACs).min()!)
    }
}
