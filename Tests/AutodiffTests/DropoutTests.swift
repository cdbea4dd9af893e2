import Autodiff
import Testing
import TensorCore

@Suite struct DropoutTests {
    @Test func inferenceIsIdentityAndRecordsNothing() {
        let tape = Tape<Double>()
        let x = tape.variable(randn([4, 5], seed: 110))
        var generator = SeededGenerator(seed: 1)
        let before = tape.count
        let y = x.dropout(rate: 0.5, isTraining: false, generator: &generator)
        #expect(y.value == x.value && tape.count == before)
        let z = x.dropout(rate: 0, isTraining: true, generator: &generator)
        #expect(z.value == x.value && tape.count == before)
    }

    @Test func trainingKeepsTheExpectation() {
        let p = 0.3, n = 20_000
        let x = Tensor<Double>.ones([n])
        var generator = SeededGenerator(seed: 2)
        let y = Variable(constant: x).dropout(rate: p, isTraining: true, generator: &generator).value
        // Every entry is 0 or 1/(1 − p).
        #expect(y.scalars.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
        // Mean of n i.i.d. masks: E = 1, standard deviation √(p/((1 − p)n)) ≈ 0.0046; allow 5σ.
        let sigma = (p / ((1 - p) * Double(n))).squareRoot()
        #expect(Swift.abs(y.mean() - 1) <= 5 * sigma)
        let dropped = Double(y.scalars.filter { $0 == 0 }.count) / Double(n)
        #expect(Swift.abs(dropped - p) <= 5 * (p * (1 - p) / Double(n)).squareRoot())
    }

    @Test func gradientIsTheMaskAndSeedsRepeat() {
        let x = randn([6, 7], seed: 111)
        let tape = Tape<Double>()
        let v = tape.variable(x)
        var generator = SeededGenerator(seed: 3)
        let y = v.dropout(rate: 0.5, isTraining: true, generator: &generator)
        let grad = tape.gradients(of: y.sum())[0]!
        // y = mask ⊙ x, so the gradient of Σy is the mask, and mask ⊙ x reproduces y.
        #expect((grad * x) == y.value)
        #expect(grad.scalars.allSatisfy { $0 == 0 || $0 == 2 })
        var again = SeededGenerator(seed: 3)
        #expect(Variable(constant: x).dropout(rate: 0.5, isTraining: true, generator: &again).value == y.value)
        // Gradient check with a fixed mask (a fresh generator with the same seed on every evaluation).
        expectGradientsMatch([x], "dropout") { v in
            var g = SeededGenerator(seed: 4)
            return v[0].dropout(rate: 0.4, isTraining: true, generator: &g).squared()
        }
    }
}
