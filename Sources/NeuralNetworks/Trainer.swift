import Autodiff
import Foundation
import TensorCore

/// How a `Trainer` trains: epochs, batches, learning rate, seed, checkpoints and progress display.
///
/// The defaults are the recipe of the PyTorch peer (`../shared/peers/PEERS.md`): batch 128, constant learning
/// rate 0.05 (with `SGD(momentum: 0.9)`), seed 0, no augmentation.
public struct TrainingConfiguration: Sendable {
    /// The epoch count the run trains to (a resumed run continues until it has done this many in total).
    public var epochs: Int
    /// Examples per step (the last batch of an epoch may be smaller).
    public var batchSize: Int = 128
    /// The learning rate per optimizer step.
    public var schedule: LearningRateSchedule = .constant(0.05)
    /// The seed of the data order, augmentation and dropout masks (the model's initialization has its own).
    public var seed: UInt64 = 0
    /// Label smoothing ε of the cross-entropy loss.
    public var labelSmoothing: Double = 0
    /// Clip the global gradient norm to this value before each update (nil: no clipping).
    public var gradientClipNorm: Double?
    /// Training-set augmentation.
    public var augmentation: Augmentation = .none
    /// Examples per evaluation batch (nil: the training batch size, so evaluation reuses the training step's
    /// buffer sizes and the heap does not fragment).
    public var evaluationBatchSize: Int?
    /// Where to save a checkpoint after every epoch (nil: none). The file is replaced atomically.
    public var checkpointPath: String?
    /// The architecture record saved with checkpoints (a JSON object, `ModelArchitecture.json`).
    public var architecture: String = "{}"
    /// Extra facts saved in the checkpoint's training state (data set, …).
    public var notes: [String: String] = [:]
    /// How progress is shown.
    public var progress: ProgressStyle = .automatic
    /// Batches the data loader prepares ahead on a background thread (0...2).
    public var prefetch: Int = 1

    /// A configuration with the peer's recipe and `epochs` epochs.
    public init(epochs: Int) { self.epochs = epochs }

    /// Why the configuration cannot train, or nil.
    public var problem: String? {
        if epochs < 0 { return "epochs must be ≥ 0, got \(epochs)" }
        if batchSize <= 0 { return "the batch size must be positive, got \(batchSize)" }
        if let size = evaluationBatchSize, size <= 0 { return "the evaluation batch size must be positive, got \(size)" }
        if !(labelSmoothing >= 0 && labelSmoothing <= 1) { return "label smoothing must lie in [0, 1], got \(labelSmoothing)" }
        if let clip = gradientClipNorm, !(clip > 0) { return "the gradient clipping norm must be positive, got \(clip)" }
        if !(0...2).contains(prefetch) { return "prefetch must be 0, 1 or 2 batches, got \(prefetch)" }
        return schedule.problem.map { "learning-rate schedule: \($0)" }
    }
}

/// The result of evaluating a model on a data set.
public struct Evaluation: Sendable, Equatable, Codable {
    /// Mean cross-entropy over the examples.
    public var loss: Double
    /// Fraction of examples whose largest logit is the label's, in [0, 1].
    public var accuracy: Double
    /// Correctly classified examples.
    public var correct: Int
    /// Examples evaluated.
    public var count: Int
}

/// What one epoch did.
public struct EpochRecord: Sendable, Equatable, Codable {
    /// The epoch, from 1.
    public var epoch: Int
    /// Optimizer steps in the epoch.
    public var steps: Int
    /// Mean training loss over the epoch (each batch weighted by its size).
    public var trainLoss: Double
    /// Training accuracy over the epoch, with the weights as they were at each step.
    public var trainAccuracy: Double
    /// Seconds spent in training steps (evaluation and checkpointing excluded), as the peer measures.
    public var seconds: Double
    /// Training images per second.
    public var imagesPerSecond: Double
    /// The test-set evaluation after the epoch, when a test set was given.
    public var test: Evaluation?
}

/// What a `fit` call did.
public struct TrainingSummary: Sendable {
    /// The epochs trained by this call, in order.
    public var epochs: [EpochRecord]
    /// The state after the last epoch (what the last checkpoint records).
    public var state: TrainingState
    /// Training images per second over all epochs of this call.
    public var imagesPerSecond: Double
    /// The thread count the run used (results are reproducible for a given seed and thread count).
    public var threads: Int
}

/// Errors that stop training.
public enum TrainingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The loss of a step was NaN or infinite. Nothing was updated at that step (weights, optimizer state and
    /// batch-norm statistics are as the previous step left them); `lastCheckpoint` is the last
    /// checkpoint with finite weights (nil when none was written).
    case nonFiniteLoss(epoch: Int, step: Int, loss: Double, lastCheckpoint: String?)
    /// A parameter became NaN or infinite (found before saving a checkpoint, which is then not written).
    case nonFiniteParameter(name: String, epoch: Int, step: Int, lastCheckpoint: String?)
    /// The test loss after an epoch was NaN or infinite: the weights are finite but the outputs are not (the run
    /// diverged, or the test data hold NaN). That epoch's checkpoint is not written.
    case nonFiniteTestLoss(epoch: Int, loss: Double, lastCheckpoint: String?)
    /// The data do not fit the model or the configuration.
    case incompatibleData(String)
    /// The configuration cannot train.
    case invalidConfiguration(String)

    /// The one-line message for a user.
    public var description: String {
        func kept(_ path: String?) -> String {
            path.map { "the last good checkpoint is kept at \($0)" } ?? "no checkpoint had been written yet"
        }
        let advice = "lower the learning rate (--lr) or clip gradients"
        switch self {
        case let .nonFiniteLoss(epoch, step, loss, checkpoint):
            return "training stopped: the loss became \(loss) at step \(step) (epoch \(epoch)); \(kept(checkpoint)); \(advice)"
        case let .nonFiniteParameter(name, epoch, step, checkpoint):
            return "training stopped: parameter '\(name)' became NaN or infinite by step \(step) (epoch \(epoch)); "
                + "\(kept(checkpoint)); \(advice)"
        case let .nonFiniteTestLoss(epoch, loss, checkpoint):
            return "training stopped: the test loss became \(loss) after epoch \(epoch) (the outputs overflow: the run diverged, "
                + "or the test images hold NaN); \(kept(checkpoint)); \(advice)"
        case let .incompatibleData(problem):
            return "the data do not fit the model: \(problem)"
        case let .invalidConfiguration(problem):
            return "invalid training configuration: \(problem)"
        }
    }
}

/// Trains a classifier with mini-batch gradient descent: epochs over a shuffled data set, cross-entropy loss,
/// an optimizer with a learning-rate schedule, evaluation on a test set and a checkpoint after every epoch.
///
/// A step is: reseed stochastic layers from (seed, step); clear the gradients; record the forward pass on a
/// fresh tape (activations NHWC end to end); one reverse pass stores every parameter's gradient; the optimizer
/// updates the parameters in place. Everything random is a function of the seed and the step index (data order
/// of `(seed, epoch)`, masks of `(seed, step)`) and every kernel is deterministic for a fixed thread count, so
/// the same seed and thread count give the same weights, and a run resumed from an epoch-end checkpoint gives
/// exactly the weights of an uninterrupted one.
///
/// A NaN or infinite loss stops training at that step before any update (`TrainingError.nonFiniteLoss`, with
/// the step number), and a NaN or infinite test loss after an epoch stops it before that epoch's checkpoint
/// (`.nonFiniteTestLoss`); the checkpoint of the last finished epoch is left as it was.
///
/// ```swift
/// var generator = SeededGenerator(seed: 0)
/// let model: Sequential<Float> = FashionCNN.make(generator: &generator)
/// var configuration = TrainingConfiguration(epochs: 5)
/// configuration.checkpointPath = "fmnist.safetensors"
/// let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
/// let summary = try trainer.fit(training: train, test: test)
/// ```
public final class Trainer<Scalar: TensorScalar> {
    /// The model being trained (updated in place).
    public let model: any Layer<Scalar>
    /// The update rule.
    public let optimizer: any Optimizer<Scalar>
    /// The recipe (may be changed between `fit` calls, for example to lower the learning rate).
    public var configuration: TrainingConfiguration
    /// Epochs finished and optimizer steps taken so far (advanced by `fit`, restored by `resume`).
    public private(set) var state: TrainingState
    /// The last checkpoint known to hold finite weights (written by this trainer or resumed from).
    public private(set) var lastCheckpoint: String?
    /// Extra terms of the objective and updates after each optimizer step (distillation, compression-aware
    /// regularizers, proximal steps); nil trains on cross-entropy alone.
    public var objective: (any TrainingObjective<Scalar>)?

    private let parameters: [(name: String, parameter: Parameter<Scalar>)]
    /// The non-trainable parameters (batch-norm running statistics).
    private let statistics: [Parameter<Scalar>]
    /// Whether the images enter a step as a constant (run inside `withGradientTape`), decided once per image
    /// shape by `inputCanBeConstant(_:)`.
    private var constantInput: (shape: [Int], allowed: Bool)?

    /// A trainer at epoch 0, step 0.
    public init(model: any Layer<Scalar>, optimizer: any Optimizer<Scalar>, configuration: TrainingConfiguration) {
        self.model = model
        self.optimizer = optimizer
        self.configuration = configuration
        self.parameters = model.namedParameters()
        self.statistics = parameters.filter { !$0.parameter.isTrainable }.map(\.parameter)
        self.state = TrainingState(epoch: 0, step: 0, seed: configuration.seed, schedule: configuration.schedule,
                                   notes: configuration.notes)
    }

    /// Restores the model, the optimizer and the position (epoch, step, seed, schedule) from a checkpoint, so the
    /// next `fit` continues exactly where that run stopped.
    ///
    /// The checkpoint's seed and schedule replace the configuration's (the data order must continue).
    /// - Throws: the errors of `Checkpoint.restore(into:optimizer:)`; `CheckpointError.malformed` when the
    ///   checkpoint has no training state.
    public func resume(from checkpoint: Checkpoint) throws {
        guard let saved = checkpoint.trainingState else {
            throw CheckpointError.malformed(path: checkpoint.path, problem: "it holds no training state to resume "
                                            + "from (saved without one); start a new run from its weights instead")
        }
        try checkpoint.restore(into: model, optimizer: saved.optimizer == nil ? nil : optimizer)
        state = saved
        configuration.seed = saved.seed
        if let schedule = saved.schedule { configuration.schedule = schedule }
        lastCheckpoint = checkpoint.path
    }

    /// Trains from the current epoch up to `configuration.epochs`, evaluating on `test` after every epoch and
    /// saving a checkpoint after every epoch when `configuration.checkpointPath` is set.
    ///
    /// - Throws: `TrainingError.nonFiniteLoss` / `.nonFiniteParameter` / `.nonFiniteTestLoss` when training diverges
    ///   (the last good checkpoint is kept); `.incompatibleData` when the images or labels do not fit the model;
    ///   `.invalidConfiguration`; the file errors of `Checkpoint.save`.
    @discardableResult
    public func fit(training: Dataset, test: Dataset? = nil) throws -> TrainingSummary {
        if let problem = configuration.problem { throw TrainingError.invalidConfiguration(problem) }
        guard training.count > 0 else { throw TrainingError.incompatibleData("the training set \(training.name) is empty") }
        if let test, test.imageShape != training.imageShape {
            throw TrainingError.incompatibleData("test images \(test.imageShape) differ from training images \(training.imageShape)")
        }
        try checkCompatibility(training)
        let loader = DataLoader(dataset: training, batchSize: configuration.batchSize, shuffle: true,
                                dropLast: false, seed: configuration.seed, augmentation: configuration.augmentation,
                                prefetch: configuration.prefetch)
        let printer = ProgressPrinter(style: configuration.progress)
        let stepsPerEpoch = loader.batchesPerEpoch
        let firstEpoch = state.epoch
        var records: [EpochRecord] = []
        var totalSeconds = 0.0, totalImages = 0
        for epoch in firstEpoch..<max(firstEpoch, configuration.epochs) {
            var lossSum = 0.0, correct = 0, seen = 0, seconds = 0.0, steps = 0
            for batch in loader.epoch(epoch) {
                let start = DispatchTime.now().uptimeNanoseconds
                let learningRate = configuration.schedule.learningRate(atStep: state.step)
                let (loss, right) = try step(images: batch.images, labels: batch.labels, learningRate: learningRate,
                                             epoch: epoch + 1)
                seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                lossSum += loss * Double(batch.count)
                correct += right
                seen += batch.count
                steps += 1
                let remaining = Double((configuration.epochs - epoch) * stepsPerEpoch - steps)
                printer.update(ProgressReport(epoch: epoch + 1, epochs: configuration.epochs, step: steps,
                                              stepsPerEpoch: stepsPerEpoch, loss: lossSum / Double(seen),
                                              accuracy: Double(correct) / Double(seen),
                                              imagesPerSecond: Double(seen) / max(seconds, 1e-9),
                                              etaSeconds: remaining * seconds / Double(steps)))
            }
            state.epoch = epoch + 1
            totalSeconds += seconds
            totalImages += seen
            var record = EpochRecord(epoch: epoch + 1, steps: steps, trainLoss: lossSum / Double(max(seen, 1)),
                                     trainAccuracy: Double(correct) / Double(max(seen, 1)), seconds: seconds,
                                     imagesPerSecond: Double(seen) / max(seconds, 1e-9), test: nil)
            if let test {
                let evaluation = Self.evaluate(model, on: test, batchSize: configuration.evaluationBatchSize ?? configuration.batchSize)
                guard evaluation.loss.isFinite else {
                    throw TrainingError.nonFiniteTestLoss(epoch: epoch + 1, loss: evaluation.loss, lastCheckpoint: lastCheckpoint)
                }
                record.test = evaluation
            }
            if let path = configuration.checkpointPath {
                try saveCheckpoint(to: path, record: record)
            }
            records.append(record)
            var line = String(format: "epoch %d/%d: loss %.4f, train accuracy %.2f%%, %.1f s, %.0f img/s",
                              epoch + 1, configuration.epochs, record.trainLoss, 100 * record.trainAccuracy,
                              record.seconds, record.imagesPerSecond)
            if let evaluation = record.test {
                line += String(format: ", test loss %.4f, test accuracy %.2f%%", evaluation.loss, 100 * evaluation.accuracy)
            }
            printer.finishEpoch(line)
        }
        return TrainingSummary(epochs: records, state: state,
                               imagesPerSecond: totalSeconds > 0 ? Double(totalImages) / totalSeconds : 0,
                               threads: LinearAlgebraThreads.count)
    }

    /// One optimizer step on a batch of NHWC images (`Float`, as data sets hold them) with the given learning
    /// rate; returns the batch's mean loss and the number of correctly classified images (before the update).
    ///
    /// - Throws: `TrainingError.nonFiniteLoss` (nothing is updated then).
    @discardableResult
    public func step(images: Tensor<Float>, labels: [Int], learningRate: Double) throws -> (loss: Double, correct: Int) {
        try step(images: images, labels: labels, learningRate: learningRate, epoch: state.epoch + 1)
    }

    private func step(images: Tensor<Float>, labels: [Int], learningRate: Double, epoch: Int) throws
        -> (loss: Double, correct: Int)
    {
        let imageShape = Array(images.shape.dropFirst())
        if constantInput?.shape != imageShape { constantInput = (imageShape, inputCanBeConstant(imageShape)) }
        (model as? any StochasticLayer)?.reseed(mixSeeds(configuration.seed, UInt64(state.step), dropoutStream))
        for (_, parameter) in parameters where parameter.gradient != nil { parameter.gradient = nil }
        // Batch-norm running statistics move during the forward pass; keep them (copy-on-write: nothing is copied
        // unless they change) so a step that fails leaves the model exactly as it was.
        let savedStatistics = statistics.map(\.value)
        // Forward and reverse pass in their own scope: the tape and the values its closures hold are released
        // before the update, so the optimizer writes the weights in place instead of copying them.
        func forwardAndBackward() -> (loss: Double, correct: Int) {
            let tape = Tape<Scalar>()
            let input: Tensor<Scalar> = converted(images)
            let logits = constantInput!.allowed
                ? withGradientTape(tape) { model(Variable(constant: input), mode: .training) }
                : model(tape.variable(input), mode: .training)
            let taskLoss = crossEntropy(logits: logits, labels: labels, labelSmoothing: Scalar(configuration.labelSmoothing))
            let loss = objective.map { objective in
                withGradientTape(tape) { objective.loss(task: taskLoss, logits: logits, images: input, labels: labels) }
            } ?? taskLoss
            let value = Double(loss.value.scalar)
            guard value.isFinite else { return (value, 0) }
            let correct = countCorrect(logits.value, labels)
            tape.gradients(of: loss)
            return (value, correct)
        }
        let (value, correct) = forwardAndBackward()
        guard value.isFinite else {
            for (parameter, saved) in zip(statistics, savedStatistics) { parameter.value = saved }
            for (_, parameter) in parameters { parameter.gradient = nil }
            throw TrainingError.nonFiniteLoss(epoch: epoch, step: state.step, loss: value, lastCheckpoint: lastCheckpoint)
        }
        if let clip = configuration.gradientClipNorm {
            _ = GradientClipping.clipByGlobalNorm(parameters, maxNorm: clip)
        }
        optimizer.step(parameters, learningRate: learningRate)
        objective?.afterStep(step: state.step, learningRate: learningRate)
        state.step += 1
        return (value, correct)
    }

    /// Whether feeding the images as a constant inside `withGradientTape` records the same parameters as feeding
    /// them on the tape, checked on one zero image in inference mode (which changes no state). It does for every
    /// layer that obtains its parameters through `Variable.watching(_:)`; a custom layer that reads `input.tape`
    /// itself makes the trainer fall back to recording the images (and computing their unused gradient).
    private func inputCanBeConstant(_ imageShape: [Int]) -> Bool {
        let probe = Tensor<Scalar>(repeating: 0, shape: [1] + imageShape)
        func recordedParameters(constant: Bool) -> Set<String> {
            for (_, parameter) in parameters { parameter.gradient = nil }
            let tape = Tape<Scalar>()
            let output = constant
                ? withGradientTape(tape) { model(Variable(constant: probe), mode: .inference) }
                : model(tape.variable(probe), mode: .inference)
            if output.isRecorded { tape.gradients(of: output.sum()) }
            let names = Set(parameters.filter { $0.parameter.gradient != nil }.map(\.name))
            for (_, parameter) in parameters { parameter.gradient = nil }
            return names
        }
        return recordedParameters(constant: true) == recordedParameters(constant: false)
    }

    /// Saves the model, optimizer and state, after checking that every parameter is finite.
    private func saveCheckpoint(to path: String, record: EpochRecord) throws {
        for (name, parameter) in parameters where !parameter.value.isFinite {
            throw TrainingError.nonFiniteParameter(name: name, epoch: record.epoch, step: state.step,
                                                   lastCheckpoint: lastCheckpoint)
        }
        var saved = state
        saved.schedule = configuration.schedule
        saved.seed = configuration.seed
        saved.notes.merge(configuration.notes) { $1 }
        saved.notes["threads"] = String(LinearAlgebraThreads.count)
        if let test = record.test { saved.notes["test_accuracy"] = String(test.accuracy) }
        try Checkpoint.save(model, to: path, architecture: configuration.architecture, trainingState: saved,
                            optimizer: optimizer)
        lastCheckpoint = path
    }

    private func checkCompatibility(_ data: Dataset) throws {
        if let shaped = model as? any ShapedLayer<Scalar>, shaped.reportsShapes {
            let output = shaped.outputShape(forInput: data.imageShape)
            guard output == [data.classCount] else {
                throw TrainingError.incompatibleData("the model maps \(data.imageShape) images to \(output) outputs, "
                                                     + "but \(data.name) has \(data.classCount) classes")
            }
        }
    }

    /// Mean cross-entropy and accuracy of `model` on `dataset` in inference mode (no tape, batch statistics
    /// frozen), in batches of `batchSize`.
    public static func evaluate(_ model: any Layer<Scalar>, on dataset: Dataset, batchSize: Int = 500) -> Evaluation {
        precondition(batchSize > 0, "Trainer.evaluate: batch size must be positive, got \(batchSize)")
        var lossSum = 0.0, correct = 0
        var start = 0
        while start < dataset.count {
            let count = min(batchSize, dataset.count - start)
            let images = dataset.images.slice(axis: 0, start: start, count: count)
            let labels = Array(dataset.labels[start..<start + count])
            let logits = model(Variable(constant: converted(images)), mode: .inference)
            lossSum += Double(crossEntropy(logits: logits, labels: labels).value.scalar) * Double(count)
            correct += countCorrect(logits.value, labels)
            start += count
        }
        let n = max(dataset.count, 1)
        return Evaluation(loss: lossSum / Double(n), accuracy: Double(correct) / Double(n), correct: correct,
                          count: dataset.count)
    }
}

/// What a training step minimizes beyond the task loss, and what it does after the optimizer step: knowledge
/// distillation, compression-aware regularizers (METHODS §2.3) and their proximal or projection steps.
public protocol TrainingObjective<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    /// The loss to differentiate, given the batch's cross-entropy `task` and `logits` and the batch itself.
    /// Runs inside `withGradientTape` on the step's tape: parameters read through `Variable.watching(_:)` or
    /// `Tape.watch(_:)` receive gradients from the extra terms. The reported loss is this value.
    func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar>
    /// Called after every optimizer step (`step` counts from 0) with the step's learning rate.
    func afterStep(step: Int, learningRate: Double)
}

/// The number of rows of `logits` `[B, K]` whose largest entry (the first of ties) is at the label.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func countCorrect<Scalar: TensorScalar>(_ logits: Tensor<Scalar>, _ labels: [Int]) -> Int {
    let classes = logits.shape.last ?? 0
    guard classes > 0 else { return 0 }
    var correct = 0
    logits.withUnsafeBufferPointer { z in
        for (row, label) in labels.enumerated() {
            let base = row * classes
            var best = 0
            for k in 1..<classes where z[base + k] > z[base + best] { best = k }
            if best == label { correct += 1 }
        }
    }
    return correct
}

/// The images in the model's precision (no copy for `Float`).
func converted<Scalar: TensorScalar>(_ images: Tensor<Float>) -> Tensor<Scalar> {
    if let same = images as? Tensor<Scalar> { return same }
    return images.converted(to: Scalar.self)
}

private let dropoutStream: UInt64 = 0x4452_4F50_4F55_5453  // "DROPOUTS"
