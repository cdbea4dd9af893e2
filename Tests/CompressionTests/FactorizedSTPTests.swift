import Compression
import Decompositions
import Testing
import TensorCore

// STT and STR [37] as FactorizedLinear formats: the per-format checks, the closed forms against the counter, the
// δ-structure of the wiring against the decompositions' effective cores, and the errors.

/// Grids with output modes divisible by t on every bond (STR links all of them).
private let stpGrid: [([Int], [Int], Int)] = [([2, 3], [4, 2], 2), ([3, 2, 2], [2, 4, 2], 2), ([2, 3, 2, 2], [2, 2, 2, 4], 2),
                                               ([2, 2], [3, 6], 3), ([3, 2], [5, 2], 1)]

@Suite("FactorizedLinear STT") struct FactorizedSTTTests {
    @Test func gradients() throws { try checkFormatGradients(.semiTensorTrain) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.semiTensorTrain) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.semiTensorTrain) }

    @Test func costFormulaMatchesCounter() throws {
        for (i, o, t) in stpGrid {
            for base in [1, 2] {
                let inner = (0..<(i.count - 1)).map { t * (base + $0 % 2) }
                let layer = try gridLayer(.semiTensorTrain, i, o, ranks: inner, stpFactor: t)
                expectCounterMatches(layer, FCCostFormulas.semiTensorTrain(inputModes: i, outputModes: o, ranks: [1] + inner + [1], stpFactor: t))
            }
        }
    }

    /// Each linked core stores the TT core ÷ t², and each linked step costs the TT step ÷ t (METHODS §1.10).
    @Test func linkedCoresDivideTheTTCosts() {
        let (i, o, r, t) = ([4, 8, 8, 4], [4, 8, 8, 4], [1, 8, 8, 8, 1], 2)
        let tt = FCCostFormulas.tensorTrain(inputModes: i, outputModes: o, ranks: r)
        let stt = FCCostFormulas.semiTensorTrain(inputModes: i, outputModes: o, ranks: r, stpFactor: t)
        let core0 = 4 * 4 * 8
        #expect(stt.parameters == core0 + (tt.parameters - core0) / (t * t))
        let step0 = 8 * 4 * 1024
        #expect(stt.macsPerSample == step0 + (tt.macsPerSample - step0) / t)
    }

    @Test func uniformTableRowMatchesGeneralForm() {
        for (m, n, d, r, t) in [(2, 4, 2, 2, 2), (3, 2, 3, 4, 2), (4, 6, 4, 6, 3), (2, 2, 5, 4, 1)] {
            let general = FCCostFormulas.semiTensorTrain(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d),
                                                         ranks: [1] + Array(repeating: r, count: d - 1) + [1], stpFactor: t)
            #expect(FCCostFormulas.uniformTable(.semiTensorTrain, m: m, n: n, d: d, rank: r, stpFactor: t) == general)
        }
    }

    /// The wiring's weight equals the decomposition's reconstruction from the same small cores: the STP's
    /// Kronecker-with-identity is the shared pass-through letter.
    @Test func weightEqualsTheSemiTensorTrainOfThePairedWeight() throws {
        let layer = try gridLayer(.semiTensorTrain, [2, 3, 2], [2, 4, 2], ranks: [4, 2])
        let small = layer.cores.map { $0.value.reshaped([$0.value.shape[0], $0.value.shape[1] * $0.value.shape[2], $0.value.shape[3] * $0.value.shape[4]]) }
        let stt = SemiTensorTrain(cores: small, stpFactor: 2)
        let w = layer.reconstructWeight()
        let pairedW = w.reshaped([2, 3, 2, 2, 4, 2]).permuted([0, 3, 1, 4, 2, 5]).reshaped([4, 12, 4])
        #expect(relativeDifference(stt.reconstruct(), pairedW) <= 1e-13)
        #expect(layer.coreParameterCount == stt.parameterCount)
    }
}

@Suite("FactorizedLinear STR") struct FactorizedSTRTests {
    @Test func gradients() throws { try checkFormatGradients(.semiTensorRing) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.semiTensorRing) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.semiTensorRing) }

    @Test func costFormulaMatchesCounter() throws {
        for (i, o, t) in stpGrid {
            for base in [1, 2] {
                let ranks = i.indices.map { t * (base + $0 % 2) }
                let layer = try gridLayer(.semiTensorRing, i, o, ranks: ranks, stpFactor: t)
                expectCounterMatches(layer, FCCostFormulas.semiTensorRing(inputModes: i, outputModes: o, ranks: ranks, stpFactor: t))
            }
        }
    }

    /// With t = 1 STR is TR: same storage and the same count.
    @Test func unitFactorIsTheTensorRing() throws {
        let (i, o, r) = ([2, 3, 2], [3, 2, 2], [2, 3, 2])
        #expect(FCCostFormulas.semiTensorRing(inputModes: i, outputModes: o, ranks: r, stpFactor: 1)
                == FCCostFormulas.tensorRing(inputModes: i, outputModes: o, ranks: r))
    }

    @Test func uniformTableRowMatchesGeneralForm() {
        for (m, n, d, r, t) in [(2, 4, 2, 2, 2), (3, 2, 3, 4, 2), (4, 6, 4, 6, 3), (4, 4, 5, 8, 2)] {
            let general = FCCostFormulas.semiTensorRing(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d),
                                                        ranks: Array(repeating: r, count: d), stpFactor: t)
            #expect(FCCostFormulas.uniformTable(.semiTensorRing, m: m, n: n, d: d, rank: r, stpFactor: t) == general)
        }
    }

    @Test func weightEqualsTheSemiTensorRingOfThePairedWeight() throws {
        let layer = try gridLayer(.semiTensorRing, [2, 3, 2], [2, 4, 2], ranks: [2, 4, 2])
        let small = layer.cores.map { $0.value.reshaped([$0.value.shape[0], $0.value.shape[1] * $0.value.shape[2], $0.value.shape[3] * $0.value.shape[4]]) }
        let str = SemiTensorRing(cores: small, stpFactor: 2)
        let pairedW = layer.reconstructWeight().reshaped([2, 3, 2, 2, 4, 2]).permuted([0, 3, 1, 4, 2, 5]).reshaped([4, 12, 4])
        #expect(relativeDifference(str.reconstruct(), pairedW) <= 1e-13)
        #expect(layer.coreParameterCount == str.parameterCount)
    }
}

@Suite("FactorizedLinear STP errors") struct FactorizedSTPErrorTests {
    @Test func outputModeNotDivisibleByTProposesFactors() {
        var generator = SeededGenerator(seed: 1)
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2], outputModes: [3, 6], format: .semiTensorRing, ranks: [2],
                                             stpFactor: 2, name: "fc", generator: &generator)
        }, ["fc", "[1, 3]"])
    }

    @Test func rankNotMultipleOfTProposesMultiples() {
        var generator = SeededGenerator(seed: 1)
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [2, 2, 2], outputModes: [2, 2, 2], format: .semiTensorTrain, ranks: [2, 3],
                                             stpFactor: 2, name: "fc", generator: &generator)
        }, ["fc", "2 or 4"])
    }

    @Test func conversionChecksModesBeforeDecomposing() {
        var generator = SeededGenerator(seed: 3)
        let w = Tensor<Double>.randomNormal([4, 9], seed: 2)
        expectError({
            _ = try FactorizedLinear<Double>.converting(w, format: .semiTensorTrain, inputModes: [2, 2], outputModes: [3, 3],
                                                        target: .ranks([2]), stpFactor: 2, name: "fc")
        }, ["fc", "t = 2"])
        expectError({
            _ = try FactorizedLinear<Double>(inputModes: [4], outputModes: [4], format: .semiTensorTrain, ranks: [2], name: "fc",
                                             generator: &generator)
        }, ["fc", "at least 2 modes", "use [2, 2] → [2, 2]"])
    }

    @Test func formatNames() {
        #expect(FactorizedFormat(name: "stt") == .semiTensorTrain && FactorizedFormat(name: "STR") == .semiTensorRing)
        #expect(FactorizedFormat(name: "tensorTrain") == .tensorTrain && FactorizedFormat(name: "nope") == nil)
        for format in FactorizedFormat.allCases { #expect(FactorizedFormat(name: format.shortName) == format) }
    }
}
