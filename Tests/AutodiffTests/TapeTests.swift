import Autodiff
import Testing
import TensorCore

@Suite struct TapeTests {
    /// y = a·x recorded by hand: dy/dx = a.
    private func scale(_ x: Variable<Double>, by a: Double) -> Variable<Double> {
        recordOperation(x.value * a, inputs: [x]) { g in [g * a] }
    }

    @Test func reuseAccumulatesGradients() {
        let tape = Tape<Double>()
        let x = tape.variable(Tensor([1, 2, 3]))
        // z = 2x + 3x uses x twice: dz/dx = 5.
        let z = recordOperation(scale(x, by: 2).value + scale(x, by: 3).value,
                                inputs: [scale(x, by: 2), scale(x, by: 3)]) { g in [g, g] }
        let grads = tape.gradients(of: z)
        #expect(grads[0]?.scalars == [5, 5, 5])
    }

    @Test func constantsRecordNothingAndParametersReceiveGradients() {
        let constant = Variable(constant: Tensor<Double>([1, 2]))
        #expect(!scale(constant, by: 2).isRecorded)
        let tape = Tape<Double>()
        let weight = Parameter(Tensor<Double>([1, 1]))
        let frozen = Parameter(Tensor<Double>([1, 1]), isFrozen: true)
        let w = tape.watch(weight), f = tape.watch(frozen)
        #expect(!f.isRecorded)
        let y = scale(scale(w, by: 3), by: 2)
        tape.gradients(of: y)
        #expect(weight.gradient?.scalars == [6, 6])
        #expect(frozen.gradient == nil)
        // Watching the same parameter twice accumulates into one gradient.
        let tape2 = Tape<Double>()
        weight.zeroGradient()
        let a = tape2.watch(weight), b = tape2.watch(weight)
        let sum = recordOperation(a.value + b.value, inputs: [a, b]) { g in [g, g] }
        tape2.gradients(of: sum)
        #expect(weight.gradient?.scalars == [2, 2])
    }
}
