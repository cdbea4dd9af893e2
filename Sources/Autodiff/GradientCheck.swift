import TensorCore

/// The outcome of `checkGradients`: reverse-mode gradients against finite differences, per input.
public struct GradientCheckResult: Sendable {
    /// ∂s/∂xᵢ from the tape, one tensor per input (zeros where the tape produced no gradient).
    public let analytic: [Tensor<Double>]
    /// ∂s/∂xᵢ from central finite differences, one tensor per input.
    public let numeric: [Tensor<Double>]
    /// Per input, ‖g_fd − g_ad‖ / max(‖g_fd‖, ‖g_ad‖, floor) (Frobenius norms).
    public let relativeErrors: [Double]
    /// Per input, ‖g_fd − g_ad‖.
    public let absoluteErrors: [Double]
    /// Largest |f(x) recorded on a tape − f(x) evaluated on constants| over the output's elements (0 when the
    /// recorded and the unrecorded forward passes agree, as they must).
    public let forwardMismatch: Double
    /// True when evaluating on constants recorded nothing (the result was not on a tape).
    public let constantEvaluationRecordedNothing: Bool

    /// The largest per-input relative error (0 for a function without inputs; NaN if any error is NaN, so a
    /// NaN gradient never passes a tolerance check).
    public var maxRelativeError: Double {
        relativeErrors.contains { $0.isNaN } ? .nan : relativeErrors.max() ?? 0
    }
}

/// Compares reverse-mode gradients of `function` with finite differences, in Double.
///
/// The function may return a tensor of any shape; it is reduced to the scalar s(x) = ⟨R, f(x)⟩ = Σ R ⊙ f(x)
/// by a fixed random projection R (independent standard normals drawn from `SeededGenerator(seed:)`), so every
/// output element contributes with a generic weight and a wrong VJP cannot hide behind symmetric sums. The
/// analytic gradient is the tape's, seeded with R (`Tape.gradients(of:seed:)`); the numeric one is the
/// fourth-order central difference (−s(x+2h) + 8s(x+h) − 8s(x−h) + s(x−2h))/(12h) for every input entry, with
/// the function evaluated on constants (which also exercises the no-tape path). Its truncation error is
/// O(h⁴) and its rounding error about ε|s|/h, so with the default h = 1e-3 both are far below 1e-6 for smooth
/// functions of O(1) inputs. Keep inputs at least 2h away from kinks (ReLU at 0, ties of a maximum).
///
/// The error measure is norm-wise per input: ‖g_fd − g_ad‖ / max(‖g_fd‖, ‖g_ad‖, floor), which is scale-free
/// and is not dominated by entries that are zero up to rounding; `floor` (default 1e-10) makes an input whose
/// true gradient is zero count its error absolutely.
///
/// - Parameters:
///   - inputs: the point x (one tensor per argument).
///   - step: h.
///   - seed: seed of the projection R.
///   - floor: smallest denominator of the relative error.
///   - function: f, built from differentiable operations on the variables it receives.
public func checkGradients(at inputs: [Tensor<Double>], step: Double = 1e-3, seed: UInt64 = 0x6EAD_C0DE,
                           floor: Double = 1e-10,
                           _ function: ([Variable<Double>]) -> Variable<Double>) -> GradientCheckResult {
    precondition(step > 0, "checkGradients: step \(step) must be positive")
    // Analytic gradient.
    let tape = Tape<Double>()
    let variables = inputs.map { tape.variable($0) }
    let output = function(variables)
    var generator = SeededGenerator(seed: seed)
    let projection = Tensor<Double>.randomNormal(output.shape, generator: &generator)
    var analytic: [Tensor<Double>] = inputs.map { Tensor.zeros($0.shape) }
    if output.isRecorded {
        let grads = tape.gradients(of: output, seed: projection)
        for (k, variable) in variables.enumerated() {
            if let grad = grads[variable.index] { analytic[k] = grad }
        }
    }
    // The same forward pass on constants.
    let constantOutput = function(inputs.map { Variable(constant: $0) })
    precondition(constantOutput.shape == output.shape,
                 "checkGradients: the function returned shape \(output.shape) on a tape but \(constantOutput.shape) on constants")
    let forwardMismatch = output.value.maxAbsoluteDifference(to: constantOutput.value)
    func objective(_ point: [Tensor<Double>]) -> Double {
        Tensor.dot(function(point.map { Variable(constant: $0) }).value, projection)
    }
    // Numeric gradient, one entry at a time.
    var numeric: [Tensor<Double>] = []
    var point = inputs
    for k in inputs.indices {
        var gradient = Tensor<Double>.zeros(inputs[k].shape)
        for i in 0..<inputs[k].scalarCount {
            let original = inputs[k].withUnsafeBufferPointer { $0[i] }
            func value(at offset: Double) -> Double {
                point[k].withUnsafeMutableBufferPointer { $0[i] = original + offset }
                return objective(point)
            }
            let plus2 = value(at: 2 * step), plus1 = value(at: step)
            let minus1 = value(at: -step), minus2 = value(at: -2 * step)
            point[k].withUnsafeMutableBufferPointer { $0[i] = original }
            let derivative = (-plus2 + 8 * plus1 - 8 * minus1 + minus2) / (12 * step)
            gradient.withUnsafeMutableBufferPointer { $0[i] = derivative }
        }
        numeric.append(gradient)
    }
    var relative: [Double] = [], absolute: [Double] = []
    for k in inputs.indices {
        let difference = (numeric[k] - analytic[k]).frobeniusNorm()
        let scale = Swift.max(numeric[k].frobeniusNorm(), analytic[k].frobeniusNorm(), floor)
        absolute.append(difference)
        relative.append(difference / scale)
    }
    return GradientCheckResult(analytic: analytic, numeric: numeric, relativeErrors: relative, absoluteErrors: absolute,
                               forwardMismatch: forwardMismatch,
                               constantEvaluationRecordedNothing: !constantOutput.isRecorded)
}
