import TensorCore

/// A reverse-mode automatic differentiation tape.
///
/// Every differentiable operation on `Variable`s appends a node holding its inputs and its vector–Jacobian
/// product (VJP). `gradients(of:)` walks the nodes in reverse order, so a value used several times receives
/// the sum of its gradients. Operations on variables that have no tape (constants, or evaluation without
/// gradients) record nothing and cost nothing beyond the forward computation.
///
/// A tape is used by one thread at a time (one training step); create a new one for every step.
public final class Tape<Scalar: TensorScalar> {
    /// One recorded operation: the tape positions of its inputs and its VJP, which maps the gradient of the
    /// output to one gradient per input (nil for an input that needs none).
    struct Node {
        var inputs: [Int]
        var vjp: ((Tensor<Scalar>) -> [Tensor<Scalar>?])?
        var shape: [Int]
        var parameter: Parameter<Scalar>?
    }

    var nodes: [Node] = []

    public init() {}

    /// The number of recorded nodes (leaves included).
    public var count: Int { nodes.count }

    /// A leaf that gradients flow into (an input to differentiate with respect to).
    public func variable(_ value: Tensor<Scalar>) -> Variable<Scalar> {
        nodes.append(Node(inputs: [], vjp: nil, shape: value.shape, parameter: nil))
        return Variable(value: value, tape: self, index: nodes.count - 1)
    }

    /// A leaf bound to a trainable parameter: `backward` stores its gradient into `parameter.gradient`.
    /// A frozen parameter becomes a constant.
    public func watch(_ parameter: Parameter<Scalar>) -> Variable<Scalar> {
        if parameter.isFrozen { return Variable(constant: parameter.value) }
        nodes.append(Node(inputs: [], vjp: nil, shape: parameter.value.shape, parameter: parameter))
        return Variable(value: parameter.value, tape: self, index: nodes.count - 1)
    }

    /// Records the result of an operation with the given inputs and VJP.
    func record(_ value: Tensor<Scalar>, inputs: [Variable<Scalar>],
                vjp: @escaping (Tensor<Scalar>) -> [Tensor<Scalar>?]) -> Variable<Scalar> {
        nodes.append(Node(inputs: inputs.map { $0.tape === self ? $0.index : -1 }, vjp: vjp, shape: value.shape,
                          parameter: nil))
        return Variable(value: value, tape: self, index: nodes.count - 1)
    }

    /// Reverse pass from `output` seeded with `seed` (default: ones, so a scalar loss gets dℓ/dℓ = 1).
    /// Returns the gradient of every node that received one, indexed by tape position, and stores the
    /// gradients of watched parameters into them (accumulating if a parameter was watched twice).
    @discardableResult
    public func gradients(of output: Variable<Scalar>, seed: Tensor<Scalar>? = nil) -> [Int: Tensor<Scalar>] {
        precondition(output.tape === self, "gradients(of:): the output was not computed on this tape")
        var grads: [Int: Tensor<Scalar>] = [output.index: seed ?? .ones(output.value.shape)]
        for index in stride(from: output.index, through: 0, by: -1) {
            guard let upstream = grads[index] else { continue }
            let node = nodes[index]
            if let parameter = node.parameter {
                if let existing = parameter.gradient { parameter.gradient = existing + upstream } else { parameter.gradient = upstream }
                continue
            }
            guard let vjp = node.vjp else { continue }
            let inputGrads = vjp(upstream)
            precondition(inputGrads.count == node.inputs.count, "VJP returned \(inputGrads.count) gradients for \(node.inputs.count) inputs")
            for (input, grad) in zip(node.inputs, inputGrads) where input >= 0 {
                guard let grad else { continue }
                precondition(grad.shape == nodes[input].shape,
                             "VJP produced a gradient of shape \(grad.shape) for an input of shape \(nodes[input].shape)")
                if let existing = grads[input] { grads[input] = existing + grad } else { grads[input] = grad }
            }
            // Free gradients of interior nodes as soon as they are consumed.
            if index != output.index { grads[index] = nil }
        }
        return grads
    }
}

/// A tensor value that may be recorded on a tape.
public struct Variable<Scalar: TensorScalar> {
    /// The forward value.
    public let value: Tensor<Scalar>
    /// The tape this value was recorded on, or nil for a constant.
    public let tape: Tape<Scalar>?
    /// Position on the tape (meaningless for constants).
    let index: Int

    init(value: Tensor<Scalar>, tape: Tape<Scalar>, index: Int) {
        self.value = value
        self.tape = tape
        self.index = index
    }

    /// A constant: operations on constants only record nothing.
    public init(constant value: Tensor<Scalar>) {
        self.value = value
        self.tape = nil
        self.index = -1
    }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// True when gradients flow through this value.
    public var isRecorded: Bool { tape != nil }
}

/// A trainable tensor owned by a layer: its value, the gradient of the last backward pass, and whether it is
/// frozen. Optimizers key their state by the parameter's name (see `Layer.visitParameters`).
public final class Parameter<Scalar: TensorScalar>: @unchecked Sendable {
    /// The current value.
    public var value: Tensor<Scalar>
    /// dℓ/dvalue from the last backward pass (nil before one, or after `zeroGradient()`).
    public var gradient: Tensor<Scalar>?
    /// A frozen parameter is read as a constant and never updated.
    public var isFrozen: Bool
    /// False for state that is saved with the model but never trained (batch-norm running statistics).
    public let isTrainable: Bool

    public init(_ value: Tensor<Scalar>, isFrozen: Bool = false, isTrainable: Bool = true) {
        self.value = value
        self.isFrozen = isFrozen || !isTrainable
        self.isTrainable = isTrainable
    }

    /// Clears the stored gradient.
    public func zeroGradient() { gradient = nil }
}

/// Records `value` as the result of an operation on `inputs` if any input is on a tape; otherwise returns a
/// constant. `vjp` receives the output gradient and returns one gradient per input, in order.
public func recordOperation<Scalar>(_ value: Tensor<Scalar>, inputs: [Variable<Scalar>],
                                    vjp: @escaping (Tensor<Scalar>) -> [Tensor<Scalar>?]) -> Variable<Scalar> {
    guard let tape = inputs.first(where: { $0.tape != nil })?.tape else { return Variable(constant: value) }
    for input in inputs where input.tape != nil {
        precondition(input.tape === tape, "operation mixes variables from two different tapes")
    }
    return tape.record(value, inputs: inputs, vjp: vjp)
}
