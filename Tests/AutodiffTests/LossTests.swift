import Autodiff
import Foundation
import Testing
import TensorCore

@Suite struct LossTests {
    @Test(arguments: [0.0, 0.1, 1.0])
    func crossEntropyGradient(_ smoothing: Double) {
        let logits = randn([4, 5], seed: 100) * 2
        let labels = [0, 3, 4, 3]
        expectGradientsMatch([logits], "crossEntropy ε=\(smoothing)") {
            crossEntropy(logits: $0[0], labels: labels, labelSmoothing: smoothing)
        }
    }

    /// The fused loss equals its definition written with generic ops: −mean_b Σ_k t_bk log softmax(z_b)_k.
    @Test func crossEntropyEqualsComposedDefinition() {
        let logits = randn([3, 4], seed: 101)
        let labels = [2, 0, 3], epsilon = 0.2
        var target = Tensor<Double>.filled([3, 4], with: epsilon / 4)
        for (b, label) in labels.enumerated() { target[b, label] += 1 - epsilon }
        let tape = Tape<Double>(), tape2 = Tape<Double>()
        let z1 = tape.variable(logits), z2 = tape2.variable(logits)
        let fused = crossEntropy(logits: z1, labels: labels, labelSmoothing: epsilon)
        let composed = -(z2.logSoftmax() * Variable(constant: target)).sum() / 3
        #expect(Swift.abs(fused.value.scalar - composed.value.scalar) <= 1e-14)
        let g1 = tape.gradients(of: fused)[0]!, g2 = tape2.gradients(of: composed)[0]!
        #expect(g1.isApproximatelyEqual(to: g2, relativeTolerance: 1e-12, absoluteTolerance: 1e-15))
        // And the fused gradient is (softmax − target)/B.
        let expected = (Variable(constant: logits).softmax().value - target) / 3
        #expect(g1.isApproximatelyEqual(to: expected, relativeTolerance: 1e-12, absoluteTolerance: 1e-15))
    }

    @Test func crossEntropyHandCases() {
        // Equal logits: p = 1/K, so the loss is log K whatever the labels and smoothing.
        for epsilon in [0.0, 0.3] {
            let loss = crossEntropy(logits: Variable(constant: Tensor<Double>.zeros([2, 5])), labels: [1, 4], labelSmoothing: epsilon)
            #expect(Swift.abs(loss.value.scalar - Foundation.log(5.0)) <= 1e-15)
        }
        // Logits (0, log 3): p = (1/4, 3/4). Label 1, smoothing ε: t = (ε/2, 1 − ε/2).
        let logits = Variable(constant: Tensor<Double>(shape: [1, 2], scalars: [0, Foundation.log(3.0)]))
        #expect(Swift.abs(crossEntropy(logits: logits, labels: [1]).value.scalar + Foundation.log(0.75)) <= 1e-15)
        let epsilon = 0.1
        let smoothed = crossEntropy(logits: logits, labels: [1], labelSmoothing: epsilon).value.scalar
        let expected = -(epsilon / 2 * Foundation.log(0.25) + (1 - epsilon / 2) * Foundation.log(0.75))
        #expect(Swift.abs(smoothed - expected) <= 1e-15)
        // Huge logits do not overflow: the loss of a confident correct row is ≈ 0, of a wrong one ≈ the gap.
        let big = Variable(constant: Tensor<Double>(shape: [2, 2], scalars: [1000, 0, 0, 1000]))
        #expect(Swift.abs(crossEntropy(logits: big, labels: [0, 0]).value.scalar - 500) <= 1e-12)
    }

    @Test func meanSquaredErrorValueAndGradient() {
        let p = Variable(constant: Tensor<Double>([1, 2, 3, 5]))
        let loss = meanSquaredError(predictions: p, targets: Tensor<Double>([0, 2, 1, 5]))
        let expected: Double = 5.0 / 4  // (1² + 0² + 2² + 0²)/4
        #expect(loss.value.scalar == expected)
        let a = randn([3, 4], seed: 102), b = randn([3, 4], seed: 103)
        expectGradientsMatch([a, b], "mse both recorded") { meanSquaredError(predictions: $0[0], targets: $0[1]) }
        expectGradientsMatch([a], "mse constant target") { meanSquaredError(predictions: $0[0], targets: b) }
    }

    @Test(arguments: [1.0, 2.0, 4.0])
    func distillationGradient(_ temperature: Double) {
        let student = randn([3, 5], seed: 104), teacher = randn([3, 5], seed: 105) * 3
        expectGradientsMatch([student], "KL T=\(temperature)") {
            distillationKLDivergence(studentLogits: $0[0], teacherLogits: teacher, temperature: temperature)
        }
    }

    @Test func distillationHandCases() {
        let teacher = randn([2, 4], seed: 106)
        // Identical logits: KL = 0 and the gradient vanishes.
        let tape = Tape<Double>()
        let s = tape.variable(teacher)
        let same = distillationKLDivergence(studentLogits: s, teacherLogits: teacher, temperature: 3)
        #expect(Swift.abs(same.value.scalar) <= 1e-15)
        #expect(tape.gradients(of: same)[0]!.frobeniusNorm() <= 1e-15)
        // A uniform student: KL(q ‖ uniform) = Σ q log q + log K, times T², averaged over rows.
        let t = 2.0
        let q = Variable(constant: teacher / t).softmax().value
        var expected = 0.0
        for b in 0..<2 {
            var kl = Foundation.log(4.0)
            for k in 0..<4 { kl += q[b, k] * Foundation.log(q[b, k]) }
            expected += t * t * kl / 2
        }
        let uniform = distillationKLDivergence(studentLogits: Variable(constant: .zeros([2, 4])), teacherLogits: teacher,
                                               temperature: t)
        #expect(Swift.abs(uniform.value.scalar - expected) <= 1e-14)
        // The combined distillation objective [130] composes with ordinary arithmetic.
        let alpha = 0.9
        expectGradientsMatch([randn([2, 4], seed: 107)], "(1−α)CE + αKL") {
            crossEntropy(logits: $0[0], labels: [1, 3]) * (1 - alpha)
                + distillationKLDivergence(studentLogits: $0[0], teacherLogits: teacher, temperature: 4) * alpha
        }
    }
}
