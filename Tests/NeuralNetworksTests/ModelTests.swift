import Autodiff
import NeuralNetworks
import Testing
import TensorCore

/// Trainable scalars of a convolution (no bias), a batch norm and a linear layer with bias.
private func conv(_ i: Int, _ o: Int, _ k: Int) -> Int { i * o * k * k }
private func bn(_ c: Int) -> Int { 2 * c }
private func fc(_ i: Int, _ o: Int) -> Int { i * o + o }

/// ResNet-(6n+2) with projection shortcuts, counted from the architecture.
private func resnetParameters(blocks n: Int, inputChannels: Int, classes: Int) -> Int {
    var total = conv(inputChannels, 16, 3) + bn(16)
    for (input, output) in [(16, 16), (16, 32), (32, 64)] {
        for b in 0..<n {
            let i = b == 0 ? input : output
            total += conv(i, output, 3) + bn(output) + conv(output, output, 3) + bn(output)
            if b == 0 && i != output { total += conv(i, output, 1) + bn(output) }
        }
    }
    return total + fc(64, classes)
}

@Suite struct ModelTests {
    @Test func fashionCNNIsThePeersNetwork() throws {
        let model: any ShapedLayer<Float> = try ModelRegistry.make(
            ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10), seed: 0)
        let expected = conv(1, 32, 3) + bn(32) + conv(32, 32, 3) + bn(32) + conv(32, 64, 3) + bn(64)
            + conv(64, 64, 3) + bn(64) + fc(7 * 7 * 64, 256) + fc(256, 10)
        #expect(expected == 870_826)
        #expect(model.trainableParameterCount == 870_826)
        // Multiply–adds per image: Σ H'·W'·O·C·9 over the convolutions plus I·O of the linear layers.
        let macs = 28 * 28 * 32 * 1 * 9 + 28 * 28 * 32 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 14 * 14 * 64 * 64 * 9
            + 3136 * 256 + 256 * 10
        #expect(model.multiplyAdds(forInput: [28, 28, 1]) == macs)
        // PyTorch's state_dict names of the peer's nn.Sequential (num_batches_tracked aside).
        var names: [String] = []
        for index in [0, 3, 7, 10] {
            names.append("\(index).weight")
            names += ["weight", "bias", "running_mean", "running_var"].map { "\(index + 1).\($0)" }
        }
        names += ["15.weight", "15.bias", "17.weight", "17.bias"]
        #expect(model.namedParameters().map(\.name) == names)
        let shapes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.value.shape) })
        #expect(shapes["3.weight"] == [32, 32, 3, 3] && shapes["15.weight"] == [3136, 256] && shapes["17.bias"] == [10])
        let logits = model(Variable(constant: Tensor<Float>.randomNormal([3, 28, 28, 1], seed: 1)), mode: .inference)
        #expect(logits.shape == [3, 10])
    }

    @Test func leNet5() throws {
        let expected = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + fc(400, 120) + fc(120, 84) + fc(84, 10)
        #expect(expected == 61_706)
        for (shape, count) in [([28, 28, 1], expected), ([32, 32, 3], expected + 2 * 6 * 25)] {
            let model: any ShapedLayer<Float> = try ModelRegistry.make(
                ModelArchitecture(model: "lenet5", inputShape: shape, classes: 10), seed: 0)
            #expect(model.trainableParameterCount == count)
            #expect(model(Variable(constant: Tensor<Float>.zeros([2] + shape)), mode: .inference).shape == [2, 10])
            #expect(model.outputShape(forInput: shape) == [10])
        }
    }

    @Test(arguments: [(20, 3), (32, 5), (56, 9)])
    func resNets(_ depth: Int, _ blocks: Int) throws {
        for (shape, classes) in [([28, 28, 1], 10), ([32, 32, 3], 7)] {
            let model: any ShapedLayer<Float> = try ModelRegistry.make(
                ModelArchitecture(model: "resnet\(depth)", inputShape: shape, classes: classes), seed: 1)
            #expect(model.trainableParameterCount
                    == resnetParameters(blocks: blocks, inputChannels: shape[2], classes: classes))
            let logits = model(Variable(constant: Tensor<Float>.randomNormal([2] + shape, seed: 2)), mode: .inference)
            #expect(logits.shape == [2, classes])
            #expect(logits.value.isFinite)
        }
        // Depth 6n + 2: one stem convolution, 2n per stage, the classifier (projections are shortcuts, not depth).
        let summaries = try (ModelRegistry.make(ModelArchitecture(model: "resnet\(depth)", inputShape: [32, 32, 3],
                                                                  classes: 10), seed: 0) as any ShapedLayer<Float>)
            .layerSummaries(prefix: "", inputShape: [32, 32, 3])
        let weighted = summaries.filter { $0.multiplyAdds > 0 && !$0.name.contains("downsample") }
        #expect(weighted.count == depth)
    }

    @Test func registryRejectsWhatItCannotBuild() throws {
        let json = ModelArchitecture(model: "resnet20", inputShape: [32, 32, 3], classes: 10).json
        #expect(json == #"{"classes":10,"input_shape":[32,32,3],"model":"resnet20"}"#)
        #expect(try ModelArchitecture(json: json) == ModelArchitecture(model: "resnet20", inputShape: [32, 32, 3], classes: 10))
        #expect(throws: ModelError.unknownModel("vgg16")) {
            _ = try ModelRegistry.make(ModelArchitecture(model: "vgg16", inputShape: [32, 32, 3], classes: 10),
                                       seed: 0, as: Float.self)
        }
        #expect(throws: ModelError.self) {
            _ = try ModelRegistry.make(ModelArchitecture(model: "fmnist-cnn", inputShape: [30, 30, 1], classes: 10),
                                       seed: 0, as: Float.self)
        }
        #expect(throws: ModelError.self) { _ = try ModelArchitecture(json: #"{"model":"lenet5"}"#) }
    }

    @Test func sameSeedSameInitialWeights() throws {
        let architecture = ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10)
        let a: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 3)
        let b: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 3)
        let c: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 4)
        let pa = a.namedParameters(), pb = b.namedParameters(), pc = c.namedParameters()
        #expect(zip(pa, pb).allSatisfy { $0.parameter.value == $1.parameter.value })
        #expect(pa[0].parameter.value != pc[0].parameter.value)
    }
}
