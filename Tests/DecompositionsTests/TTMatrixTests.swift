import Testing
import TensorCore
import Decompositions

@Suite("TT-matrix (MPO)")
struct TTMatrixTests {
    static func randomTTMatrix<S: TensorScalar>(inputs: [Int], outputs: [Int], ranks inner: [Int], seed: UInt64,
                                                as: S.Type = S.self) -> TTMatrix<S> {
        var g = SeededGenerator(seed: seed)
        let r = [1] + inner + [1]
        return TTMatrix(cores: inputs.indices.map {
            Tensor<S>.randomNormal([r[$0], inputs[$0], outputs[$0], r[$0 + 1]], generator: &g)
        })
    }

    @Test("matmul and matvec equal the dense X·W and Wᵀx without forming W (both contraction paths)")
    func products() throws {
        // Trailing input blocks of 40 (batched path), 15, 8, 5, 2 (transposing path) and 1 (one GEMM); a mode of size 1.
        let cases: [([Int], [Int], [Int])] = [([2, 3, 5], [3, 2, 4], [2, 3]), ([4, 1, 5], [2, 3, 2], [3, 2]),
                                               ([6, 5, 4, 2], [2, 2, 3, 1], [2, 3, 2])]
        for (k, (ins, outs, ranks)) in cases.enumerated() {
            let ttm: TTMatrix<Double> = Self.randomTTMatrix(inputs: ins, outputs: outs, ranks: ranks, seed: UInt64(k))
            let w = ttm.reconstructMatrix()
            #expect(w.shape == [ins.reduce(1, *), outs.reduce(1, *)])
            let x = Tensor<Double>.randomNormal([7, w.shape[0]], seed: 10 + UInt64(k))
            let dense = Tensor.matmul(x, w)
            #expect(ttm.matmul(x).maxAbsoluteDifference(to: dense) <= 1e-10 * Double(dense.frobeniusNorm()))
            let v = Tensor<Double>.randomNormal([w.shape[0]], seed: 20 + UInt64(k))
            #expect(ttm.matvec(v).maxAbsoluteDifference(to: Tensor.matvec(w, v, transposeA: true)) <= 1e-10 * Double(dense.frobeniusNorm()))
            let tf: TTMatrix<Float> = Self.randomTTMatrix(inputs: ins, outputs: outs, ranks: ranks, seed: UInt64(k))
            let xf: Tensor<Float> = x.converted()
            #expect(tf.matmul(xf).relativeError(to: Tensor.matmul(xf, tf.reconstructMatrix())) <= 1e-5)
        }
    }

    @Test("the paired-layout definition: W[i, o] = G_1[i_1,o_1]⋯G_d[i_d,o_d]")
    func definition() {
        let ttm: TTMatrix<Double> = Self.randomTTMatrix(inputs: [2, 3], outputs: [3, 2], ranks: [2], seed: 3)
        let w = ttm.reconstructMatrix()
        let (g1, g2) = (ttm.cores[0], ttm.cores[1])
        for i1 in 0..<2 { for i2 in 0..<3 { for o1 in 0..<3 { for o2 in 0..<2 {
            var value = 0.0
            for r in 0..<2 { value += g1[0, i1, o1, r] * g2[r, i2, o2, 0] }
            #expect(Swift.abs(w[i1 * 3 + i2, o1 * 2 + o2] - value) <= 1e-13)
        } } } }
    }

    @Test("conversion of a dense W recovers a TT-matrix exactly at its ranks and honours ε")
    func conversion() throws {
        let truth: TTMatrix<Double> = Self.randomTTMatrix(inputs: [4, 2, 3], outputs: [2, 3, 4], ranks: [3, 2], seed: 5)
        let w = truth.reconstructMatrix()
        let ttm = try TTMatrix.decompose(w, inputModes: [4, 2, 3], outputModes: [2, 3, 4], target: .relativeError(1e-12))
        #expect(ttm.ranks == [1, 3, 2, 1])
        #expect(ttm.relativeError(to: w) <= 1e-10)
        let fixed = try TTMatrix.decompose(w, inputModes: [4, 2, 3], outputModes: [2, 3, 4], target: .ranks([3, 2]))
        #expect(fixed.relativeError(to: w) <= 1e-10)
        let dense = Tensor<Double>.randomNormal([24, 24], seed: 6)
        for eps in [0.5, 0.2, 0.05] {
            let t = try TTMatrix.decompose(dense, inputModes: [4, 2, 3], outputModes: [2, 3, 4], target: .relativeError(eps))
            #expect(Double(t.relativeError(to: dense)) <= eps * (1 + 1e-12))
        }
        let wf: Tensor<Float> = w.converted()
        #expect(try TTMatrix.decompose(wf, inputModes: [4, 2, 3], outputModes: [2, 3, 4], target: .ranks([3, 2])).relativeError(to: wf) <= 1e-4)
    }

    @Test("cost oracle of METHODS §1.6: I = O = 4⁵, ranks 8 → 3,328 parameters and 851,968 MACs per sample")
    func costOracle() {
        let r = [1, 8, 8, 8, 8, 1]
        let cores = (0..<5).map { Tensor<Float>.zeros([r[$0], 4, 4, r[$0 + 1]]) }
        let ttm = TTMatrix(cores: cores)
        #expect(ttm.parameterCount == 3_328)
        #expect(ttm.multiplyAccumulatesPerSample == 851_968)
    }

    @Test("modes that do not factor the matrix throw a shape error naming the sizes")
    func badModes() {
        let w = Tensor<Double>.randomNormal([12, 10], seed: 1)
        #expect(FactorFixtures.throwsDecomposition({
            _ = try TTMatrix.decompose(w, inputModes: [3, 5], outputModes: [2, 5], target: .ranks([2]))
        }) { if case .shapeMismatch = $0 { return true } else { return false } })
        #expect(FactorFixtures.throwsDecomposition({
            _ = try TTMatrix.decompose(w, inputModes: [3, 4], outputModes: [10], target: .ranks([2]))
        }) { if case .shapeMismatch = $0 { return true } else { return false } })
        var bad = w
        bad[0, 0] = .nan
        #expect(FactorFixtures.throwsDecomposition({
            _ = try TTMatrix.decompose(bad, inputModes: [3, 4], outputModes: [2, 5], target: .ranks([2]))
        }) { if case .nonFiniteInput = $0 { return true } else { return false } })
    }
}
