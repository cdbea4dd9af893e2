import NeuralNetworks
import TensorCore

/// How ranks are chosen over a whole model (METHODS §3), in the SVD form of each layer.
public enum ModelRankRule: Sendable, Equatable {
    /// The same rule on every layer, each on its own spectrum (energy, EVBMF [56], a sparsity measure, …).
    case perLayer(MatrixRankRule)
    /// Global allocation under a budget for the whole model, in parameters or MACs (in the spirit of BATUDE [55]:
    /// the summed relative error of the compressed layers is minimized without going over the budget).
    case budget(Int, CostMeasure)
}

/// The ranks a `ModelRankRule` chooses, with the predicted per-layer error and cost.
public struct ModelRankPlan: Sendable {
    /// Per layer: format (`svd` or `dense`), rank, predicted relative error, parameters and MACs.
    public var report: RankSelectionReport
    /// The SVD rank of each compressed layer; layers the plan keeps dense are absent.
    public var ranks: [String: Int]
}

/// Chooses SVD ranks for every eligible layer of a model from its singular values.
///
/// Each layer is seen as the matrix W ∈ ℝ^{I×O} its SVD form factorizes: an FC weight, or a conv kernel as
/// [C_in·K_h·K_w, C_out] (a K_h×K_w conv to R channels, then a 1×1 conv: `FactorizedConvFormat.svdChannel`). Rank R
/// costs R·(I + O) parameters and R·(I + O)·P MACs (P output positions) and leaves the relative error
/// √(Σ_{i>R} σ_i²)/‖W‖_F (Eckart–Young), so every rule is priced exactly from one SVD per layer.
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
        var layers = ModelSurgery.compressibleLayers(of: model, inputShape: inputShape)
        if keepFirstAndLast && layers.count >= 2 { layers = Array(layers.dropFirst().dropLast()) }
        return try layers.map { layer in
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

    /// The plan `rule` makes for `model`.
    ///
    /// A per-layer rule keeps a layer dense when its rank would not make it smaller. A budget counts everything the
    /// plan does not touch (batch norm, biases, the layers kept dense by `keepFirstAndLast`) as fixed.
    /// - Throws: `CompressionError` (layer "network") for a budget below the smallest network the plan can make,
    ///   saying what that minimum is; the rule's errors.
    public static func plan<Scalar: TensorScalar>(_ model: any Layer<Scalar>, inputShape: [Int], rule: ModelRankRule,
                                                  keepFirstAndLast: Bool = true) throws -> ModelRankPlan {
        let layers = try spectra(of: model, inputShape: inputShape, keepFirstAndLast: keepFirstAndLast)
        let report: RankSelectionReport
        switch rule {
        case let .perLayer(matrixRule):
            report = RankSelectionReport(method: matrixRule.description, layers: try layers.map { layer in
                let rank = try matrixRule.rank(singularValues: layer.singularValues, inputFeatures: layer.inputFeatures,
                                               outputFeatures: layer.outputFeatures, layer: layer.candidates.name)
                let dense = layer.candidates.candidates.count - 1
                let smaller = rank >= 1 && layer.candidates.candidates[rank - 1].parameters < layer.candidates.denseParameters
                return RankSelectionReport.Layer(layer.candidates, choice: smaller ? rank - 1 : dense)
            })
        case let .budget(total, measure):
            let candidates = layers.map(\.candidates)
            let modelCost = measure == .parameters ? model.parameterCount
                : (model as? any ShapedLayer<Scalar>)?.multiplyAdds(forInput: inputShape) ?? 0
            let fixed = modelCost - candidates.reduce(0) { $0 + (measure == .parameters ? $1.denseParameters : $1.denseMACs) }
            let smallest = fixed + candidates.reduce(0) { $0 + $1.candidates.map { $0.cost(measure) }.min()! }
            guard total >= smallest else {
                throw CompressionError.invalidRanks(layer: "network", problem:
                    "a budget of \(total) \(measure.rawValue) is below the smallest network this plan can make (\(smallest): \(fixed) in what it does not compress, plus rank 1 in every compressed layer); raise it to at least \(smallest)")
            }
            report = RankSelectionReport(candidates, allocation: try RankSelection.allocate(candidates, budget: total - fixed,
                                                                                            measure: measure))
        }
        var ranks: [String: Int] = [:]
        for layer in report.layers where layer.format != RankCandidate.denseFormat { ranks[layer.name] = layer.ranks[0] }
        return ModelRankPlan(report: report, ranks: ranks)
    }
}
