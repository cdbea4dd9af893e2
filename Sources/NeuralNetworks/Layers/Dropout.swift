import Autodiff
import TensorCore

/// Inverted dropout as a layer: in training each element is zeroed with probability p and the others scaled
/// by 1/(1 − p); in inference the input passes unchanged (Srivastava et al., 2014; not in the survey's
/// reference list). See `Variable.dropout(rate:isTraining:generator:)`.
///
/// The masks come from the layer's own `SeededGenerator`. The trainer reseeds it before every step from the
/// run's seed and the step index (`StochasticLayer`), so a run, and a resumed run, draw the same masks.
public final class Dropout<Scalar: TensorScalar>: ShapedLayer, StochasticLayer {
    /// The drop probability p ∈ [0, 1).
    public let rate: Scalar
    /// The generator the next mask is drawn from.
    public var generator: SeededGenerator

    /// A dropout layer with drop probability `rate`, its masks drawn from a generator seeded with `seed`.
    ///
    /// - Precondition: 0 ≤ rate < 1.
    public init(rate: Scalar, seed: UInt64 = 0) {
        precondition(rate >= 0 && rate < 1, "Dropout: rate \(rate) is not in [0, 1)")
        self.rate = rate
        self.generator = SeededGenerator(seed: seed)
    }

    /// The masked, rescaled input in `.training`; the input itself in `.inference`.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        input.dropout(rate: rate, isTraining: mode == .training, generator: &generator)
    }

    /// Restarts the mask stream from `seed`.
    public func reseed(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }

    /// No parameters.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {}

    /// The input shape.
    public func outputShape(forInput shape: [Int]) -> [Int] { shape }
    /// 0.
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "Dropout(p = \(rate))" }
}
