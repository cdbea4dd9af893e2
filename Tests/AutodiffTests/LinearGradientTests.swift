import Autodiff
import Testing
import TensorCore

@Suite struct LinearGradientTests {
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matmulAllTransposes(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        let a = randn(ta ? [4, 3] : [3, 4], seed: 10), b = randn(tb ? [5, 4] : [4, 5], seed: 11)
        expectGradientsMatch([a, b], "matmul \(flags)") { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func batchedMatmulWithBroadcasting(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        let m = 3, k = 4, n = 2
        let aMatrix = ta ? [k, m] : [m, k], bMatrix = tb ? [n, k] : [k, n]
        // Batch shapes that broadcast both ways, plus a shared 2-D operand on either side.
        let cases: [([Int], [Int])] = [([2], [2]), ([2, 1], [3]), ([1], [2]), ([2, 3], []), ([], [2])]
        for (batchA, batchB) in cases {
            let a = randn(batchA + aMatrix, seed: 12), b = randn(batchB + bMatrix, seed: 13)
            expectGradientsMatch([a, b], "batchedMatmul \(flags) \(batchA) \(batchB)") {
                batchedMatmul($0[0], $0[1], transposeA: ta, transposeB: tb)
            }
        }
    }

    /// Specifications covering plain products, batch indices, private sums, diagonals, traces, implicit
    /// outputs, outer products and permutations.
    static let specs: [(String, [[Int]])] = [
        ("ij,jk->ik", [[3, 4], [4, 5]]),
        ("bi,oi->bo", [[2, 3], [4, 3]]),
        ("bij,bjk->bik", [[2, 3, 4], [2, 4, 2]]),
        ("ijk,jl->ilk", [[2, 3, 4], [3, 5]]),
        ("ij,jk", [[3, 4], [4, 2]]),
        ("i,j->ij", [[3], [4]]),
        ("ij,ij->", [[3, 4], [3, 4]]),
        ("ij,ij->ij", [[3, 4], [3, 4]]),
        ("ij->ji", [[3, 4]]),
        ("ij->", [[3, 4]]),
        ("ij->j", [[3, 4]]),
        ("ij,jk->i", [[3, 4], [4, 5]]),
        ("ijk,k->j", [[2, 3, 4], [4]]),
        ("ii->i", [[4, 4]]),
        ("ii->", [[4, 4]]),
        ("iij,jk->ik", [[3, 3, 4], [4, 2]]),
        ("ij,jj->ij", [[3, 4], [4, 4]]),
        ("bchw,oc->bohw", [[2, 3, 2, 2], [4, 3]]),
    ]

    @Test(arguments: specs)
    func einsumSpecs(_ entry: (String, [[Int]])) {
        let inputs = entry.1.enumerated().map { randn($0.element, seed: 20 + UInt64($0.offset)) }
        expectGradientsMatch(inputs, entry.0) { einsum(entry.0, $0) }
    }

    /// Tensor-train chains of 3–5 operands (an input contracted with TT-matrix cores, and a TT vector), the
    /// contractions every factorized layer runs.
    static let chains: [(String, [[Int]])] = [
        // x[b, i1, i2] with cores G1[i1, o1, r], G2[r, i2, o2] -> y[b, o1, o2].
        ("bij,iar,rjc->bac", [[2, 2, 3], [2, 3, 2], [2, 3, 2]]),
        // Three cores.
        ("bijk,iar,rjcs,skd->bacd", [[2, 2, 2, 2], [2, 2, 3], [3, 2, 2, 2], [2, 2, 2]]),
        // Four cores with ranks: five operands in all.
        ("xijkl,iap,pjbq,qkcr,rld->xabcd", [[2, 2, 2, 2, 2], [2, 2, 2], [2, 2, 2, 3], [3, 2, 2, 2], [2, 2, 2]]),
        // A tensor ring (closed chain) of three cores contracted into a full tensor.
        ("aib,bjc,cka->ijk", [[2, 3, 3], [3, 2, 2], [2, 4, 2]]),
    ]

    @Test(arguments: chains)
    func einsumTensorTrainChains(_ entry: (String, [[Int]])) {
        let inputs = entry.1.enumerated().map { randn($0.element, seed: 40 + UInt64($0.offset)) }
        expectGradientsMatch(inputs, entry.0) { einsum(entry.0, $0) }
    }

    /// One variable passed as several operands: the per-operand gradients accumulate (d(AA)/dA, d⟨A, A⟩/dA).
    @Test func einsumWithARepeatedOperand() {
        let a = randn([3, 3], seed: 56)
        expectGradientsMatch([a], "A·A") { einsum("ij,jk->ik", $0[0], $0[0]) }
        expectGradientsMatch([a], "A·A·A") { einsum("ij,jk,kl->il", $0[0], $0[0], $0[0]) }
        let tape = Tape<Double>()
        let v = tape.variable(a)
        #expect(tape.gradients(of: einsum("ij,ij->", v, v))[0]!.isApproximatelyEqual(to: a * 2, relativeTolerance: 1e-15))
    }

    /// The einsum of a matrix product has exactly the gradients of `matmul` (both are GEMMs of the same data).
    @Test func einsumGradientsEqualMatmulGradients() {
        let a = randn([3, 4], seed: 50), b = randn([4, 5], seed: 51), g = randn([3, 5], seed: 52)
        let tape = Tape<Double>()
        let (va, vb) = (tape.variable(a), tape.variable(b))
        let viaEinsum = tape.gradients(of: einsum("ij,jk->ik", va, vb), seed: g)
        let tape2 = Tape<Double>()
        let (wa, wb) = (tape2.variable(a), tape2.variable(b))
        let viaMatmul = tape2.gradients(of: matmul(wa, wb), seed: g)
        #expect(viaEinsum[0]!.isApproximatelyEqual(to: viaMatmul[0]!, relativeTolerance: 1e-14))
        #expect(viaEinsum[1]!.isApproximatelyEqual(to: viaMatmul[1]!, relativeTolerance: 1e-14))
        // ∂/∂A = G·Bᵀ by definition.
        #expect(viaMatmul[0]!.isApproximatelyEqual(to: Tensor.matmul(g, b, transposeB: true), relativeTolerance: 1e-14))
    }

    /// A diagonal gradient is zero off the diagonal: d trace(A)/dA = I.
    @Test func traceGradientIsIdentity() {
        let tape = Tape<Double>()
        let a = tape.variable(randn([4, 4], seed: 53))
        let grads = tape.gradients(of: einsum("ii->", a))
        #expect(grads[0] == Tensor.identity(4))
        #expect(a.isRecorded)
    }

    @Test func constantOperandsGetNoGradientButOthersDo() {
        let tape = Tape<Double>()
        let w = tape.variable(randn([3, 2], seed: 54))
        let x = Variable(constant: randn([4, 3], seed: 55))
        let y = einsum("bi,io->bo", x, w)
        #expect(y.isRecorded)
        let grads = tape.gradients(of: y.sum())
        // ∂/∂w[i, o] = Σ_b x[b, i] for every o.
        let expected = x.value.sum(axes: [0], keepingDimensions: false).reshaped([3, 1]) * Tensor.ones([1, 2])
        #expect(grads[0]!.isApproximatelyEqual(to: expected, relativeTolerance: 1e-14))
    }
}
