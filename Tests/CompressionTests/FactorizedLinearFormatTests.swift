import Compression
import Decompositions
import Testing
import TensorCore

// One suite per format: gradient check, full-rank conversion, execution modes, cost formulas = counter.

@Suite("FactorizedLinear SVD") struct FactorizedSVDTests {
    @Test func gradients() throws { try checkFormatGradients(.svd) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.svd) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.svd) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in [(7, 5), (16, 3), (4, 4)] {
            for r in [1, 2, Swift.min(i, o)] {
                let layer = try gridLayer(.svd, [i], [o], ranks: [r])
                expectCounterMatches(layer, FCCostFormulas.svd(inputFeatures: i, outputFeatures: o, rank: r))
            }
        }
    }
}

@Suite("FactorizedLinear CP") struct FactorizedCPTests {
    @Test func gradients() throws { try checkFormatGradients(.cp) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.cp) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.cp) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid where i.count >= 2 {
            for r in [1, 3, 4] {
                let layer = try gridLayer(.cp, i, o, ranks: [r])
                expectCounterMatches(layer, FCCostFormulas.cp(inputModes: i, outputModes: o, rank: r))
            }
        }
    }
}

@Suite("FactorizedLinear Tucker") struct FactorizedTuckerTests {
    @Test func gradients() throws { try checkFormatGradients(.tucker) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.tucker) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.tucker) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid {
            for base in [1, 2] {
                let inRanks = i.indices.map { Swift.min(base + $0 % 2, i[$0]) }
                let outRanks = o.indices.map { Swift.min(base + ($0 + 1) % 2, o[$0]) }
                let layer = try gridLayer(.tucker, i, o, ranks: inRanks + outRanks)
                expectCounterMatches(layer, FCCostFormulas.tucker(inputModes: i, outputModes: o, inputRanks: inRanks, outputRanks: outRanks))
            }
        }
    }
}

@Suite("FactorizedLinear TT") struct FactorizedTTTests {
    @Test func gradients() throws { try checkFormatGradients(.tensorTrain) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.tensorTrain) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.tensorTrain) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid {
            for r in [1, 2, 4] {
                let inner = (0..<(i.count - 1)).map { r + $0 }
                let layer = try gridLayer(.tensorTrain, i, o, ranks: inner)
                expectCounterMatches(layer, FCCostFormulas.tensorTrain(inputModes: i, outputModes: o, ranks: [1] + inner + [1]))
            }
        }
    }

    /// METHODS §1.6 oracle: I = O = 1024 = 4⁵, ranks (1,8,8,8,8,1): storage 3,328 and 851,968 MACs.
    @Test func methodsOracle() throws {
        let cost = FCCostFormulas.tensorTrain(inputModes: [4, 4, 4, 4, 4], outputModes: [4, 4, 4, 4, 4], ranks: [1, 8, 8, 8, 8, 1])
        #expect(cost == ClosedFormCost(parameters: 3_328, macsPerSample: 851_968))
        let layer = try gridLayer(.tensorTrain, [4, 4, 4, 4, 4], [4, 4, 4, 4, 4], ranks: [8])
        expectCounterMatches(layer, cost, batch: 1)
    }

    @Test func uniformTableRowMatchesGeneralForm() {
        for (m, n, d, r) in [(2, 3, 2, 2), (3, 2, 3, 4), (4, 4, 5, 8), (2, 5, 4, 3)] {
            let general = FCCostFormulas.tensorTrain(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d),
                                                     ranks: [1] + Array(repeating: r, count: d - 1) + [1])
            #expect(FCCostFormulas.uniformTable(.tensorTrain, m: m, n: n, d: d, rank: r) == general)
        }
    }
}

@Suite("FactorizedLinear TR") struct FactorizedTRTests {
    @Test func gradients() throws { try checkFormatGradients(.tensorRing) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.tensorRing) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.tensorRing) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid where i.count >= 2 {
            for r in [1, 2, 3] {
                let ranks = i.indices.map { r + $0 % 2 }
                let layer = try gridLayer(.tensorRing, i, o, ranks: ranks)
                expectCounterMatches(layer, FCCostFormulas.tensorRing(inputModes: i, outputModes: o, ranks: ranks))
            }
        }
    }

    /// METHODS §1.7 oracle: I = O = 4⁵, R = 8: storage 5,120 and 6,815,744 MACs.
    @Test func methodsOracle() {
        let cost = FCCostFormulas.tensorRing(inputModes: [4, 4, 4, 4, 4], outputModes: [4, 4, 4, 4, 4], ranks: [8, 8, 8, 8, 8])
        #expect(cost == ClosedFormCost(parameters: 5_120, macsPerSample: 6_815_744))
    }

    @Test func uniformTableRowMatchesGeneralForm() {
        for (m, n, d, r) in [(2, 3, 2, 2), (3, 2, 3, 4), (4, 4, 5, 8)] {
            let general = FCCostFormulas.tensorRing(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d),
                                                    ranks: Array(repeating: r, count: d))
            #expect(FCCostFormulas.uniformTable(.tensorRing, m: m, n: n, d: d, rank: r) == general)
        }
    }
}

@Suite("FactorizedLinear HT") struct FactorizedHTTests {
    @Test func gradients() throws { try checkFormatGradients(.hierarchicalTucker) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.hierarchicalTucker) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.hierarchicalTucker) }

    /// The d = 4 oracle of METHODS §1.5 on a grid of m, n, R (and its m = 3, n = 2, R = 5 value 26,210).
    @Test func oracleMatchesCounter() throws {
        #expect(FCCostFormulas.hierarchicalTuckerOracle(m: 3, n: 2, rank: 5).macsPerSample == 26_210)
        for (m, n, r) in [(3, 2, 5), (2, 3, 2), (2, 2, 3), (4, 1, 2)] {
            let layer = try gridLayer(.hierarchicalTucker, [m, m, m, m], [n, n, n, n], ranks: [r])
            expectCounterMatches(layer, FCCostFormulas.hierarchicalTuckerOracle(m: m, n: n, rank: r), batch: 2)
        }
    }

    /// The general form (any d, unequal modes and ranks) along the post-order schedule; uniform d = 4 is the oracle.
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid where i.count >= 2 {
            for r in [1, 2, 3] {
                let ranks = (0..<(2 * i.count - 2)).map { r + $0 % 3 }
                let layer = try gridLayer(.hierarchicalTucker, i, o, ranks: ranks)
                expectCounterMatches(layer, FCCostFormulas.hierarchicalTucker(inputModes: i, outputModes: o, ranks: ranks))
            }
        }
        for (m, n, r) in [(3, 2, 5), (2, 3, 2)] {
            #expect(FCCostFormulas.hierarchicalTucker(inputModes: [m, m, m, m], outputModes: [n, n, n, n], ranks: [Int](repeating: r, count: 6))
                    == FCCostFormulas.hierarchicalTuckerOracle(m: m, n: n, rank: r))
        }
    }

    /// Pre-merging leaf 4 with its parent drops the n⁴R⁴ term (METHODS §1.5: 16,210 for m = 3, n = 2, R = 5): the
    /// cheapest path is no dearer than that schedule plus its weight-side merge (mnR³ = 750).
    @Test func cheapestPathBeatsTheOracle() throws {
        let layer = try gridLayer(.hierarchicalTucker, [3, 3, 3, 3], [2, 2, 2, 2], ranks: [5])
        #expect(layer.network.forwardExpression(batch: 1).optimalPath().multiplyAdds <= 16_210 + 3 * 2 * 5 * 5 * 5)
    }
}

@Suite("FactorizedLinear BTD") struct FactorizedBTDTests {
    @Test func gradients() throws { try checkFormatGradients(.blockTerm) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.blockTerm) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.blockTerm) }
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in modeGrid {
            for (blocks, r) in [(1, 2), (3, 1), (2, 2)] {
                let ranks = i.indices.map { r + $0 % 2 }
                let layer = try gridLayer(.blockTerm, i, o, ranks: ranks, blocks: blocks)
                expectCounterMatches(layer, FCCostFormulas.blockTerm(inputModes: i, outputModes: o, blocks: blocks, ranks: ranks))
            }
        }
    }

    @Test func uniformTableRowMatchesGeneralForm() {
        for (m, n, d, r, b) in [(2, 3, 2, 2, 1), (3, 2, 3, 4, 2), (2, 2, 4, 2, 3)] {
            let general = FCCostFormulas.blockTerm(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d),
                                                   blocks: b, ranks: Array(repeating: r, count: d))
            #expect(FCCostFormulas.uniformTable(.blockTerm, m: m, n: n, d: d, rank: r, blocks: b) == general)
        }
    }
}

@Suite("FactorizedLinear KPD") struct FactorizedKPDTests {
    @Test func gradients() throws { try checkFormatGradients(.kronecker) }
    @Test func fullRankConversion() throws { try checkFullRankConversion(.kronecker) }
    @Test func executionModesAgree() throws { try checkExecutionModesAgree(.kronecker) }

    /// The KPD formula is the cheaper of the two absorption orders; the counter gives each order exactly.
    @Test func costFormulaMatchesCounter() throws {
        for (i, o) in [([2, 3], [4, 2]), ([5, 2], [1, 6]), ([3, 3], [3, 3])] {
            for r in [1, 2, 4] {
                let layer = try gridLayer(.kronecker, i, o, ranks: [r])
                let formula = FCCostFormulas.kronecker(inputModes: i, outputModes: o, rank: r)
                let expression = layer.network.forwardExpression(batch: 2)
                let aFirst = expression.path(sequence: [0, 1, 2]).multiplyAdds
                let bFirst = expression.path(sequence: [0, 2, 1]).multiplyAdds
                #expect(Swift.min(aFirst, bFirst) == 2 * formula.macsPerSample)
                #expect(aFirst == 2 * r * (o[0] * i[0] * i[1] + i[1] * o[0] * o[1]))
                #expect(layer.coreParameterCount == formula.parameters)
                #expect(expression.optimalPath().multiplyAdds <= 2 * formula.macsPerSample)
            }
        }
    }
}

@Suite("FactorizedLinear CP uniform table") struct FactorizedUniformTableTests {
    @Test func cpAndSVDRowsMatchGeneralForms() {
        for (m, n, d, r) in [(2, 3, 2, 2), (3, 2, 3, 4), (4, 4, 5, 8)] {
            let cp = FCCostFormulas.cp(inputModes: Array(repeating: m, count: d), outputModes: Array(repeating: n, count: d), rank: r)
            #expect(FCCostFormulas.uniformTable(.cp, m: m, n: n, d: d, rank: r) == cp)
            var i = 1, o = 1
            for _ in 0..<d { i *= m; o *= n }
            #expect(FCCostFormulas.uniformTable(.svd, m: m, n: n, d: d, rank: r) == FCCostFormulas.svd(inputFeatures: i, outputFeatures: o, rank: r))
        }
    }
}
