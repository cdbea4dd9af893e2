import Autodiff
import TensorCore

/// The basic residual block of He et al. ("Deep Residual Learning", 2016; not in the survey's reference list):
/// y = ReLU(BN₂(conv₂(ReLU(BN₁(conv₁(x))))) + s(x)), two 3×3 convolutions without bias, the first with stride s.
///
/// The shortcut s is the identity when the block keeps the shape (stride 1, same channels), and otherwise a
/// projection, a 1×1 convolution with stride s followed by batch normalization (option B of the paper, the
/// `downsample` of torchvision). Parameter names follow torchvision: `conv1`, `bn1`, `conv2`, `bn2`,
/// `downsample.0` (convolution), `downsample.1` (batch normalization).
public final class BasicBlock<Scalar: TensorScalar>: ShapedLayer {
    /// The first 3×3 convolution (stride s); replaceable by any layer of the same shapes (model surgery).
    public var conv1: any ShapedLayer<Scalar>
    /// Batch normalization after `conv1`.
    public let bn1: BatchNorm<Scalar>
    /// The second 3×3 convolution; replaceable by any layer of the same shapes (model surgery).
    public var conv2: any ShapedLayer<Scalar>
    /// Batch normalization after `conv2`.
    public let bn2: BatchNorm<Scalar>
    /// The projection shortcut (1×1 convolution and batch normalization), or nil for the identity.
    public let downsample: Sequential<Scalar>?
    /// Input channels, output channels and the stride, as built.
    public let inChannels: Int, outChannels: Int, stride: Int

    /// A block from `inChannels` to `outChannels` with the given stride.
    ///
    /// - Parameters:
    ///   - initializer: the convolution weights' scheme (`.kaimingNormal(fan: .fanOut)` is torchvision's ResNet
    ///     choice; PyTorch's layer default otherwise).
    ///   - generator: the source of the initial values.
    public init(inChannels: Int, outChannels: Int, stride: Int = 1, initializer: Initializer = .pytorchDefault,
                generator: inout SeededGenerator) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.stride = stride
        conv1 = Conv2D<Scalar>(inChannels: inChannels, outChannels: outChannels, kernelSize: 3, stride: stride, padding: 1,
                       bias: false, initializer: initializer, generator: &generator)
        bn1 = BatchNorm(channels: outChannels)
        conv2 = Conv2D<Scalar>(inChannels: outChannels, outChannels: outChannels, kernelSize: 3, stride: 1, padding: 1,
                       bias: false, initializer: initializer, generator: &generator)
        bn2 = BatchNorm(channels: outChannels)
        if stride != 1 || inChannels != outChannels {
            downsample = Sequential(
                Conv2D(inChannels: inChannels, outChannels: outChannels, kernelSize: 1, stride: stride, bias: false,
                       initializer: initializer, generator: &generator),
                BatchNorm<Scalar>(channels: outChannels))
        } else {
            downsample = nil
        }
    }

    /// The block on an NHWC input.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        let hidden = bn1.forward(conv1(input, mode: mode), mode: mode, fusingReLU: true)
        let residual = bn2(conv2(hidden, mode: mode), mode: mode)
        let shortcut = downsample?(input, mode: mode) ?? input
        return addingReLU(residual, shortcut)
    }

    /// Yields `conv1.*`, `bn1.*`, `conv2.*`, `bn2.*` and `downsample.*`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        conv1.visitParameters(prefix: prefix + "conv1.", visitor)
        bn1.visitParameters(prefix: prefix + "bn1.", visitor)
        conv2.visitParameters(prefix: prefix + "conv2.", visitor)
        bn2.visitParameters(prefix: prefix + "bn2.", visitor)
        downsample?.visitParameters(prefix: prefix + "downsample.", visitor)
    }

    /// `[H, W, C]` → `[H/s, W/s, O]` (rounded as the convolution rounds).
    public func outputShape(forInput shape: [Int]) -> [Int] {
        conv2.outputShape(forInput: conv1.outputShape(forInput: shape))
    }

    /// The three (or two) convolutions.
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        layerSummaries(prefix: "", inputShape: shape).reduce(0) { $0 + $1.multiplyAdds }
    }

    /// The leaf layers: `conv1`, `bn1`, `conv2`, `bn2`, then the shortcut's.
    public func layerSummaries(prefix: String, inputShape: [Int]) -> [LayerSummary] {
        let middle = conv1.outputShape(forInput: inputShape)
        var result = conv1.layerSummaries(prefix: prefix + "conv1.", inputShape: inputShape)
        result += bn1.layerSummaries(prefix: prefix + "bn1.", inputShape: middle)
        result += conv2.layerSummaries(prefix: prefix + "conv2.", inputShape: middle)
        result += bn2.layerSummaries(prefix: prefix + "bn2.", inputShape: conv2.outputShape(forInput: middle))
        if let downsample { result += downsample.layerSummaries(prefix: prefix + "downsample.", inputShape: inputShape) }
        return result
    }

    public var layerDescription: String {
        "BasicBlock(\(inChannels) → \(outChannels), stride \(stride)"
            + (downsample == nil ? ")" : ", projection)")
    }
}

/// y = max(a + b, 0) for equal shapes as one differentiable operation (the residual join): one pass forward, and
/// one backward, where both inputs receive g masked by y > 0.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func addingReLU<Scalar: TensorScalar>(_ a: Variable<Scalar>, _ b: Variable<Scalar>) -> Variable<Scalar> {
    precondition(a.shape == b.shape, "addingReLU: shapes \(a.shape) and \(b.shape) differ")
    let y = Tensor<Scalar>(shape: a.shape) { out in
        a.value.withUnsafeBufferPointer { x in b.value.withUnsafeBufferPointer { z in
            for i in 0..<out.count { out[i] = Swift.max(x[i] + z[i], 0) }
        } }
    }
    let needA = a.isRecorded, needB = b.isRecorded
    return recordOperation(y, inputs: [a, b]) { g in
        let masked = maskedByPositive(g, y)
        return [needA ? masked : nil, needB ? masked : nil]
    }
}

/// g where y > 0, else 0.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func maskedByPositive<Scalar: TensorScalar>(_ g: Tensor<Scalar>, _ y: Tensor<Scalar>) -> Tensor<Scalar> {
    Tensor<Scalar>(shape: y.shape) { out in
        g.withUnsafeBufferPointer { gp in y.withUnsafeBufferPointer { yp in
            for i in 0..<out.count { out[i] = yp[i] > 0 ? gp[i] : 0 }
        } }
    }
}
