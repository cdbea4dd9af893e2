// Contraction paths for einsum: search (METHODS §0.3, Rule C4) and exact cost counting (Rule C1).
//
// Counting conventions (the reference for every cost table in LowRank):
// * A pairwise contraction costs the product of the sizes of all distinct indices that occur in either
//   operand (Rule C1): that many multiply-adds (MACs). An outer product is the case with no shared index.
// * A single-operand reduction, done before any pairwise step, sums out the indices that occur in one operand
//   only and not in the output. Summing a tensor of S elements into T elements costs S − T additions (each
//   output sums S/T terms with S/T − 1 additions; zero when a summed dimension is empty), counted as
//   multiply-adds. Taking a diagonal (a letter repeated in one operand) is a gather and costs nothing, so
//   "ii->i" costs 0 and "ii->" (trace) costs n − 1.
// * The largest intermediate is the element count of the largest tensor any step creates: the results of the
//   single-operand reductions and of the pairwise contractions, the last of which is the output (so the output
//   is included). The inputs are excluded. A path with no step (a pure permutation) reports 0.
// * Total cost = Σ pairwise MACs + Σ reduction additions; the final permute to output order is free (it counts
//   only in the time estimate that `ContractionStrategy.fastest` minimizes).

/// How `EinsumExpression.optimalPath(strategy:)` searches for a contraction order (METHODS §0.3, Rule C4).
public enum ContractionStrategy: Sendable, Equatable {
    /// `exhaustive` for up to 8 operands, `greedy` beyond.
    case auto
    /// Dynamic programming over subsets of operands, O(3ⁿ) time and O(2ⁿ) memory: the optimal pairwise
    /// path (outer products included) by total multiply-adds, ties broken by the largest intermediate.
    case exhaustive
    /// Repeatedly contracts the cheapest pair (Rule C1), ties broken by the smaller result, then by position.
    /// Pairs that share an index are preferred; outer products are taken only when no such pair remains.
    case greedy
    /// The same dynamic programming as `exhaustive`, minimizing the estimated time (`ContractionTimeModel`) instead
    /// of the multiply-adds, for up to 12 operands; `greedy` beyond.
    case fastest
}

/// An estimate of the time of a pairwise contraction step, in multiply-add equivalents (one unit ≈ one
/// multiply-add of a large GEMM), used to choose paths by speed rather than by count (METHODS §0.3, Rule C4).
///
/// A step that is a (batched) GEMM of β products of (m×k)·(k×n) with M = βmkn multiply-adds over E elements read
/// and written costs max(M·(1 + h/m + h/k + h/n), e·E) + s + β·b: BLAS kernels lose rate on short dimensions
/// (about half at h), a step with little arithmetic per element runs at memory speed, and every step and every
/// product of a batch has a fixed cost (planning, allocation, a BLAS call). Measured at 2 threads on the development
/// machine (2 cores, ≈ 125 G multiply-adds/s for large GEMMs, ≈ 10 GB/s for copies), against the model's rate
/// factor 1/(1 + h/m + h/k + h/n): (65536×4)·(4×4) runs at 9% of the large-GEMM rate (model 11%), (65536×16)·(16×16)
/// at 53% (33%), (256×1024)·(1024×64) at 75% (75%). Counts stay exact (`multiplyAdds`); only the choice of path
/// uses the estimate.
public enum ContractionTimeModel {
    /// h: the GEMM dimension at which the rate is about half the large-GEMM rate.
    public static let halfRateDimension = 16.0
    /// e: multiply-add equivalents per element a step reads or writes.
    public static let elementCost = 40.0
    /// s: the fixed cost of one step (≈ 20 µs).
    public static let stepCost = 2_000_000.0
    /// b: the fixed cost of one product of a batched GEMM (≈ 0.3 µs).
    public static let productCost = 30_000.0

    /// The estimated cost of one step (see the type's description).
    public static func cost(batch: Int, m: Int, k: Int, n: Int, elements: Int) -> Double {
        let macs = Double(batch) * Double(m) * Double(k) * Double(n)
        let h = halfRateDimension
        let compute = macs * (1 + h / Double(m) + h / Double(k) + h / Double(n))
        return Swift.max(compute, elementCost * Double(elements)) + stepCost + (batch > 1 ? Double(batch) * productCost : 0)
    }
}

/// One step of a contraction path: a single-operand reduction or a pairwise contraction.
public struct ContractionStep: Sendable, Equatable, CustomStringConvertible {
    /// What the step does.
    public enum Kind: Sendable, Equatable {
        /// Diagonals and private sums of one input operand, done in place before the pairwise steps.
        case reduction
        /// A pairwise contraction (one GEMM).
        case pairwise
    }

    /// Whether this is a reduction or a pairwise contraction.
    public let kind: Kind
    /// Reduction: the input operand's position. Pairwise: the two positions in the current operand list
    /// (opt_einsum convention: both are removed and the result is appended at the end); the first is the GEMM's
    /// left operand.
    public let positions: [Int]
    /// The index letters of the operand(s) the step reads.
    public let operandIndices: [[Character]]
    /// The index letters of the result, in the order the result is laid out.
    public let resultIndices: [Character]
    /// Pairwise: the product of the sizes of all distinct indices of both operands (Rule C1).
    /// Reduction: the additions, operand size (after diagonals) minus result size.
    public let multiplyAdds: Int
    /// The element count of the result.
    public let resultSize: Int

    /// "(0, 1) ij,jk -> ik  MACs 60  size 12" (a reduction: "[2] iij -> i  additions 6  size 3").
    public var description: String {
        let operands = operandIndices.map { String($0) }.joined(separator: ",")
        switch kind {
        case .reduction:
            return "[\(positions[0])] \(operands) -> \(String(resultIndices))  additions \(groupedDigits(multiplyAdds))  size \(groupedDigits(resultSize))"
        case .pairwise:
            return "(\(positions[0]), \(positions[1])) \(operands) -> \(String(resultIndices))  MACs \(groupedDigits(multiplyAdds))  size \(groupedDigits(resultSize))"
        }
    }
}

/// The exact cost of a contraction path (see the counting conventions at the top of `EinsumPath.swift`).
public struct ContractionCost: Sendable, Equatable {
    /// Σ pairwise multiply-adds (Rule C1) + Σ single-operand reduction additions. FLOPs = 2 × this.
    public let multiplyAdds: Int
    /// The element count of the largest tensor any step creates (the output included, the inputs excluded).
    public let largestIntermediate: Int

    /// A cost with the given totals (for comparisons with hand-counted values).
    public init(multiplyAdds: Int, largestIntermediate: Int) {
        self.multiplyAdds = multiplyAdds
        self.largestIntermediate = largestIntermediate
    }
}

/// A contraction order for an einsum expression with its exact cost: the single-operand reductions followed by
/// the pairwise steps (opt_einsum's position convention), each with its result indices, multiply-adds and
/// result size (METHODS §0.3, Rules C1 and C4).
public struct ContractionPath: Sendable, Equatable, CustomStringConvertible {
    /// The explicit specification the path was built for.
    public let spec: String
    /// Single-operand reductions (diagonals, private sums), one per input that needs one, in input order.
    public let reductions: [ContractionStep]
    /// The pairwise contractions, in execution order.
    public let steps: [ContractionStep]
    /// The total cost: Σ multiply-adds of all steps and the largest intermediate.
    public let cost: ContractionCost
    /// Σ of the pairwise steps' `ContractionTimeModel` estimates (multiply-add equivalents).
    public let estimatedCost: Double

    /// Total multiply-adds: pairwise MACs (Rule C1) plus reduction additions.
    public var multiplyAdds: Int { cost.multiplyAdds }
    /// The element count of the largest tensor the path creates (output included, inputs excluded).
    public var largestIntermediate: Int { cost.largestIntermediate }
    /// The pairwise steps as (left, right) positions in the current operand list.
    public var pairs: [(Int, Int)] { steps.map { ($0.positions[0], $0.positions[1]) } }

    /// A multi-line report: the specification, totals, then one line per step.
    public var description: String {
        var lines = ["einsum \(spec): \(reductions.count + steps.count) step(s), \(groupedDigits(multiplyAdds)) multiply-adds, largest intermediate \(groupedDigits(largestIntermediate))"]
        for step in reductions + steps { lines.append("  \(step)") }
        return lines.joined(separator: "\n")
    }
}

extension EinsumExpression {
    /// The cheapest contraction path found by `strategy` (METHODS §0.3, Rule C4).
    ///
    /// The objective is the total multiply-adds (Rule C1), ties broken by the largest intermediate. The
    /// exhaustive search is dynamic programming over subsets of operands: the result of contracting a subset S
    /// keeps exactly the indices of S that the output or an operand outside S needs, so its size and the cost of
    /// the cheapest way to build it depend on S alone; cost(S) = min over splits S = S₁ ⊔ S₂ of
    /// cost(S₁) + cost(S₂) + MACs(S₁, S₂).
    ///
    /// - Precondition: `.exhaustive` is limited to 16 operands (3¹⁶ splits).
    public func optimalPath(strategy: ContractionStrategy = .auto) -> ContractionPath {
        let n = inputs.count
        switch strategy {
        case .auto: return path(pairs: n <= 8 ? exhaustivePairs(byTime: false) : greedyPairs())
        case .exhaustive:
            precondition(n <= 16, "einsum \"\(spec)\": exhaustive path search is limited to 16 operands, got \(n); use .greedy")
            return path(pairs: exhaustivePairs(byTime: false))
        case .greedy: return path(pairs: greedyPairs())
        case .fastest: return path(pairs: n <= 12 ? exhaustivePairs(byTime: true) : greedyPairs())
        }
    }

    /// Builds and costs an explicit path given as pairs of positions in the current operand list (opt_einsum
    /// convention: after each step both operands are removed and the result is appended at the end).
    ///
    /// For operands (A, B, C), `[(0, 1), (0, 1)]` is (AB)C and `[(1, 2), (0, 1)]` is A(BC).
    /// - Precondition: `pairs` has one pair of distinct, in-range positions per contraction (operands − 1).
    public func path(pairs: [(Int, Int)]) -> ContractionPath {
        var current: [[Character]] = []
        var reductions: [ContractionStep] = []
        var total = 0, largest = 0
        for (k, term) in inputs.enumerated() {
            let keep = indicesNeeded(excludingOperand: k)
            let unique = EinsumKernels.distinct(term)
            let result = unique.filter { keep.contains($0) }
            current.append(result)
            guard result != term else { continue }
            let size = count(of: result)
            let additions = Swift.max(0, count(of: unique) - size)
            reductions.append(ContractionStep(kind: .reduction, positions: [k], operandIndices: [term],
                                              resultIndices: result, multiplyAdds: additions, resultSize: size))
            total = EinsumKernels.saturatingAdd(total, additions)
            largest = Swift.max(largest, size)
        }
        precondition(pairs.count == inputs.count - 1,
                     "einsum \"\(spec)\": a path for \(inputs.count) operands needs \(inputs.count - 1) pairwise steps, got \(pairs.count)")
        var steps: [ContractionStep] = []
        var estimate = 0.0
        for (step, (i, j)) in pairs.enumerated() {
            precondition(i != j && current.indices.contains(i) && current.indices.contains(j),
                         "einsum \"\(spec)\": path step (\(i), \(j)) is invalid for \(current.count) remaining operands")
            // The last step lays its result out as `evaluate` does (toward the output order).
            let plan = planPair(current[i], current[j], keep: neededIndices(current, excluding: i, j),
                                preferredResult: step == pairs.count - 1 ? output : nil)
            let macs = count(of: Set(current[i]).union(current[j]))
            let size = count(of: plan.resultIndices)
            steps.append(ContractionStep(kind: .pairwise, positions: [i, j], operandIndices: [current[i], current[j]],
                                         resultIndices: plan.resultIndices, multiplyAdds: macs, resultSize: size))
            total = EinsumKernels.saturatingAdd(total, macs)
            largest = Swift.max(largest, size)
            estimate += ContractionTimeModel.cost(
                batch: count(of: plan.batch), m: count(of: plan.leftFree), k: count(of: plan.contracted),
                n: count(of: plan.rightFree), elements: count(of: current[i]) + count(of: current[j]) + size)
            for position in [i, j].sorted(by: >) { current.remove(at: position) }
            current.append(plan.resultIndices)
        }
        if let last = steps.last {
            estimate += finalPermuteEstimate(Set(last.operandIndices[0]), Set(last.operandIndices[1]))
        }
        return ContractionPath(spec: spec, reductions: reductions, steps: steps,
                               cost: ContractionCost(multiplyAdds: total, largestIntermediate: largest), estimatedCost: estimate)
    }

    /// The path that absorbs the operands one at a time in `order`: ((o₀·o₁)·o₂)·… .
    ///
    /// With `order` = (input, core 1, …, core d) this is the "absorb cores 1..d" schedule of METHODS §1.6.
    /// - Precondition: `order` is a permutation of the operand positions.
    public func path(sequence order: [Int]) -> ContractionPath {
        let n = inputs.count
        precondition(order.count == n && Set(order) == Set(0..<n),
                     "einsum \"\(spec)\": \(order) is not an ordering of the \(n) operands")
        var list = Array(0..<n)            // original operand ids in current-list order
        var pairs: [(Int, Int)] = []
        var accumulated = order[0]         // id of the running result (original id or -1 once contracted)
        for next in order.dropFirst() {
            let i = list.firstIndex(of: accumulated)!, j = list.firstIndex(of: next)!
            pairs.append((i, j))
            for position in [i, j].sorted(by: >) { list.remove(at: position) }
            list.append(-1)
            accumulated = -1
        }
        return path(pairs: pairs)
    }

    /// The cost of `path`'s pair sequence evaluated on this expression's shapes (which may differ from the
    /// shapes the path was built for, e.g. another batch size).
    ///
    /// - Precondition: the path's pairs are valid for this expression's operand count.
    public func cost(of path: ContractionPath) -> ContractionCost {
        self.path(pairs: path.pairs).cost
    }

    /// Total multiply-adds of `path`, or of `optimalPath(strategy: .auto)` when `path` is nil.
    public func multiplyAdds(path: ContractionPath? = nil) -> Int {
        path.map { cost(of: $0).multiplyAdds } ?? optimalPath().multiplyAdds
    }

    // MARK: - Search

    /// Index bit masks of the reduced operands and of the output, and the size of every index bit.
    private func masks() -> (operands: [UInt64], output: UInt64, sizes: [Int], letters: [Character]) {
        var bit: [Character: Int] = [:]
        var sizeOfBit: [Int] = []
        var letterOfBit: [Character] = []
        for letter in inputs.joined() where bit[letter] == nil {
            bit[letter] = sizeOfBit.count
            sizeOfBit.append(sizes[letter]!)
            letterOfBit.append(letter)
        }
        func mask(_ letters: some Sequence<Character>) -> UInt64 {
            letters.reduce(0) { $0 | (1 << UInt64(bit[$1]!)) }
        }
        let operands = inputs.indices.map { k in
            let keep = indicesNeeded(excludingOperand: k)
            return mask(inputs[k].filter { keep.contains($0) })
        }
        return (operands, mask(output), sizeOfBit, letterOfBit)
    }

    /// The element count of a tensor with the indices of `mask`.
    private static func size(of mask: UInt64, _ sizes: [Int]) -> Int {
        var m = mask, result = 1
        while m != 0 {
            result = EinsumKernels.saturatingMultiply(result, sizes[m.trailingZeroBitCount])
            m &= m - 1
        }
        return result
    }

    /// Optimal pairs by dynamic programming over subsets (see `optimalPath`), by multiply-adds or, `byTime`, by
    /// `ContractionTimeModel`.
    private func exhaustivePairs(byTime: Bool) -> [(Int, Int)] {
        let (operands, outputMask, sizeOfBit, letterOfBit) = masks()
        let n = operands.count
        guard n > 1 else { return [] }
        let full = (1 << n) - 1
        var union = [UInt64](repeating: 0, count: full + 1)
        for s in 1...full { union[s] = union[s & (s - 1)] | operands[s.trailingZeroBitCount] }
        var keep = [UInt64](repeating: 0, count: full + 1)
        var keepSize = [Int](repeating: 0, count: full + 1)
        for s in 1...full {
            keep[s] = s & (s - 1) == 0 ? operands[s.trailingZeroBitCount] : union[s] & (outputMask | union[full ^ s])
            keepSize[s] = Self.size(of: keep[s], sizeOfBit)
        }
        var cost = [Double](repeating: .infinity, count: full + 1)
        var peak = [Int](repeating: Int.max, count: full + 1)
        var split = [Int](repeating: 0, count: full + 1)
        for s in 1...full {
            if s & (s - 1) == 0 { cost[s] = 0; peak[s] = 0; continue }
            let low = s & -s
            var sub = (s - 1) & s
            while sub > 0 {
                if sub & low != 0 {
                    let other = s ^ sub
                    let (a, b) = (keep[sub], keep[other])
                    var step: Double
                    if byTime {
                        let shared = a & b
                        step = ContractionTimeModel.cost(
                            batch: Self.size(of: shared & keep[s], sizeOfBit), m: Self.size(of: a & ~b, sizeOfBit),
                            k: Self.size(of: shared & ~keep[s], sizeOfBit), n: Self.size(of: b & ~a, sizeOfBit),
                            elements: keepSize[sub] + keepSize[other] + keepSize[s])
                        if s == full {
                            func letters(_ mask: UInt64) -> Set<Character> {
                                Set(letterOfBit.indices.filter { mask & (1 << UInt64($0)) != 0 }.map { letterOfBit[$0] })
                            }
                            step += finalPermuteEstimate(letters(a), letters(b))
                        }
                    } else {
                        step = Double(Self.size(of: a | b, sizeOfBit))
                    }
                    let total = cost[sub] + cost[other] + step
                    let largest = Swift.max(peak[sub], peak[other], keepSize[s])
                    if split[s] == 0 || total < cost[s] || (total == cost[s] && largest < peak[s]) {
                        cost[s] = total
                        peak[s] = largest
                        split[s] = sub
                    }
                }
                sub = (sub - 1) & s
            }
        }
        // Replay the split tree post-order, tracking positions in the current operand list.
        var list = (0..<n).map { 1 << $0 }
        var pairs: [(Int, Int)] = []
        func emit(_ s: Int) {
            guard s & (s - 1) != 0 else { return }
            let left = split[s], right = s ^ split[s]
            emit(left)
            emit(right)
            let i = list.firstIndex(of: left)!, j = list.firstIndex(of: right)!
            pairs.append((i, j))
            for position in [i, j].sorted(by: >) { list.remove(at: position) }
            list.append(s)
        }
        emit(full)
        return pairs
    }

    /// The estimated cost (`ContractionTimeModel` units) of permuting the result of a last step between operands
    /// with indices `a` and `b` to the output order: the GEMM writes (batch, left-free, right-free) with either
    /// operand on the left and each group in output order (what `planPair` aims for with a preferred result), so
    /// the cheaper of the two layouts by `permuteCost`. The search otherwise ignores layouts; without this term a
    /// path whose last step interleaves the two operands' indices (Tucker's output factors, a TT or KPD factor
    /// absorbed last) makes one more pass over the output in the forward pass and one in the backward pass.
    func finalPermuteEstimate(_ a: Set<Character>, _ b: Set<Character>) -> Double {
        let batch = output.filter { a.contains($0) && b.contains($0) }
        let (onlyA, onlyB) = (output.filter { a.contains($0) && !b.contains($0) }, output.filter { b.contains($0) && !a.contains($0) })
        let elements = Swift.min(permuteCost(batch + onlyA + onlyB, to: output), permuteCost(batch + onlyB + onlyA, to: output))
        return ContractionTimeModel.elementCost * Double(elements)
    }

    /// Greedy pairs: cheapest next contraction (Rule C1), ties by smaller result then position; pairs sharing an
    /// index first, outer products only when no such pair remains.
    private func greedyPairs() -> [(Int, Int)] {
        var (current, outputMask, sizeOfBit, _) = masks()
        var pairs: [(Int, Int)] = []
        while current.count > 1 {
            var best: (connected: Bool, cost: Int, size: Int, i: Int, j: Int)? = nil
            for i in 0..<current.count {
                for j in (i + 1)..<current.count {
                    var others = outputMask
                    for (k, m) in current.enumerated() where k != i && k != j { others |= m }
                    let both = current[i] | current[j]
                    let candidate = (connected: current[i] & current[j] != 0,
                                     cost: Self.size(of: both, sizeOfBit),
                                     size: Self.size(of: both & others, sizeOfBit), i: i, j: j)
                    if let b = best {
                        let better = candidate.connected != b.connected ? candidate.connected
                            : candidate.cost != b.cost ? candidate.cost < b.cost
                            : candidate.size < b.size
                        if !better { continue }
                    }
                    best = candidate
                }
            }
            let (_, _, _, i, j) = best!
            var others = outputMask
            for (k, m) in current.enumerated() where k != i && k != j { others |= m }
            let result = (current[i] | current[j]) & others
            pairs.append((i, j))
            current.remove(at: j)
            current.remove(at: i)
            current.append(result)
        }
        return pairs
    }
}

/// "1234567" → "1,234,567" (report formatting).
private func groupedDigits(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var groups: [Substring] = []
    var end = digits.endIndex
    while end > digits.startIndex {
        let start = digits.index(end, offsetBy: -3, limitedBy: digits.startIndex) ?? digits.startIndex
        groups.insert(digits[start..<end], at: 0)
        end = start
    }
    return (value < 0 ? "-" : "") + groups.joined(separator: ",")
}
