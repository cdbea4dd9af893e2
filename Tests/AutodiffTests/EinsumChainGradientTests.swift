import Autodiff
import Testing
import TensorCore

/// Chains of three or more operands are recorded step by step (reductions, pairwise contractions, a final
/// permute): gradients by finite differences, values against the unrecorded engine, and the exact 2× backward.
@Suite struct EinsumChainGradientTests {
    static let specs: [(String, [[Int]])] = [
        // A letter summed out of one operand alone (l), then a chain.
        ("ij,jk,kl->i", [[3, 2], [2, 4], [4, 3]]),
        // A diagonal inside a chain.
        ("iij,jk,kl->il", [[3, 3, 2], [2, 4], [4, 2]]),
        // An output order no pairwise step produces by itself.
        ("bij,jk,il->klb", [[2, 3, 4], [4, 2], [3, 5]]),
        // Size-1 boundary letters (as the TT and STT cores carry).
        ("bij,aiop,pjqc->boq", [[2, 3, 2], [1, 3, 2, 2], [2, 2, 3, 1]]),
    ]

    @Test(arguments: specs)
    func chainGradientsMatchFiniteDifferences(_ entry: (String, [[Int]])) {
        let inputs = entry.1.enumerated().map { randn($0.element, seed: 60 + UInt64($0.offset)) }
        expectGradientsMatch(inputs, entry.0) { einsum(entry.0, $0) }
    }

    @Test(arguments: specs)
    func chainValuesEqualTheEngine(_ entry: (String, [[Int]])) {
        let inputs = entry.1.enumerated().map { randn($0.element, seed: 70 + UInt64($0.offset)) }
        let tape = Tape<Double>()
        let taped = einsum(entry.0, inputs.map { tape.variable($0) }).value
        let plain = einsum(entry.0, inputs, path: nil)
        #expect(taped.isApproximatelyEqual(to: plain, relativeTolerance: 1e-13), "\(entry.0)")
    }
}
