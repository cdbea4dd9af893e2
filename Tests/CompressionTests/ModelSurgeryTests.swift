import Autodiff
import Compression
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// Listing and replacing the weight layers of the reference models.
@Suite struct ModelSurgeryTests {
    @Test func fashionCNNListsItsFourConvsAndTwoLinearLayers() throws {
        let (model, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let layers = ModelSurgery.compressibleLayers(of: model, inputShape: [28, 28, 1])
        #expect(layers.map(\.name) == ["0", "3", "7", "10", "15", "17"])
        #expect(layers.map(\.inputShape) == [[28, 28, 1], [28, 28, 32], [14, 14, 32], [14, 14, 64], [3136], [256]])
        #expect(layers.map(\.isConvolution) == [true, true, true, true, false, false])
        #expect(layers[4].weightParameters == 3136 * 256)
    }

    @Test func resNetListsEveryConvolutionInsideItsBlocks() throws {
        let (model, _) = try ModelRegistry.make(named: "resnet20", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let layers = ModelSurgery.compressibleLayers(of: model, inputShape: [28, 28, 1])
        // Stem conv, 9 blocks × 2 convs, 2 projection shortcuts, the classifier.
        #expect(layers.count == 1 + 18 + 2 + 1)
        #expect(layers.first?.name == "conv1" && layers.last?.name == "fc")
        #expect(layers.contains { $0.name == "layer2.0.downsample.0" && $0.inputShape == [28, 28, 16] })
        #expect(layers.contains { $0.name == "layer3.2.conv2" && $0.inputShape == [7, 7, 64] })
        #expect(layers.last?.inputShape == [64])
        // Every parameter name of the model starts with a listed layer's name or belongs to a batch norm.
        let names = Set(layers.map(\.name))
        for (name, _) in model.namedParameters() where name.hasSuffix(".weight") && !name.contains("bn") {
            let owner = String(name.dropLast(".weight".count))
            #expect(names.contains(owner) || owner.hasSuffix("downsample.1"), "unlisted weight \(name)")
        }
    }

    @Test func replacingABlockConvolutionChangesTheFunctionThere() throws {
        let (model, _) = try ModelRegistry.make(named: "resnet20", inputShape: [8, 8, 3], classes: 10, seed: 0, as: Double.self)
        var generator = SeededGenerator(seed: 5)
        let x = Variable(constant: Tensor<Double>.randomNormal([2, 8, 8, 3], generator: &generator))
        let before = model(x, mode: .inference).value
        let target = try #require(ModelSurgery.compressibleLayers(of: model, inputShape: [8, 8, 3])
            .first { $0.name == "layer1.1.conv2" })
        let conv = try #require(target.layer as? Conv2D<Double>)
        // The same weights in a new layer: same function, and the parameter names keep their prefix.
        ModelSurgery.replace(target, with: Conv2D<Double>(weight: conv.weight.value, params: conv.params))
        #expect(model(x, mode: .inference).value.isApproximatelyEqual(to: before, relativeTolerance: 1e-12))
        #expect(model.namedParameters().contains { $0.name == "layer1.1.conv2.weight" })
        // Zero weights there: a different function.
        try ModelSurgery.replace(layerNamed: "layer1.1.conv2", in: model, inputShape: [8, 8, 3],
                                 with: Conv2D<Double>(weight: Tensor.zeros(conv.weight.value.shape), params: conv.params))
        #expect(!model(x, mode: .inference).value.isApproximatelyEqual(to: before, relativeTolerance: 1e-6))
    }

    @Test func replacingAnUnknownLayerThrows() throws {
        let (model, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        #expect(throws: CompressionError.self) {
            try ModelSurgery.replace(layerNamed: "99", in: model, inputShape: [28, 28, 1], with: ReLU<Float>())
        }
    }
}
