import Autodiff
import TensorCore

/// Layer normalization over the last axis with a learned scale and offset (Ba, Kiros & Hinton, 2016; not in
/// the survey's reference list): y = γ ⊙ (x − μ)/√(σ² + ε) + β per row, μ and the biased σ² over the last
/// axis (`layerNorm(_:scale:offset:epsilon:)`).
///
/// Parameters: `weight` γ `[D]` (initialized to 1) and `bias` β `[D]` (initialized to 0), PyTorch's names.
public final class LayerNorm<Scalar: TensorScalar>: ShapedLayer {
    /// γ, shape `[D]`.
    public let weight: Parameter<Scalar>
    /// β, shape `[D]`.
    public let bias: Parameter<Scalar>
    /// ε added to the variance.
    public let epsilon: Scalar

    /// A layer normalizing `features` values per row.
    ///
    /// - Precondition: features > 0, ε > 0.
    public init(features: Int, epsilon: Scalar = 1e-5) {
        precondition(features > 0 && epsilon > 0, "LayerNorm: features (\(features)) and epsilon (\(epsilon)) must be positive")
        weight = Parameter(Tensor(repeating: 1, shape: [features]))
        bias = Parameter(Tensor(repeating: 0, shape: [features]))
        self.epsilon = epsilon
    }

    /// Normalizes each row of the last axis (the same in training and inference).
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        layerNorm(input, scale: input.watching(weight), offset: input.watching(bias), epsilon: epsilon)
    }

    /// Yields `weight` and `bias`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "weight", weight)
        visitor(prefix + "bias", bias)
    }

    /// The input shape.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.last == weight.value.shape[0], "LayerNorm: input \(shape) for \(weight.value.shape[0]) features")
        return shape
    }
    /// 0 (element-wise).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "LayerNorm(\(weight.value.shape[0]))" }
}
