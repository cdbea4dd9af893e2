import Autodiff
import Testing
import TensorCore

/// The tolerance every gradient check in this target meets (the bar).
let gradientTolerance = 1e-6

/// Runs `checkGradients` and expects every input's relative error ≤ `gradientTolerance`, identical forward
/// values on a tape and on constants, and nothing recorded on constants.
func expectGradientsMatch(_ inputs: [Tensor<Double>], _ label: String = "",
                          sourceLocation: SourceLocation = #_sourceLocation,
                          _ function: ([Variable<Double>]) -> Variable<Double>) {
    let result = checkGradients(at: inputs, function)
    #expect(result.maxRelativeError <= gradientTolerance,
            "\(label): relative errors \(result.relativeErrors)", sourceLocation: sourceLocation)
    #expect(result.forwardMismatch == 0, "\(label): forward differs on a tape", sourceLocation: sourceLocation)
    #expect(result.constantEvaluationRecordedNothing, "\(label): constants were recorded", sourceLocation: sourceLocation)
    // A real check: the gradient is not identically zero unless the numeric one is.
    for (k, numeric) in result.numeric.enumerated() where numeric.frobeniusNorm() > 1e-3 {
        #expect(result.analytic[k].frobeniusNorm() > 0, "\(label): input \(k) got no gradient", sourceLocation: sourceLocation)
    }
}

/// Standard normal samples of `shape` from `seed`.
func randn(_ shape: [Int], seed: UInt64) -> Tensor<Double> { Tensor.randomNormal(shape, seed: seed) }

/// Uniform samples in [low, high) of `shape` from `seed`.
func uniform(_ shape: [Int], _ low: Double, _ high: Double, seed: UInt64) -> Tensor<Double> {
    Tensor.randomUniform(shape, low: low, high: high, seed: seed)
}

/// Samples whose magnitudes are at least `margin` (kept away from the kinks of ReLU / abs at 0).
func awayFromZero(_ shape: [Int], margin: Double = 0.1, seed: UInt64) -> Tensor<Double> {
    randn(shape, seed: seed).map { $0 >= 0 ? $0 + margin : $0 - margin }
}

/// A tensor holding distinct values 0.1·(a random permutation of 0..<n), so maxima are unique with gaps 0.1.
func distinctValues(_ shape: [Int], seed: UInt64) -> Tensor<Double> {
    var generator = SeededGenerator(seed: seed)
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, scalars: generator.permutation(n).map { Double($0) * 0.1 - Double(n) * 0.05 })
}
