/// One candidate per layer chosen under a global budget.
public struct RankAllocation: Sendable, Codable, Equatable {
    /// How the allocation was found.
    public enum Solver: String, Sendable, Codable {
        /// Greedy on the lower convex hulls, then single-layer upgrades into the leftover budget.
        case greedy
        /// Multiple-choice knapsack DP on the exact integer costs (divided by their gcd): optimal.
        case exactDynamicProgram
        /// The same DP on costs rounded up to a grid of the budget (feasible, near-optimal), or the greedy
        /// result when that was better.
        case gridDynamicProgram
    }

    /// For each layer, the index of the chosen candidate in that layer's `candidates` (the caller's order).
    public var choices: [Int]
    /// Σ_l cost of the chosen candidates, never above `budget`.
    public var cost: Int
    /// Σ_l w_l·e_l of the chosen candidates (weights from `LayerCandidates.weight`).
    public var weightedError: Double
    /// The budget the allocation had to meet.
    public var budget: Int
    /// What `cost` and `budget` count.
    public var measure: CostMeasure
    /// How it was found.
    public var solver: Solver
    /// True when the allocation is proven optimal (exact DP).
    public var isOptimal: Bool
}

extension RankSelection {
    /// Chooses one candidate per layer with Σ cost ≤ `budget` (never over) that minimizes the summed weighted
    /// relative error Σ_l w_l·e_l: a multiple-choice knapsack, the global budget of BATUDE [55] and ALDS [52] in
    /// closed form.
    ///
    /// Runs `allocateGreedily` and a DP over the layers' Pareto candidates. The DP is exact when the costs, divided
    /// by their gcd, give a budget of at most `gridSize` units; otherwise costs are rounded *up* to units of
    /// budget/`gridSize`, so any DP solution still meets the exact budget (Σ⌈c·G/B⌉ ≤ G ⇒ Σc ≤ B), and the better of
    /// the two results is returned. Work is O(layers · gridSize · candidates) (costs · gridSize must fit in `Int`).
    /// - Throws: `CompressionError.invalidRanks` for bad candidates, or (layer "network") when the budget is below
    ///   the cheapest network, saying what that minimum is.
    public static func allocate(_ layers: [LayerCandidates], budget: Int, measure: CostMeasure = .parameters,
                                gridSize: Int = 10_000) throws -> RankAllocation {
        precondition(gridSize >= 1, "RankSelection.allocate: gridSize \(gridSize) must be at least 1")
        _ = try validate(layers, budget: budget, measure: measure)
        let frontiers = layers.map { paretoFrontier($0, measure: measure) }
        var best = greedyPositions(frontiers, budget: budget)
        var solver = RankAllocation.Solver.greedy
        var isOptimal = false
        if let (positions, exact) = dynamicProgram(frontiers, budget: budget, gridSize: gridSize) {
            var improved = positions
            upgradeIntoLeftover(&improved, frontiers, budget: budget)
            if exact || error(of: improved, frontiers) < error(of: best, frontiers) { best = improved }
            solver = exact ? .exactDynamicProgram : .gridDynamicProgram
            isOptimal = exact
        }
        return allocation(best, frontiers, budget: budget, measure: measure, solver: solver, isOptimal: isOptimal)
    }

    /// The greedy allocation alone: start every layer at its cheapest candidate, then repeatedly take, across
    /// layers, the next point of a layer's lower convex hull of (cost, w·error) with the largest error reduction per
    /// unit cost that still fits (METHODS §3 "greedy global budget"); finally upgrade single layers into the
    /// leftover budget while the error drops. Never over budget; not always optimal.
    /// - Throws: as `allocate`.
    public static func allocateGreedily(_ layers: [LayerCandidates], budget: Int,
                                        measure: CostMeasure = .parameters) throws -> RankAllocation {
        _ = try validate(layers, budget: budget, measure: measure)
        let frontiers = layers.map { paretoFrontier($0, measure: measure) }
        return allocation(greedyPositions(frontiers, budget: budget), frontiers, budget: budget, measure: measure,
                          solver: .greedy, isOptimal: false)
    }

    /// A candidate reduced to what allocation needs: its index in the caller's list, cost and weighted error.
    struct Option {
        var index: Int
        var cost: Int
        var error: Double
    }

    /// The candidates no other beats in both cost and weighted error: cost strictly increasing, error strictly
    /// decreasing (ties keep the first in the caller's order).
    static func paretoFrontier(_ layer: LayerCandidates, measure: CostMeasure) -> [Option] {
        let options = layer.candidates.enumerated().map {
            Option(index: $0.offset, cost: $0.element.cost(measure), error: layer.weight * $0.element.relativeError)
        }.sorted { ($0.cost, $0.error, $0.index) < ($1.cost, $1.error, $1.index) }
        var frontier: [Option] = []
        for option in options where frontier.last.map({ option.error < $0.error }) ?? true { frontier.append(option) }
        return frontier
    }

    /// Positions (into the frontier) of its lower convex hull in the (cost, error) plane.
    private static func lowerHull(_ frontier: [Option]) -> [Int] {
        var hull: [Int] = []
        for j in frontier.indices {
            while hull.count >= 2 {
                let o = frontier[hull[hull.count - 2]], a = frontier[hull[hull.count - 1]], b = frontier[j]
                let cross = Double(a.cost - o.cost) * (b.error - o.error) - (a.error - o.error) * Double(b.cost - o.cost)
                if cross <= 0 { hull.removeLast() } else { break }
            }
            hull.append(j)
        }
        return hull
    }

    /// The greedy of `allocateGreedily`, as frontier positions.
    private static func greedyPositions(_ frontiers: [[Option]], budget: Int) -> [Int] {
        let hulls = frontiers.map(lowerHull)
        var step = [Int](repeating: 0, count: frontiers.count)  // position along each hull
        var remaining = budget - frontiers.reduce(0) { $0 + $1[0].cost }
        while true {
            var bestLayer: Int?, bestRatio = -Double.infinity
            for l in frontiers.indices where step[l] + 1 < hulls[l].count {
                let current = frontiers[l][hulls[l][step[l]]], next = frontiers[l][hulls[l][step[l] + 1]]
                let extra = next.cost - current.cost
                let ratio = (current.error - next.error) / Double(extra)
                if extra <= remaining && ratio > bestRatio { bestLayer = l; bestRatio = ratio }
            }
            guard let l = bestLayer else { break }
            remaining -= frontiers[l][hulls[l][step[l] + 1]].cost - frontiers[l][hulls[l][step[l]]].cost
            step[l] += 1
        }
        var positions = frontiers.indices.map { hulls[$0][step[$0]] }
        upgradeIntoLeftover(&positions, frontiers, budget: budget)
        return positions
    }

    /// Repeatedly moves one layer to the frontier point with the largest error drop that fits the leftover budget.
    private static func upgradeIntoLeftover(_ positions: inout [Int], _ frontiers: [[Option]], budget: Int) {
        var remaining = budget - cost(of: positions, frontiers)
        while true {
            var best: (layer: Int, position: Int, drop: Double)?
            for l in frontiers.indices {
                let current = frontiers[l][positions[l]]
                for j in (positions[l] + 1)..<frontiers[l].count where frontiers[l][j].cost - current.cost <= remaining {
                    let drop = current.error - frontiers[l][j].error
                    if drop > (best?.drop ?? 0) { best = (l, j, drop) }
                }
            }
            guard let move = best else { return }
            remaining -= frontiers[move.layer][move.position].cost - frontiers[move.layer][positions[move.layer]].cost
            positions[move.layer] = move.position
        }
    }

    /// The multiple-choice knapsack DP: frontier positions minimizing the summed error, and whether the costs were
    /// exact (nil if the rounded costs admit no solution).
    private static func dynamicProgram(_ frontiers: [[Option]], budget: Int, gridSize: Int) -> ([Int], Bool)? {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let unit = Swift.max(frontiers.joined().reduce(0) { gcd($0, $1.cost) }, 1)
        let exact = budget / unit <= gridSize
        let capacity = exact ? budget / unit : gridSize
        let scaled = frontiers.map { frontier in
            frontier.map { exact ? $0.cost / unit : ($0.cost * gridSize + budget - 1) / budget }
        }
        var best = [Double](repeating: 0, count: capacity + 1)  // best[b]: least error of the layers so far within b
        var choice = [[Int32]](repeating: [], count: frontiers.count)
        for l in frontiers.indices {
            var next = [Double](repeating: .infinity, count: capacity + 1)
            var picked = [Int32](repeating: -1, count: capacity + 1)
            for b in 0...capacity {
                for j in frontiers[l].indices {
                    let s = scaled[l][j]
                    if s > b { break }
                    let value = best[b - s] + frontiers[l][j].error
                    if value < next[b] { next[b] = value; picked[b] = Int32(j) }
                }
            }
            best = next
            choice[l] = picked
        }
        guard best[capacity].isFinite else { return nil }
        var positions = [Int](repeating: 0, count: frontiers.count)
        var b = capacity
        for l in frontiers.indices.reversed() {
            positions[l] = Int(choice[l][b])
            b -= scaled[l][positions[l]]
        }
        return (positions, exact)
    }

    private static func cost(of positions: [Int], _ frontiers: [[Option]]) -> Int {
        frontiers.indices.reduce(0) { $0 + frontiers[$1][positions[$1]].cost }
    }

    private static func error(of positions: [Int], _ frontiers: [[Option]]) -> Double {
        frontiers.indices.reduce(0) { $0 + frontiers[$1][positions[$1]].error }
    }

    private static func allocation(_ positions: [Int], _ frontiers: [[Option]], budget: Int, measure: CostMeasure,
                                   solver: RankAllocation.Solver, isOptimal: Bool) -> RankAllocation {
        let total = cost(of: positions, frontiers)
        precondition(total <= budget, "RankSelection: allocation cost \(total) exceeds the budget \(budget); this is a bug in LowRank, please report it")
        return RankAllocation(choices: frontiers.indices.map { frontiers[$0][positions[$0]].index }, cost: total,
                              weightedError: error(of: positions, frontiers), budget: budget, measure: measure,
                              solver: solver, isOptimal: isOptimal)
    }
}
