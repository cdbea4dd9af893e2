#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A learning rate as a function of the optimizer step index t = 0, 1, 2, … (the number of steps taken
/// before this one).
///
/// Schedules are values: they compose (a warm-up wraps any schedule), compare, and encode to JSON, so a
/// checkpoint records the schedule and its position (the step index) and resume continues it exactly.
/// Epoch-based schedules are step-based schedules with the epoch length folded in (see the `epochs:` and
/// `everyEpochs:` factories, and `learningRate(epoch:stepInEpoch:stepsPerEpoch:)`).
///
/// ```swift
/// let schedule = LearningRateSchedule.linearWarmup(
///     steps: 500, startFactor: 0,
///     then: .cosine(initial: 0.1, floor: 1e-4, epochs: 30, stepsPerEpoch: 469))
/// let lr = schedule.learningRate(atStep: step)
/// ```
public indirect enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// The same rate at every step.
    case constant(Double)
    /// `initial · gamma^⌊t / stepSize⌋`: multiplied by `gamma` every `stepSize` steps (PyTorch `StepLR`).
    case stepDecay(initial: Double, stepSize: Int, gamma: Double)
    /// Cosine annealing from `initial` at t = 0 to `floor` at t = `steps`, then `floor`
    /// (Loshchilov and Hutter, SGDR, without restarts; PyTorch `CosineAnnealingLR` with `eta_min = floor`):
    /// `floor + (initial − floor) · (1 + cos(π·t / steps)) / 2` for t ≤ steps.
    case cosine(initial: Double, floor: Double, steps: Int)
    /// A linear warm-up over the first `steps` steps, then `schedule` shifted to start after it:
    /// `r · (startFactor + (1 − startFactor) · t / steps)` for t < steps, with r = `schedule` at its step 0;
    /// `schedule` at step t − `steps` afterwards. The ramp meets the wrapped schedule continuously at t = steps.
    case linearWarmup(steps: Int, startFactor: Double, then: LearningRateSchedule)

    /// Step decay every `everyEpochs` epochs of `stepsPerEpoch` steps: `initial · gamma^⌊t / (everyEpochs·stepsPerEpoch)⌋`.
    public static func stepDecay(initial: Double, everyEpochs: Int, stepsPerEpoch: Int, gamma: Double) -> Self {
        precondition(everyEpochs > 0 && stepsPerEpoch > 0,
                     "LearningRateSchedule.stepDecay: everyEpochs (\(everyEpochs)) and stepsPerEpoch (\(stepsPerEpoch)) must be > 0")
        return .stepDecay(initial: initial, stepSize: everyEpochs * stepsPerEpoch, gamma: gamma)
    }

    /// Cosine annealing from `initial` to `floor` over `epochs` epochs of `stepsPerEpoch` steps.
    public static func cosine(initial: Double, floor: Double, epochs: Int, stepsPerEpoch: Int) -> Self {
        precondition(epochs > 0 && stepsPerEpoch > 0,
                     "LearningRateSchedule.cosine: epochs (\(epochs)) and stepsPerEpoch (\(stepsPerEpoch)) must be > 0")
        return .cosine(initial: initial, floor: floor, steps: epochs * stepsPerEpoch)
    }

    /// The learning rate for step index `step` (0 for the first step).
    ///
    /// - Precondition: `step ≥ 0` and the schedule is valid (`problem == nil`).
    public func learningRate(atStep step: Int) -> Double {
        precondition(step >= 0, "LearningRateSchedule.learningRate(atStep:): the step index must be ≥ 0, got \(step)")
        if let problem { preconditionFailure("LearningRateSchedule: " + problem) }
        return value(at: step)
    }

    /// The learning rate for step `stepInEpoch` of epoch `epoch` (both from 0) with `stepsPerEpoch` steps per epoch.
    public func learningRate(epoch: Int, stepInEpoch: Int, stepsPerEpoch: Int) -> Double {
        precondition(stepsPerEpoch > 0 && (0..<stepsPerEpoch).contains(stepInEpoch),
                     "LearningRateSchedule: step \(stepInEpoch) is not inside an epoch of \(stepsPerEpoch) steps")
        return learningRate(atStep: epoch * stepsPerEpoch + stepInEpoch)
    }

    private func value(at t: Int) -> Double {
        switch self {
        case let .constant(rate):
            return rate
        case let .stepDecay(initial, stepSize, gamma):
            return initial * pow(gamma, Double(t / stepSize))
        case let .cosine(initial, floor, steps):
            guard t < steps else { return floor }
            return floor + (initial - floor) * (1 + cos(Double.pi * Double(t) / Double(steps))) / 2
        case let .linearWarmup(steps, startFactor, schedule):
            guard t < steps else { return schedule.value(at: t - steps) }
            return schedule.value(at: 0) * (startFactor + (1 - startFactor) * Double(t) / Double(steps))
        }
    }

    /// Why the schedule is invalid (for example, read from a damaged file), or nil: rates must be finite and ≥ 0,
    /// step counts > 0 (a warm-up may have 0 steps), `gamma` finite and ≥ 0, `startFactor` in [0, 1].
    public var problem: String? {
        func rate(_ name: String, _ value: Double) -> String? {
            value.isFinite && value >= 0 ? nil : "\(name) must be a finite rate ≥ 0, got \(value)"
        }
        switch self {
        case let .constant(value):
            return rate("the constant rate", value)
        case let .stepDecay(initial, stepSize, gamma):
            if let problem = rate("initial", initial) { return "step decay: " + problem }
            if stepSize <= 0 { return "step decay: stepSize must be > 0, got \(stepSize)" }
            return gamma.isFinite && gamma >= 0 ? nil : "step decay: gamma must be finite and ≥ 0, got \(gamma)"
        case let .cosine(initial, floor, steps):
            if let problem = rate("initial", initial) ?? rate("floor", floor) { return "cosine: " + problem }
            return steps > 0 ? nil : "cosine: steps must be > 0, got \(steps)"
        case let .linearWarmup(steps, startFactor, schedule):
            if steps < 0 { return "linear warm-up: steps must be ≥ 0, got \(steps)" }
            if !(startFactor >= 0 && startFactor <= 1) {
                return "linear warm-up: startFactor must lie in [0, 1], got \(startFactor)"
            }
            return schedule.problem
        }
    }
}
