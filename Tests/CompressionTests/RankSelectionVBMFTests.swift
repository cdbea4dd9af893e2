import Compression
import Foundation
import Decompositions
import Testing
import TensorCore

/// Y = U·diag(d)·Vᵀ + σ·N with U (rows×d.count), V (columns×d.count) orthonormal and N standard normal.
private func noisyLowRank(rows: Int, columns: Int, signal: [Double], noise sigma: Double, seed: UInt64) throws -> Tensor<Double> {
    let r = signal.count
    let u = try Tensor<Double>.randomNormal([rows, r], seed: seed).qr().q
    let v = try Tensor<Double>.randomNormal([columns, r], seed: seed + 1).qr().q
    let low = Tensor.matmul(u * Tensor(shape: [1, r], scalars: signal), v, transposeB: true)
    return low + Tensor<Double>.randomNormal([rows, columns], seed: seed + 2) * sigma
}

@Suite("Rank selection: VBMF") struct RankSelectionVBMFTests {
    let signal: [Double] = [100, 80, 60, 50, 40]

    /// 100×80 rank 5 plus noise at several levels, all with the weakest component (40) well above the EVB
    /// detection limit (≈ 21σ here): EVBMF finds rank 5, estimates σ² within 15 %, and shrinks every kept value.
    @Test func evbmfRecoversTheRankOfANoisyLowRankMatrix() throws {
        for (k, sigma) in [0.05, 0.2, 0.5, 1.0].enumerated() {
            let y = try noisyLowRank(rows: 100, columns: 80, signal: signal, noise: sigma, seed: 10 + 3 * UInt64(k))
            let estimate = try RankSelection.evbmf(y)
            #expect(estimate.rank == 5, "σ = \(sigma): rank \(estimate.rank)")
            #expect(abs(estimate.noiseVariance / (sigma * sigma) - 1) < 0.15, "σ = \(sigma): σ̂² = \(estimate.noiseVariance)")
            let observed = try y.singularValues().scalars
            for (h, shrunk) in estimate.shrunkSingularValues.enumerated() {
                #expect(shrunk > 0 && shrunk < observed[h], "σ = \(sigma): γ̂_\(h) = \(shrunk), γ_\(h) = \(observed[h])")
            }
            // The transpose has the same singular values, so the same estimate (σ̂², an argmin, to about √ε).
            let transposed = try RankSelection.evbmf(y.permuted([1, 0]))
            #expect(transposed.rank == 5 && abs(transposed.noiseVariance - estimate.noiseVariance) <= 1e-6 * estimate.noiseVariance,
                    "σ̂² \(transposed.noiseVariance) vs \(estimate.noiseVariance)")
        }
    }

    /// Pure Gaussian noise has no component above the EVB threshold: rank 0, with σ² still estimated.
    @Test func evbmfReturnsZeroOnPureNoise() throws {
        for (k, sigma) in [0.01, 1.0, 30.0].enumerated() {
            let y = Tensor<Double>.randomNormal([100, 80], seed: 100 + UInt64(k)) * sigma
            let estimate = try RankSelection.evbmf(y)
            #expect(estimate.rank == 0, "σ = \(sigma): rank \(estimate.rank)")
            #expect(estimate.shrunkSingularValues.isEmpty)
            #expect(abs(estimate.noiseVariance / (sigma * sigma) - 1) < 0.15, "σ = \(sigma): σ̂² = \(estimate.noiseVariance)")
        }
        #expect(try RankSelection.evbmf(Tensor<Double>.zeros([5, 7])).rank == 0)
    }

    /// With σ² known, the threshold is (M·σ²·x̲)^{1/2} with x̲ = (1+τ̲)(1+α/τ̲), where τ̲ makes the EVB free energy
    /// of a component continuous at x̲: log(1+τ̲) + α·log(1+τ̲/α) = τ̲ [56]. The approximation τ̲ ≈ 2.5129·√α moves
    /// the threshold by < 0.1 % for α ≥ 1/2 and about 1 % at α = 1/100.
    @Test func evbmfWithKnownNoiseVariance() throws {
        let sigma = 0.5
        let y = try noisyLowRank(rows: 80, columns: 100, signal: signal, noise: sigma, seed: 40)
        let s = try y.singularValues().scalars
        let estimate = try RankSelection.evbmf(singularValues: s, rows: 80, columns: 100, noiseVariance: sigma * sigma)
        #expect(estimate.rank == 5)
        #expect(estimate.noiseVariance == sigma * sigma)
        for (l, m, tolerance) in [(80.0, 100.0, 1e-3), (50.0, 50.0, 1e-5), (100.0, 200.0, 1e-3), (10.0, 1000.0, 0.02)] {
            let e = try RankSelection.evbmf(singularValues: [Double](repeating: 1, count: Int(l)), rows: Int(m), columns: Int(l), noiseVariance: 2)
            let alpha = l / m
            let xBar = e.threshold * e.threshold / (m * 2)
            let b = xBar - 1 - alpha
            let tau = 0.5 * (b + (b * b - 4 * alpha).squareRoot())
            #expect(abs(log1p(tau) + alpha * log1p(tau / alpha) - tau) < 1e-9 * tau, "α = \(alpha): τ̲ = \(tau)")
            let approximateTau = 2.5129 * alpha.squareRoot()
            let approximate = (m * 2 * (1 + approximateTau) * (1 + alpha / approximateTau)).squareRoot()
            #expect(abs(e.threshold / approximate - 1) < tolerance, "α = \(alpha): γ̲ = \(e.threshold) vs ≈ \(approximate)")
        }
        #expect(throws: CompressionError.self) { try RankSelection.evbmf(singularValues: s, rows: 80, columns: 100, noiseVariance: 0) }
        #expect(throws: CompressionError.self) { try RankSelection.evbmf(singularValues: [1, .nan], rows: 2, columns: 3) }
    }

    /// Plain VB [56]: the estimator is continuous (γ̂ → 0 at the threshold); with a flat prior (c_a·c_b → ∞) the
    /// threshold tends to σ√M, below the noise edge σ(√L + √M), so VB keeps noise where EVB keeps nothing.
    @Test func vbmfThresholdAndShrinkage() throws {
        let (l, m, sigma2) = (80, 100, 0.25)
        for cacb in [0.01, 0.1, 1.0] {
            let threshold = try RankSelection.vbmf(singularValues: [Double](repeating: 0, count: l), rows: l, columns: m,
                                                   noiseVariance: sigma2, priorProduct: cacb).threshold
            var s = [Double](repeating: 0, count: l)
            s[0] = threshold * (1 + 1e-9)
            let just = try RankSelection.vbmf(singularValues: s, rows: l, columns: m, noiseVariance: sigma2, priorProduct: cacb)
            #expect(just.rank == 1 && just.shrunkSingularValues[0] < 1e-6 * threshold, "c_a·c_b = \(cacb): γ̂ = \(just.shrunkSingularValues)")
            s[0] = threshold * (1 - 1e-9)
            #expect(try RankSelection.vbmf(singularValues: s, rows: l, columns: m, noiseVariance: sigma2, priorProduct: cacb).rank == 0)
        }
        let flat = try RankSelection.vbmf(singularValues: [Double](repeating: 0, count: l), rows: l, columns: m,
                                          noiseVariance: sigma2, priorProduct: 1e6)
        #expect(abs(flat.threshold / (sigma2 * Double(m)).squareRoot() - 1) < 1e-6)
        let noise = Tensor<Double>.randomNormal([l, m], seed: 7) * sigma2.squareRoot()
        let s = try noise.singularValues().scalars
        #expect(try RankSelection.vbmf(singularValues: s, rows: l, columns: m, noiseVariance: sigma2, priorProduct: 1e6).rank > 0)
        #expect(try RankSelection.evbmf(singularValues: s, rows: l, columns: m, noiseVariance: sigma2).rank == 0)
    }

    /// [9]: EVBMF on the mode-0 and mode-1 unfoldings of a noisy Tucker-2 kernel gives its ranks [R_out, R_in].
    @Test func tucker2RanksOfAConvKernel() throws {
        let core = Tensor<Double>.randomNormal([6, 4, 3, 3], seed: 1)
        let factors = [Tensor<Double>.randomNormal([32, 6], seed: 2), Tensor<Double>.randomNormal([24, 4], seed: 3)]
        let clean = TuckerDecomposition(core: core, factors: factors, modes: [0, 1]).reconstruct()
        let kernel = clean + Tensor<Double>.randomNormal(clean.shape, seed: 4) * 0.05
        #expect(try RankSelection.tucker2RanksByEVBMF(kernel: kernel) == [6, 4])
        #expect(try RankSelection.tucker2RanksByEVBMF(kernel: Tensor<Double>.randomNormal([16, 8, 3, 3], seed: 5)) == [1, 1])
    }
}
