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

    /// After re-estimation the running mean is the average of the batch means and the running variance the average
    /// of the unbiased batch variances, over the first `batches` batches only.
    @Test func batchNormRecalibrationAveragesTheBatchStatistics() throws {
        var generator = SeededGenerator(seed: 8)
        let images = Tensor<Float>.randomNormal([20, 2, 2, 3], generator: &generator) * 3 + 1
        let data = Dataset(images: images, labels: [Int](repeating: 0, count: 20), classCount: 1)
        let norm = BatchNorm<Float>(channels: 3)
        let model = Sequential<Float>([norm])
        #expect(ModelSurgery.recalibrateBatchNorm(in: model, on: data, batches: 3, batchSize: 4) == 1)
        #expect(norm.averagedBatches == nil)
        let values = images.scalars
        for c in 0..<3 {
            var means: [Double] = [], variances: [Double] = []
            for b in 0..<3 {
                let x = (b * 4..<(b + 1) * 4).flatMap { n in (0..<4).map { p in Double(values[(n * 4 + p) * 3 + c]) } }
                let mean = x.reduce(0, +) / Double(x.count)
                means.append(mean)
                variances.append(x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count - 1))
            }
            #expect(abs(Double(norm.runningMean.value.scalars[c]) - means.reduce(0, +) / 3) < 1e-5)
            #expect(abs(Double(norm.runningVariance.value.scalars[c]) - variances.reduce(0, +) / 3) < 1e-4)
        }
    }

    @Test func batchNormRecalibrationFindsEveryNormOfAResNet() throws {
        let (model, _) = try ModelRegistry.make(named: "resnet20", inputShape: [8, 8, 1], classes: 10, seed: 0, as: Float.self)
        var generator = SeededGenerator(seed: 9)
        let data = Dataset(images: Tensor<Float>.randomUniform([6, 8, 8, 1], generator: &generator), labels: [Int](repeating: 0, count: 6),
                           classCount: 10)
        // The stem's, two per block (9 blocks) and the two projection shortcuts'.
        #expect(ModelSurgery.recalibrateBatchNorm(in: model, on: data, batches: 1, batchSize: 6) == 1 + 18 + 2)
        let means = model.namedParameters().filter { $0.0.hasSuffix("running_mean") }
        #expect(means.count == 21 && means.allSatisfy { $0.1.value.scalars.contains { $0 != 0 } })
    }
}

