/// The predicted outcome of a rank selection, per layer and for the network (METHODS §3, §0.3): what `lowrank rank`
/// prints, as JSON through `Codable`.
public struct RankSelectionReport: Sendable, Codable, Equatable {
    /// One layer's choice.
    public struct Layer: Sendable, Codable, Equatable {
        /// The layer's name.
        public var name: String
        /// The chosen format ("dense" when the layer is kept dense).
        public var format: String
        /// The chosen ranks (empty when dense).
        public var ranks: [Int]
        /// Predicted ‖W − Ŵ‖_F / ‖W‖_F.
        public var predictedRelativeError: Double
        /// Parameters of the chosen form.
        public var parameters: Int
        /// MACs per sample of the chosen form.
        public var macs: Int
        /// Parameters of the dense layer.
        public var denseParameters: Int
        /// MACs per sample of the dense layer.
        public var denseMACs: Int

        /// A layer entry with the given values.
        public init(name: String, format: String, ranks: [Int], predictedRelativeError: Double, parameters: Int,
                    macs: Int, denseParameters: Int, denseMACs: Int) {
            self.name = name
            self.format = format
            self.ranks = ranks
            self.predictedRelativeError = predictedRelativeError
            self.parameters = parameters
            self.macs = macs
            self.denseParameters = denseParameters
            self.denseMACs = denseMACs
        }

        /// The entry of `candidates.candidates[choice]`.
        public init(_ candidates: LayerCandidates, choice: Int) {
            let c = candidates.candidates[choice]
            self.init(name: candidates.name, format: c.format, ranks: c.ranks, predictedRelativeError: c.relativeError,
                      parameters: c.parameters, macs: c.macs, denseParameters: candidates.denseParameters,
                      denseMACs: candidates.denseMACs)
        }
    }

    /// How the ranks were chosen, free text ("evbmf", "energy 0.9", "budget exactDynamicProgram", …).
    public var method: String
    /// The budget the selection met, when there was one.
    public var budget: Int?
    /// What `budget` counts, when there was one.
    public var measure: CostMeasure?
    /// The layers in network order.
    public var layers: [Layer]
    /// Σ parameters of the chosen forms.
    public var parameters: Int
    /// Σ MACs per sample of the chosen forms.
    public var macs: Int
    /// Σ dense parameters.
    public var denseParameters: Int
    /// Σ dense MACs per sample.
    public var denseMACs: Int
    /// Network compression ratio Σ dense parameters / Σ parameters (nil when the chosen forms store nothing).
    public var compressionRatio: Double?
    /// Theoretical speed-up Σ dense MACs / Σ MACs (nil when the chosen forms compute nothing).
    public var speedUp: Double?
    /// Σ of the layers' predicted relative errors (unweighted).
    public var summedRelativeError: Double

    /// A report of the given layer entries; totals and ratios are computed.
    public init(method: String, budget: Int? = nil, measure: CostMeasure? = nil, layers: [Layer]) {
        self.method = method
        self.budget = budget
        self.measure = measure
        self.layers = layers
        parameters = layers.reduce(0) { $0 + $1.parameters }
        macs = layers.reduce(0) { $0 + $1.macs }
        denseParameters = layers.reduce(0) { $0 + $1.denseParameters }
        denseMACs = layers.reduce(0) { $0 + $1.denseMACs }
        compressionRatio = parameters > 0 ? Double(denseParameters) / Double(parameters) : nil
        speedUp = macs > 0 ? Double(denseMACs) / Double(macs) : nil
        summedRelativeError = layers.reduce(0) { $0 + $1.predictedRelativeError }
    }

    /// The report of a global allocation (`RankSelection.allocate` / `allocateGreedily`).
    public init(_ layers: [LayerCandidates], allocation: RankAllocation) {
        precondition(layers.count == allocation.choices.count,
                     "RankSelectionReport: \(layers.count) layers but \(allocation.choices.count) choices")
        self.init(method: "budget \(allocation.solver.rawValue)", budget: allocation.budget, measure: allocation.measure,
                  layers: layers.indices.map { Layer(layers[$0], choice: allocation.choices[$0]) })
    }
}
