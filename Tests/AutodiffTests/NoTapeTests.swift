import Autodiff
import Testing
import TensorCore

@Suite struct NoTapeTests {
    /// A small network evaluated on constants records nothing and gives the same values as on a tape.
    @Test func constantEvaluationRecordsNothing() {
        let x = randn([4, 3], seed: 130), w = randn([3, 5], seed: 131), b = randn([5], seed: 132)
        func network(_ x: Variable<Double>, _ w: Variable<Double>, _ b: Variable<Double>) -> Variable<Double> {
            let h = layerNorm((matmul(x, w) + b).gelu())
            return crossEntropy(logits: h, labels: [0, 1, 2, 4], labelSmoothing: 0.1)
        }
        let tape = Tape<Double>()
        let recorded = network(tape.variable(x), tape.variable(w), tape.variable(b))
        let countAfter = tape.count
        let constant = network(Variable(constant: x), Variable(constant: w), Variable(constant: b))
        #expect(!constant.isRecorded && constant.tape == nil)
        #expect(tape.count == countAfter)
        #expect(recorded.value == constant.value)
    }

    /// Only the recorded operand of a mixed operation receives a gradient; operations on constants only add no
    /// nodes even when a tape exists.
    @Test func mixedOperandsRecordOnlyWhatNeedsIt() {
        let tape = Tape<Double>()
        let x = tape.variable(randn([3], seed: 133))
        let c = Variable(constant: randn([3], seed: 134))
        let before = tape.count
        _ = (c * c).exp()
        #expect(tape.count == before)
        let y = (x * c).sum()
        #expect(tape.count == before + 2)
        #expect(tape.gradients(of: y)[0] == c.value)
    }
}
