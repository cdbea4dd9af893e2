import Autodiff
import TensorCore

/// Gradient clipping, applied to the stored gradients between the backward pass and the optimizer step.
///
/// Only the gradients an optimizer would use count: those of trainable, unfrozen parameters that have one.
///
/// ```swift
/// tape.gradients(of: loss)
/// let norm = GradientClipping.clipByGlobalNorm(model.namedParameters(), maxNorm: 5)
/// optimizer.step(model, learningRate: lr)
/// ```
public enum GradientClipping {
    /// The Euclidean norm of all gradients taken together, ‖(g₁, …, gₙ)‖₂ = √(Σᵢ ‖gᵢ‖²), accumulated in `Double`.
    public static func globalNorm<Scalar: TensorScalar>(_ parameters: [(name: String, parameter: Parameter<Scalar>)]) -> Double {
        var sum: Double = 0
        for (_, parameter) in parameters where counts(parameter) {
            sum += Double(parameter.gradient!.squaredNorm())
        }
        return sum.squareRoot()
    }

    /// Scales all gradients by one factor so that their global norm is at most `maxNorm`, and returns the norm
    /// before clipping.
    ///
    /// When the norm N exceeds `maxNorm`, every gradient is multiplied by `maxNorm / N`, so the new norm is
    /// `maxNorm` up to rounding; otherwise nothing changes. (PyTorch's `clip_grad_norm_` divides by N + 10⁻⁶
    /// instead, which lands slightly below `maxNorm`.) A non-finite norm (NaN or infinite gradients) leaves the
    /// gradients unchanged and is returned, so the caller can stop or skip the step.
    ///
    /// - Precondition: `maxNorm` is finite and > 0.
    @discardableResult
    public static func clipByGlobalNorm<Scalar: TensorScalar>(
        _ parameters: [(name: String, parameter: Parameter<Scalar>)], maxNorm: Double
    ) -> Double {
        precondition(maxNorm.isFinite && maxNorm > 0, "clipByGlobalNorm: maxNorm must be finite and > 0, got \(maxNorm)")
        let norm = globalNorm(parameters)
        guard norm.isFinite, norm > maxNorm else { return norm }
        let factor = Scalar(maxNorm / norm)
        for (_, parameter) in parameters where counts(parameter) {
            parameter.gradient!.withUnsafeMutableBufferPointer { g in
                for i in g.indices { g[i] *= factor }
            }
        }
        return norm
    }

    /// Clips every gradient element to [−`limit`, `limit`] (PyTorch `clip_grad_value_`); NaN stays NaN.
    ///
    /// - Precondition: `limit` is finite and > 0.
    public static func clipByValue<Scalar: TensorScalar>(_ parameters: [(name: String, parameter: Parameter<Scalar>)],
                                                         limit: Double) {
        precondition(limit.isFinite && limit > 0, "clipByValue: limit must be finite and > 0, got \(limit)")
        let high = Scalar(limit), low = -Scalar(limit)
        for (_, parameter) in parameters where counts(parameter) {
            parameter.gradient!.withUnsafeMutableBufferPointer { g in
                for i in g.indices {
                    let x = g[i]
                    g[i] = x > high ? high : (x < low ? low : x)
                }
            }
        }
    }

    /// Global-norm clipping of the gradients of `model`'s parameters (see the array form).
    @discardableResult
    public static func clipByGlobalNorm<L: Layer>(_ model: L, maxNorm: Double) -> Double {
        clipByGlobalNorm(model.namedParameters(), maxNorm: maxNorm)
    }

    /// Element-wise clipping of the gradients of `model`'s parameters (see the array form).
    public static func clipByValue<L: Layer>(_ model: L, limit: Double) {
        clipByValue(model.namedParameters(), limit: limit)
    }

    private static func counts<Scalar>(_ parameter: Parameter<Scalar>) -> Bool {
        parameter.isTrainable && !parameter.isFrozen && parameter.gradient != nil
    }
}
