import Autodiff
import Testing
import TensorCore

@Suite struct GradientCheckTests {
    private func cube(_ x: Tensor<Double>) -> Tensor<Double> { x * x * x }

    /// y = x³ with a VJP scaled by (1 + δ): the checker reports a relative error of δ/(1 + δ) (the gradients are
    /// exactly proportional), up to the finite-difference error.
    @Test(arguments: [1e-2, 1e-4])
    func detectsAWrongVJP(_ delta: Double) {
        let x = randn([3, 4], seed: 180)
        let result = checkGradients(at: [x]) { v in
            recordOperation(cube(v[0].value), inputs: [v[0]]) { g in [g * v[0].value.squared() * (3 * (1 + delta))] }
        }
        let expected = delta / (1 + delta)
        #expect(Swift.abs(result.maxRelativeError - expected) <= 1e-3 * expected)
        #expect(result.maxRelativeError > gradientTolerance)
    }

    @Test func acceptsACorrectVJPAndReportsMissingGradients() {
        let x = randn([3, 4], seed: 181), y = randn([4], seed: 182)
        let correct = checkGradients(at: [x, y]) { v in
            recordOperation(cube(v[0].value) * v[1].value, inputs: [v[0], v[1]]) { g in
                [g * v[0].value.squared() * 3 * v[1].value, (g * cube(v[0].value)).sum(axes: [0], keepingDimensions: false)]
            }
        }
        #expect(correct.maxRelativeError <= 1e-9)
        #expect(correct.numeric[1].frobeniusNorm() > 0)
        // The VJP forgets the second input: its relative error is 1 (the tape gives zeros).
        let missing = checkGradients(at: [x, y]) { v in
            recordOperation(cube(v[0].value) * v[1].value, inputs: [v[0], v[1]]) { g in
                [g * v[0].value.squared() * 3 * v[1].value, nil]
            }
        }
        #expect(missing.relativeErrors[0] <= 1e-9)
        #expect(missing.relativeErrors[1] == 1)
        #expect(missing.analytic[1] == Tensor.zeros([4]))
    }

    /// An operation whose forward value differs with and without a tape is reported.
    @Test func reportsForwardMismatchAndDeterminism() {
        let x = randn([5], seed: 183)
        let result = checkGradients(at: [x]) { v in
            let y = v[0].isRecorded ? v[0].value * 2 : v[0].value * 2 + 1
            return recordOperation(y, inputs: [v[0]]) { g in [g * 2] }
        }
        #expect(result.forwardMismatch == 1)
        // A NaN anywhere makes the check fail rather than pass silently.
        let nan = checkGradients(at: [x]) { v in recordOperation(v[0].value, inputs: [v[0]]) { g in [g * .nan] } }
        #expect(nan.maxRelativeError.isNaN)
        let a = checkGradients(at: [x]) { $0[0].exp() }, b = checkGradients(at: [x]) { $0[0].exp() }
        #expect(a.analytic == b.analytic && a.numeric == b.numeric)
    }
}
