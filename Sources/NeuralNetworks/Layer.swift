import Autodiff
import TensorCore

/// Whether a forward pass trains (batch statistics, dropout on) or evaluates.
public enum ForwardMode: Sendable {
    case training
    case inference
}

/// A network layer: a function of a variable with named trainable parameters.
///
/// Layers are reference types holding `Parameter`s; `visitParameters` yields each with its flattened name
/// (`"layers.0.weight"`, mlx-swift style). The same names key checkpoints and optimizer state. Non-trainable
/// state (batch-norm running statistics) is visited too, as parameters with `isTrainable == false`, so
/// checkpoints hold it while optimizers skip it. A forward pass
/// under `.training` with a `Tape` records gradients; with constants it records nothing.
public protocol Layer<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    /// Applies the layer.
    func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar>
    /// Calls `visitor` with every parameter and its name, prefixed by `prefix` (e.g. "features.3.").
    func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void)
}

extension Layer {
    /// Every parameter with its full name, in visiting order.
    public func namedParameters() -> [(name: String, parameter: Parameter<Scalar>)] {
        var result: [(String, Parameter<Scalar>)] = []
        visitParameters(prefix: "") { result.append(($0, $1)) }
        return result
    }

    /// Total number of scalars in all parameters.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.parameter.value.scalarCount } }
}
