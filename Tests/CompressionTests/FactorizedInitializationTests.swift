import Autodiff
import Compression
import Decompositions
import NeuralNetworks
import Testing
import TensorCore

/// Modes of I = O = 64 in d = 2…6 factors.
private let depthModes: [[Int]] = [[8, 8], [4, 4, 4], [4, 2, 2, 4], [4, 2, 2, 2, 2], [2, 2, 2, 2, 2, 2]]

/// Formats and ranks for the depth sweep (SVD and KPD have a fixed number of cores: checked at d = 1 / 2).
private func depthCases() -> [(FactorizedFormat, [Int], Int)] {
    var cases: [(FactorizedFormat, [Int], Int)] = []
    for modes in depthModes {
        cases.append((.cp, modes, 4))
        cases.append((.tucker, modes, 2))
        cases.append((.tensorTrain, modes, 4))
        cases.append((.tensorRing, modes, 3))
        cases.append((.hierarchicalTucker, modes, 3))
        cases.append((.blockTerm, modes, 2))
        cases.append((.semiTensorTrain, modes, 4))
        cases.append((.semiTensorRing, modes, 4))
    }
    cases.append((.kronecker, [8, 8], 4))
    cases.append((.svd, [64], 8))
    return cases
}

/// Mean of the squares (all tensors here are zero-mean by construction).
private func meanSquare(_ t: Tensor<Double>) -> Double { Double(t.squaredNorm()) / Double(t.scalarCount) }

@Suite("FactorizedLinear pre-set initialization") struct FactorizedInitializationTests {
    /// On unit-variance input, the output variance of a calibrated pre-set layer is within ±20 % of the dense
    /// Kaiming layer's (whose expectation is I·2/I = 2), for every format and 2 to 6 cores.
    @Test func outputVarianceMatchesDenseKaiming() throws {
        let x = Tensor<Double>.randomNormal([256, 64], seed: 1)
        var generator = SeededGenerator(seed: 2)
        let dense = Linear<Double>(inputFeatures: 64, outputFeatures: 64, bias: false, initializer: .kaimingNormal(), generator: &generator)
        let denseVariance = meanSquare(dense(Variable(constant: x), mode: .inference).value)
        #expect(abs(denseVariance - 2) <= 0.4, "dense Kaiming output variance \(denseVariance)")
        for (format, modes, rank) in depthCases() {
            let layer = try FactorizedLinear<Double>(inputModes: modes, outputModes: modes, format: format, ranks: [rank],
                                                     bias: false, generator: &generator)
            #expect(abs(meanSquare(layer.reconstructWeight()) - 2.0 / 64) <= 1e-12, "\(format) \(modes): weight variance")
            let variance = meanSquare(layer(Variable(constant: x), mode: .inference).value)
            #expect(abs(variance / denseVariance - 1) <= 0.2, "\(format) \(modes): output variance \(variance) vs dense \(denseVariance)")
        }
    }

    /// The uncalibrated rule gives E[w²] = v exactly: the second moment of every weight entry is the weight
    /// expression evaluated on cores filled with σ² (cross terms of distinct products vanish), which must equal v
    /// entry by entry — a check of the bond counting N_terms of every wiring (TT boundaries, the HT root, BTD blocks).
    @Test func varianceRuleIsExactInExpectation() throws {
        for (format, modes, rank) in depthCases() {
            var generator = SeededGenerator(seed: 7)
            let layer = try FactorizedLinear<Double>(inputModes: modes, outputModes: modes, format: format, ranks: [rank],
                                                     bias: false, calibrated: false, generator: &generator)
            let v = 2.0 / 64
            let sigma = layer.network.presetStandardDeviation(targetVariance: v)
            let variances = layer.network.coreShapes.map { Tensor<Double>(repeating: sigma * sigma, shape: $0) }
            let secondMoment = layer.network.weightExpression.evaluate(variances)
            #expect(abs(secondMoment.max() / v - 1) <= 1e-12 && abs(secondMoment.min() / v - 1) <= 1e-12,
                    "\(format) \(modes): E[w²] in [\(secondMoment.min()), \(secondMoment.max())], v = \(v)")
            // The drawn cores have that standard deviation (sample of ≥ 8 entries per core, pooled).
            let pooled = layer.cores.reduce(0.0) { $0 + Double($1.value.squaredNorm()) } / Double(layer.coreParameterCount)
            #expect(abs(pooled.squareRoot() / sigma - 1) <= 0.2, "\(format) \(modes): pooled core std \(pooled.squareRoot()) vs σ = \(sigma)")
        }
    }

    /// Xavier targets v = 2/(I + O).
    @Test func xavierTarget() throws {
        var generator = SeededGenerator(seed: 3)
        let layer = try FactorizedLinear<Double>(inputModes: [4, 4], outputModes: [2, 8], format: .tensorTrain, ranks: [3],
                                                 initialization: .xavier, generator: &generator)
        #expect(abs(meanSquare(layer.reconstructWeight()) - 2.0 / 32) <= 1e-12)
    }
}

@Suite("FactorizedLinear errors and costs") struct FactorizedErrorTests {
    @Test func modesThatDoNotMultiplyAreRejectedWithASuggestion() throws {
        let w = Tensor<Double>.randomNormal([12, 10], seed: 1)
        expectError({
            _ = try FactorizedLinear<Double>.converting(w, format: .tensorTrain, inputModes: [3, 5], outputModes: [2, 5], target: .ranks([2]),
                                                        name: "fc2")
        }, ["fc2", "[4, 3]", "[5, 2]"])
    }

    @Test func formatsThatDoNotApplyProposeModes() {
        var generator = SeededGenerator(seed: 1)
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2, 2], outputModes: [2, 2, 2], format: .kronecker, ranks: [2], name: "fc1",
                                             generator: &generator)
        }, ["fc1", "exactly 2 modes", "use [4, 2] → [4, 2]"])
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [6], outputModes: [4], format: .tensorRing, ranks: [2], name: "fc1",
                                             generator: &generator)
        }, ["fc1", "at least 2 modes", "use [3, 2] → [2, 2]"])
    }

    @Test func wrongRankCountsAndMismatchedModeCounts() {
        var generator = SeededGenerator(seed: 1)
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2, 2], outputModes: [2, 2, 2], format: .tensorTrain, ranks: [2, 2, 2],
                                             name: "fc3", generator: &generator)
        }, ["fc3", "takes 2 rank(s)"])
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2], outputModes: [4], format: .cp, ranks: [2], name: "fc3", generator: &generator)
        }, ["fc3", "same number of factors", "[2, 2] and [2, 2]"])
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2], outputModes: [2, 2], format: .cp, ranks: [0], name: "fc3", generator: &generator)
        }, ["fc3", "≥ 1"])
    }

    /// SVD, KPD and Tucker ranks above the full rank are refused with the fitting ranks proposed (`lowrank cost`
    /// priced an over-full Tucker layer at CR 0.0).
    @Test func ranksAboveTheFullRankAreRefused() {
        var generator = SeededGenerator(seed: 0)
        for (format, inputModes, outputModes, ranks, fitting) in [
            (FactorizedFormat.svd, [12], [5], [6], "[5]"), (.kronecker, [4, 3], [2, 5], [9], "[8]"),
            (.tucker, [8, 8], [2, 5], [8], "[8, 8, 2, 5]"),
        ] {
            expectError({
                _ = try FactorizedLinear<Double>(inputModes: inputModes, outputModes: outputModes, format: format, ranks: ranks, name: "fc",
                                                 generator: &generator)
            }, ["fc", "full ranks", "use at most \(fitting)"])
        }
    }

    /// Ranks that would store far more than the weight (`--ranks 100000`) are refused before any core is drawn.
    @Test func oversizedRanksAreRefusedBeforeAllocating() {
        var generator = SeededGenerator(seed: 0)
        for format in [FactorizedFormat.tensorTrain, .tensorRing, .hierarchicalTucker, .blockTerm, .cp] {
            expectError({
                _ = try FactorizedLinear<Float>(inputModes: [56, 56], outputModes: [16, 16], format: format, ranks: [100_000], name: "fc1",
                                                generator: &generator)
            }, ["fc1", "more than 16×", "lower the ranks"])
        }
        expectError({
            _ = try FactorizedConv2D<Float>(inChannels: 32, outChannels: 64, kernelSize: 3, format: .tensorRing, ranks: [1000], name: "conv2",
                                            generator: &generator)
        }, ["conv2", "more than 16×", "lower the ranks"])
    }

    @Test func balancedFactorizations() {
        #expect(balancedFactorization(of: 1024, into: 4) == [8, 8, 4, 4])
        #expect(balancedFactorization(of: 12, into: 2) == [4, 3])
        #expect(balancedFactorization(of: 7, into: 3) == [7, 1, 1])
        for (n, d) in [(360, 3), (64, 6), (1000, 2)] { #expect(balancedFactorization(of: n, into: d).reduce(1, *) == n) }
    }

    /// `auto` picks the cheaper exact count; the reconstructed cost is weight-side + B·I·O; a TT layer at batch 1
    /// is factorized (cheaper than I·O) and a large-rank one at a large batch is reconstructed when that is cheaper.
    @Test func autoModePicksTheCheaperCount() throws {
        var generator = SeededGenerator(seed: 4)
        let layer = try FactorizedLinear<Double>(inputModes: [4, 4, 4], outputModes: [4, 4, 4], format: .tensorTrain, ranks: [16],
                                                 generator: &generator)
        for batch in [1, 8, 512] {
            let f = layer.cost(batch: batch, mode: .factorized), r = layer.cost(batch: batch, mode: .reconstructed)
            #expect(r.activationSide == batch * 64 * 64)
            #expect(r.weightSide == layer.weightPath().multiplyAdds)
            #expect(layer.cost(batch: batch, mode: .auto).total == Swift.min(f.total, r.total))
            #expect(layer.macs(batch: batch) == Swift.min(f.total, r.total))
        }
        #expect(layer.planCache.cachedBatchSizes == [1, 8, 512])
    }
}
