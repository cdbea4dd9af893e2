import Autodiff
import NeuralNetworks
import TensorCore

/// The compression-aware training methods (METHODS §2.3), by their command-line names.
public enum CompressionAwareMethod: String, CaseIterable, Sendable {
    /// Nuclear-norm regularization with SVT proximal steps [81, 82].
    case nuclear
    /// Trained rank pruning [83].
    case trp
    /// SVD training [85].
    case svdTraining = "svd-training"
    /// The LC algorithm with learned ranks [53].
    case lc
    /// Stochastic Frank–Wolfe over nuclear-norm balls [87].
    case frankWolfe = "frank-wolfe"
}

/// The settings of a compression-aware run.
public struct CompressionAwareSettings: Sendable {
    /// The method.
    public var method: CompressionAwareMethod
    /// λ for nuclear, TRP and LC; λ_s for SVD training; the radius scale ρ for Frank–Wolfe.
    public var strength: Double
    /// The sparsity measure S of SVD training.
    public var measure: SparsityMeasure = .effectiveRank
    /// λ_o of SVD training.
    public var orthogonality: Double = 10
    /// Steps between proximal steps (nuclear, T), substitutions (TRP, m) or C-steps (LC).
    public var period: Int
    /// The energy TRP's substitutions keep.
    public var energy: Double = 0.95
    /// How the final truncation chooses ranks (LC ignores it: its ranks are learned).
    public var truncation: MatrixRankRule
    /// Leave the last layer (the classifier) dense: neither trained toward low rank nor truncated (default true, as
    /// the pre-train pipeline's `keepFirstAndLast`). Truncated by energy, a 256×10 classifier fell to rank 2 and the
    /// network from 91.4% to 45.4% accuracy (fmnist-cnn, SVD training, our measurement).
    public var keepClassifierDense = true

    /// The defaults of `method`: period 10 (nuclear: one SVT with the accumulated threshold 10·lr·λ per 10 steps, a
    /// tenth of the SVDs), 20 (TRP, [83]'s starting value), 100 (LC); truncation that
    /// drops the zero singular values (relative tolerance 1e-4) after nuclear training and keeps 95 % of the energy
    /// otherwise.
    public init(method: CompressionAwareMethod, strength: Double) {
        self.method = method
        self.strength = strength
        switch method {
        case .nuclear: period = 10
        case .trp: period = 20
        case .lc: period = 100
        case .svdTraining, .frankWolfe: period = 1
        }
        truncation = method == .nuclear ? .measure(.l0(tolerance: 1e-4), scale: 1e-4) : .energy(0.95)
    }
}

/// One compression-aware training run on a model: chooses the layers (`LayerSlot.find`, every `Linear` and
/// ungrouped `Conv2D` but the first and, with `keepClassifierDense`, the last), installs SVD layers for SVD training, provides the `TrainingObjective`
/// to set as `trainer.objective`, and truncates into factorized layers at the end.
///
/// ```swift
/// let run = try CompressionAwareTraining(model: model, settings: CompressionAwareSettings(method: .nuclear, strength: 0.02))
/// trainer.objective = run.objective
/// try trainer.fit(training: train, test: test)
/// let report = try run.truncate()
/// ```
public final class CompressionAwareTraining<Scalar: TensorScalar> {
    /// The settings.
    public let settings: CompressionAwareSettings
    /// The layers trained toward low rank.
    public let slots: [LayerSlot<Scalar>]
    /// The objective to set as `Trainer.objective`.
    public let objective: any TrainingObjective<Scalar>

    /// Prepares `model` (changed in place for SVD training: its layers become `SVDLinear` / `SVDConv2D`).
    /// Build the trainer after this call, so it sees the model's final parameters.
    ///
    /// - Throws: `CompressionError.invalidSetting` for a bad setting or a model without compressible layers;
    ///   `TensorError` when an SVD fails.
    public init(model: any Layer<Scalar>, settings: CompressionAwareSettings) throws {
        self.settings = settings
        self.model = model
        let slots = LayerSlot<Scalar>.find(in: model, skippingLast: settings.keepClassifierDense)
        guard !slots.isEmpty else {
            throw CompressionError.invalidSetting(layer: "model", problem: "no Linear or Conv2D layer (besides the first"
                + (settings.keepClassifierDense ? " and the classifier; include it with keepClassifierDense = false, --compress-classifier" : "")
                + ") inside Sequential containers to compress")
        }
        self.slots = slots
        switch settings.method {
        case .nuclear:
            objective = try NuclearNormProximal(slots: slots, strength: settings.strength, interval: settings.period)
        case .trp:
            objective = try TrainedRankPruning(slots: slots, strength: settings.strength, energy: settings.energy,
                                               period: settings.period)
        case .lc:
            objective = try LCAlgorithm(slots: slots, strength: settings.strength, lStepLength: settings.period)
        case .frankWolfe:
            objective = try StochasticFrankWolfe(slots: slots, radiusScale: settings.strength)
        case .svdTraining:
            var layers: [any SVDLayer<Scalar>] = []
            for slot in slots {
                let layer: any SVDLayer<Scalar>
                if let linear = slot.layer as? Linear<Scalar> {
                    layer = try SVDLinear(converting: linear)
                } else if let conv = slot.layer as? Conv2D<Scalar> {
                    layer = try SVDConv2D(converting: conv, name: slot.name)
                } else if let existing = slot.layer as? any SVDLayer<Scalar> {
                    layer = existing
                } else {
                    continue
                }
                slot.replace(with: layer)
                layers.append(layer)
            }
            objective = try SVDTrainingObjective(layers: layers, measure: settings.measure, strength: settings.strength,
                                                 orthogonality: settings.orthogonality)
        }
    }

    /// Replaces the trained layers by factorized ones with `selection` (default: the settings' truncation; LC uses
    /// its learned ranks and sets the weights to Θ first). With `data`, the batch-normalization statistics are then
    /// re-estimated on its first 50 batches (`ModelSurgery.recalibrateBatchNorm`; no weight changes, no labels).
    /// `undoTruncation()` puts the trained layers and statistics back, so one trained model can be truncated at
    /// several settings.
    ///
    /// - Throws: `CompressionError.invalidSetting` for a bad selection; `TensorError` when an SVD fails.
    public func truncate(selection: MatrixRankRule? = nil, recalibratingOn data: Dataset? = nil) throws -> TruncationReport {
        if untruncated == nil {
            var statistics: [(Parameter<Scalar>, Tensor<Scalar>)] = []
            model.visitParameters(prefix: "") { name, parameter in
                if name.hasSuffix("running_mean") || name.hasSuffix("running_var") { statistics.append((parameter, parameter.value)) }
            }
            untruncated = (slots.map(\.layer), statistics)
        }
        let report: TruncationReport
        if let lc = objective as? LCAlgorithm<Scalar> {
            lc.finish()
            var layers: [TruncatedLayer] = []
            for (slot, rank) in zip(slots, lc.ranks) {
                layers += try LowRankTruncation.truncate([slot], selection: .fixed(rank)).layers
            }
            report = TruncationReport(layers: layers)
        } else {
            report = try LowRankTruncation.truncate(slots, selection: selection ?? settings.truncation)
        }
        if let data { ModelSurgery.recalibrateBatchNorm(in: model, on: data) }
        return report
    }

    /// Puts back the layers and batch-normalization statistics `truncate` replaced (a no-op before any truncation).
    public func undoTruncation() {
        guard let (layers, statistics) = untruncated else { return }
        for (slot, layer) in zip(slots, layers) { slot.replace(with: layer) }
        for (parameter, value) in statistics { parameter.value = value }
        untruncated = nil
    }

    private let model: any Layer<Scalar>
    private var untruncated: (layers: [any Layer<Scalar>], statistics: [(Parameter<Scalar>, Tensor<Scalar>)])?
}
