import Autodiff
import TensorCore

/// A 2-D convolution layer on NHWC activations with an OIHW kernel: stride, zero padding, dilation and groups
/// (groups = channels is depthwise; a 1×1 kernel is a per-pixel linear map).
///
/// y[n,i,j,o] = b[o] + Σ_{c,u,v} w[o,c,u,v]·x[n, i·s − p + u·d, j·s − p + v·d, g(o)·C/G + c] (PyTorch's
/// `nn.Conv2d` with NHWC activations). `Float` runs on oneDNN (about 200 GFLOP/s for 3×3 kernels here), `Double`
/// on im2col + GEMM; see `conv2dForward`.
///
/// Parameters: `weight` `[O, C/groups, KH, KW]` and, unless disabled, `bias` `[O]`. Default initialization is
/// PyTorch's (`Initializer.pytorchDefault`: Kaiming-uniform with a = √5, bound 1/√fan-in, the bias uniform on
/// ±1/√fan-in).
public final class Conv2D<Scalar: TensorScalar>: ShapedLayer {
    /// The kernel, OIHW `[outChannels, inChannels/groups, kernelHeight, kernelWidth]`.
    public let weight: Parameter<Scalar>
    /// The bias `[outChannels]`, or nil.
    public let bias: Parameter<Scalar>?
    /// Stride, padding, dilation and groups.
    public let params: Convolution2D

    /// Input channels C.
    public var inChannels: Int { weight.value.shape[1] * params.groups }
    /// Output channels O.
    public var outChannels: Int { weight.value.shape[0] }
    /// (KH, KW).
    public var kernelSize: (height: Int, width: Int) { (weight.value.shape[2], weight.value.shape[3]) }

    /// A convolution with freshly initialized parameters.
    ///
    /// - Parameters:
    ///   - inChannels: C, divisible by `groups`.
    ///   - outChannels: O, divisible by `groups`.
    ///   - kernelSize: a square KH = KW kernel (use `kernelHeight:kernelWidth:` for others).
    ///   - stride, padding, dilation, groups: as `Convolution2D`.
    ///   - bias: whether to add a learned bias.
    ///   - initializer: the weight's scheme (fan-in (C/groups)·KH·KW, fan-out O·KH·KW).
    ///   - generator: the source of the initial values.
    public convenience init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true,
                            initializer: Initializer = .pytorchDefault, generator: inout SeededGenerator) {
        self.init(inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelSize, kernelWidth: kernelSize,
                  params: Convolution2D(stride: stride, padding: padding, dilation: dilation, groups: groups),
                  bias: bias, initializer: initializer, generator: &generator)
    }

    /// A convolution with a KH×KW kernel and any geometry.
    ///
    /// - Precondition: positive sizes; C and O divisible by `params.groups`.
    public init(inChannels: Int, outChannels: Int, kernelHeight: Int, kernelWidth: Int, params: Convolution2D,
                bias: Bool = true, initializer: Initializer = .pytorchDefault, generator: inout SeededGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelHeight > 0 && kernelWidth > 0,
                     "Conv2D: sizes must be positive (in \(inChannels), out \(outChannels), kernel \(kernelHeight)×\(kernelWidth))")
        precondition(inChannels % params.groups == 0 && outChannels % params.groups == 0,
                     "Conv2D: channels \(inChannels) → \(outChannels) are not divisible by groups \(params.groups)")
        let shape = [outChannels, inChannels / params.groups, kernelHeight, kernelWidth]
        let (fanIn, fanOut) = Initializer.fans(convolutionWeight: shape)
        weight = Parameter(initializer.make(shape, fanIn: fanIn, fanOut: fanOut, generator: &generator))
        self.bias = bias ? Parameter(uniformTensor([outChannels], bound: 1 / Double(fanIn).squareRoot(), generator: &generator)) : nil
        self.params = params
    }

    /// A convolution with the given OIHW kernel and optional bias.
    public init(weight: Tensor<Scalar>, bias: Tensor<Scalar>? = nil, params: Convolution2D = Convolution2D()) {
        precondition(weight.rank == 4, "Conv2D: weight must be OIHW, got \(weight.shape)")
        precondition(weight.shape[0] % params.groups == 0, "Conv2D: \(weight.shape[0]) output channels, groups \(params.groups)")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Conv2D: bias \(bias.shape) for weight \(weight.shape)") }
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
        self.params = params
    }

    /// The convolution of an NHWC input `[N, H, W, C]`.
    ///
    /// - Precondition: the input has C channels and is large enough for the kernel.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        conv2d(input, weight: input.watching(weight), bias: bias.map { input.watching($0) }, params: params)
    }

    /// Yields `weight` and `bias`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "weight", weight)
        if let bias { visitor(prefix + "bias", bias) }
    }

    /// `[H, W, C]` → `[H', W', O]`.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.count == 3 && shape[2] == inChannels,
                     "Conv2D: per-sample input \(shape) must be [H, W, \(inChannels)] for weight \(weight.value.shape)")
        let size = params.outputSize(inputHeight: shape[0], inputWidth: shape[1], kernelHeight: kernelSize.height,
                                     kernelWidth: kernelSize.width)
        return [size.height, size.width, outChannels]
    }

    /// H'·W'·O·(C/groups)·KH·KW.
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        params.multiplyAdds(input: [1] + shape, weight: weight.value.shape)
    }

    public var layerDescription: String {
        var parts = ["\(inChannels) → \(outChannels)", "\(kernelSize.height)×\(kernelSize.width)"]
        if params.strideHeight != 1 || params.strideWidth != 1 { parts.append("stride \(params.strideHeight)") }
        if params.paddingTop != 0 || params.paddingLeft != 0 { parts.append("padding \(params.paddingTop)") }
        if params.dilationHeight != 1 { parts.append("dilation \(params.dilationHeight)") }
        if params.groups != 1 { parts.append(params.groups == inChannels ? "depthwise" : "groups \(params.groups)") }
        if bias == nil { parts.append("no bias") }
        return "Conv2D(" + parts.joined(separator: ", ") + ")"
    }
}
