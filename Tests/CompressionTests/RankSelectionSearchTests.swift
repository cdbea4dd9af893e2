import Compression
import Testing
import TensorCore

/// `layers` layers of `count` candidates with random costs 1…20 (index order unrelated to cost), or, when
/// `rankLike`, costs (k+1)·c_l growing with the index k as the costs of ranks do (c_l in 1…4).
private func searchLayers(layers: Int, count: Int, seed: UInt64, rankLike: Bool = false) -> [LayerCandidates] {
    var generator = SeededGenerator(seed: seed)
    return (0..<layers).map { l in
        let perRank = 1 + generator.nextInt(below: 4)
        let candidates = (0..<count).map { k in
            RankCandidate(format: "tr", ranks: [k + 1], parameters: rankLike ? (k + 1) * perRank : 1 + generator.nextInt(below: 20),
                          macs: 0, relativeError: generator.nextUnitDouble())
        }
        return LayerCandidates(name: "layer\(l)", denseParameters: 20, denseMACs: 0, candidates: candidates)
    }
}

/// A non-separable objective with a unique maximum over the whole space at `target`.
private func objective(_ assignment: [Int]) -> Double {
    let target = [4, 1, 3, 5]
    var score = 0.0
    for l in assignment.indices { score -= Double((assignment[l] - target[l]) * (assignment[l] - target[l])) }
    return score - 0.5 * Double(abs(assignment[0] - assignment[1] - 3))
}

@Suite("Rank selection: evolutionary search") struct RankSelectionSearchTests {
    @Test func reproducibleBySeed() throws {
        let layers = searchLayers(layers: 4, count: 6, seed: 1)
        let budget = 40
        let first = try RankSelection.search(layers: layers, budget: budget, maxEvaluations: 60, seed: 7, evaluate: objective)
        let second = try RankSelection.search(layers: layers, budget: budget, maxEvaluations: 60, seed: 7, evaluate: objective)
        let other = try RankSelection.search(layers: layers, budget: budget, maxEvaluations: 60, seed: 8, evaluate: objective)
        #expect(first == second)
        #expect(first.history != other.history)
    }

    /// `evaluate` runs at most `maxEvaluations` times, once per distinct assignment, always within budget.
    @Test func neverExceedsTheEvaluationsOrTheBudget() throws {
        let layers = searchLayers(layers: 5, count: 8, seed: 2)
        for (maxEvaluations, budget) in [(1, 40), (25, 40), (200, 30), (2000, 55)] {
            var calls = 0
            let result = try RankSelection.search(layers: layers, budget: budget, maxEvaluations: maxEvaluations, seed: 3) { assignment in
                calls += 1
                return -Double(assignment.reduce(0, +))
            }
            #expect(calls <= maxEvaluations && calls == result.history.count && calls >= 1)
            #expect(Set(result.history.map(\.assignment)).count == result.history.count)
            for evaluation in result.history {
                let cost = evaluation.assignment.indices.reduce(0) { $0 + layers[$1].candidates[evaluation.assignment[$1]].parameters }
                #expect(cost == evaluation.cost && cost <= budget)
            }
            #expect(result.best.score == result.history.map(\.score).max())
        }
    }

    /// On a 6⁴ space of rank-like candidates with a known objective, the search reaches the best feasible assignment
    /// (found by enumeration) within a quarter of the space's evaluations, whether the unconstrained optimum
    /// [4, 1, 3, 5] is within the budget or not.
    @Test func findsTheKnownOptimum() throws {
        let layers = searchLayers(layers: 4, count: 6, seed: 4, rankLike: true)
        let unconstrainedCost = [4, 1, 3, 5].indices.reduce(0) { $0 + layers[$1].candidates[[4, 1, 3, 5][$1]].parameters }
        for budget in [unconstrainedCost / 2, unconstrainedCost - 3, unconstrainedCost + 5] {
            var optimum = -Double.infinity
            for a in 0..<6 { for b in 0..<6 { for c in 0..<6 { for d in 0..<6 {
                let cost = layers[0].candidates[a].parameters + layers[1].candidates[b].parameters
                    + layers[2].candidates[c].parameters + layers[3].candidates[d].parameters
                if cost <= budget { optimum = max(optimum, objective([a, b, c, d])) }
            } } } }
            for seed: UInt64 in 1...8 {
                let result = try RankSelection.search(layers: layers, budget: budget, maxEvaluations: 324, seed: seed, evaluate: objective)
                #expect(result.best.score == optimum, "budget \(budget), seed \(seed): \(result.best) vs optimum \(optimum) after \(result.history.count) evaluations")
            }
        }
    }

    @Test func rejectsNonFiniteScores() throws {
        let layers = searchLayers(layers: 2, count: 3, seed: 5)
        #expect(throws: CompressionError.self) {
            try RankSelection.search(layers: layers, budget: 40, maxEvaluations: 5, seed: 1) { _ in .nan }
        }
    }
}
