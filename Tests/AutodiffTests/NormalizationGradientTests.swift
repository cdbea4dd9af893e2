import Autodiff
import Testing
import TensorCore

@Suite struct NormalizationGradientTests {
    @Test func layerNormGradients() {
        let x = randn([3, 2, 5], seed: 120) * 2 + 1
        let gamma = randn([5], seed: 121), beta = randn([5], seed: 122)
        expectGradientsMatch([x, gamma, beta], "layerNorm affine") { layerNorm($0[0], scale: $0[1], offset: $0[2]) }
        expectGradientsMatch([x], "layerNorm plain") { layerNorm($0[0]) }
        expectGradientsMatch([x, gamma], "layerNorm scale only") { layerNorm($0[0], scale: $0[1], epsilon: 0.1) }
        expectGradientsMatch([x, beta], "layerNorm offset only") { layerNorm($0[0], offset: $0[1]) }
    }

    @Test func layerNormNormalizesRows() {
        let x = randn([4, 8], seed: 123) * 3 + 5
        let epsilon = 1e-5
        let y = layerNorm(Variable(constant: x), epsilon: epsilon).value
        for r in 0..<4 {
            let row = x.slice(axis: 0, start: r, count: 1), out = y.slice(axis: 0, start: r, count: 1)
            let variance = (row - row.mean()).squared().mean()
            #expect(Swift.abs(out.mean()) <= 1e-14)
            // Var(y) = σ²/(σ² + ε) exactly.
            #expect(Swift.abs(out.squared().mean() - variance / (variance + epsilon)) <= 1e-14)
        }
        // With affine parameters: y = γ x̂ + β.
        let gamma = Tensor<Double>([1, 2, 3, 4, 5, 6, 7, 8]), beta = Tensor<Double>.filled([8], with: 0.5)
        let affine = layerNorm(Variable(constant: x), scale: Variable(constant: gamma), offset: Variable(constant: beta),
                               epsilon: epsilon).value
        #expect(affine.isApproximatelyEqual(to: y * gamma + beta, relativeTolerance: 1e-15, absoluteTolerance: 1e-15))
    }
}
