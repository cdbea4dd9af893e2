import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

/// Knowledge distillation from a dense teacher during fine-tuning [130]: the loss
/// ℓ = (1 − α)·CE(student) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)) (`distillationKLDivergence`), with the teacher run in
/// inference mode on the same batch and its parameters frozen (never recorded, never updated).
public final class DistillationObjective<Scalar: TensorScalar>: TrainingObjective {
    /// The teacher (its parameters are frozen by `init`).
    public let teacher: any Layer<Scalar>
    /// T > 0.
    public let temperature: Double
    /// α ∈ [0, 1], the weight of the distillation term.
    public let weight: Double

    /// An objective distilling from `teacher`.
    ///
    /// - Precondition: T > 0 and 0 ≤ α ≤ 1.
    public init(teacher: any Layer<Scalar>, temperature: Double = 4, weight: Double = 0.5) {
        precondition(temperature > 0 && (0...1).contains(weight),
                     "DistillationObjective: temperature \(temperature) must be > 0 and weight \(weight) in [0, 1]")
        self.teacher = teacher
        self.temperature = temperature
        self.weight = weight
        for (_, parameter) in teacher.namedParameters() { parameter.isFrozen = true }
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        let teacherLogits = teacher(Variable(constant: images), mode: .inference).value
        let kl = distillationKLDivergence(studentLogits: logits, teacherLogits: teacherLogits, temperature: Scalar(temperature))
        return task * Scalar(1 - weight) + kl * Scalar(weight)
    }

    public func afterStep(step: Int, learningRate: Double) {}
}

/// How `CompressionPipeline` compresses and fine-tunes (METHODS §2.1; fine-tuning defaults of §2.1 scaled down).
public struct CompressionSettings: Sendable {
    /// The format asked for every eligible layer.
    public var format: CompressionFormat
    /// The rank target of every eligible layer.
    public var target: LayerRankTarget
    /// A model-wide rank rule (EVBMF, energy, a global budget: `ModelRankPlanner`) that replaces `target` by
    /// per-layer ranks. Per-layer rules require the `svd` format; a budget plans in `planFormats`. Layers the plan
    /// keeps dense stay dense, with that reason.
    public var rankRule: ModelRankRule?
    /// The formats a budget `rankRule` chooses among per layer (`ModelRankPlanner.plan(formats:)`: svd, tucker, tt).
    /// With one format it must be `format`; with several (`lowrank compress --format auto`) every layer gets the
    /// plan's format and ranks, and `format` is not used.
    public var planFormats: [CompressionFormat] = [.svd]
    /// Keep the first and the last weight layer dense (the usual practice; METHODS §9.3 keeps ResNet's first conv
    /// and its classifier).
    public var keepFirstAndLast = true
    /// Re-estimate the batch-norm statistics on 50 training batches after each conversion (no weight changes): the
    /// trained statistics no longer describe the converted layers' activations, and fine-tuning starts closer.
    public var recalibrateBatchNorm = true
    /// Fine-tuning epochs (per round with `layerByLayer`).
    public var fineTuneEpochs = 1
    /// Fine-tuning batch size.
    public var batchSize = 128
    /// Initial learning rate of SGD (momentum 0.9), with cosine decay to 0 over the fine-tuning steps.
    public var learningRate = 0.01
    /// Distill from the dense model: (temperature, weight α); nil trains on cross-entropy alone.
    public var distillation: (temperature: Double, weight: Double)?
    /// Layer by layer (MUSCO-style rounds, [64]): convert one layer, fine-tune, then the next; else all at once [9].
    public var layerByLayer = false
    /// The seed of the data order.
    public var seed: UInt64 = 0
    /// Decomposition settings.
    public var compressor = LayerCompressorOptions()
    /// Progress of the fine-tuning.
    public var progress: ProgressStyle = .silent
    /// Test images the inference speed is measured on (the first ones).
    public var timingImages = 2_000

    /// Settings for `format` at `target`.
    public init(format: CompressionFormat, target: LayerRankTarget) {
        self.format = format
        self.target = target
    }

    /// Whether a budget plan chooses the format of each layer among several `planFormats`.
    public var choosesFormatPerLayer: Bool {
        if case .budget = rankRule { return planFormats.count > 1 }
        return false
    }
    /// The run's format name: `format.shortName`, or `auto` when the plan chooses the format per layer.
    public var formatName: String { choosesFormatPerLayer ? "auto" : format.shortName }
    /// The run's format for titles: `format.displayName`, or `auto (SVD, Tucker, TT)` with the plan's formats.
    public var formatDisplayName: String {
        choosesFormatPerLayer ? "auto (\(planFormats.map(\.displayName).joined(separator: ", ")))" : format.displayName
    }
}

/// One weight layer in a compression report.
public struct LayerReport: Codable, Equatable, Sendable {
    /// The layer's name in the model.
    public var name: String
    /// `linear` or `conv`.
    public var kind: String
    /// The format's short name, or nil when the layer stayed dense.
    public var format: String?
    /// Why the layer stayed dense (nil when compressed).
    public var keptDenseReason: String?
    /// Modes and ranks of the factorized layer (empty when dense).
    public var inputModes: [Int], outputModes: [Int], ranks: [Int]
    /// Weight parameters (bias excluded) before and after.
    public var denseParameters: Int, parameters: Int
    /// Multiply-adds per sample before and after (a factorized layer's contraction in factorized mode at the
    /// fine-tuning batch size, per sample: core merges the path makes are shared by the batch).
    public var denseMACs: Int, macs: Int
    /// ‖W − Ŵ‖_F / ‖W‖_F right after conversion (FC layers; nil otherwise).
    public var weightError: Double?
    /// ‖f(x) − f̂(x)‖ / ‖f(x)‖ on 8 standard normal inputs right after conversion (nil when dense).
    public var outputError: Double?

    /// dense / compressed parameters.
    public var compressionRatio: Double { Double(denseParameters) / Double(Swift.max(parameters, 1)) }
}

/// Accuracy and cost of one model.
public struct ModelMeasurement: Codable, Equatable, Sendable {
    /// Test accuracy in [0, 1] and mean cross-entropy.
    public var accuracy: Double, loss: Double
    /// Trainable parameters.
    public var parameters: Int
    /// Multiply-adds per image.
    public var macs: Int
    /// Inference images per second (measured side by side with the other model).
    public var imagesPerSecond: Double

    /// A measurement.
    public init(accuracy: Double, loss: Double, parameters: Int, macs: Int, imagesPerSecond: Double) {
        self.accuracy = accuracy
        self.loss = loss
        self.parameters = parameters
        self.macs = macs
        self.imagesPerSecond = imagesPerSecond
    }
}

/// What one compression run did.
public struct CompressionResult: Codable, Equatable, Sendable {
    /// The format's short name.
    public var format: String
    /// The dense model and the compressed one after fine-tuning.
    public var dense: ModelMeasurement, compressed: ModelMeasurement
    /// Test accuracy right after conversion (and the batch-norm re-estimation when the settings ask for it), before fine-tuning.
    public var accuracyBeforeFineTuning: Double
    /// The weight layers.
    public var layers: [LayerReport]
    /// Seconds spent converting and fine-tuning.
    public var conversionSeconds: Double, fineTuneSeconds: Double

    /// A result.
    public init(format: String, dense: ModelMeasurement, compressed: ModelMeasurement, accuracyBeforeFineTuning: Double,
                layers: [LayerReport], conversionSeconds: Double, fineTuneSeconds: Double) {
        self.format = format
        self.dense = dense
        self.compressed = compressed
        self.accuracyBeforeFineTuning = accuracyBeforeFineTuning
        self.layers = layers
        self.conversionSeconds = conversionSeconds
        self.fineTuneSeconds = fineTuneSeconds
    }

    /// Weight parameters of the compressed layers, dense over factorized (1 when none was compressed).
    public var compressedLayersRatio: Double {
        let done = layers.filter { $0.format != nil }
        return Double(done.reduce(0) { $0 + $1.denseParameters }) / Double(Swift.max(done.reduce(0) { $0 + $1.parameters }, 1))
    }
    /// Whole-model parameters, dense over compressed.
    public var networkRatio: Double { Double(dense.parameters) / Double(Swift.max(compressed.parameters, 1)) }
    /// Whole-model MACs, dense over compressed.
    public var macsRatio: Double { Double(dense.macs) / Double(Swift.max(compressed.macs, 1)) }
    /// Measured inference speed, compressed over dense.
    public var speedUp: Double { compressed.imagesPerSecond / Swift.max(dense.imagesPerSecond, 1e-9) }
}

/// The pre-train pipeline (METHODS §2.1): load a trained model → choose ranks → convert every eligible layer →
/// fine-tune (optionally distilling from the dense model) → evaluate → save.
public enum CompressionPipeline {
    /// Converts the eligible layers of `model` in place and reports every weight layer.
    ///
    /// - Parameter only: convert exactly the layers with these names and report only them (`keepFirstAndLast` is
    ///   then not applied); nil: every eligible layer, all reported.
    /// - Throws: what `LayerCompressor.compress` throws; `CompressionError.invalidSetting` when a converted layer's
    ///   output error is not finite (weights that overflow Float).
    public static func convert<Scalar: TensorScalar>(_ model: any Layer<Scalar>, inputShape: [Int], settings: CompressionSettings,
                                       only: Set<String>? = nil) throws -> (reports: [LayerReport], records: [FactorizedLayerRecord]) {
        let layers = ModelSurgery.compressibleLayers(of: model, inputShape: inputShape)
        var plan: ModelRankPlan?
        if let rule = settings.rankRule {
            var formats = [CompressionFormat.svd]
            switch rule {
            case .perLayer:
                guard settings.format == .svd else {
                    throw CompressionError.unsupportedFormat(layer: "network", problem:
                        "per-layer rank rules (EVBMF, energy) choose SVD ranks from each layer's spectrum; use the svd format with them, a budget, or --ratio / --ranks with \(settings.format.shortName)")
                }
            case .budget:
                guard settings.choosesFormatPerLayer || settings.planFormats == [settings.format] else {
                    throw CompressionError.unsupportedFormat(layer: "network", problem:
                        "a budget plans ranks in the plan formats \(settings.planFormats.map(\.shortName)), but the format is \(settings.format.shortName); set the format to \(settings.planFormats.first?.shortName ?? "svd") or the plan formats to [\(settings.format.shortName)] (svd, tucker or tt), or plan with several formats (--format auto)")
                }
                formats = settings.planFormats
            }
            plan = try ModelRankPlanner.plan(model, inputShape: inputShape, rule: rule, formats: formats,
                                             keepFirstAndLast: only == nil && settings.keepFirstAndLast)
        }
        var reports: [LayerReport] = [], records: [FactorizedLayerRecord] = []
        for (index, candidate) in layers.enumerated() {
            if let only, !only.contains(candidate.name) { continue }
            var report = denseReport(candidate)
            if only == nil && settings.keepFirstAndLast && (index == 0 || index == layers.count - 1) {
                report.keptDenseReason = index == 0 ? "first layer kept dense" : "last layer kept dense"
                reports.append(report)
                continue
            }
            var (format, target) = (settings.format, settings.target)
            if let plan {
                guard let choice = plan.ranks[candidate.name] else {
                    report.keptDenseReason = "the rank plan (\(plan.report.method)) keeps it dense"
                    reports.append(report)
                    continue
                }
                (format, target) = (choice.format, .ranks(choice.ranks))
            }
            switch try LayerCompressor.compress(candidate.layer, name: candidate.name, inputShape: candidate.inputShape,
                                                format: format, target: target,
                                                options: settings.compressor) {
            case let .keptDense(reason):
                report.keptDenseReason = reason
            case let .replaced(replacement, _) where replacement.trainableParameterCount >= candidate.layer.trainableParameterCount:
                // Not smaller (full or clamped ranks, a high energy): converting would defeat the purpose.
                report.keptDenseReason = "\(format.displayName) at these ranks has \(replacement.trainableParameterCount) parameters, not "
                    + "fewer than the dense layer's \(candidate.layer.trainableParameterCount); ask for fewer parameters (a higher ratio, a smaller budget, "
                    + "lower ranks or a lower energy)"
            case let .replaced(replacement, record):
                report.format = record.format
                report.inputModes = record.inputModes
                report.outputModes = record.outputModes
                report.ranks = record.ranks
                report.parameters = replacement.trainableParameterCount - biasCount(of: candidate.layer)
                report.macs = factorizedMACs(replacement, inputShape: candidate.inputShape, batch: settings.batchSize)
                if let factorized = replacement as? any FactorizedLayer<Scalar>, let linear = candidate.layer as? Linear<Scalar> {
                    report.weightError = Double(factorized.reconstructWeight().relativeError(to: linear.weight.value))
                }
                let error = outputError(candidate.layer, replacement, inputShape: candidate.inputShape)
                guard error.isFinite, report.weightError?.isFinite != false else {
                    throw CompressionError.invalidSetting(layer: candidate.name, problem:
                        "the converted layer's relative output error is \(error) (weight error \(report.weightError.map { "\($0)" } ?? "—")): "
                        + "the weights overflow Float arithmetic; use a checkpoint of a run that did not diverge")
                }
                report.outputError = error
                ModelSurgery.replace(candidate, with: replacement)
                records.append(record)
            }
            reports.append(report)
        }
        return (reports, records)
    }

    /// The report of a layer left dense (its reason still unset).
    static func denseReport<Scalar: TensorScalar>(_ candidate: CompressibleLayer<Scalar>) -> LayerReport {
        let macs = (candidate.layer as! any ShapedLayer<Scalar>).multiplyAdds(forInput: candidate.inputShape)
        return LayerReport(name: candidate.name, kind: candidate.isConvolution ? "conv" : "linear", format: nil,
                           keptDenseReason: nil, inputModes: [], outputModes: [], ranks: [],
                           denseParameters: candidate.weightParameters, parameters: candidate.weightParameters,
                           denseMACs: macs, macs: macs, weightError: nil, outputError: nil)
    }

    /// Runs the whole pipeline on the checkpoint at `path`: the dense model is loaded twice (teacher and student),
    /// the student converted, fine-tuned on `training`, both evaluated on `test` and timed side by side on the same
    /// batches; the compressed model is saved to `output` when given.
    ///
    /// - Throws: `CheckpointError` / `ModelError` for a file that is not a LowRank checkpoint of a known model,
    ///   `CompressionError` / `DecompositionError` from the conversion, `TrainingError` from fine-tuning, file errors.
    public static func run(checkpoint path: String, training: Dataset, test: Dataset, settings: CompressionSettings,
                           output: String? = nil, log: (String) -> Void = { _ in }) throws -> CompressionResult {
        let (teacher, architecture, source) = try CompressedModel.load(path, as: Float.self)
        guard architecture.layers.isEmpty else {
            throw CompressionError.unsupportedFormat(layer: path, problem:
                "the checkpoint is already compressed (\(architecture.layers.count) factorized layers); give the dense model")
        }
        let (student, _, _) = try CompressedModel.load(path, as: Float.self)
        let inputShape = architecture.base.inputShape
        guard test.imageShape == inputShape, training.imageShape == inputShape else {
            throw TrainingError.incompatibleData("the model takes \(inputShape) images, the data are \(training.imageShape)")
        }
        let denseEvaluation = Trainer<Float>.evaluate(teacher, on: test, batchSize: settings.batchSize)
        log(String(format: "dense %@: test accuracy %.2f%%", architecture.base.model, 100 * denseEvaluation.accuracy))

        var reports: [LayerReport] = [], records: [FactorizedLayerRecord] = []
        var conversionSeconds = 0.0, fineTuneSeconds = 0.0
        var accuracyBeforeFineTuning: Double?
        var rounds: [Set<String>?] = [nil]
        if settings.layerByLayer {
            // One round per eligible layer (MUSCO-style): convert it, fine-tune the whole network, go on.
            let candidates = ModelSurgery.compressibleLayers(of: student, inputShape: inputShape)
            var eligible = candidates
            if settings.keepFirstAndLast && !candidates.isEmpty {
                eligible = Array(candidates.dropFirst().dropLast())
                for (index, candidate) in candidates.enumerated() where index == 0 || index == candidates.count - 1 {
                    var report = denseReport(candidate)
                    report.keptDenseReason = index == 0 ? "first layer kept dense" : "last layer kept dense"
                    reports.append(report)
                }
            }
            rounds = eligible.map { Set([$0.name]) }
        }
        for round in rounds {
            let start = Date()
            let converted = try convert(student, inputShape: inputShape, settings: settings, only: round)
            if settings.recalibrateBatchNorm && !converted.records.isEmpty {
                ModelSurgery.recalibrateBatchNorm(in: student, on: training, batchSize: settings.batchSize)
            }
            conversionSeconds += Date().timeIntervalSince(start)
            reports += converted.reports
            records += converted.records
            if accuracyBeforeFineTuning == nil {
                accuracyBeforeFineTuning = Trainer<Float>.evaluate(student, on: test, batchSize: settings.batchSize).accuracy
            }
            if converted.records.isEmpty { continue }
            fineTuneSeconds += try fineTune(student, teacher: teacher, architecture: architecture.base, training: training,
                                            settings: settings)
        }
        let order = Dictionary(uniqueKeysWithValues: ModelSurgery.compressibleLayers(of: teacher, inputShape: inputShape)
            .enumerated().map { ($1.name, $0) })
        reports.sort { order[$0.name, default: 0] < order[$1.name, default: 0] }
        let compressedEvaluation = Trainer<Float>.evaluate(student, on: test, batchSize: settings.batchSize)
        log(String(format: "%@: %.2f%% right after conversion, %.2f%% after fine-tuning",
                   settings.formatDisplayName, 100 * (accuracyBeforeFineTuning ?? 0), 100 * compressedEvaluation.accuracy))
        let timed = test.images.slice(axis: 0, start: 0, count: Swift.min(settings.timingImages, test.count))
        let timing = InferenceTiming.imagesPerSecond([teacher, student], images: timed, batchSize: settings.batchSize)
        let result = CompressionResult(
            format: settings.formatName,
            dense: ModelMeasurement(accuracy: denseEvaluation.accuracy, loss: denseEvaluation.loss,
                                    parameters: teacher.trainableParameterCount,
                                    macs: teacher.multiplyAdds(forInput: inputShape), imagesPerSecond: timing[0]),
            compressed: ModelMeasurement(accuracy: compressedEvaluation.accuracy, loss: compressedEvaluation.loss,
                                         parameters: student.trainableParameterCount,
                                         macs: teacher.multiplyAdds(forInput: inputShape)
                                             - reports.reduce(0) { $0 + $1.denseMACs - $1.macs }, imagesPerSecond: timing[1]),
            accuracyBeforeFineTuning: accuracyBeforeFineTuning ?? compressedEvaluation.accuracy, layers: reports,
            conversionSeconds: conversionSeconds, fineTuneSeconds: fineTuneSeconds)
        if let output {
            try save(student, architecture: CompressedArchitecture(base: architecture.base, layers: records), to: output,
                     notes: source.trainingState?.notes ?? [:])
        }
        return result
    }

    /// Saves a compressed model as a LowRank checkpoint whose architecture record rebuilds it
    /// (`CompressedModel.load`); `notes` (the data set the dense model was trained on, …) go into its training state.
    ///
    /// - Throws: `TensorError.file` when the file cannot be written.
    public static func save<Scalar: TensorScalar>(_ model: any Layer<Scalar>, architecture: CompressedArchitecture, to path: String,
                                                  notes: [String: String] = [:]) throws {
        try Checkpoint.save(model, to: path, architecture: architecture.json,
                            trainingState: TrainingState(epoch: 0, step: 0, seed: 0, notes: notes))
    }

    /// Fine-tunes `model` for `settings.fineTuneEpochs` epochs with SGD (momentum 0.9) and a cosine schedule;
    /// returns the seconds spent.
    static func fineTune(_ model: any Layer<Float>, teacher: any Layer<Float>, architecture: ModelArchitecture,
                         training: Dataset, settings: CompressionSettings) throws -> Double {
        guard settings.fineTuneEpochs > 0 else { return 0 }
        var configuration = TrainingConfiguration(epochs: settings.fineTuneEpochs)
        configuration.batchSize = settings.batchSize
        let steps = (training.count + settings.batchSize - 1) / settings.batchSize
        configuration.schedule = .cosine(initial: settings.learningRate, floor: 0, epochs: settings.fineTuneEpochs,
                                         stepsPerEpoch: steps)
        configuration.seed = settings.seed
        configuration.progress = settings.progress
        configuration.architecture = architecture.json
        let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
        if let distillation = settings.distillation {
            trainer.objective = DistillationObjective(teacher: teacher, temperature: distillation.temperature,
                                                      weight: distillation.weight)
        }
        let start = Date()
        try trainer.fit(training: training)
        return Date().timeIntervalSince(start)
    }

    /// Per-sample MACs of a replacement: factorized layers in factorized mode at `batch` rows (weight-side steps
    /// shared by the batch), other layers as they report.
    static func factorizedMACs<Scalar: TensorScalar>(_ layer: any ShapedLayer<Scalar>, inputShape: [Int], batch: Int) -> Int {
        guard let factorized = layer as? any FactorizedLayer<Scalar> else { return layer.multiplyAdds(forInput: inputShape) }
        let rows = batch * inputShape.dropLast().reduce(1, *)
        return (factorized.cost(batch: rows, mode: .factorized).total + batch - 1) / batch
    }

    static func biasCount<Scalar: TensorScalar>(of layer: any Layer<Scalar>) -> Int {
        (layer as? Linear<Scalar>)?.bias?.value.scalarCount ?? (layer as? Conv2D<Scalar>)?.bias?.value.scalarCount ?? 0
    }

    /// ‖f(x) − g(x)‖ / ‖f(x)‖ on 8 standard normal inputs of the per-sample shape (seeded).
    static func outputError<Scalar: TensorScalar>(_ f: any Layer<Scalar>, _ g: any Layer<Scalar>, inputShape: [Int]) -> Double {
        var generator = SeededGenerator(seed: 0x5052_4F42)
        let x = Variable(constant: Tensor<Scalar>.randomNormal([8] + inputShape, generator: &generator))
        return Double(g(x, mode: .inference).value.relativeError(to: f(x, mode: .inference).value))
    }
}

/// Measured inference speed of several models on the same batches in the same run.
public enum InferenceTiming {
    /// Images per second of each model in inference mode over `images` (split into batches of `batchSize`): the
    /// models take turns, `repeats` rounds after one warm-up round, and each model's median round is reported.
    public static func imagesPerSecond<Scalar: TensorScalar>(_ models: [any Layer<Scalar>], images: Tensor<Float>, batchSize: Int,
                                               repeats: Int = 3) -> [Double] {
        let count = images.shape[0]
        let batches: [Tensor<Scalar>] = stride(from: 0, to: count, by: batchSize).map { start in
            let slice = images.slice(axis: 0, start: start, count: Swift.min(batchSize, count - start))
            return (slice as? Tensor<Scalar>) ?? slice.converted(to: Scalar.self)
        }
        var seconds = [[Double]](repeating: [], count: models.count)
        for round in 0...repeats {
            for (index, model) in models.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                for batch in batches { _ = model(Variable(constant: batch), mode: .inference) }
                if round > 0 { seconds[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
            }
        }
        return seconds.map { Double(count) / Swift.max($0.sorted()[$0.count / 2], 1e-9) }
    }
}
