/// A closed-form cost of a factorized FC layer: stored scalars (bias excluded) and multiply-accumulates per sample
/// (METHODS §0.3).
public struct ClosedFormCost: Sendable, Equatable {
    /// Stored scalars of the cores.
    public var parameters: Int
    /// Activation-side MACs per input sample along the formula's schedule.
    public var macsPerSample: Int

    /// A cost with the given counts.
    public init(parameters: Int, macsPerSample: Int) {
        self.parameters = parameters
        self.macsPerSample = macsPerSample
    }
}

/// The closed forms of METHODS §1 for FC layers, standing in for the survey's Table 3 (derived formulas; the
/// survey's exact ones are not reproduced).
///
/// Every MAC formula names a schedule: the cores are absorbed into the activation one at a time in the order of
/// `FactorizedLinear.referenceSchedule` (cores 1..d; for Tucker the input factors, the core, then the output
/// factors; for HT the post-order of the tree). Along that schedule each formula equals the einsum engine's exact
/// count (Rule C1) — the tests check this on a grid of shapes and ranks. **Where the two differ:** the layer's
/// `forwardPath(batch:)` is the *cheapest* path, which may beat the formula: it may absorb the cores in the
/// reverse order (TT, TR, CP: Σ_k R_{k−1}R_k(∏_{j≥k}O_j)(∏_{j≤k}I_j) when O > I), pre-merge cores on the weight
/// side (HT: merging leaf 4 with its parent removes the n⁴R⁴ term of the d = 4 oracle; at small batches merging
/// several cores, or rebuilding W, is cheaper), or contract the KPD factors in the cheaper order. The formulas are
/// upper bounds of the cheapest count, and exact for their schedule. Reductions over size-1 boundary ranks (TT,
/// HT root) cost 0 additions and do not change the counts.
public enum FCCostFormulas {
    /// ∏ of a slice (1 when empty).
    private static func product(_ values: ArraySlice<Int>) -> Int { values.reduce(1, *) }

    /// Dense FC: I·O stored, I·O MACs (METHODS §0.4).
    public static func dense(inputFeatures: Int, outputFeatures: Int) -> ClosedFormCost {
        ClosedFormCost(parameters: inputFeatures * outputFeatures, macsPerSample: inputFeatures * outputFeatures)
    }

    /// SVD (§1.1): R(I+O) stored and R(I+O) MACs (z = Aᵀx, then y = Bz).
    public static func svd(inputFeatures: Int, outputFeatures: Int, rank: Int) -> ClosedFormCost {
        ClosedFormCost(parameters: rank * (inputFeatures + outputFeatures), macsPerSample: rank * (inputFeatures + outputFeatures))
    }

    /// Paired CP (§1.2): R·Σ_k I_kO_k stored; R·Σ_{k=1}^d (∏_{j≤k}O_j)(∏_{j≥k}I_j) MACs (absorb 1..d, sum r last).
    public static func cp(inputModes: [Int], outputModes: [Int], rank: Int) -> ClosedFormCost {
        let d = inputModes.count
        let params = rank * zip(inputModes, outputModes).reduce(0) { $0 + $1.0 * $1.1 }
        let macs = (0..<d).reduce(0) { $0 + rank * product(outputModes[...$1]) * product(inputModes[$1...]) }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// Tensorized Tucker (§1.3) with input ranks R_k and output ranks S_k: ΣI_kR_k + ΣO_kS_k + ∏R_k∏S_k stored;
    /// Σ_k (∏_{j≤k}R_j)(∏_{j≥k}I_j) + ∏R_k∏S_k + Σ_k (∏_{j≤k}O_j)(∏_{j≥k}S_j) MACs.
    public static func tucker(inputModes: [Int], outputModes: [Int], inputRanks: [Int], outputRanks: [Int]) -> ClosedFormCost {
        let d = inputModes.count
        let core = inputRanks.reduce(1, *) * outputRanks.reduce(1, *)
        let params = zip(inputModes, inputRanks).reduce(0) { $0 + $1.0 * $1.1 }
            + zip(outputModes, outputRanks).reduce(0) { $0 + $1.0 * $1.1 } + core
        var macs = core
        for k in 0..<d {
            macs += product(inputRanks[...k]) * product(inputModes[k...])
            macs += product(outputModes[...k]) * product(outputRanks[k...])
        }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// TT-matrix (§1.6, [45]) with ranks [R_0 = 1, R_1, …, R_d = 1]: Σ_k R_{k−1}I_kO_kR_k stored;
    /// Σ_{k=1}^d R_{k−1}R_k(∏_{j≤k}O_j)(∏_{j≥k}I_j) MACs (absorb 1..d).
    public static func tensorTrain(inputModes: [Int], outputModes: [Int], ranks: [Int]) -> ClosedFormCost {
        precondition(ranks.count == inputModes.count + 1, "FCCostFormulas.tensorTrain: \(ranks.count) ranks for \(inputModes.count) modes (need R_0..R_d)")
        let d = inputModes.count
        var params = 0, macs = 0
        for k in 0..<d {
            params += ranks[k] * inputModes[k] * outputModes[k] * ranks[k + 1]
            macs += ranks[k] * ranks[k + 1] * product(outputModes[...k]) * product(inputModes[k...])
        }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// Paired TR-matrix (§1.7 (a)) with ranks [R_1, …, R_d] (R_{d+1} = R_1), d ≥ 2: Σ_k R_kI_kO_kR_{k+1} stored;
    /// R_1R_2·O_1·I + Σ_{k=2}^{d−1} R_1R_kR_{k+1}(∏_{j≤k}O_j)(∏_{j≥k}I_j) + R_1R_d·O·I_d MACs (absorb 1..d).
    public static func tensorRing(inputModes: [Int], outputModes: [Int], ranks: [Int]) -> ClosedFormCost {
        let d = inputModes.count
        precondition(d >= 2 && ranks.count == d, "FCCostFormulas.tensorRing: needs d ≥ 2 modes and d ranks, got \(inputModes) and \(ranks)")
        var params = 0
        for k in 0..<d { params += ranks[k] * inputModes[k] * outputModes[k] * ranks[(k + 1) % d] }
        let inputs = product(inputModes[...]), outputs = product(outputModes[...])
        var macs = ranks[0] * ranks[1] * outputModes[0] * inputs + ranks[0] * ranks[d - 1] * outputs * inputModes[d - 1]
        if d > 2 {
            for k in 1..<(d - 1) {
                macs += ranks[0] * ranks[k] * ranks[k + 1] * product(outputModes[...k]) * product(inputModes[k...])
            }
        }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// The worked HT oracle of §1.5: d = 4 paired leaves, balanced tree, uniform m, n, R (leaves left to right,
    /// each transfer tensor as soon as both children are in): dmnR + (d−2)R³ + R² stored;
    /// m⁴nR + m³n²R² + m²n²R³ + m²n³R² + mn⁴R³ + n⁴R⁴ + n⁴R² MACs.
    public static func hierarchicalTuckerOracle(m: Int, n: Int, rank r: Int) -> ClosedFormCost {
        func p(_ b: Int, _ e: Int) -> Int { (0..<e).reduce(1) { acc, _ in acc * b } }
        let macs = p(m, 4) * n * r + p(m, 3) * p(n, 2) * p(r, 2) + p(m, 2) * p(n, 2) * p(r, 3) + p(m, 2) * p(n, 3) * p(r, 2)
            + m * p(n, 4) * p(r, 3) + p(n, 4) * p(r, 4) + p(n, 4) * p(r, 2)
        return ClosedFormCost(parameters: 4 * m * n * r + 2 * p(r, 3) + p(r, 2), macsPerSample: macs)
    }

    /// HT with paired leaves (§1.5) on the balanced tree over modes 1…d, ranks for the non-root nodes in post-order
    /// (the layer's `ranks`), along the reference schedule: leaves and transfer nodes absorbed in post-order.
    /// Absorbing leaf k (I_k×O_k×R_k) costs (live)·O_kR_k and a transfer node (R_l×R_r×R_t) (live)·R_t, where
    /// "live" is the product of the activation's indices at that point (the input modes not yet absorbed, the output
    /// modes absorbed so far, the ranks of the subtrees done and not yet merged); stored: Σ_k I_kO_kR_k + Σ_t R_lR_rR_t
    /// (root R_t = 1). For example d = 2 (ranks [R_1, R_2]): I_1O_1R_1 + I_2O_2R_2 + R_1R_2 stored;
    /// I·O_1R_1 + I_2O_1R_1·O_2R_2 + O·R_1R_2 MACs. With uniform m, n, R and d = 4 it is `hierarchicalTuckerOracle`.
    public static func hierarchicalTucker(inputModes: [Int], outputModes: [Int], ranks: [Int]) -> ClosedFormCost {
        let nodes = postOrder(.balanced(order: inputModes.count))
        precondition(ranks.count == nodes.count - 1, "FCCostFormulas.hierarchicalTucker: \(ranks.count) ranks for \(nodes.count - 1) non-root nodes")
        let rank = ranks + [1]
        var parameters = 0, macs = 0
        var live = product(inputModes[...])
        for (m, node) in nodes.enumerated() {
            if let k = node.leafMode {
                let (i, o) = (inputModes[k], outputModes[k])
                parameters += i * o * rank[m]
                macs += live * o * rank[m]
                live = live / i * o * rank[m]
            } else {
                parameters += rank[node.left] * rank[node.right] * rank[m]
                macs += live * rank[m]
                live = live / (rank[node.left] * rank[node.right]) * rank[m]
            }
        }
        return ClosedFormCost(parameters: parameters, macsPerSample: macs)
    }

    /// BT-layer (§1.4, [39]) with N_b blocks of ranks R_k: N_b(Σ_k I_kO_kR_k + ∏_k R_k) stored;
    /// N_b·[Σ_{k=1}^d (∏_{j≤k}R_j)(∏_{j≤k}O_j)(∏_{j≥k}I_j) + (∏_j R_j)·O] MACs.
    public static func blockTerm(inputModes: [Int], outputModes: [Int], blocks: Int, ranks: [Int]) -> ClosedFormCost {
        let d = inputModes.count
        var params = ranks.reduce(1, *), macs = ranks.reduce(1, *) * product(outputModes[...])
        for k in 0..<d {
            params += inputModes[k] * outputModes[k] * ranks[k]
            macs += product(ranks[...k]) * product(outputModes[...k]) * product(inputModes[k...])
        }
        return ClosedFormCost(parameters: blocks * params, macsPerSample: blocks * macs)
    }

    /// KPD with two factors (§1.8): R(I_1O_1 + I_2O_2) stored; R·min(I·O_2 + I_1·O, O_1·I + I_2·O) MACs (the
    /// cheaper of absorbing B first or A first).
    public static func kronecker(inputModes: [Int], outputModes: [Int], rank r: Int) -> ClosedFormCost {
        precondition(inputModes.count == 2 && outputModes.count == 2, "FCCostFormulas.kronecker: two modes each, got \(inputModes) and \(outputModes)")
        let (i1, i2, o1, o2) = (inputModes[0], inputModes[1], outputModes[0], outputModes[1])
        let (i, o) = (i1 * i2, o1 * o2)
        return ClosedFormCost(parameters: r * (i1 * o1 + i2 * o2), macsPerSample: r * Swift.min(i * o2 + i1 * o, o1 * i + i2 * o))
    }

    /// STT-matrix (§1.9, [37]) with ranks [R_0 = 1, R_1, …, R_d = 1] and STP factor t on bonds 1..d−1 (t_0 = t_d = 1):
    /// Σ_k (R_k/t_k)·I_k·(O_k/t_k)·R_{k+1} stored; Σ_{k=1}^d R_{k−1}R_k(∏_{j≤k}O_j)(∏_{j≥k}I_j)/t_{k−1} MACs (absorb
    /// 1..d, 1-based): each linked step is the TT step ÷ t, the §1.10 rule. The activation before core k has the TT
    /// size (the pass-through indices j of the earlier bonds complete the output modes they belong to, and bond k's
    /// j travels with R_k), and core k adds only O_k/t output entries per row.
    public static func semiTensorTrain(inputModes: [Int], outputModes: [Int], ranks: [Int], stpFactor t: Int) -> ClosedFormCost {
        let d = inputModes.count
        precondition(d >= 2 && ranks.count == d + 1, "FCCostFormulas.semiTensorTrain: \(ranks.count) ranks for \(inputModes.count) modes (need d ≥ 2 and R_0..R_d)")
        let tk = (0...d).map { $0 >= 1 && $0 < d ? t : 1 }
        var params = 0, macs = 0
        for k in 0..<d {
            params += ranks[k] / tk[k] * inputModes[k] * (outputModes[k] / tk[k]) * ranks[k + 1]
            macs += ranks[k] * ranks[k + 1] * product(outputModes[..<k]) * (outputModes[k] / tk[k]) * product(inputModes[k...])
        }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// STR-matrix (§1.9, [37]) with ranks [R_1, …, R_d] (R_{d+1} = R_1), every bond linked by the STP factor t:
    /// Σ_k (R_k/t)·I_k·(O_k/t)·R_{k+1} stored; R_1R_2·O_1·I/t² + Σ_{k=2}^{d−1} R_1R_kR_{k+1}(∏_{j≤k}O_j)(∏_{j≥k}I_j)/t³
    /// + R_1R_d·O·I_d/t² MACs (absorb 1..d, 1-based).
    ///
    /// **Where this differs from the §1.10 rule** ("per STP-linked core: TR step ÷ t"): that rule holds for a
    /// link inside a chain, but in the ring the closing bond is linked too. Its rank index enters the activation at
    /// the first core as R_1/t (the small core's bond), and its pass-through index j ∈ [t] belongs to output mode 1
    /// yet is carried by the last core, so until the last step the activation holds O_1/t instead of O_1 entries of
    /// that mode. Every activation is therefore the TR one ÷ t², the first and last steps cost the TR step ÷ t²,
    /// and the middle steps (which also add O_k/t instead of O_k) the TR step ÷ t³. The counter prices exactly
    /// this; the tests check the formula against it on a grid.
    public static func semiTensorRing(inputModes: [Int], outputModes: [Int], ranks: [Int], stpFactor t: Int) -> ClosedFormCost {
        let d = inputModes.count
        precondition(d >= 2 && ranks.count == d, "FCCostFormulas.semiTensorRing: needs d ≥ 2 modes and d ranks, got \(inputModes) and \(ranks)")
        var params = 0
        for k in 0..<d { params += ranks[k] / t * inputModes[k] * (outputModes[k] / t) * ranks[(k + 1) % d] }
        let inputs = product(inputModes[...]), outputs = product(outputModes[...])
        let closing = ranks[0] / t
        var macs = closing * ranks[1] * (outputModes[0] / t) * inputs + closing * (ranks[d - 1] / t) * outputs * inputModes[d - 1]
        if d > 2 {
            for k in 1..<(d - 1) {
                macs += closing * (ranks[k] / t) * ranks[k + 1] * product(outputModes[..<k]) * (outputModes[k] / t) * product(inputModes[k...])
            }
        }
        return ClosedFormCost(parameters: params, macsPerSample: macs)
    }

    /// The uniform rows of the §1.10 table (I_k = m, O_k = n, rank R, d modes, N_b blocks) for the formats that
    /// have one: `cp`, `tensorTrain` (d ≥ 2), `tensorRing` (d ≥ 2), `blockTerm`, `svd` (I = m^d, O = n^d); nil for
    /// the others (Tucker and HT have no uniform row of this form; KPD has d = 2 with its own row). `semiTensorTrain`
    /// and `semiTensorRing` (d ≥ 2, t dividing R and n) use `stpFactor`: STT stores mnR + (d−2)R²mn/t² + Rmn/t² and
    /// costs R·n·m^d + R·n^d·m/t + (R²/t)·Σ_{k=2}^{d−1} n^k m^{d−k+1}; STR stores dR²mn/t² and costs
    /// (R²/t²)(n·m^d + n^d·m) + (R³/t³)·Σ_{k=2}^{d−1} n^k m^{d−k+1} (see `semiTensorRing` for the t² and t³).
    public static func uniformTable(_ format: FactorizedFormat, m: Int, n: Int, d: Int, rank r: Int, blocks: Int = 1,
                                    stpFactor t: Int = 1) -> ClosedFormCost? {
        func p(_ b: Int, _ e: Int) -> Int { (0..<e).reduce(1) { acc, _ in acc * b } }
        let middle = d > 2 ? (2...(d - 1)).reduce(0) { $0 + p(n, $1) * p(m, d - $1 + 1) } : 0
        switch format {
        case .svd:
            return ClosedFormCost(parameters: r * (p(m, d) + p(n, d)), macsPerSample: r * (p(m, d) + p(n, d)))
        case .cp:
            return ClosedFormCost(parameters: r * d * m * n,
                                  macsPerSample: r * (1...d).reduce(0) { $0 + p(n, $1) * p(m, d - $1 + 1) })
        case .tensorTrain where d >= 2:
            return ClosedFormCost(parameters: 2 * r * m * n + (d - 2) * r * r * m * n,
                                  macsPerSample: r * (n * p(m, d) + p(n, d) * m) + r * r * middle)
        case .tensorRing where d >= 2:
            return ClosedFormCost(parameters: d * r * r * m * n,
                                  macsPerSample: r * r * (n * p(m, d) + p(n, d) * m) + p(r, 3) * middle)
        case .semiTensorTrain where d >= 2:
            return ClosedFormCost(parameters: m * n * r + (d - 2) * r * r * m * n / (t * t) + r * m * n / (t * t),
                                  macsPerSample: r * n * p(m, d) + r * p(n, d) * m / t + r * r * middle / t)
        case .semiTensorRing where d >= 2:
            return ClosedFormCost(parameters: d * r * r * m * n / (t * t),
                                  macsPerSample: r * r * (n * p(m, d) + p(n, d) * m) / (t * t) + p(r, 3) * middle / (t * t * t))
        case .blockTerm:
            return ClosedFormCost(parameters: blocks * (d * m * n * r + p(r, d)),
                                  macsPerSample: blocks * ((1...d).reduce(0) { $0 + p(r, $1) * p(n, $1) * p(m, d - $1 + 1) } + p(r, d) * p(n, d)))
        default:
            return nil
        }
    }
}
