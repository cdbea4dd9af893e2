import Compression
import Foundation
import Testing
import TensorCore

/// Random small candidate lists: costs in 1…maxCost (times `scale`), errors in [0, 1), weights in [0.5, 2).
private func randomLayers(_ generator: inout SeededGenerator, layers: Int, maxCost: Int, scale: Int = 1) -> [LayerCandidates] {
    (0..<layers).map { l in
        let count = 2 + generator.nextInt(below: 4)
        let candidates = (0..<count).map { k in
            let cost = (1 + generator.nextInt(below: maxCost)) * scale
            return RankCandidate(format: "f", ranks: [k + 1], parameters: cost, macs: 3 * cost, relativeError: generator.nextUnitDouble())
        }
        return LayerCandidates(name: "layer\(l)", denseParameters: maxCost * scale, denseMACs: 3 * maxCost * scale,
                               candidates: candidates, weight: 0.5 + 1.5 * generator.nextUnitDouble())
    }
}

/// The least Σ w·e with Σ cost ≤ budget over all assignments, by enumeration.
private func bruteForce(_ layers: [LayerCandidates], budget: Int, measure: CostMeasure = .parameters) -> Double {
    var best = Double.infinity
    func visit(_ l: Int, _ cost: Int, _ error: Double) {
        if l == layers.count { if cost <= budget { best = min(best, error) }; return }
        for c in layers[l].candidates { visit(l + 1, cost + c.cost(measure), error + layers[l].weight * c.relativeError) }
    }
    visit(0, 0, 0)
    return best
}

/// Cost and weighted error of `allocation.choices`, recomputed.
private func recomputed(_ layers: [LayerCandidates], _ allocation: RankAllocation) -> (Int, Double) {
    var cost = 0, error = 0.0
    for (l, c) in allocation.choices.enumerated() {
        cost += layers[l].candidates[c].cost(allocation.measure)
        error += layers[l].weight * layers[l].candidates[c].relativeError
    }
    return (cost, error)
}

/// SVD candidates of a layer with singular values σ_i = exp(−i/decay).
private func spectralLayer(_ name: String, _ i: Int, _ o: Int, decay: Double) -> LayerCandidates {
    LayerCandidates.svd(name: name, singularValues: (0..<min(i, o)).map { exp(-Double($0) / decay) }, inputFeatures: i, outputFeatures: o)
}

@Suite("Rank selection: budget allocation") struct RankSelectionAllocationTests {
    @Test func budgetBelowTheCheapestNetworkThrows() throws {
        let layers = [spectralLayer("a", 20, 10, decay: 3), spectralLayer("b", 30, 30, decay: 3)]
        let minimum = 30 + 60  // rank 1 everywhere
        do {
            _ = try RankSelection.allocate(layers, budget: minimum - 1)
            Issue.record("a budget below \(minimum) must throw")
        } catch let error as CompressionError {
            #expect(error.description.contains("\(minimum)"), "\(error)")
        }
        let cheapest = try RankSelection.allocate(layers, budget: minimum)
        #expect(cheapest.cost == minimum && cheapest.choices == [0, 0])
        #expect(throws: CompressionError.self) { try RankSelection.allocate([], budget: 10) }
        var bad = layers
        bad[1].candidates[2].relativeError = .nan
        #expect(throws: CompressionError.self) { try RankSelection.allocate(bad, budget: 1000) }
    }

    /// The exact DP equals enumeration on small random instances, and every solver stays within the budget.
    @Test func exactDynamicProgramEqualsBruteForce() throws {
        var generator = SeededGenerator(seed: 11)
        for trial in 0..<60 {
            let layers = randomLayers(&generator, layers: 2 + generator.nextInt(below: 3), maxCost: 20)
            let measure: CostMeasure = trial % 2 == 0 ? .parameters : .macs
            let minimum = layers.reduce(0) { $0 + $1.candidates.map { $0.cost(measure) }.min()! }
            let maximum = layers.reduce(0) { $0 + $1.candidates.map { $0.cost(measure) }.max()! }
            let budget = minimum + generator.nextInt(below: maximum - minimum + 1)
            let optimum = bruteForce(layers, budget: budget, measure: measure)
            let exact = try RankSelection.allocate(layers, budget: budget, measure: measure)
            let greedy = try RankSelection.allocateGreedily(layers, budget: budget, measure: measure)
            #expect(exact.isOptimal && exact.solver == .exactDynamicProgram)
            #expect(abs(exact.weightedError - optimum) <= 1e-12, "trial \(trial): DP \(exact.weightedError) vs brute force \(optimum)")
            for allocation in [exact, greedy] {
                let (cost, error) = recomputed(layers, allocation)
                #expect(allocation.cost == cost && cost <= budget)
                #expect(abs(allocation.weightedError - error) <= 1e-12)
                #expect(allocation.weightedError >= optimum - 1e-12)
            }
        }
    }

    /// Large costs force the grid DP (costs rounded up; when the rounded costs admit no solution, the greedy result
    /// stands): never over budget, never worse than greedy, never claimed optimal.
    @Test func gridDynamicProgramNeverExceedsTheBudget() throws {
        var generator = SeededGenerator(seed: 12)
        var gridWins = 0
        for trial in 0..<40 {
            let layers = randomLayers(&generator, layers: 3, maxCost: 1000, scale: 1009)
            let minimum = layers.reduce(0) { $0 + $1.candidates.map(\.parameters).min()! }
            let maximum = layers.reduce(0) { $0 + $1.candidates.map(\.parameters).max()! }
            let budget = trial == 0 ? minimum : minimum + generator.nextInt(below: maximum - minimum + 1)
            let grid = try RankSelection.allocate(layers, budget: budget, gridSize: 64)
            let greedy = try RankSelection.allocateGreedily(layers, budget: budget)
            #expect(grid.solver != .exactDynamicProgram && !grid.isOptimal)
            #expect(grid.cost <= budget && recomputed(layers, grid).0 == grid.cost)
            #expect(grid.weightedError <= greedy.weightedError + 1e-12)
            #expect(grid.weightedError >= bruteForce(layers, budget: budget) - 1e-12)
            if trial == 0 { #expect(grid.cost == minimum) }
            if grid.solver == .gridDynamicProgram { gridWins += 1 }
        }
        #expect(gridWins >= 30, "the grid DP ran in only \(gridWins) of 40 trials")
    }

    /// Layers with different spectra: at the cost of uniform rank 8, the allocation has a strictly smaller summed
    /// error (the optimum of a problem in which uniform ranks are feasible can only tie when they are optimal).
    @Test func heterogeneousLayersBeatUniformRanks() throws {
        let layers = [spectralLayer("fast", 64, 64, decay: 1), spectralLayer("medium", 128, 64, decay: 6),
                      spectralLayer("slow", 64, 96, decay: 12), spectralLayer("narrow", 32, 128, decay: 4)]
        let uniform = layers.map { $0.candidates[7] }  // rank 8
        let budget = uniform.reduce(0) { $0 + $1.parameters }
        let uniformError = uniform.reduce(0) { $0 + $1.relativeError }
        let allocation = try RankSelection.allocate(layers, budget: budget)
        let greedy = try RankSelection.allocateGreedily(layers, budget: budget)
        #expect(allocation.isOptimal && allocation.cost <= budget)
        #expect(allocation.weightedError < uniformError - 0.05, "allocation \(allocation.weightedError) vs uniform \(uniformError)")
        #expect(greedy.cost <= budget && greedy.weightedError < uniformError - 0.05)
        let ranks = layers.indices.map { layers[$0].candidates[allocation.choices[$0]].ranks.first ?? Int.max }
        #expect(ranks[0] < 8 && ranks[2] > 8, "the fast-decaying layer needs fewer ranks than the slow one: \(ranks)")
    }

    /// Two formats per layer: the allocator picks format and rank per layer, and equals enumeration.
    @Test func mixedFormats() throws {
        // Format "a" reaches a given error with fewer parameters on layer 0, format "b" on layer 1.
        func layer(_ name: String, aDecay: Double, bDecay: Double) -> LayerCandidates {
            var candidates: [RankCandidate] = []
            for r in 1...5 {
                candidates.append(RankCandidate(format: "a", ranks: [r], parameters: 10 * r, macs: 10 * r, relativeError: exp(-Double(r) / aDecay)))
                candidates.append(RankCandidate(format: "b", ranks: [r, r], parameters: 8 * r + 4, macs: 8 * r + 4, relativeError: exp(-Double(r) / bDecay)))
            }
            candidates.append(.dense(parameters: 100, macs: 100))
            return LayerCandidates(name: name, denseParameters: 100, denseMACs: 100, candidates: candidates)
        }
        let layers = [layer("l0", aDecay: 0.7, bDecay: 3), layer("l1", aDecay: 3, bDecay: 0.7), layer("l2", aDecay: 1.5, bDecay: 1.5)]
        for budget in [40, 60, 90, 140, 300] {
            let allocation = try RankSelection.allocate(layers, budget: budget)
            #expect(allocation.cost <= budget)
            #expect(abs(allocation.weightedError - bruteForce(layers, budget: budget)) <= 1e-12, "budget \(budget)")
            let formats = layers.indices.map { layers[$0].candidates[allocation.choices[$0]].format }
            if budget < 300 { #expect(formats[0] == "a" && formats[1] == "b", "budget \(budget): \(formats)") }
        }
    }

    /// A layer whose error has weight 0 is held at its cheapest candidate.
    @Test func zeroWeightLayerTakesTheCheapestCandidate() throws {
        var layers = [spectralLayer("a", 16, 16, decay: 4), spectralLayer("b", 16, 16, decay: 4)]
        layers[1].weight = 0
        let allocation = try RankSelection.allocate(layers, budget: 300)
        #expect(allocation.choices[1] == 0)
        #expect(allocation.cost <= 300 && allocation.choices[0] > 0)
    }
}
