import Autodiff
import TensorCore

/// Max pooling over NHWC windows: y[n,i,j,c] = max of x[n,·,·,c] over window (i, j) (padding never wins); the
/// gradient goes to each window's maximum (`maxPool2DForward` / `maxPool2DBackward`, oneDNN for `Float`).
public final class MaxPool2D<Scalar: TensorScalar>: ShapedLayer {
    /// Kernel, stride and padding.
    public let params: Pooling2D

    /// A square window of `kernelSize`, stride defaulting to the kernel size (PyTorch's `nn.MaxPool2d`).
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        params = Pooling2D(kernel: kernelSize, stride: stride, padding: padding)
    }

    /// A window with any geometry.
    public init(params: Pooling2D) { self.params = params }

    /// Pools an NHWC input.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        maxPool2D(input, params: params)
    }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// `[H, W, C]` → `[H', W', C]`.
    public func outputShape(forInput shape: [Int]) -> [Int] { poolingOutputShape(shape, params) }
    /// 0 (comparisons, not multiply–adds).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "MaxPool2D(\(describeWindow(params)))" }
}

/// Average pooling over NHWC windows: y[n,i,j,c] = mean of x[n,·,·,c] over window (i, j); with
/// `countIncludesPadding` (PyTorch's default) the divisor counts padding cells.
public final class AvgPool2D<Scalar: TensorScalar>: ShapedLayer {
    /// Kernel, stride and padding.
    public let params: Pooling2D
    /// Whether padding cells count in the divisor.
    public let countIncludesPadding: Bool

    /// A square window of `kernelSize`, stride defaulting to the kernel size (PyTorch's `nn.AvgPool2d`).
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, countIncludesPadding: Bool = true) {
        params = Pooling2D(kernel: kernelSize, stride: stride, padding: padding)
        self.countIncludesPadding = countIncludesPadding
    }

    /// A window with any geometry.
    public init(params: Pooling2D, countIncludesPadding: Bool = true) {
        self.params = params
        self.countIncludesPadding = countIncludesPadding
    }

    /// Pools an NHWC input.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        avgPool2D(input, params: params, countIncludesPadding: countIncludesPadding)
    }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// `[H, W, C]` → `[H', W', C]`.
    public func outputShape(forInput shape: [Int]) -> [Int] { poolingOutputShape(shape, params) }
    /// 0 (additions, not multiply–adds).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "AvgPool2D(\(describeWindow(params)))" }
}

/// Global average pooling: NHWC `[N, H, W, C]` → `[N, C]`, y[n,c] = (1/(H·W)) Σ_{h,w} x[n,h,w,c]; the
/// gradient spreads dy[n,c]/(H·W) over every pixel.
public final class GlobalAvgPool2D<Scalar: TensorScalar>: ShapedLayer {
    /// A global average pooling layer.
    public init() {}

    /// Averages each channel over all pixels.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        globalAvgPool2D(input)
    }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// `[H, W, C]` → `[C]`.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.count == 3, "GlobalAvgPool2D: per-sample input must be [H, W, C], got \(shape)")
        return [shape[2]]
    }
    /// 0.
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "GlobalAvgPool2D" }
}

/// `[H, W, C]` → `[H', W', C]` for a pooling window.
private func poolingOutputShape(_ shape: [Int], _ params: Pooling2D) -> [Int] {
    precondition(shape.count == 3, "pooling: per-sample input must be [H, W, C], got \(shape)")
    let size = params.outputSize(inputHeight: shape[0], inputWidth: shape[1])
    return [size.height, size.width, shape[2]]
}

/// `2×2`, `3×3, stride 2, padding 1`.
private func describeWindow(_ params: Pooling2D) -> String {
    var text = "\(params.kernelHeight)×\(params.kernelWidth)"
    if params.strideHeight != params.kernelHeight || params.strideWidth != params.kernelWidth {
        text += ", stride \(params.strideHeight == params.strideWidth ? "\(params.strideHeight)" : "\(params.strideHeight)×\(params.strideWidth)")"
    }
    if params.paddingTop != 0 || params.paddingLeft != 0 || params.paddingBottom != 0 || params.paddingRight != 0 {
        text += ", padding \(params.paddingTop)"
    }
    return text
}
