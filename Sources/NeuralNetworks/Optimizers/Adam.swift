#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Autodiff
import TensorCore

/// Adam [153] with PyTorch's `torch.optim.Adam` semantics: bias-corrected moments, ε added outside the square
/// root, and optional weight decay coupled into the gradient (L2 regularization).
///
/// For each parameter p with gradient g, at its t-th update (t counts that parameter's updates), learning rate η:
///
///     g = g + λ·p                                   (only when λ > 0)
///     m = β₁·m + (1 − β₁)·g                         (slot `exp_avg`)
///     v = β₂·v + (1 − β₂)·g²                        (slot `exp_avg_sq`)
///     p = p − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// `AdamW` applies weight decay to the parameter instead (decoupled); with λ > 0 the two differ.
///
/// ```swift
/// let optimizer = Adam<Float>()
/// optimizer.step(model, learningRate: 1e-3)
/// ```
public final class Adam<Scalar: TensorScalar>: Optimizer {
    /// The configuration name, `"adam"`.
    public static var name: String { "adam" }

    /// Decay rate β₁ of the first-moment average.
    public let beta1: Double
    /// Decay rate β₂ of the second-moment average.
    public let beta2: Double
    /// ε, added to the bias-corrected √v.
    public let epsilon: Double
    /// The L2 weight-decay coefficient λ, added to the gradient as λ·p.
    public let weightDecay: Double

    private let store = OptimizerStateStore<Scalar>(slotNames: AdamKernel.slotNames)

    /// An Adam optimizer.
    ///
    /// - Parameters:
    ///   - beta1: β₁ in [0, 1) (default 0.9).
    ///   - beta2: β₂ in [0, 1) (default 0.999).
    ///   - epsilon: ε > 0 (default 1e-8).
    ///   - weightDecay: λ ≥ 0 (default 0), coupled into the gradient.
    /// - Precondition: the values are in range.
    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0) {
        if let problem = AdamKernel.problem(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay) {
            preconditionFailure("Adam: " + problem)
        }
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// `adam` with `beta1`, `beta2`, `epsilon` and `weight_decay`.
    public var configuration: OptimizerConfiguration {
        OptimizerConfiguration(name: Self.name, hyperparameters: [
            "beta1": beta1, "beta2": beta2, "epsilon": epsilon, "weight_decay": weightDecay,
        ])
    }

    /// `["exp_avg", "exp_avg_sq"]`: the first- and second-moment averages m and v.
    public var slotNames: [String] { store.slotNames }

    /// Applies one Adam update with learning rate `learningRate` (see the type's formula).
    public func step(_ parameters: [(name: String, parameter: Parameter<Scalar>)], learningRate: Double) {
        AdamKernel.step(store: store, parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2,
                        epsilon: epsilon, weightDecay: weightDecay, decoupled: false)
    }

    /// A copy of every parameter's step count and moment averages.
    public func exportState() -> [String: ParameterState<Scalar>] { store.export() }

    /// Replaces the state (see `Optimizer.importState`).
    public func importState(_ state: [String: ParameterState<Scalar>]) throws {
        try store.importState(state, optimizer: "Adam")
    }

    /// Forgets all moment averages and step counts.
    public func resetState() { store.reset() }
}

/// AdamW (Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019): Adam [153] with the weight
/// decay applied to the parameter rather than added to the gradient, with PyTorch's `torch.optim.AdamW`
/// semantics.
///
/// For each parameter p with gradient g, at its t-th update, learning rate η:
///
///     p = p · (1 − η·λ)                             (decoupled weight decay)
///     m = β₁·m + (1 − β₁)·g                         (slot `exp_avg`)
///     v = β₂·v + (1 − β₂)·g²                        (slot `exp_avg_sq`)
///     p = p − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// The moments never see λ, so the decay is not rescaled by the adaptive step as Adam's L2 term is.
public final class AdamW<Scalar: TensorScalar>: Optimizer {
    /// The configuration name, `"adamw"`.
    public static var name: String { "adamw" }

    /// Decay rate β₁ of the first-moment average.
    public let beta1: Double
    /// Decay rate β₂ of the second-moment average.
    public let beta2: Double
    /// ε, added to the bias-corrected √v.
    public let epsilon: Double
    /// The decoupled weight-decay coefficient λ: each step multiplies p by 1 − η·λ.
    public let weightDecay: Double

    private let store = OptimizerStateStore<Scalar>(slotNames: AdamKernel.slotNames)

    /// An AdamW optimizer.
    ///
    /// - Parameters:
    ///   - beta1: β₁ in [0, 1) (default 0.9).
    ///   - beta2: β₂ in [0, 1) (default 0.999).
    ///   - epsilon: ε > 0 (default 1e-8).
    ///   - weightDecay: λ ≥ 0 (default 0.01, as PyTorch).
    /// - Precondition: the values are in range.
    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        if let problem = AdamKernel.problem(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay) {
            preconditionFailure("AdamW: " + problem)
        }
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// `adamw` with `beta1`, `beta2`, `epsilon` and `weight_decay`.
    public var configuration: OptimizerConfiguration {
        OptimizerConfiguration(name: Self.name, hyperparameters: [
            "beta1": beta1, "beta2": beta2, "epsilon": epsilon, "weight_decay": weightDecay,
        ])
    }

    /// `["exp_avg", "exp_avg_sq"]`: the first- and second-moment averages m and v.
    public var slotNames: [String] { store.slotNames }

    /// Applies one AdamW update with learning rate `learningRate` (see the type's formula).
    public func step(_ parameters: [(name: String, parameter: Parameter<Scalar>)], learningRate: Double) {
        AdamKernel.step(store: store, parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2,
                        epsilon: epsilon, weightDecay: weightDecay, decoupled: true)
    }

    /// A copy of every parameter's step count and moment averages.
    public func exportState() -> [String: ParameterState<Scalar>] { store.export() }

    /// Replaces the state (see `Optimizer.importState`).
    public func importState(_ state: [String: ParameterState<Scalar>]) throws {
        try store.importState(state, optimizer: "AdamW")
    }

    /// Forgets all moment averages and step counts.
    public func resetState() { store.reset() }
}

/// The update shared by Adam and AdamW.
enum AdamKernel {
    static let slotNames = ["exp_avg", "exp_avg_sq"]

    /// Why a hyper-parameter combination is invalid, or nil.
    static func problem(beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double) -> String? {
        if !(beta1 >= 0 && beta1 < 1) { return "beta1 must lie in [0, 1), got \(beta1)" }
        if !(beta2 >= 0 && beta2 < 1) { return "beta2 must lie in [0, 1), got \(beta2)" }
        if !(epsilon.isFinite && epsilon > 0) { return "epsilon must be finite and > 0, got \(epsilon)" }
        if !(weightDecay.isFinite && weightDecay >= 0) { return "weight decay must be finite and ≥ 0, got \(weightDecay)" }
        return nil
    }

    static func step<Scalar: TensorScalar>(
        store: OptimizerStateStore<Scalar>, parameters: [(name: String, parameter: Parameter<Scalar>)],
        learningRate: Double, beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double, decoupled: Bool
    ) {
        store.forEachUpdate(parameters) { step, count, value, gradient, state in
            // Bias corrections in Double, as PyTorch computes them in Python floats.
            let correction1 = 1 - pow(beta1, Double(step))
            let correction2Root = (1 - pow(beta2, Double(step))).squareRoot()
            update(count: count, value: value, gradient: gradient, m: state, v: state + count,
                   stepSize: Scalar(learningRate / correction1), inverseCorrection2Root: Scalar(1 / correction2Root),
                   beta1: Scalar(beta1), beta2: Scalar(beta2), epsilon: Scalar(epsilon),
                   coupledDecay: decoupled ? 0 : Scalar(weightDecay),
                   decoupledFactor: decoupled ? Scalar(1 - learningRate * weightDecay) : 1)
        }
    }

    /// One pass over a parameter: p ← p·f; g' = g + λc·p; m ← β₁m + (1−β₁)g'; v ← β₂v + (1−β₂)g'²;
    /// p ← p − s·m / (√v·c₂ + ε), with s = η/(1−β₁ᵗ) and c₂ = 1/√(1−β₂ᵗ).
    ///
    /// Explicit 8-lane SIMD: the scalar loop does not vectorize (the square root and possible aliasing block it),
    /// and this halves the time of a step.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func update<Scalar: TensorScalar>(
        count: Int, value p: UnsafeMutablePointer<Scalar>, gradient g: UnsafePointer<Scalar>,
        m: UnsafeMutablePointer<Scalar>, v: UnsafeMutablePointer<Scalar>, stepSize: Scalar,
        inverseCorrection2Root: Scalar, beta1: Scalar, beta2: Scalar, epsilon: Scalar, coupledDecay: Scalar,
        decoupledFactor: Scalar
    ) {
        typealias Vector = SIMD8<Scalar>
        let oneMinusBeta1 = 1 - beta1, oneMinusBeta2 = 1 - beta2
        let decays = decoupledFactor != 1, coupled = coupledDecay != 0
        var i = 0
        while i + Vector.scalarCount <= count {
            var pi = UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
            if decays { pi *= decoupledFactor }
            var gi = UnsafeRawPointer(g + i).loadUnaligned(as: Vector.self)
            if coupled { gi += coupledDecay * pi }
            let mi = beta1 * UnsafeRawPointer(m + i).loadUnaligned(as: Vector.self) + oneMinusBeta1 * gi
            let vi = beta2 * UnsafeRawPointer(v + i).loadUnaligned(as: Vector.self) + oneMinusBeta2 * (gi * gi)
            pi -= stepSize * mi / (vi.squareRoot() * inverseCorrection2Root + epsilon)
            UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: Vector.self)
            UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: Vector.self)
            UnsafeMutableRawPointer(p + i).storeBytes(of: pi, as: Vector.self)
            i += Vector.scalarCount
        }
        while i < count {
            var pi = p[i]
            if decays { pi *= decoupledFactor }
            var gi = g[i]
            if coupled { gi += coupledDecay * pi }
            let mi = beta1 * m[i] + oneMinusBeta1 * gi
            let vi = beta2 * v[i] + oneMinusBeta2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            p[i] = pi - stepSize * mi / (vi.squareRoot() * inverseCorrection2Root + epsilon)
            i += 1
        }
    }
}
