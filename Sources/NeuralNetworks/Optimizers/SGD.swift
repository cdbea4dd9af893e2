import Autodiff
import TensorCore

/// Stochastic gradient descent with optional momentum, Nesterov momentum and (coupled, L2) weight decay, with
/// PyTorch's `torch.optim.SGD` semantics (no dampening).
///
/// For each parameter p with gradient g, learning rate η, momentum μ and weight decay λ:
///
///     d = g + λ·p                       (weight decay enters the gradient: L2 regularization)
///     b = μ·b + d                       (momentum buffer; b = d at the first step, as b starts at 0)
///     d = d + μ·b   if Nesterov, else   d = b          (only when μ > 0)
///     p = p − η·d
///
/// The momentum buffer is the slot `momentum_buffer`; without momentum there is no slot. Updates write in place
/// into the parameter's tensor, one pass over its scalars.
///
/// ```swift
/// let optimizer = SGD<Float>(momentum: 0.9, weightDecay: 5e-4)
/// optimizer.step(model, learningRate: 0.05)
/// ```
public final class SGD<Scalar: TensorScalar>: Optimizer {
    /// The configuration name, `"sgd"`.
    public static var name: String { "sgd" }

    /// The momentum coefficient μ (0: plain gradient descent).
    public let momentum: Double
    /// Whether the update uses Nesterov momentum.
    public let nesterov: Bool
    /// The L2 weight-decay coefficient λ, added to the gradient as λ·p.
    public let weightDecay: Double

    private let store: OptimizerStateStore<Scalar>

    /// An SGD optimizer.
    ///
    /// - Parameters:
    ///   - momentum: μ ≥ 0 (default 0).
    ///   - nesterov: Use Nesterov momentum; needs μ > 0.
    ///   - weightDecay: λ ≥ 0 (default 0).
    /// - Precondition: the values are finite and in range.
    public init(momentum: Double = 0, nesterov: Bool = false, weightDecay: Double = 0) {
        if let problem = Self.problem(momentum: momentum, nesterov: nesterov, weightDecay: weightDecay) {
            preconditionFailure("SGD: " + problem)
        }
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        store = OptimizerStateStore(slotNames: momentum == 0 ? [] : ["momentum_buffer"])
    }

    /// Why a hyper-parameter combination is invalid, or nil.
    static func problem(momentum: Double, nesterov: Bool, weightDecay: Double) -> String? {
        if !(momentum.isFinite && momentum >= 0) { return "momentum must be finite and ≥ 0, got \(momentum)" }
        if !(weightDecay.isFinite && weightDecay >= 0) { return "weight decay must be finite and ≥ 0, got \(weightDecay)" }
        if nesterov && momentum == 0 { return "Nesterov momentum needs a momentum > 0" }
        return nil
    }

    /// `sgd` with `momentum`, `nesterov` (0 or 1) and `weight_decay`.
    public var configuration: OptimizerConfiguration {
        OptimizerConfiguration(name: Self.name, hyperparameters: [
            "momentum": momentum, "nesterov": nesterov ? 1 : 0, "weight_decay": weightDecay,
        ])
    }

    /// `["momentum_buffer"]` with momentum, `[]` without.
    public var slotNames: [String] { store.slotNames }

    /// Applies one SGD update with learning rate `learningRate` (see the type's formula).
    public func step(_ parameters: [(name: String, parameter: Parameter<Scalar>)], learningRate: Double) {
        let lr = Scalar(learningRate), mu = Scalar(momentum), wd = Scalar(weightDecay)
        let useMomentum = momentum != 0, nesterov = nesterov
        store.forEachUpdate(parameters) { _, count, value, gradient, state in
            SGDKernel.update(count: count, value: value, gradient: gradient, buffer: useMomentum ? state : nil,
                             learningRate: lr, momentum: mu, nesterov: nesterov, weightDecay: wd)
        }
    }

    /// A copy of every parameter's step count and momentum buffer.
    public func exportState() -> [String: ParameterState<Scalar>] { store.export() }

    /// Replaces the state (see `Optimizer.importState`).
    public func importState(_ state: [String: ParameterState<Scalar>]) throws {
        try store.importState(state, optimizer: "SGD")
    }

    /// Forgets all momentum buffers and step counts.
    public func resetState() { store.reset() }
}

/// The SGD inner loop, one pass over a parameter; branches are hoisted out of the loops so each loop vectorizes.
enum SGDKernel {
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func update<Scalar: TensorScalar>(
        count: Int, value p: UnsafeMutablePointer<Scalar>, gradient g: UnsafePointer<Scalar>,
        buffer b: UnsafeMutablePointer<Scalar>?, learningRate lr: Scalar, momentum mu: Scalar, nesterov: Bool,
        weightDecay wd: Scalar
    ) {
        guard let b else {
            if wd == 0 {
                for i in 0..<count { p[i] -= lr * g[i] }
            } else {
                for i in 0..<count { p[i] -= lr * (g[i] + wd * p[i]) }
            }
            return
        }
        switch (wd == 0, nesterov) {
        case (true, false):
            for i in 0..<count {
                let m = mu * b[i] + g[i]
                b[i] = m
                p[i] -= lr * m
            }
        case (false, false):
            for i in 0..<count {
                let m = mu * b[i] + (g[i] + wd * p[i])
                b[i] = m
                p[i] -= lr * m
            }
        case (true, true):
            for i in 0..<count {
                let d = g[i]
                let m = mu * b[i] + d
                b[i] = m
                p[i] -= lr * (d + mu * m)
            }
        case (false, true):
            for i in 0..<count {
                let d = g[i] + wd * p[i]
                let m = mu * b[i] + d
                b[i] = m
                p[i] -= lr * (d + mu * m)
            }
        }
    }
}
