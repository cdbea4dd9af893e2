import Compression
import Testing
import TensorCore

@Suite("Rank selection: per-matrix rules and SVD candidates") struct RankSelectionRulesTests {
    /// σ = [4, 3, 2, 1]: energies 16, 25, 29, 30 of 30.
    let spectrum: [Double] = [4, 3, 2, 1]

    @Test func fixedRank() throws {
        #expect(try MatrixRankRule.fixed(3).rank(singularValues: spectrum, inputFeatures: 4, outputFeatures: 9, layer: "fc") == 3)
        #expect(try MatrixRankRule.fixed(50).rank(singularValues: spectrum, inputFeatures: 4, outputFeatures: 9, layer: "fc") == 4)
        #expect(throws: CompressionError.self) {
            try MatrixRankRule.fixed(0).rank(singularValues: spectrum, inputFeatures: 4, outputFeatures: 9, layer: "fc")
        }
    }

    @Test func energyThreshold() throws {
        func rank(_ e: Double) throws -> Int {
            try MatrixRankRule.energy(e).rank(singularValues: spectrum, inputFeatures: 9, outputFeatures: 4, layer: "fc")
        }
        #expect(try rank(0.5) == 1)   // 16/30 ≥ 0.5
        #expect(try rank(0.8) == 2)   // 16/30 < 0.8 ≤ 25/30
        #expect(try rank(25.0 / 30) == 2)
        #expect(try rank(0.9) == 3)
        #expect(try rank(1) == 4)
        #expect(throws: CompressionError.self) { try rank(0) }
        #expect(throws: CompressionError.self) { try rank(1.5) }
    }

    /// R = ⌊I·O / (c·(I+O))⌋: the largest rank whose SVD form has a compression ratio of at least c.
    @Test func compressionRatio() throws {
        func rank(_ c: Double, _ i: Int, _ o: Int) throws -> Int {
            try MatrixRankRule.compressionRatio(c).rank(singularValues: [Double](repeating: 1, count: min(i, o)),
                                                         inputFeatures: i, outputFeatures: o, layer: "fc")
        }
        #expect(try rank(4, 100, 80) == 11)  // 8000/(4·180) = 11.1
        for c in [2.0, 3.0, 4.0, 7.5] {
            let r = try rank(c, 100, 80)
            #expect(8000.0 / Double(r * 180) >= c && 8000.0 / Double((r + 1) * 180) < c)
        }
        #expect(try rank(5, 100, 100) == 10)  // exactly 10000/(5·200)
        #expect(try rank(50, 100, 100) == 1)
        #expect(try rank(0.5, 100, 100) == 100)  // clamped to min(I, O)
        do {
            _ = try rank(51, 100, 100)
            Issue.record("a ratio above I·O/(I+O) = 50 must throw")
        } catch let error as CompressionError {
            #expect(error.description.contains("fc") && error.description.contains("50"))
        }
    }

    @Test func evbmfRuleIsAtLeastOne() throws {
        let noise = Tensor<Double>.randomNormal([30, 20], seed: 3)
        let s = try noise.singularValues().scalars
        #expect(try MatrixRankRule.evbmf.rank(singularValues: s, inputFeatures: 30, outputFeatures: 20, layer: "fc") == 1)
    }

    /// The O(n) candidate errors equal ‖W − W_R‖_F / ‖W‖_F of the truncated SVD; costs are R(I+O) and P·R(I+O).
    @Test func svdCandidatesMatchTruncatedSVD() throws {
        let w = Tensor<Double>.randomNormal([12, 7], seed: 9)
        let s = try w.singularValues().scalars
        let layer = LayerCandidates.svd(name: "fc", singularValues: s, inputFeatures: 12, outputFeatures: 7, outputPositions: 5)
        #expect(layer.candidates.count == 8)
        #expect(layer.candidates.last == .dense(parameters: 84, macs: 420))
        #expect(layer.denseParameters == 84 && layer.denseMACs == 420)
        let norm = Double(w.squaredNorm()).squareRoot()
        for r in 1...7 {
            let candidate = layer.candidates[r - 1]
            let approximation = try w.truncatedSVD(.rank(r)).reconstruct()
            let error = Double((w - approximation).squaredNorm()).squareRoot() / norm
            #expect(candidate.ranks == [r] && candidate.format == "svd")
            #expect(abs(candidate.relativeError - error) < 1e-12, "R = \(r): \(candidate.relativeError) vs \(error)")
            #expect(candidate.parameters == r * 19 && candidate.macs == 5 * r * 19)
        }
        #expect(LayerCandidates.svd(name: "fc", singularValues: s, inputFeatures: 12, outputFeatures: 7, includeDense: false).candidates.count == 7)
    }
}
