import Autodiff
import Foundation
import TensorCore

/// Where training stands, as a checkpoint records it: enough, with the weights and optimizer state, to resume
/// exactly.
///
/// Stored as JSON in the checkpoint's `__metadata__` under `Checkpoint.trainingStateKey`.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Completed epochs.
    public var epoch: Int
    /// Optimizer steps taken so far: the learning-rate schedule's position (the next step's index).
    public var step: Int
    /// The seed the run started from (shuffling, augmentation, initialization).
    public var seed: UInt64
    /// The optimizer's name and hyper-parameters; `Checkpoint.save` fills it from the optimizer it saves.
    public var optimizer: OptimizerConfiguration?
    /// The learning-rate schedule, evaluated at `step` for the next step.
    public var schedule: LearningRateSchedule?
    /// Further facts a trainer wants to keep (best accuracy, data set, thread count), as strings.
    public var notes: [String: String]

    /// A training state.
    public init(epoch: Int, step: Int, seed: UInt64, optimizer: OptimizerConfiguration? = nil,
                schedule: LearningRateSchedule? = nil, notes: [String: String] = [:]) {
        self.epoch = epoch
        self.step = step
        self.seed = seed
        self.optimizer = optimizer
        self.schedule = schedule
        self.notes = notes
    }
}

/// Errors of reading a checkpoint or restoring a model or optimizer from it.
///
/// Every message is one line: the file, what does not match, and what to do (house plan, convention 3).
public enum CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A valid safetensors file without the `lowrank.checkpoint` marker.
    case notACheckpoint(path: String)
    /// A checkpoint written in a format version this build cannot read.
    case unsupportedVersion(path: String, version: String)
    /// The model has a parameter the checkpoint lacks (the first such parameter in visiting order).
    case missingParameter(path: String, name: String, shape: [Int])
    /// The checkpoint holds a tensor that is no parameter of the model (the first by name).
    case unexpectedParameter(path: String, name: String, shape: [Int])
    /// A parameter's shape differs between the model and the checkpoint (the first in visiting order).
    case shapeMismatch(path: String, name: String, modelShape: [Int], checkpointShape: [Int])
    /// The checkpoint's metadata or optimizer state is damaged or inconsistent.
    case malformed(path: String, problem: String)
    /// The optimizer given for restoring does not fit the optimizer state in the checkpoint.
    case optimizerMismatch(path: String, problem: String)
    /// Optimizer state or configuration handed to an optimizer (not from a file) is invalid.
    case invalidOptimizerState(String)

    private static let differentModel = "the checkpoint was saved from a different model; build the model its "
        + "architecture record describes, or choose a checkpoint of this model"

    /// The one-line message for a user.
    public var description: String {
        switch self {
        case let .notACheckpoint(path):
            return "\(path): a safetensors file but not a LowRank checkpoint (its __metadata__ has no "
                + "'\(Checkpoint.formatKey)' entry); give a file saved by 'lowrank train' or Checkpoint.save, "
                + "or read plain weights with SafeTensorsFile"
        case let .unsupportedVersion(path, version):
            return "\(path): LowRank checkpoint format version '\(version)' is not supported (this build reads "
                + "version \(Checkpoint.formatVersion)); load it with the LowRank version that wrote it"
        case let .missingParameter(path, name, shape):
            return "\(path): the checkpoint has no tensor for the model's parameter '\(name)' (shape \(shape)); "
                + Self.differentModel
        case let .unexpectedParameter(path, name, shape):
            return "\(path): the checkpoint holds tensor '\(name)' (shape \(shape)), which is no parameter of the "
                + "model; " + Self.differentModel
        case let .shapeMismatch(path, name, modelShape, checkpointShape):
            return "\(path): parameter '\(name)' has shape \(checkpointShape) in the checkpoint but \(modelShape) "
                + "in the model; " + Self.differentModel
        case let .malformed(path, problem):
            return "\(path): damaged LowRank checkpoint: \(problem); save the checkpoint again"
        case let .optimizerMismatch(path, problem):
            return "\(path): \(problem)"
        case let .invalidOptimizerState(problem):
            return "invalid optimizer state: \(problem)"
        }
    }

    /// The parameter a mismatch is about (nil for other errors).
    public var parameterName: String? {
        switch self {
        case let .missingParameter(_, name, _), let .unexpectedParameter(_, name, _), let .shapeMismatch(_, name, _, _):
            return name
        default:
            return nil
        }
    }
}

/// A LowRank checkpoint: a safetensors file holding a model's parameters under the names its parameter visitor
/// yields, optimizer state, and in `__metadata__` a format marker, the architecture record and the training state.
///
/// Layout:
/// - one tensor per model parameter (trainable or not, such as batch-norm running statistics), named as
///   `Layer.namedParameters()` names it, in the model's precision (F32 for `Float`, F64 for `Double`);
/// - `optimizer.<parameter name>.<slot>` for each optimizer state tensor (`momentum_buffer`, `exp_avg`, …) and
///   `optimizer.<parameter name>.step` (I64, shape []) for each parameter's update count;
/// - `__metadata__`: `lowrank.checkpoint` = `"1"`, `lowrank.architecture` = the caller's JSON architecture record,
///   `lowrank.dtype` = `float32` or `float64`, and `lowrank.training` = `TrainingState` as JSON.
///
/// Files are written atomically (a crash leaves the previous checkpoint intact) and load in any safetensors
/// reader.
///
/// ```swift
/// try Checkpoint.save(model, to: "run.safetensors", architecture: #"{"model":"fmnist-cnn"}"#,
///                     trainingState: TrainingState(epoch: 2, step: 938, seed: 0), optimizer: optimizer)
/// let checkpoint = try Checkpoint(contentsOf: "run.safetensors")
/// try checkpoint.restore(into: model, optimizer: optimizer)      // resume exactly
/// ```
public struct Checkpoint: Sendable {
    /// The metadata key marking a LowRank checkpoint; its value is the format version.
    public static let formatKey = "lowrank.checkpoint"
    /// The format version this build writes and reads.
    public static let formatVersion = "1"
    /// The metadata key of the architecture record (JSON).
    public static let architectureKey = "lowrank.architecture"
    /// The metadata key of the training state (JSON).
    public static let trainingStateKey = "lowrank.training"
    /// The metadata key of the model's precision (`float32` or `float64`).
    public static let dtypeKey = "lowrank.dtype"
    /// The prefix of optimizer state tensor names.
    public static let optimizerPrefix = "optimizer."

    /// The path the checkpoint was read from.
    public let path: String
    /// The architecture record, a JSON object as the caller gave it to `save`.
    public let architecture: String
    /// The training state, if one was saved.
    public let trainingState: TrainingState?
    /// The model tensors (optimizer state excluded), sorted by name.
    public let parameters: [SafeTensorsEntry]
    /// Whether the file holds optimizer state tensors.
    public let hasOptimizerState: Bool
    /// The whole metadata, for keys other tools add.
    public var metadata: [String: String] { file.metadata }

    private let file: SafeTensorsFile

    // MARK: Saving

    /// Saves `model`'s parameters, and optionally the training state and `optimizer`'s state, atomically.
    ///
    /// Optimizer state is saved for the model's parameters only; `trainingState.optimizer` is set to
    /// `optimizer.configuration`.
    ///
    /// - Parameters:
    ///   - model: The model; every parameter the visitor yields is saved.
    ///   - path: The destination; an existing file is replaced only once the new one is complete.
    ///   - architecture: A JSON object describing the model (for example `{"model":"fmnist-cnn","classes":10}`),
    ///     enough for a tool to rebuild it before restoring.
    ///   - trainingState: Epoch, step, seed, schedule; needed when `optimizer` is given.
    ///   - optimizer: The optimizer whose state to save for an exact resume.
    /// - Precondition: `architecture` is a JSON object; parameter names are unique and none begins with
    ///   `optimizer.`; `trainingState` is given when `optimizer` is.
    /// - Throws: `TensorError.file` when the file cannot be written (nothing is left behind then).
    public static func save<L: Layer>(_ model: L, to path: String, architecture: String,
                                      trainingState: TrainingState? = nil,
                                      optimizer: (any Optimizer<L.Scalar>)? = nil) throws {
        precondition((try? JSONSerialization.jsonObject(with: Data(architecture.utf8))) is [String: Any],
                     "Checkpoint.save: the architecture record must be a JSON object, got \(architecture)")
        precondition(optimizer == nil || trainingState != nil,
                     "Checkpoint.save: pass the training state along with the optimizer")
        var writer = SafeTensorsWriter(metadata: [
            formatKey: formatVersion, architectureKey: architecture, dtypeKey: L.Scalar.dtypeName,
        ])
        let parameters = model.namedParameters()
        for (name, parameter) in parameters {
            precondition(!name.hasPrefix(optimizerPrefix),
                         "Checkpoint.save: parameter name '\(name)' begins with the reserved prefix '\(optimizerPrefix)'")
            writer.add(name: name, tensor: parameter.value)
        }
        var state = trainingState
        if let optimizer {
            state?.optimizer = optimizer.configuration
            let shapes = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.parameter.value.shape) })
            for (name, item) in optimizer.exportState() where shapes[name] != nil {
                for (slot, tensor) in item.slots {
                    writer.add(name: optimizerPrefix + name + "." + slot, tensor: tensor)
                }
                try writer.add(name: optimizerPrefix + name + ".step", integers: [Int64(item.step)], shape: [])
            }
        }
        if let state {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = try encoder.encode(state)
            writer.metadata[trainingStateKey] = String(decoding: json, as: UTF8.self)
        }
        try writer.write(to: path)
    }

    // MARK: Reading

    /// Opens a checkpoint and reads its metadata; tensors are read when restoring.
    ///
    /// - Throws: `TensorError.file` when the file cannot be read or is not a safetensors file;
    ///   `CheckpointError.notACheckpoint` when it has no LowRank marker; `.unsupportedVersion` for another format
    ///   version; `.malformed` when the architecture record is missing or the training state is not valid.
    public init(contentsOf path: String) throws {
        let file = try SafeTensorsFile(contentsOf: path)
        guard let version = file.metadata[Self.formatKey] else { throw CheckpointError.notACheckpoint(path: path) }
        guard version == Self.formatVersion else {
            throw CheckpointError.unsupportedVersion(path: path, version: version)
        }
        guard let architecture = file.metadata[Self.architectureKey] else {
            throw CheckpointError.malformed(path: path, problem: "the metadata has no '\(Self.architectureKey)' record")
        }
        var trainingState: TrainingState?
        if let json = file.metadata[Self.trainingStateKey] {
            let state: TrainingState
            do {
                state = try JSONDecoder().decode(TrainingState.self, from: Data(json.utf8))
            } catch {
                throw CheckpointError.malformed(path: path, problem: "the training state '\(Self.trainingStateKey)' "
                                                + "is not valid (\(error))")
            }
            if state.epoch < 0 || state.step < 0 {
                throw CheckpointError.malformed(path: path, problem: "the training state has a negative epoch "
                                                + "(\(state.epoch)) or step (\(state.step))")
            }
            if let problem = state.schedule?.problem {
                throw CheckpointError.malformed(path: path, problem: "the saved learning-rate schedule is invalid: \(problem)")
            }
            trainingState = state
        }
        self.path = path
        self.file = file
        self.architecture = architecture
        self.trainingState = trainingState
        self.parameters = file.entries.filter { !$0.name.hasPrefix(Self.optimizerPrefix) }
        self.hasOptimizerState = file.entries.contains { $0.name.hasPrefix(Self.optimizerPrefix) }
    }

    /// Opens the checkpoint at `path` and restores `model` (and `optimizer`) from it; returns the checkpoint
    /// for its training state and architecture.
    ///
    /// - Throws: what `init(contentsOf:)` and `restore(into:optimizer:)` throw.
    @discardableResult
    public static func load<L: Layer>(into model: L, from path: String,
                                      optimizer: (any Optimizer<L.Scalar>)? = nil) throws -> Checkpoint {
        let checkpoint = try Checkpoint(contentsOf: path)
        try checkpoint.restore(into: model, optimizer: optimizer)
        return checkpoint
    }

    /// Sets every parameter of `model` (trainable or not) to its saved value, clears their gradients, and, when
    /// `optimizer` is given, replaces its state with the saved one, so the next step continues exactly.
    ///
    /// Everything is checked before anything changes: on error the model and optimizer are untouched. A checkpoint
    /// saved in another precision is converted (rounding to nearest).
    ///
    /// - Throws: `CheckpointError.missingParameter` / `.shapeMismatch` for the first model parameter (in visiting
    ///   order) that the checkpoint lacks or holds in another shape, then `.unexpectedParameter` for the first
    ///   checkpoint tensor (by name) the model lacks; `.optimizerMismatch` when `optimizer` is given but the
    ///   checkpoint has no optimizer state, was saved with another optimizer, or keeps other slots;
    ///   `.malformed` for inconsistent optimizer tensors, a non-floating-point parameter or one holding NaN or ∞.
    public func restore<L: Layer>(into model: L, optimizer: (any Optimizer<L.Scalar>)? = nil) throws {
        let modelParameters = model.namedParameters()
        var shapes: [String: [Int]] = [:]
        var values: [Tensor<L.Scalar>] = []
        for (name, parameter) in modelParameters {
            shapes[name] = parameter.value.shape
            guard let entry = try? file.entry(name) else {
                throw CheckpointError.missingParameter(path: path, name: name, shape: parameter.value.shape)
            }
            guard entry.shape == parameter.value.shape else {
                throw CheckpointError.shapeMismatch(path: path, name: name, modelShape: parameter.value.shape,
                                                    checkpointShape: entry.shape)
            }
            guard entry.dtype.isFloatingPoint else {
                throw CheckpointError.malformed(path: path, problem: "parameter '\(name)' is stored as "
                                                + "\(entry.dtype.rawValue), not as floating-point numbers")
            }
            let value = try file.tensor(name, as: L.Scalar.self)
            guard value.isFinite else {
                throw CheckpointError.malformed(path: path, problem: "parameter '\(name)' holds NaN or infinite values (the run "
                                                + "that wrote it diverged); use an earlier checkpoint or retrain with a lower learning rate")
            }
            values.append(value)
        }
        if let extra = parameters.first(where: { shapes[$0.name] == nil }) {
            throw CheckpointError.unexpectedParameter(path: path, name: extra.name, shape: extra.shape)
        }
        if let optimizer {
            let state = try optimizerState(for: optimizer, shapes: shapes)
            do {
                try optimizer.importState(state)
            } catch let CheckpointError.invalidOptimizerState(problem) {
                throw CheckpointError.optimizerMismatch(path: path, problem: problem)
            }
        }
        for ((_, parameter), value) in zip(modelParameters, values) {
            parameter.value = value
            parameter.gradient = nil
        }
    }

    /// Reads the optimizer state tensors into per-parameter states, checking them against the model's shapes and
    /// the optimizer's name and slots.
    private func optimizerState<Scalar>(for optimizer: any Optimizer<Scalar>, shapes: [String: [Int]]) throws
        -> [String: ParameterState<Scalar>]
    {
        let expected = optimizer.configuration.name
        guard let saved = trainingState?.optimizer else {
            throw CheckpointError.optimizerMismatch(
                path: path, problem: "the checkpoint holds no optimizer state; restore the weights without an "
                    + "optimizer and start the optimizer fresh")
        }
        guard saved.name == expected else {
            throw CheckpointError.optimizerMismatch(
                path: path, problem: "the checkpoint was trained with optimizer '\(saved.name)' but the optimizer "
                    + "given is '\(expected)'; resume with '\(saved.name)' (the checkpoint's training state records "
                    + "its hyper-parameters) or restore the weights only")
        }
        let slotNames = Set(optimizer.slotNames)
        var steps: [String: Int] = [:]
        var slots: [String: [String: Tensor<Scalar>]] = [:]
        for entry in file.entries where entry.name.hasPrefix(Self.optimizerPrefix) {
            let key = entry.name.dropFirst(Self.optimizerPrefix.count)
            guard let dot = key.lastIndex(of: "."), !key[..<dot].isEmpty else {
                throw CheckpointError.malformed(path: path, problem: "optimizer tensor '\(entry.name)' is not named "
                                                + "'optimizer.<parameter>.<slot>'")
            }
            let name = String(key[..<dot]), slot = String(key[key.index(after: dot)...])
            guard let shape = shapes[name] else {
                throw CheckpointError.malformed(path: path, problem: "optimizer tensor '\(entry.name)' belongs to no "
                                                + "parameter of the model")
            }
            if slot == "step" {
                let integers = try file.integers(entry.name)
                guard entry.shape == [], let step = integers.first, step >= 0 else {
                    throw CheckpointError.malformed(path: path, problem: "optimizer tensor '\(entry.name)' must hold "
                                                    + "one non-negative integer")
                }
                steps[name] = Int(step)
                continue
            }
            guard slotNames.contains(slot) else {
                throw CheckpointError.optimizerMismatch(
                    path: path, problem: "the checkpoint holds optimizer state '\(slot)' for parameter '\(name)', "
                        + "which this \(expected) optimizer does not keep (it keeps "
                        + (optimizer.slotNames.isEmpty ? "none" : optimizer.slotNames.joined(separator: ", "))
                        + "); configure the optimizer as the checkpoint records (\(saved.hyperparameters))")
            }
            guard entry.shape == shape, entry.dtype.isFloatingPoint else {
                throw CheckpointError.malformed(path: path, problem: "optimizer tensor '\(entry.name)' has shape "
                                                + "\(entry.shape) (\(entry.dtype.rawValue)) but its parameter has "
                                                + "shape \(shape)")
            }
            slots[name, default: [:]][slot] = try file.tensor(entry.name, as: Scalar.self)
        }
        if let orphan = slots.keys.sorted().first(where: { steps[$0] == nil }) {
            throw CheckpointError.malformed(path: path, problem: "optimizer state of parameter '\(orphan)' has no "
                                            + "'step' tensor")
        }
        var state: [String: ParameterState<Scalar>] = [:]
        for (name, step) in steps { state[name] = ParameterState(step: step, slots: slots[name] ?? [:]) }
        return state
    }
}
