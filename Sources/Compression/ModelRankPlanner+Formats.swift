import Foundation
import NeuralNetworks
import TensorCore

// Mixed-format rank allocation (METHODS §3, the global budget of BATUDE [55] extended over formats): per layer,
// candidates in several formats, each priced by its closed-form cost (`ConvCostFormulas`, `FCCostFormulas`) and a
// predicted relative error computed from spectra alone (no decomposition per candidate); `RankSelection.allocate`
// then picks one candidate per layer. With tail(R)² = Σ_{i>R} σ_i² of the named unfolding:
// * `svd` (FC and conv, `LayerCandidates.svd`): tail(R)/‖W‖ (Eckart–Young), **exact**;
// * `tucker` (conv, Tucker-2 [9] on the (C_out, C_in) modes of the OIHW kernel): √(tail_out(R_out)² +
//   tail_in(R_in)²)/‖W‖, the truncated-HOSVD bound (De Lathauwer, De Moor & Vandewalle 2000, not in the survey's
//   list; the Tucker model is [31]), an **upper bound**: `LayerCompressor` fits Tucker-2 by HOOI from a sequentially
//   truncated HOSVD start, whose error never exceeds it;
// * `tt` (FC, TT-matrix [45] on the paired modes I_kO_k): √(Σ_k tail_k(R_k)²)/‖W‖ over the k-th unfoldings of the
//   paired weight, the TT-SVD bound (Oseledets [33], Thm 2.2), an **upper bound**.
// The allocation is therefore conservative for Tucker-2 and TT: it picks them only where even their bound beats
// the exact SVD error at the same cost.

extension LayerCandidates {
    /// tails[R] = Σ_{i>R} σ_i² for R = 0…n (so tails[0] = ‖W‖_F²).
    static func squaredTails(_ singularValues: [Double]) -> [Double] {
        var tails = [Double](repeating: 0, count: singularValues.count + 1)
        for i in stride(from: singularValues.count - 1, through: 0, by: -1) {
            tails[i] = tails[i + 1] + singularValues[i] * singularValues[i]
        }
        return tails
    }

    /// Ranks 1…n when n ≤ `points`; else at most `points` of them, half spaced geometrically (fine at small ranks,
    /// where the error falls fastest) and half evenly, always with 1 and n.
    static func rankGrid(upTo n: Int, points: Int) -> [Int] {
        guard n > points else { return Array(1...Swift.max(n, 1)) }
        let half = Swift.max(points / 2, 1)
        var ranks: Set<Int> = [1, n]
        for i in 1...half {
            ranks.insert(Swift.min(n, Int((Double(n) * Double(i) / Double(half)).rounded(.up))))
            ranks.insert(Swift.min(n, Swift.max(1, Int(pow(Double(n), Double(i) / Double(half)).rounded()))))
        }
        return ranks.sorted()
    }

    /// The Tucker-2 candidates of a conv layer (§1.3, [9]) with ranks [R_in, R_out] (the order
    /// `LayerCompressor.compress(…, format: .tucker, target: .ranks(_:))` takes), R_in ≤ C_in and R_out ≤ C_out on
    /// `rankGrid`, keeping only pairs HOOI does not clamp (R_out ≤ R_inK², R_in ≤ R_outK²). Each costs
    /// `ConvCostFormulas.tucker2` on `shape` and has the upper bound √(tail_out(R_out)² + tail_in(R_in)²)/‖W‖
    /// (capped at 1, the error of a zero core) as predicted error, plus the dense layer when `includeDense`.
    ///
    /// - Parameters:
    ///   - outputSingularValues: σ of the mode-O unfolding [C_out, C_inK_hK_w] (all min(C_out, C_inK²) of them).
    ///   - inputSingularValues: σ of the mode-I unfolding [C_in, C_outK_hK_w] (all min(C_in, C_outK²)).
    ///   - gridPoints: ranks per mode at most (about `gridPoints`², fewer after the clamp, candidates).
    public static func tucker2(name: String, outputSingularValues: [Double], inputSingularValues: [Double],
                               shape: ConvLayerShape, gridPoints: Int = 48, includeDense: Bool = true,
                               weight: Double = 1) -> LayerCandidates {
        let (ci, co, area) = (shape.inChannels, shape.outChannels, shape.kernelArea)
        precondition(outputSingularValues.count == Swift.min(co, ci * area) && inputSingularValues.count == Swift.min(ci, co * area),
                     "LayerCandidates.tucker2(\(name)): \(outputSingularValues.count) and \(inputSingularValues.count) singular values for C_out = \(co), C_in = \(ci), K² = \(area)")
        let tailsOut = squaredTails(outputSingularValues), tailsIn = squaredTails(inputSingularValues)
        let total = tailsOut[0]
        var candidates: [RankCandidate] = []
        for rIn in rankGrid(upTo: ci, points: gridPoints) {
            for rOut in rankGrid(upTo: co, points: gridPoints) where rOut <= rIn * area && rIn <= rOut * area {
                let cost = ConvCostFormulas.tucker2(shape, inputRank: rIn, outputRank: rOut)
                let squared = Swift.max(tailsOut[rOut], 0) + Swift.max(tailsIn[rIn], 0)
                candidates.append(RankCandidate(format: CompressionFormat.tucker.shortName, ranks: [rIn, rOut],
                                                parameters: cost.parameters, macs: cost.activationSide + cost.weightSide,
                                                relativeError: total > 0 ? Swift.min(1, (squared / total).squareRoot()) : 0))
            }
        }
        let dense = ConvCostFormulas.dense(shape)
        if includeDense { candidates.append(.dense(parameters: dense.parameters, macs: dense.activationSide)) }
        return LayerCandidates(name: name, denseParameters: dense.parameters, denseMACs: dense.activationSide,
                               candidates: candidates, weight: weight)
    }

    /// The TT-matrix candidates of an FC layer (§1.6, [45]) with modes I_k → O_k (d ≥ 2) and inner ranks
    /// [R_1, …, R_{d−1}] (the order `LayerCompressor` takes), each R_k on `rankGrid` up to the smaller side of the
    /// k-th unfolding, keeping only tuples TT-SVD does not clamp (R_k ≤ R_{k−1}I_kO_k and R_k ≤ I_{k+1}O_{k+1}R_{k+1}).
    /// Each costs `FCCostFormulas.tensorTrain` and has the TT-SVD upper bound √(Σ_k tail_k(R_k)²)/‖W‖ (Oseledets [33],
    /// Thm 2.2; capped at 1) as predicted error, plus the dense layer when `includeDense`.
    ///
    /// - Parameters:
    ///   - unfoldingSingularValues: for k = 1…d−1, σ of the k-th unfolding [∏_{j≤k} I_jO_j, ∏_{j>k} I_jO_j] of the
    ///     paired weight (METHODS §0.2), all of them.
    ///   - gridPoints: values per rank at most (about `gridPoints`^(d−1) candidates before the clamp).
    public static func tensorTrain(name: String, unfoldingSingularValues: [[Double]], inputModes: [Int],
                                   outputModes: [Int], gridPoints: Int = 48, includeDense: Bool = true,
                                   weight: Double = 1) -> LayerCandidates {
        let d = inputModes.count
        let paired = zip(inputModes, outputModes).map { $0.0 * $0.1 }
        precondition(d >= 2 && outputModes.count == d && unfoldingSingularValues.count == d - 1
                     && (1..<d).allSatisfy { unfoldingSingularValues[$0 - 1].count
                         == Swift.min(paired[..<$0].reduce(1, *), paired[$0...].reduce(1, *)) },
                     "LayerCandidates.tensorTrain(\(name)): need the singular values of the d − 1 unfoldings of the paired modes \(paired)")
        let tails = unfoldingSingularValues.map(squaredTails)
        let total = tails[0][0]
        let grids = tails.map { rankGrid(upTo: $0.count - 1, points: gridPoints) }
        let (inputs, outputs) = (inputModes.reduce(1, *), outputModes.reduce(1, *))
        var candidates: [RankCandidate] = []
        /// Extends the inner ranks R_1…R_k chosen so far (R_k ≤ R_{k−1}J_k checked on the way, R_k ≤ J_{k+1}R_{k+1} at the end).
        func extend(_ inner: [Int]) {
            guard inner.count == d - 1 else {
                let previous = inner.last ?? 1
                for r in grids[inner.count] where r <= previous * paired[inner.count] { extend(inner + [r]) }
                return
            }
            let bonds = [1] + inner + [1]
            guard (1..<d).allSatisfy({ bonds[$0] <= paired[$0] * bonds[$0 + 1] }) else { return }
            let cost = FCCostFormulas.tensorTrain(inputModes: inputModes, outputModes: outputModes, ranks: bonds)
            let squared = inner.indices.reduce(0.0) { $0 + Swift.max(tails[$1][inner[$1]], 0) }
            candidates.append(RankCandidate(format: CompressionFormat.tensorTrain.shortName, ranks: inner,
                                            parameters: cost.parameters, macs: cost.macsPerSample,
                                            relativeError: total > 0 ? Swift.min(1, (squared / total).squareRoot()) : 0))
        }
        extend([])
        if includeDense { candidates.append(.dense(parameters: inputs * outputs, macs: inputs * outputs)) }
        return LayerCandidates(name: name, denseParameters: inputs * outputs, denseMACs: inputs * outputs,
                               candidates: candidates, weight: weight)
    }
}

extension ConvLayerShape {
    /// The shape of a dense conv layer on a per-sample input [H, W, C_in].
    public init<Scalar: TensorScalar>(_ conv: Conv2D<Scalar>, input: [Int]) {
        self.init(inChannels: conv.inChannels, outChannels: conv.outChannels, kernelHeight: conv.kernelSize.height,
                  kernelWidth: conv.kernelSize.width, params: conv.params, inputHeight: input[0], inputWidth: input[1])
    }
}

extension ModelRankPlanner {
    /// The formats a plan can choose among, those whose error it predicts from spectra: `svd` (FC and conv),
    /// `tucker` (conv: Tucker-2) and `tt` (FC: TT-matrix).
    public static let plannableFormats: [CompressionFormat] = [.svd, .tucker, .tensorTrain]

    /// The candidates of every eligible layer (as `spectra`) in `formats`, then the dense layer, in forward order.
    ///
    /// A format adds nothing where `LayerCompressor` would keep the layer dense in it: Tucker-2 on an FC layer or a
    /// grouped conv, TT on a conv or on features `LayerCompressor.linearModes` does not split.
    /// Costs are for the layer's actual input (MACs per sample).
    /// - Throws: `CompressionError.unsupportedFormat` (layer "network") for an empty list or a format not in
    ///   `plannableFormats`; `TensorError` when an SVD fails (non-finite weights).
    public static func candidates<Scalar: TensorScalar>(of model: any Layer<Scalar>, inputShape: [Int],
                                                        formats: [CompressionFormat], keepFirstAndLast: Bool,
                                                        gridPoints: Int = 48) throws -> [LayerCandidates] {
        let unsupported = formats.filter { !plannableFormats.contains($0) }
        guard !formats.isEmpty, unsupported.isEmpty else {
            throw CompressionError.unsupportedFormat(layer: "network", problem:
                "a rank plan chooses among formats whose error it predicts from spectra: svd, tucker (conv) and tt (FC); "
                + (formats.isEmpty ? "no format was given" : "\(unsupported.map(\.shortName).joined(separator: ", ")) is not one of them")
                + "; use for example svd,tucker,tt")
        }
        let svdForms = try spectra(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast)
        let layers = eligibleLayers(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast)
        return try zip(layers, svdForms).map { layer, spectrum in
            let svd = spectrum.candidates
            var list = formats.contains(.svd) ? svd.candidates.filter { $0.format != RankCandidate.denseFormat } : []
            if formats.contains(.tucker), let conv = layer.layer as? Conv2D<Scalar>, conv.params.groups == 1 {
                let kernel = conv.weight.value
                let ci = conv.inChannels
                let inputSigma = try kernel.permuted([1, 0, 2, 3]).reshaped([ci, kernel.scalarCount / ci])
                    .singularValues().scalars.map { Double($0) }
                list += LayerCandidates.tucker2(name: svd.name, outputSingularValues: spectrum.singularValues,
                                                inputSingularValues: inputSigma, shape: ConvLayerShape(conv, input: layer.inputShape),
                                                gridPoints: gridPoints, includeDense: false).candidates
            }
            if formats.contains(.tensorTrain), let linear = layer.layer as? Linear<Scalar>,
               let split = LayerCompressor.linearModes(inputs: linear.inputFeatures, outputs: linear.outputFeatures,
                                                       format: .tensorTrain) {
                let modes = zip(split.input, split.output).map { $0.0 * $0.1 }
                let tensor = paired(linear.weight.value, split.input, split.output)
                let sigmas = try (1..<modes.count).map { k in
                    try tensor.reshaped([modes[..<k].reduce(1, *), modes[k...].reduce(1, *)])
                        .singularValues().scalars.map { Double($0) }
                }
                list += LayerCandidates.tensorTrain(name: svd.name, unfoldingSingularValues: sigmas, inputModes: split.input,
                                                    outputModes: split.output, gridPoints: gridPoints,
                                                    includeDense: false).candidates
            }
            list.append(.dense(parameters: svd.denseParameters, macs: svd.denseMACs))
            return LayerCandidates(name: svd.name, denseParameters: svd.denseParameters, denseMACs: svd.denseMACs,
                                   candidates: list)
        }
    }

    /// The allocation of `candidates` under `budget`, never worse than that of any single format: the union of the
    /// formats' candidates can only lower the optimum, but `RankSelection.allocate` is exact only when the costs
    /// share a large common divisor (else a grid DP, near-optimal), so with several formats each format's own
    /// candidates (with the dense layer) are allocated too, and the least summed error wins.
    static func bestAllocation(_ candidates: [LayerCandidates], budget: Int, measure: CostMeasure,
                               formats: [CompressionFormat]) throws -> RankAllocation {
        var best = try RankSelection.allocate(candidates, budget: budget, measure: measure)
        guard formats.count > 1 else { return best }
        for format in formats {
            let labels: Set<String> = [format.shortName, RankCandidate.denseFormat]
            let kept = candidates.map { layer in layer.candidates.indices.filter { labels.contains(layer.candidates[$0].format) } }
            let single = candidates.indices.map { l in
                var layer = candidates[l]
                layer.candidates = kept[l].map { candidates[l].candidates[$0] }
                return layer
            }
            // A single format may not fit the budget (TT leaves every conv dense) where the union does: skip it then.
            guard var allocation = try? RankSelection.allocate(single, budget: budget, measure: measure),
                  allocation.weightedError < best.weightedError else { continue }
            allocation.choices = candidates.indices.map { kept[$0][allocation.choices[$0]] }
            best = allocation
        }
        return best
    }

    /// The whole-model parameter budget that divides the dense weights of the eligible layers by `ratio`:
    /// everything not compressed (other layers, biases, batch norm, the first and last layers when
    /// `keepFirstAndLast`) plus ⌊Σ eligible dense weight parameters / ratio⌋ (`lowrank compress --format auto --ratio`).
    ///
    /// - Throws: `CompressionError.invalidRanks` (layer "network") for a ratio below 1 or not finite.
    public static func parameterBudget<Scalar: TensorScalar>(_ model: any Layer<Scalar>, inputShape: [Int], ratio: Double,
                                                             keepFirstAndLast: Bool = true) throws -> Int {
        guard ratio >= 1, ratio.isFinite else {
            throw CompressionError.invalidRanks(layer: "network", problem: "the compression ratio must be ≥ 1, got \(ratio); for example 5")
        }
        let eligible = eligibleLayers(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast)
            .reduce(0) { $0 + $1.weightParameters }
        return model.parameterCount - eligible + Int((Double(eligible) / ratio).rounded(.down))
    }
}
