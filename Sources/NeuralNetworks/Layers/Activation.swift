import Autodiff
import TensorCore

/// The rectified linear unit as a layer, y = max(x, 0) element-wise (no parameters).
///
/// Inside a `Sequential`, a `ReLU` right after a `BatchNorm` is fused into the batch normalization (one pass
/// over the activations instead of two, forward and backward); alone it runs `Variable.relu()`.
public final class ReLU<Scalar: TensorScalar>: ShapedLayer {
    /// A ReLU layer.
    public init() {}

    /// max(x, 0).
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> { input.relu() }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// The input shape.
    public func outputShape(forInput shape: [Int]) -> [Int] { shape }
    /// 0 (element-wise).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "ReLU" }
}

/// An element-wise activation function as a layer (no parameters).
public final class Activation<Scalar: TensorScalar>: ShapedLayer {
    /// The functions available.
    public enum Function: String, Sendable, CaseIterable {
        /// max(x, 0).
        case relu
        /// x·Φ(x), exact (erf).
        case gelu
        /// tanh(x).
        case tanh
        /// 1/(1 + e^{−x}).
        case sigmoid
    }

    /// The function applied.
    public let function: Function

    /// A layer applying `function`.
    public init(_ function: Function) { self.function = function }

    /// f(x) element-wise (see `Variable.relu()`, `gelu()`, `tanh()`, `sigmoid()` for the VJPs).
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        switch function {
        case .relu: return input.relu()
        case .gelu: return input.gelu()
        case .tanh: return input.tanh()
        case .sigmoid: return input.sigmoid()
        }
    }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// The input shape.
    public func outputShape(forInput shape: [Int]) -> [Int] { shape }
    /// 0 (element-wise).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String {
        switch function {
        case .relu: return "ReLU"
        case .gelu: return "GELU"
        case .tanh: return "Tanh"
        case .sigmoid: return "Sigmoid"
        }
    }
}
