import TensorCore

/// One evaluated assignment of a rank search.
public struct RankSearchEvaluation: Sendable, Codable, Equatable {
    /// For each layer, the index of the chosen candidate in that layer's `candidates`.
    public var assignment: [Int]
    /// What `evaluate` returned (higher is better).
    public var score: Double
    /// The assignment's total cost (≤ the budget).
    public var cost: Int
}

/// The outcome of `RankSelection.search`.
public struct RankSearchResult: Sendable, Codable, Equatable {
    /// The best evaluation (the first one reached on ties).
    public var best: RankSearchEvaluation
    /// Every evaluation in the order it was made; each assignment appears once.
    public var history: [RankSearchEvaluation]
}

extension RankSelection {
    /// A seeded, evaluation-bounded evolutionary search over rank assignments in the spirit of PSTRN [74].
    ///
    /// Genes are positions in each layer's candidates sorted by cost. The first individual is the greedy budget
    /// allocation (`allocateGreedily`); the rest of the first population is drawn at random. The population is the
    /// best `populationSize` assignments evaluated so far; each generation breeds children by binary tournament,
    /// uniform crossover and mutations of up to ± a quarter of the range (one child in four is a random immigrant),
    /// and repairs each child to the budget by moving random layers to cheaper candidates, so only assignments
    /// within budget are proposed. Every `generationsPerPhase` generations a progressive phase halves each layer's
    /// search range around the best assignment (PSTRN's "interest region"); when a shrunken range yields nothing new
    /// for two generations, the ranges are reset to the full lists. Evaluations are cached: an assignment is
    /// evaluated at most once, and the search stops after `maxEvaluations` calls or when it finds nothing new.
    ///
    /// The same `seed` (and inputs) gives the same history.
    /// - Parameters:
    ///   - layers: per layer, the candidates (as for `allocate`).
    ///   - budget: the largest allowed total cost.
    ///   - measure: what the budget counts.
    ///   - maxEvaluations: the most calls of `evaluate` (≥ 1).
    ///   - seed: the seed of the search's random choices.
    ///   - populationSize: the individuals kept per generation (≥ 2).
    ///   - generationsPerPhase: generations between two range shrinks (≥ 1).
    ///   - evaluate: the fitness of an assignment (candidate index per layer); higher is better, must be finite.
    /// - Throws: what `allocate` throws for bad candidates or a budget below the cheapest network;
    ///   `CompressionError.invalidRanks` (layer "network") when `evaluate` returns NaN or ∞; what `evaluate` throws.
    public static func search(layers: [LayerCandidates], budget: Int, measure: CostMeasure = .parameters,
                              maxEvaluations: Int, seed: UInt64, populationSize: Int = 12, generationsPerPhase: Int = 4,
                              evaluate: ([Int]) throws -> Double) throws -> RankSearchResult {
        precondition(maxEvaluations >= 1 && populationSize >= 2 && generationsPerPhase >= 1,
                     "RankSelection.search: maxEvaluations \(maxEvaluations) ≥ 1, populationSize \(populationSize) ≥ 2, generationsPerPhase \(generationsPerPhase) ≥ 1")
        let start = try allocateGreedily(layers, budget: budget, measure: measure)
        // order[l][g]: the caller's index of gene value g (candidates by cost, then error).
        let order = layers.map { layer in
            layer.candidates.indices.sorted {
                (layer.candidates[$0].cost(measure), layer.candidates[$0].relativeError, $0)
                    < (layer.candidates[$1].cost(measure), layer.candidates[$1].relativeError, $1)
            }
        }
        let costs = layers.indices.map { l in order[l].map { layers[l].candidates[$0].cost(measure) } }
        var generator = SeededGenerator(seed: seed)
        var low = order.map { _ in 0 }, high = order.map { $0.count - 1 }
        var seen = Set<[Int]>()  // genes evaluated so far; only queried, never iterated (order-independent)
        var history: [RankSearchEvaluation] = []
        var population: [(genes: [Int], score: Double)] = []  // the best so far, best first, earlier first on ties

        func totalCost(_ genes: [Int]) -> Int { genes.indices.reduce(0) { $0 + costs[$1][genes[$1]] } }

        /// Moves random layers one candidate cheaper until the assignment fits the budget.
        func repair(_ genes: inout [Int]) {
            var total = totalCost(genes)
            while total > budget {
                let movable = genes.indices.filter { genes[$0] > 0 }
                let l = movable[generator.nextInt(below: movable.count)]
                total -= costs[l][genes[l]] - costs[l][genes[l] - 1]
                genes[l] -= 1
            }
        }

        /// Genes drawn uniformly in the current ranges, repaired to the budget.
        func randomGenes() -> [Int] {
            var genes = layers.indices.map { low[$0] + generator.nextInt(below: high[$0] - low[$0] + 1) }
            repair(&genes)
            return genes
        }

        /// Evaluates new genes (false when they were seen before or the evaluations are spent).
        func consider(_ genes: [Int]) throws -> Bool {
            guard !seen.contains(genes), history.count < maxEvaluations else { return false }
            let assignment = genes.indices.map { order[$0][genes[$0]] }
            let score = try evaluate(assignment)
            guard score.isFinite else {
                throw CompressionError.invalidRanks(layer: "network", problem: "the search objective returned \(score) for assignment \(assignment); it must return a finite score")
            }
            seen.insert(genes)
            let position = population.firstIndex { score > $0.score } ?? population.count
            if position < populationSize {
                population.insert((genes, score), at: position)
                if population.count > populationSize { population.removeLast() }
            }
            history.append(RankSearchEvaluation(assignment: assignment, score: score, cost: totalCost(genes)))
            return true
        }

        let startGenes = layers.indices.map { l in order[l].firstIndex(of: start.choices[l])! }
        _ = try consider(startGenes)
        let attemptsPerGeneration = 10 * populationSize
        var attempts = 0
        while history.count < populationSize && attempts < attemptsPerGeneration && history.count < maxEvaluations {
            attempts += 1
            _ = try consider(randomGenes())
        }

        var generation = 0
        var barren = 0  // consecutive generations that found nothing new
        while history.count < maxEvaluations {
            func tournament() -> [Int] {
                let a = population[generator.nextInt(below: population.count)]
                let b = population[generator.nextInt(below: population.count)]
                return a.score >= b.score ? a.genes : b.genes
            }
            var found = 0
            for attempt in 0..<attemptsPerGeneration where found < populationSize && history.count < maxEvaluations {
                var child: [Int]
                if attempt % 4 == 3 {
                    child = randomGenes()  // an immigrant keeps the population from collapsing
                } else {
                    let mother = tournament(), father = tournament()
                    child = mother.indices.map { generator.nextInt(below: 2) == 0 ? mother[$0] : father[$0] }
                    let forced = generator.nextInt(below: child.count)
                    for l in child.indices where l == forced || generator.nextInt(below: 4) == 0 {
                        let width = Swift.max(1, (high[l] - low[l]) / 4)
                        let shift = generator.nextInt(below: 2 * width + 1) - width
                        child[l] = Swift.min(Swift.max(child[l] + shift, low[l]), high[l])
                    }
                    repair(&child)
                }
                if try consider(child) { found += 1 }
            }
            generation += 1
            let full = low.allSatisfy { $0 == 0 } && high.indices.allSatisfy { high[$0] == order[$0].count - 1 }
            barren = found == 0 ? barren + 1 : 0
            if barren >= 2 {
                if full { break }
                low = order.map { _ in 0 }; high = order.map { $0.count - 1 }; barren = 0
            } else if generation % generationsPerPhase == 0 {
                let best = population[0].genes
                for l in best.indices {
                    let half = Swift.max(1, (high[l] - low[l]) / 4)
                    low[l] = Swift.max(0, best[l] - half); high[l] = Swift.min(order[l].count - 1, best[l] + half)
                }
            }
        }
        let bestIndex = history.indices.max { (history[$0].score, -$0) < (history[$1].score, -$1) }!
        return RankSearchResult(best: history[bestIndex], history: history)
    }
}
