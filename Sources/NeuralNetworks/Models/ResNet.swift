import Autodiff
import TensorCore

/// The CIFAR-style residual network of He et al. ("Deep Residual Learning", 2016, §4.2; not in the survey's
/// reference list; the survey's Table 1 compresses ResNet-32), depth 6n + 2:
///
/// ```
/// conv1 3×3(C→16, no bias)  bn1  ReLU
/// layer1: n basic blocks, 16 channels
/// layer2: n basic blocks, 32 channels, the first with stride 2
/// layer3: n basic blocks, 64 channels, the first with stride 2
/// global average pool  fc(64→classes)
/// ```
///
/// n = 3, 5, 9 gives ResNet-20, -32, -56. Each block is a `BasicBlock`; where a block changes the shape its
/// shortcut is a projection (1×1 convolution + batch normalization, option B), which adds
/// 16·32 + 2·32 + 32·64 + 2·64 = 2,752 trainable scalars over the parameter-free option A. Inputs are NHWC with 1 or 3 (any)
/// channels, any size ≥ 4×4 (28×28 Fashion-MNIST: 28 → 14 → 7). Convolutions start Kaiming-normal with fan-out
/// (torchvision's ResNet initialization); batch norms at γ = 1, β = 0; the classifier PyTorch's default. Names
/// follow torchvision: `conv1.weight`, `bn1.*`, `layer2.0.downsample.0.weight`, `fc.bias`, ….
public final class ResNet<Scalar: TensorScalar>: ShapedLayer {
    /// The stem convolution; replaceable by any layer of the same shapes (model surgery).
    public var conv1: any ShapedLayer<Scalar>
    /// The stem batch normalization.
    public let bn1: BatchNorm<Scalar>
    /// The three stages of blocks.
    public let layer1: Sequential<Scalar>, layer2: Sequential<Scalar>, layer3: Sequential<Scalar>
    /// The classifier; replaceable by any layer of the same shapes (model surgery).
    public var fc: any ShapedLayer<Scalar>
    /// The number of classes.
    public let classes: Int
    private let pool = GlobalAvgPool2D<Scalar>()

    /// Blocks per stage (n).
    public let blocksPerStage: Int

    /// The depth 6n + 2.
    public var depth: Int { 6 * blocksPerStage + 2 }

    /// A ResNet with `blocksPerStage` blocks per stage for `inputChannels`-channel images and `classes` outputs.
    ///
    /// - Precondition: all positive.
    public init(blocksPerStage: Int, inputChannels: Int = 3, classes: Int = 10, generator: inout SeededGenerator) {
        precondition(blocksPerStage > 0 && inputChannels > 0 && classes > 0,
                     "ResNet: blocks per stage (\(blocksPerStage)), input channels (\(inputChannels)) and classes (\(classes)) must be positive")
        let convInit = Initializer.kaimingNormal(a: 0, fan: .fanOut)
        self.blocksPerStage = blocksPerStage
        self.classes = classes
        conv1 = Conv2D<Scalar>(inChannels: inputChannels, outChannels: 16, kernelSize: 3, padding: 1, bias: false,
                       initializer: convInit, generator: &generator)
        bn1 = BatchNorm(channels: 16)
        func stage(_ input: Int, _ output: Int, _ stride: Int) -> Sequential<Scalar> {
            var blocks: [any Layer<Scalar>] = []
            for index in 0..<blocksPerStage {
                blocks.append(BasicBlock<Scalar>(inChannels: index == 0 ? input : output, outChannels: output,
                                                 stride: index == 0 ? stride : 1, initializer: convInit,
                                                 generator: &generator))
            }
            return Sequential(blocks)
        }
        layer1 = stage(16, 16, 1)
        layer2 = stage(16, 32, 2)
        layer3 = stage(32, 64, 2)
        fc = Linear<Scalar>(inputFeatures: 64, outputFeatures: classes, generator: &generator)
    }

    /// ResNet-(6n+2) for depth 20, 32, 44, 56, 110, ….
    ///
    /// - Precondition: depth = 6n + 2 with n ≥ 1.
    public convenience init(depth: Int, inputChannels: Int = 3, classes: Int = 10, generator: inout SeededGenerator) {
        precondition(depth >= 8 && (depth - 2) % 6 == 0, "ResNet: depth \(depth) is not 6n + 2")
        self.init(blocksPerStage: (depth - 2) / 6, inputChannels: inputChannels, classes: classes, generator: &generator)
    }

    /// Logits `[N, classes]` for NHWC images `[N, H, W, C]`.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        var x = bn1.forward(conv1(input, mode: mode), mode: mode, fusingReLU: true)
        x = layer3(layer2(layer1(x, mode: mode), mode: mode), mode: mode)
        return fc(pool(x, mode: mode), mode: mode)
    }

    /// Yields `conv1.*`, `bn1.*`, `layer1.*`, `layer2.*`, `layer3.*`, `fc.*`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        conv1.visitParameters(prefix: prefix + "conv1.", visitor)
        bn1.visitParameters(prefix: prefix + "bn1.", visitor)
        layer1.visitParameters(prefix: prefix + "layer1.", visitor)
        layer2.visitParameters(prefix: prefix + "layer2.", visitor)
        layer3.visitParameters(prefix: prefix + "layer3.", visitor)
        fc.visitParameters(prefix: prefix + "fc.", visitor)
    }

    /// `[classes]`.
    public func outputShape(forInput shape: [Int]) -> [Int] { [classes] }

    /// The sum over the convolutions and the classifier.
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        layerSummaries(prefix: "", inputShape: shape).reduce(0) { $0 + $1.multiplyAdds }
    }

    /// The leaf layers in forward order.
    public func layerSummaries(prefix: String, inputShape: [Int]) -> [LayerSummary] {
        var result = conv1.layerSummaries(prefix: prefix + "conv1.", inputShape: inputShape)
        var shape = conv1.outputShape(forInput: inputShape)
        result += bn1.layerSummaries(prefix: prefix + "bn1.", inputShape: shape)
        for (name, stage) in [("layer1", layer1), ("layer2", layer2), ("layer3", layer3)] {
            result += stage.layerSummaries(prefix: prefix + name + ".", inputShape: shape)
            shape = stage.outputShape(forInput: shape)
        }
        result += pool.layerSummaries(prefix: prefix + "avgpool.", inputShape: shape)
        result += fc.layerSummaries(prefix: prefix + "fc.", inputShape: pool.outputShape(forInput: shape))
        return result
    }

    public var layerDescription: String { "ResNet-\(depth)" }
}
