import Autodiff
import TensorCore

/// An optimizer's name and hyper-parameters: what a checkpoint records so training can resume with the same
/// update rule.
///
/// The built-in optimizers use the names `"sgd"`, `"adam"` and `"adamw"` and the hyper-parameter keys their
/// initializers document (`momentum`, `nesterov` (0 or 1), `weight_decay`, `beta1`, `beta2`, `epsilon`).
/// `makeOptimizer(_:)` rebuilds one of them from a configuration read back from a file.
///
/// ```swift
/// let saved = SGD<Float>(momentum: 0.9).configuration       // {"name":"sgd","hyperparameters":{...}}
/// let optimizer = try saved.makeOptimizer(Float.self)        // an equal SGD
/// ```
public struct OptimizerConfiguration: Codable, Equatable, Sendable {
    /// The update rule: `"sgd"`, `"adam"`, `"adamw"`, or a name chosen by another optimizer.
    public var name: String
    /// The hyper-parameters, by key (the learning rate is not one: it is given to every `step`).
    public var hyperparameters: [String: Double]

    /// A configuration with the given name and hyper-parameters.
    public init(name: String, hyperparameters: [String: Double]) {
        self.name = name
        self.hyperparameters = hyperparameters
    }

    /// Builds the built-in optimizer this configuration describes, with empty state.
    ///
    /// - Throws: `CheckpointError.invalidOptimizerState` when the name is not `sgd`, `adam` or `adamw`, a
    ///   hyper-parameter key is unknown for that optimizer, or a value is out of range (the message names it).
    public func makeOptimizer<Scalar: TensorScalar>(_ type: Scalar.Type = Scalar.self) throws -> any Optimizer<Scalar> {
        func value(_ key: String, default fallback: Double) -> Double { hyperparameters[key] ?? fallback }
        func checkKeys(_ known: Set<String>) throws {
            if let unknown = hyperparameters.keys.sorted().first(where: { !known.contains($0) }) {
                throw CheckpointError.invalidOptimizerState(
                    "optimizer '\(name)' has no hyper-parameter '\(unknown)' (known: "
                    + known.sorted().joined(separator: ", ") + "); remove it from the configuration")
            }
        }
        switch name {
        case SGD<Scalar>.name:
            try checkKeys(["momentum", "nesterov", "weight_decay"])
            let nesterov = value("nesterov", default: 0)
            guard nesterov == 0 || nesterov == 1 else {
                throw CheckpointError.invalidOptimizerState("SGD hyper-parameter 'nesterov' is \(nesterov); use 0 or 1")
            }
            let momentum = value("momentum", default: 0), weightDecay = value("weight_decay", default: 0)
            if let problem = SGD<Scalar>.problem(momentum: momentum, nesterov: nesterov == 1, weightDecay: weightDecay) {
                throw CheckpointError.invalidOptimizerState(problem)
            }
            return SGD<Scalar>(momentum: momentum, nesterov: nesterov == 1, weightDecay: weightDecay)
        case Adam<Scalar>.name, AdamW<Scalar>.name:
            try checkKeys(["beta1", "beta2", "epsilon", "weight_decay"])
            let beta1 = value("beta1", default: 0.9), beta2 = value("beta2", default: 0.999)
            let epsilon = value("epsilon", default: 1e-8)
            let weightDecay = value("weight_decay", default: name == Adam<Scalar>.name ? 0 : 0.01)
            if let problem = AdamKernel.problem(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay) {
                throw CheckpointError.invalidOptimizerState(problem)
            }
            if name == Adam<Scalar>.name {
                return Adam<Scalar>(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
            }
            return AdamW<Scalar>(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
        default:
            throw CheckpointError.invalidOptimizerState(
                "unknown optimizer '\(name)'; the built-in optimizers are sgd, adam and adamw")
        }
    }
}

/// What an optimizer keeps for one parameter: how many updates it has applied to it, and its state tensors
/// ("slots", for example SGD's `momentum_buffer` or Adam's `exp_avg` and `exp_avg_sq`), each of the
/// parameter's shape.
public struct ParameterState<Scalar: TensorScalar>: Equatable, Sendable {
    /// The number of updates applied to this parameter (Adam's bias correction uses it).
    public var step: Int
    /// The state tensors by slot name.
    public var slots: [String: Tensor<Scalar>]

    /// A state with the given step count and slot tensors.
    public init(step: Int, slots: [String: Tensor<Scalar>]) {
        self.step = step
        self.slots = slots
    }
}

/// A first-order update rule with per-parameter state keyed by parameter name (house plan, convention 4).
///
/// `step(_:learningRate:)` updates, in place, every parameter that is trainable, not frozen and has a gradient;
/// it skips the others and leaves their state alone. The learning rate is given to every step, so any
/// `LearningRateSchedule` drives it. State is keyed by the names `Layer.visitParameters` yields, so it can be
/// exported to a checkpoint (`exportState`) and imported on resume (`importState`) for an exact continuation.
///
/// ```swift
/// let optimizer = SGD<Float>(momentum: 0.9)
/// for (step, batch) in batches.enumerated() {
///     // forward + backward fill every parameter's `gradient` ...
///     optimizer.step(model, learningRate: schedule.learningRate(atStep: step))
/// }
/// ```
public protocol Optimizer<Scalar>: AnyObject {
    /// The element type of the parameters.
    associatedtype Scalar: TensorScalar
    /// The name and hyper-parameters, as a checkpoint records them.
    var configuration: OptimizerConfiguration { get }
    /// The names of the state tensors kept per parameter, in a fixed order (empty for plain SGD).
    var slotNames: [String] { get }
    /// Applies one update with learning rate `learningRate` to every trainable, unfrozen parameter that has a
    /// gradient. Names must be unique; a gradient's shape must equal its parameter's.
    func step(_ parameters: [(name: String, parameter: Parameter<Scalar>)], learningRate: Double)
    /// A copy of the state of every parameter updated so far, by parameter name.
    func exportState() -> [String: ParameterState<Scalar>]
    /// Replaces all state with `state` (as `exportState` returned it), so the next `step` continues exactly.
    ///
    /// - Throws: `CheckpointError.invalidOptimizerState` when an entry lacks a slot this optimizer keeps, has a
    ///   slot it does not keep, slots of different shapes, or a negative step count. Nothing changes then.
    func importState(_ state: [String: ParameterState<Scalar>]) throws
    /// Forgets all state (as if no step had been taken).
    func resetState()
}

extension Optimizer {
    /// Applies one update to the parameters of `model` (see `step(_:learningRate:)`).
    public func step<L: Layer>(_ model: L, learningRate: Double) where L.Scalar == Scalar {
        step(model.namedParameters(), learningRate: learningRate)
    }
}

// MARK: - State storage shared by the built-in optimizers

/// Per-parameter optimizer state in buffers the optimizer owns, so updates write in place without
/// copy-on-write checks or allocation: one contiguous, 64-byte aligned block of `slotCount × scalarCount`
/// scalars per parameter, zero at creation.
final class OptimizerStateStore<Scalar: TensorScalar> {
    /// The state of one parameter.
    final class Entry {
        var step: Int
        let shape: [Int]
        let count: Int
        let slotCount: Int
        let buffer: UnsafeMutablePointer<Scalar>

        init(shape: [Int], slotCount: Int, step: Int = 0) {
            self.shape = shape
            self.count = shape.reduce(1, *)
            self.slotCount = slotCount
            self.step = step
            let total = max(1, slotCount * count)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: total * MemoryLayout<Scalar>.stride, alignment: 64)
            buffer = raw.bindMemory(to: Scalar.self, capacity: total)
            buffer.initialize(repeating: 0, count: total)
        }

        /// The first scalar of slot `index`.
        func slot(_ index: Int) -> UnsafeMutablePointer<Scalar> { buffer + index * count }

        deinit { UnsafeMutableRawPointer(buffer).deallocate() }
    }

    let slotNames: [String]
    private(set) var entries: [String: Entry] = [:]

    init(slotNames: [String]) { self.slotNames = slotNames }

    /// Calls `update(step, count, value, gradient, state)` for every trainable, unfrozen parameter with a gradient,
    /// after advancing its step count; `state` points at its `slotNames.count` slots laid end to end.
    func forEachUpdate(
        _ parameters: [(name: String, parameter: Parameter<Scalar>)],
        _ update: (_ step: Int, _ count: Int, _ value: UnsafeMutablePointer<Scalar>, _ gradient: UnsafePointer<Scalar>,
                   _ state: UnsafeMutablePointer<Scalar>) -> Void
    ) {
        var seen = Set<String>(minimumCapacity: parameters.count)
        for (name, parameter) in parameters {
            precondition(seen.insert(name).inserted, "Optimizer.step: the parameter name '\(name)' appears twice")
            guard parameter.isTrainable, !parameter.isFrozen, let gradient = parameter.gradient else { continue }
            let shape = parameter.value.shape
            precondition(gradient.shape == shape,
                         "Optimizer.step: parameter '\(name)' has shape \(shape) but its gradient has shape \(gradient.shape)")
            let entry: Entry
            if let existing = entries[name] {
                precondition(slotNames.isEmpty || existing.shape == shape,
                             "Optimizer.step: parameter '\(name)' has shape \(shape) but its optimizer state has shape "
                             + "\(existing.shape); reset or re-import the state after changing the model")
                entry = existing
            } else {
                // An optimizer without slots keeps only the step count; its entry needs no shape.
                entry = Entry(shape: slotNames.isEmpty ? [] : shape, slotCount: slotNames.count)
                entries[name] = entry
            }
            entry.step += 1
            gradient.withUnsafeBufferPointer { g in
                guard g.count > 0 else { return }
                parameter.value.withUnsafeMutableBufferPointer { p in
                    update(entry.step, p.count, p.baseAddress!, g.baseAddress!, entry.buffer)
                }
            }
        }
    }

    func export() -> [String: ParameterState<Scalar>] {
        entries.mapValues { entry in
            var slots: [String: Tensor<Scalar>] = [:]
            for (index, name) in slotNames.enumerated() {
                slots[name] = Tensor(shape: entry.shape) { out in
                    if entry.count > 0 { out.baseAddress!.update(from: entry.slot(index), count: entry.count) }
                }
            }
            return ParameterState(step: entry.step, slots: slots)
        }
    }

    func importState(_ state: [String: ParameterState<Scalar>], optimizer: String) throws {
        var imported: [String: Entry] = [:]
        for name in state.keys.sorted() {
            let item = state[name]!
            func failure(_ problem: String) -> CheckpointError {
                .invalidOptimizerState("\(optimizer) state of parameter '\(name)': \(problem)")
            }
            guard item.step >= 0 else { throw failure("negative step count \(item.step)") }
            if let extra = item.slots.keys.sorted().first(where: { !slotNames.contains($0) }) {
                throw failure("has a slot '\(extra)' that this optimizer does not keep (it keeps "
                              + (slotNames.isEmpty ? "none" : slotNames.joined(separator: ", "))
                              + "); configure the optimizer as the state was saved (momentum, nesterov)")
            }
            var shape: [Int]?
            for slotName in slotNames {
                guard let tensor = item.slots[slotName] else {
                    throw failure("lacks the slot '\(slotName)'; configure the optimizer as the state was saved")
                }
                if let shape, shape != tensor.shape {
                    throw failure("slot '\(slotName)' has shape \(tensor.shape) but another slot has shape \(shape)")
                }
                shape = tensor.shape
            }
            let entry = Entry(shape: shape ?? [], slotCount: slotNames.count, step: item.step)
            for (index, slotName) in slotNames.enumerated() where entry.count > 0 {
                item.slots[slotName]!.withUnsafeBufferPointer { entry.slot(index).update(from: $0.baseAddress!, count: entry.count) }
            }
            imported[name] = entry
        }
        entries = imported
    }

    func reset() { entries = [:] }
}
