import ArgumentParser
import Autodiff
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank train`: trains a reference model on a data set, evaluating and checkpointing after every epoch.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a reference model (fmnist-cnn, lenet5, resnet20/32/56) on Fashion-MNIST, MNIST or CIFAR-10.",
        discussion: """
        Defaults are the recipe of the PyTorch peer (../shared/peers/PEERS.md): fmnist-cnn on Fashion-MNIST, \
        SGD with momentum 0.9, learning rate 0.05, batch 128, seed 0, no augmentation. After every epoch the \
        model is evaluated on the test split and saved (weights, optimizer state, training state) to --out, \
        replaced atomically. The same seed and thread count (LOWRANK_THREADS, default: all cores) give the same \
        numbers. A NaN or infinite loss stops training with the step number and keeps the last good checkpoint.

        --epochs is the total: `--resume run.safetensors --epochs 4` continues a 2-epoch run for 2 more epochs \
        (model, optimizer, seed and schedule come from the checkpoint).

        Progress goes to standard error (one line updated in place on a terminal); the summary to standard output.

        Examples:
          lowrank train --epochs 5
          lowrank train --model resnet20 --data fashion-mnist --epochs 10 --lr 0.1 --out resnet20.safetensors
          lowrank train --model lenet5 --data mnist --data-dir ~/mnist --optimizer adam --lr 0.001
          lowrank train --resume fmnist-cnn.safetensors --epochs 8 --json
        """
    )

    @Option(help: "The model: \(ModelRegistry.modelNames.joined(separator: ", ")) (default fmnist-cnn; on --resume, the checkpoint's).")
    var model: String?

    @Option(help: "The data set: \(Dataset.Source.allCases.map(\.rawValue).joined(separator: ", ")) (default fashion-mnist; on --resume, the checkpoint's).")
    var data: String?

    @Option(help: "The folder with the data files (default: /usr/share/datasets/<data set>).")
    var dataDir: String?

    @Option(parsing: .unconditional, help: "Total epochs to train to.")
    var epochs = 5

    @Option(parsing: .unconditional, help: "Examples per step (default 128; on --resume, the checkpoint's).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Learning rate (default: 0.05 for sgd, 0.001 for adam).")
    var lr: Double?

    @Option(help: "The optimizer: sgd (momentum 0.9) or adam.")
    var optimizer = "sgd"

    @Option(parsing: .unconditional, help: "SGD momentum.")
    var momentum = 0.9

    @Option(parsing: .unconditional, help: "Weight decay (L2 for sgd and adam).")
    var weightDecay = 0.0

    @Option(parsing: .unconditional, help: "Seed of the initialization, the data order and augmentation.")
    var seed: UInt64 = 0

    @Flag(help: "Augment training images with random crops (padding 4 for CIFAR-10, 2 otherwise) and, for CIFAR-10, horizontal flips.")
    var augment = false

    @Option(parsing: .unconditional, help: "Train on the first N training images only (quick runs; on --resume, the checkpoint's).")
    var limit: Int?

    @Option(help: "Where to save the checkpoint after every epoch (default: <model>.safetensors).")
    var out: String?

    @Option(help: "Continue from this checkpoint (written by lowrank train).")
    var resume: String?

    @Flag(help: "Anneal the learning rate from --lr to 0 over --epochs with a cosine schedule.")
    var cosine = false

    @Option(help: "Tensorize the model (pre-set, trained from scratch): every conv and linear layer but the first conv becomes this format: \(TensorizationFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: String?

    @Option(parsing: .unconditional, help: "With --format: the rank of every factorized layer.")
    var ranks: Int?

    @Option(parsing: .unconditional, help: "With --format: per layer, the largest uniform ranks giving this many times fewer parameters.")
    var ratio: Double?

    @Option(help: "With --format: how factorized layers run (auto, factorized, reconstructed).")
    var execution = "auto"

    @Option(parsing: .unconditional, help: "With --format str or stt: the STP factor t (ranks and the linked output modes must be multiples of it; default 2).")
    var stpFactor: Int?

    @OptionGroup var compression: CompressionAwareOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if format == nil && (ranks != nil || ratio != nil) { throw ValidationError("--ranks and --ratio need --format") }
        if stpFactor != nil && (try? TensorizationFormat(name: format ?? ""))?.usesSemiTensorProduct != true {
            throw ValidationError("--stp-factor applies to --format str or stt only")
        }
        if compression.compressionAware != nil && resume != nil {
            throw ValidationError("--compression-aware starts a new run; drop --resume")
        }
        if let model, !ModelRegistry.modelNames.contains(model) {
            throw ValidationError("unknown model '\(model)'; choose one of \(ModelRegistry.modelNames.joined(separator: ", "))")
        }
        if let data, Dataset.Source(rawValue: data) == nil {
            throw ValidationError("unknown data set '\(data)'; choose one of "
                                  + Dataset.Source.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard ["sgd", "adam"].contains(optimizer) else { throw ValidationError("--optimizer must be sgd or adam, got '\(optimizer)'") }
        guard epochs >= 0 else { throw ValidationError("--epochs must be ≥ 0") }
        if let batch, batch <= 0 { throw ValidationError("--batch must be positive") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
        guard momentum >= 0, momentum < 1 else { throw ValidationError("--momentum must be in [0, 1), got \(momentum)") }
    }

    func run() throws {
        try runReportingErrors { try train() }
    }

    private func train() throws {
        let started = Date()
        if let out { try AtomicFile.checkDestination(out) }
        var sourceName = data ?? "fashion-mnist", directory = dataDir
        var architecture: ModelArchitecture
        var optimizerConfiguration: OptimizerConfiguration
        var checkpoint: Checkpoint?
        var batch = self.batch ?? 128
        var limit = self.limit
        if let resume {
            let saved = try Checkpoint(contentsOf: resume)
            architecture = try ModelArchitecture(json: saved.architecture)
            if let model, model != architecture.model {
                throw ValidationError("\(resume) holds a \(architecture.model) model, not \(model); drop --model or "
                                      + "choose a \(model) checkpoint")
            }
            guard let state = saved.trainingState, let savedOptimizer = state.optimizer else {
                throw ValidationError("\(resume) holds no training state to resume from; train a new model instead")
            }
            optimizerConfiguration = savedOptimizer
            if data == nil, let recorded = state.notes["data"] { sourceName = recorded }
            if directory == nil { directory = state.notes["data_dir"] }
            if self.batch == nil, let saved = state.notes["batch"].flatMap(Int.init) { batch = saved }
            if limit == nil { limit = state.notes["limit"].flatMap(Int.init) }
            checkpoint = saved
        } else {
            let source = Dataset.Source(rawValue: sourceName)!
            architecture = ModelArchitecture(model: model ?? "fmnist-cnn", inputShape: Self.imageShape(source), classes: 10)
            optimizerConfiguration = optimizer == "sgd"
                ? OptimizerConfiguration(name: "sgd", hyperparameters: ["momentum": momentum, "weight_decay": weightDecay])
                : OptimizerConfiguration(name: "adam", hyperparameters: ["weight_decay": weightDecay])
        }
        guard let source = Dataset.Source(rawValue: sourceName) else {
            throw ValidationError("the checkpoint names an unknown data set '\(sourceName)'")
        }
        var training = try Dataset.load(source, directory: directory, split: .train)
        let test = try Dataset.load(source, directory: directory, split: .test)
        if let limit { training = training.subset(first: limit) }
        guard training.imageShape == architecture.inputShape else {
            throw ValidationError("the model takes \(architecture.inputShape) images but \(training.name) has "
                                  + "\(training.imageShape); choose the data set the model was trained on")
        }
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: checkpoint?.architecture ?? architecture.json,
            request: try format.map { try TensorizationRequest(format: $0, rank: ranks, ratio: ratio, execution: execution, stpFactor: stpFactor ?? 2) }, seed: seed)
        let model = built.model
        let optimizer: any Optimizer<Float> = try optimizerConfiguration.makeOptimizer(Float.self)
        var configuration = TrainingConfiguration(epochs: epochs)
        configuration.batchSize = batch
        let rate = lr ?? (optimizerConfiguration.name == "sgd" ? 0.05 : 0.001)
        configuration.schedule = cosine && epochs > 0
            ? .cosine(initial: rate, floor: 0, epochs: epochs, stepsPerEpoch: (training.count + batch - 1) / batch) : .constant(rate)
        configuration.seed = seed
        configuration.checkpointPath = out ?? (resume ?? "\(architecture.model).safetensors")
        configuration.architecture = built.architectureJSON
        configuration.notes = ["data": source.rawValue, "batch": String(batch)]
        if let directory { configuration.notes["data_dir"] = directory }
        if let limit { configuration.notes["limit"] = String(limit) }
        if augment {
            configuration.augmentation = source == .cifar10 ? .cifar : Augmentation(cropPadding: 2)
        }
        let compressionRun = try compression.settings.map { try CompressionAwareTraining(model: model, settings: $0) }
        // SVD training renames the parameters (u, s, vt): its checkpoints could not be rebuilt from the registry.
        if compressionRun?.settings.method == .svdTraining { configuration.checkpointPath = nil }
        let trainer = Trainer(model: model, optimizer: optimizer, configuration: configuration)
        trainer.objective = compressionRun?.objective
        if let checkpoint {
            try trainer.resume(from: checkpoint)
            // An explicit --lr replaces the saved rate from here on; otherwise the saved schedule continues.
            if let lr { trainer.configuration.schedule = .constant(lr) }
        }
        let threads = LinearAlgebraThreads.count
        if !output.json {
            let parameters = model.trainableParameterCount
            print("training \(architecture.model) (\(grouped(parameters)) parameters, "
                  + Self.describeMultiplyAdds(model, inputShape: architecture.inputShape, batch: batch) + ") "
                  + "on \(training.name): \(training.count) images, test \(test.count)")
            print("optimizer \(optimizerConfiguration.name) \(Self.describe(optimizerConfiguration.hyperparameters)), "
                  + "lr \(trainer.configuration.schedule.learningRate(atStep: trainer.state.step)), batch \(batch), "
                  + "seed \(trainer.configuration.seed), \(threads) thread(s)"
                  + (checkpoint != nil ? ", resuming after epoch \(trainer.state.epoch)" : ""))
            if let line = built.summaryLine { print(line) }
            fflush(nil)  // progress goes to standard error; keep the two in order when both are piped
        }
        let summary = try trainer.fit(training: training, test: test)
        let compressed = try compressionRun.map {
            try CompressionAwareOptions.finish($0, energies: compression.truncationEnergies, model: model, training: training, test: test, inputShape: architecture.inputShape, json: output.json)
        }
        let peak = peakResidentBytes()
        let path = trainer.configuration.checkpointPath ?? "(not saved: SVD-training layers)"
        if output.json {
            var object: [String: Any] = [
                "model": architecture.model, "architecture": built.architectureJSON, "data": source.rawValue,
                "parameters": model.trainableParameterCount,
                "multiply_adds_per_image": model.multiplyAdds(forInput: architecture.inputShape),
                "multiply_adds_per_image_at_batch": ModelSurgery.multiplyAddsPerImage(of: model, inputShape: architecture.inputShape, batch: batch),
                "optimizer": optimizerConfiguration.name, "batch": batch, "seed": trainer.configuration.seed,
                "threads": threads, "checkpoint": path, "images_per_second": summary.imagesPerSecond,
                "epochs": summary.epochs.map(Self.json), "total_seconds": Date().timeIntervalSince(started),
            ]
            if let peak { object["peak_memory_bytes"] = peak }
            if let compressed { object["compression_aware"] = compressed }
            try printJSON(object)
            return
        }
        if let last = summary.epochs.last {
            var line = "done: \(summary.epochs.count) epoch(s) to epoch \(last.epoch), "
                + String(format: "%.0f images/s", summary.imagesPerSecond)
            if let test = last.test { line += String(format: ", test accuracy %.2f%%", 100 * test.accuracy) }
            if let peak { line += ", peak memory \(Info.humanBytes(peak))" }
            print(line)
        } else {
            print("nothing to do: the checkpoint is already at epoch \(trainer.state.epoch) (raise --epochs)")
        }
        print("saved \(path)")
    }

    /// The NHWC shape of one image of a data set.
    static func imageShape(_ source: Dataset.Source) -> [Int] { source == .cifar10 ? [32, 32, 3] : [28, 28, 1] }

    static func millions(_ count: Int) -> String { String(format: "%.1f", Double(count) / 1e6) }

    /// "12.3 M multiply-adds per image", and the per-image count at `batch` when factorized layers share
    /// weight-side work across the batch (`ModelSurgery.multiplyAddsPerImage`).
    static func describeMultiplyAdds(_ model: any ShapedLayer<Float>, inputShape: [Int], batch: Int) -> String {
        let single = model.multiplyAdds(forInput: inputShape)
        let batched = ModelSurgery.multiplyAddsPerImage(of: model, inputShape: inputShape, batch: batch)
        return "\(millions(single)) M multiply-adds per image" + (batched == single ? "" : ", \(millions(batched)) M at batch \(batch)")
    }

    static func describe(_ hyperparameters: [String: Double]) -> String {
        hyperparameters.keys.sorted().map { "\($0) \(hyperparameters[$0]!)" }.joined(separator: ", ")
    }

    static func json(_ record: EpochRecord) -> [String: Any] {
        var object: [String: Any] = [
            "epoch": record.epoch, "steps": record.steps, "train_loss": record.trainLoss,
            "train_accuracy": record.trainAccuracy, "seconds": record.seconds, "images_per_second": record.imagesPerSecond,
        ]
        if let test = record.test { object["test_loss"] = test.loss; object["test_accuracy"] = test.accuracy }
        return object
    }
}

/// `870826` → `870,826`.
func grouped(_ value: Int) -> String {
    let digits = String(abs(value))
    var result = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result += "," }
        result.append(digit)
    }
    return (value < 0 ? "-" : "") + result
}

/// The peak resident set size of this process (`VmHWM` of /proc/self/status), or nil where unavailable.
func peakResidentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
    return kilobytes * 1024
}
