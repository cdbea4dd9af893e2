import NeuralNetworks
import TensorCore

/// How ranks are chosen over a whole model (METHODS §3).
public enum ModelRankRule: Sendable, Equatable {
    /// The same rule on every layer, each on the spectrum of its SVD form (energy, EVBMF [56], a sparsity measure, …).
    case perLayer(MatrixRankRule)
    /// Global allocation under a budget for the whole model, in parameters or MACs (in the spirit of BATUDE [55]:
    /// the summed relative error of the compressed layers is minimized without going over the budget), over the
    /// candidates of one or several formats per layer (`ModelRankPlanner.candidates`).
    case budget(Int, CostMeasure)
}

/// The formats and ranks a `ModelRankRule` chooses, with the predicted per-layer error and cost.
public struct ModelRankPlan: Sendable {
    /// A compressed layer's format and ranks, in the order `LayerCompressor.compress(…, target: .ranks(_:))` takes
    /// for that format: [R] for `svd`, [R_in, R_out] for `tucker` (Tucker-2), [R_1, …, R_{d−1}] for `tt`.
    public struct Choice: Sendable, Equatable {
        /// The format.
        public var format: CompressionFormat
        /// Its ranks.
        public var ranks: [Int]

        /// A choice of `format` at `ranks`.
        public init(format: CompressionFormat, ranks: [Int]) {
            self.format = format
            self.ranks = ranks
        }
    }

    /// Per layer: format (`svd`, `tucker`, `tt` or `dense`), ranks, predicted relative error, parameters and MACs.
    public var report: RankSelectionReport
    /// The format and ranks of each compressed layer; layers the plan keeps dense are absent.
    public var ranks: [String: Choice]
}

/// Chooses formats and ranks for every eligible layer of a model from its singular values.
///
/// Each layer is seen as the matrix W ∈ ℝ^{I×O} its SVD form factorizes: an FC weight, or a conv kernel as
/// [C_in·K_h·K_w, C_out] (a K_h×K_w conv to R channels, then a 1×1 conv: `FactorizedConvFormat.svdChannel`). Rank R
/// costs R·(I + O) parameters and R·(I + O)·P MACs (P output positions) and leaves the relative error
/// √(Σ_{i>R} σ_i²)/‖W‖_F (Eckart–Young), so every rule is priced exactly from one SVD per layer. A budget may also
/// choose Tucker-2 for convs and TT for FC layers, priced by error bounds from the spectra of further unfoldings
/// (ModelRankPlanner+Formats.swift).
public enum ModelRankPlanner {
    /// One layer's spectrum and its SVD-form candidates.
    public struct LayerSpectrum: Sendable {
        /// Ranks 1…min(I, O), then the dense layer (`LayerCandidates.svd`).
        public var candidates: LayerCandidates
        /// σ_1 ≥ … ≥ σ_min(I,O) of W.
        public var singularValues: [Double]
        /// I and O of W.
        public var inputFeatures: Int, outputFeatures: Int
    }

    /// The spectra of every eligible layer (first and last weight layers skipped when `keepFirstAndLast`), in
    /// forward order.
    ///
    /// - Throws: `TensorError` when an SVD fails (non-finite weights).
    public static func spectra<Scalar: TensorScalar>(of model: any Layer<Scalar>, inputShape: [Int],
                                                     keepFirstAndLast: Bool) throws -> [LayerSpectrum] {
        try eligibleLayers(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast).map { layer in
            let matrix: Tensor<Scalar>
            var positions = 1
            if let conv = layer.layer as? Conv2D<Scalar> {
                let kernel = conv.weight.value
                matrix = kernel.reshaped([conv.outChannels, kernel.scalarCount / conv.outChannels]).transposed
                let output = conv.outputShape(forInput: layer.inputShape)
                positions = output[0] * output[1]
            } else {
                matrix = (layer.layer as! Linear<Scalar>).weight.value
            }
            let sigma = try matrix.singularValues().scalars.map { Double($0) }
            let (inputs, outputs) = (matrix.shape[0], matrix.shape[1])
            return LayerSpectrum(candidates: .svd(name: layer.name, singularValues: sigma, inputFeatures: inputs,
                                                  outputFeatures: outputs, outputPositions: positions),
                                 singularValues: sigma, inputFeatures: inputs, outputFeatures: outputs)
        }
    }

    /// The compressible layers of `model` a plan covers, in forward order (without the first and the last when
    /// `keepFirstAndLast` and there are at least two).
    static func eligibleLayers<Scalar: TensorScalar>(of model: any Layer<Scalar>, inputShape: [Int],
                                                     keepFirstAndLast: Bool) -> [CompressibleLayer<Scalar>] {
        let layers = ModelSurgery.compressibleLayers(of: model, inputShape: inputShape)
        return keepFirstAndLast && layers.count >= 2 ? Array(layers.dropFirst().dropLast()) : layers
    }

    /// The plan `rule` makes for `model`.
    ///
    /// A per-layer rule works on the SVD form (`formats` must be [svd]) and keeps a layer dense when its rank would
    /// not make it smaller. A budget chooses, per layer, a format among `formats` (or dense) and its ranks
    /// (`candidates(of:inputShape:formats:keepFirstAndLast:gridPoints:)`: exact errors for svd, upper bounds for
    /// tucker and tt), and counts everything the plan does not touch (batch norm, biases, the layers kept dense by
    /// `keepFirstAndLast`) as fixed.
    /// - Throws: `CompressionError` (layer "network") for a budget below the smallest network the plan can make,
    ///   saying what that minimum is, for formats outside `plannableFormats`, or for a per-layer rule with formats
    ///   other than [svd]; the rule's errors.
    public static func plan<Scalar: TensorScalar>(_ model: any Layer<Scalar>, inputShape: [Int], rule: ModelRankRule,
                                                  formats: [CompressionFormat] = [.svd],
                                                  keepFirstAndLast: Bool = true) throws -> ModelRankPlan {
        let report: RankSelectionReport
        switch rule {
        case let .perLayer(matrixRule):
            guard formats == [.svd] else {
                throw CompressionError.unsupportedFormat(layer: "network", problem:
                    "per-layer rules (\(matrixRule.description)) choose SVD ranks from each layer's spectrum; plan them with the svd format alone, or use a budget to choose among \(formats.map(\.shortName).joined(separator: ", "))")
            }
            let layers = try spectra(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast)
            report = RankSelectionReport(method: matrixRule.description, layers: try layers.map { layer in
                let rank = try matrixRule.rank(singularValues: layer.singularValues, inputFeatures: layer.inputFeatures,
                                               outputFeatures: layer.outputFeatures, layer: layer.candidates.name)
                let dense = layer.candidates.candidates.count - 1
                let smaller = rank >= 1 && layer.candidates.candidates[rank - 1].parameters < layer.candidates.denseParameters
                return RankSelectionReport.Layer(layer.candidates, choice: smaller ? rank - 1 : dense)
            })
        case let .budget(total, measure):
            let candidates = try self.candidates(of: model, inputShape: inputShape, formats: formats,
                                                 keepFirstAndLast: keepFirstAndLast)
            let modelCost = measure == .parameters ? model.parameterCount
                : (model as? any ShapedLayer<Scalar>)?.multiplyAdds(forInput: inputShape) ?? 0
            let fixed = modelCost - candidates.reduce(0) { $0 + (measure == .parameters ? $1.denseParameters : $1.denseMACs) }
            let smallest = fixed + candidates.reduce(0) { $0 + $1.candidates.map { $0.cost(measure) }.min()! }
            guard total >= smallest else {
                throw CompressionError.invalidRanks(layer: "network", problem:
                    "a budget of \(total) \(measure.rawValue) is below the smallest network this plan can make (\(smallest): \(fixed) in what it does not compress, plus the cheapest candidate of every compressed layer); raise it to at least \(smallest)")
            }
            var allocated = RankSelectionReport(candidates, allocation: try bestAllocation(candidates, budget: total - fixed,
                                                                                           measure: measure, formats: formats))
            if formats.count > 1 { allocated.method += " over " + formats.map(\.shortName).joined(separator: ", ") }
            report = allocated
        }
        var ranks: [String: ModelRankPlan.Choice] = [:]
        for layer in report.layers where layer.format != RankCandidate.denseFormat {
            guard let format = CompressionFormat(name: layer.format) else {
                preconditionFailure("ModelRankPlanner: candidate format '\(layer.format)' of \(layer.name) names no CompressionFormat; this is a bug in LowRank, please report it")
            }
            ranks[layer.name] = ModelRankPlan.Choice(format: format, ranks: layer.ranks)
        }
        return ModelRankPlan(report: report, ranks: ranks)
    }
}
