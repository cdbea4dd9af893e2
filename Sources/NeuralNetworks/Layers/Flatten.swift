import Autodiff
import TensorCore

/// Flattens every axis after the batch axis: `[N, d₁, …, d_k]` → `[N, d₁·…·d_k]` (no copy; the gradient is
/// reshaped back).
///
/// On NHWC activations the features are ordered (h, w, c), channels fastest, unlike PyTorch's NCHW
/// `nn.Flatten` (c, h, w): a `Linear` after it sees the same values in another order, which matters only when
/// importing PyTorch weights (permute that layer's input rows).
public final class Flatten<Scalar: TensorScalar>: ShapedLayer {
    /// A flatten layer.
    public init() {}

    /// The input reshaped to `[N, features]`.
    ///
    /// - Precondition: the input has a batch axis (rank ≥ 1).
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        precondition(input.shape.count >= 1, "Flatten: the input needs a batch axis, got shape \(input.shape)")
        if input.shape.count == 2 { return input }
        return input.flattened(from: 1)
    }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// `[product of the shape]`.
    public func outputShape(forInput shape: [Int]) -> [Int] { [shape.reduce(1, *)] }
    /// 0.
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "Flatten" }
}
