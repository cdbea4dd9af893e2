import Autodiff
import Foundation
import TensorCore

/// A layer that knows its output shape and its multiply-add count for a given input shape, analytically.
///
/// Shapes here are per sample, without the batch axis: `[H, W, C]` for images (NHWC), `[F]` for feature
/// vectors. `multiplyAdds` counts the multiply–accumulates of weight contractions for one sample (convolutions:
/// H'·W'·C_out·(C_in/groups)·KH·KW; linear: I·O), METHODS §0.3; element-wise work (batch normalization,
/// activations, pooling, bias additions) is not counted, as is customary. Containers (`Sequential`,
/// `BasicBlock`, the reference models) add up their children and list them in `layerSummaries`.
public protocol ShapedLayer<Scalar>: Layer {
    /// The per-sample output shape for a per-sample input shape.
    ///
    /// - Precondition: the input shape fits the layer (channels, features).
    func outputShape(forInput shape: [Int]) -> [Int]
    /// Multiply–accumulates of one forward pass for one sample of the given shape.
    func multiplyAdds(forInput shape: [Int]) -> Int
    /// A short description (`"Conv2D(32 → 64, 3×3, stride 1, padding 1, no bias)"`).
    var layerDescription: String { get }
    /// One summary per leaf layer, in forward order, with names prefixed by `prefix` (a leaf returns itself).
    func layerSummaries(prefix: String, inputShape: [Int]) -> [LayerSummary]
    /// Whether the shape and cost queries work (false for a container holding a layer that is not a
    /// `ShapedLayer`); true by default.
    var reportsShapes: Bool { get }
}

extension ShapedLayer {
    /// True: a leaf layer reports its shapes.
    public var reportsShapes: Bool { true }

    /// A leaf layer's own summary.
    public func layerSummaries(prefix: String, inputShape: [Int]) -> [LayerSummary] {
        let name = prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix
        return [LayerSummary(name: name, description: layerDescription, inputShape: inputShape,
                             outputShape: outputShape(forInput: inputShape), trainableParameters: trainableParameterCount,
                             multiplyAdds: multiplyAdds(forInput: inputShape))]
    }
}

extension Layer {
    /// The number of trainable scalars (batch-norm running statistics and other saved state excluded): the
    /// count PyTorch's `sum(p.numel() for p in model.parameters())` reports.
    public var trainableParameterCount: Int {
        var count = 0
        visitParameters(prefix: "") { _, parameter in
            if parameter.isTrainable { count += parameter.value.scalarCount }
        }
        return count
    }
}

/// One leaf layer of a network for a given input: what `lowrank evaluate` and the benchmarks list.
public struct LayerSummary: Sendable, Equatable {
    /// The layer's name as a prefix of its parameters (`"features.0"`, `"layer1.0.conv1"`).
    public var name: String
    /// The layer's description.
    public var description: String
    /// The per-sample input shape.
    public var inputShape: [Int]
    /// The per-sample output shape.
    public var outputShape: [Int]
    /// Trainable scalars of this layer.
    public var trainableParameters: Int
    /// Multiply–accumulates of one forward pass per sample.
    public var multiplyAdds: Int

    /// A summary.
    public init(name: String, description: String, inputShape: [Int], outputShape: [Int], trainableParameters: Int,
                multiplyAdds: Int) {
        self.name = name
        self.description = description
        self.inputShape = inputShape
        self.outputShape = outputShape
        self.trainableParameters = trainableParameters
        self.multiplyAdds = multiplyAdds
    }
}

/// A layer that draws random numbers in training (dropout), or contains one.
///
/// The trainer calls `reseed(_:)` before every step with a seed derived from the run's seed and the global step
/// index, so every random draw is a function of (seed, step): a resumed run draws exactly what an uninterrupted
/// one would, whatever happened before. Containers pass a distinct seed to each child.
public protocol StochasticLayer: AnyObject {
    /// Restarts the layer's random stream from `seed`.
    func reseed(_ seed: UInt64)
}

extension Variable {
    /// The parameter as a variable on a tape, so its gradient is recorded: on this value's tape, or else on the
    /// tape of an enclosing `withGradientTape`; a constant when there is neither (evaluation) or the parameter is
    /// frozen. Layers obtain every parameter through this, so a network whose input is a constant (the images)
    /// still records its parameters when run inside `withGradientTape`.
    public func watching(_ parameter: Parameter<Scalar>) -> Variable<Scalar> {
        if let tape { return tape.watch(parameter) }
        if let tape = currentGradientTape(Scalar.self) { return tape.watch(parameter) }
        return Variable(constant: parameter.value)
    }
}

/// Runs `body` with `tape` as the tape that layers record their parameters on (`Variable.watching(_:)`) when
/// their input is not on a tape, on this thread.
///
/// This lets a training step feed the images as a constant: the first layer records its parameters and the ops
/// that use them, but no gradient with respect to the images is computed (for a first convolution, a whole
/// backward-data pass saved). Calls nest; the previous tape is restored when `body` returns or throws.
public func withGradientTape<Scalar: TensorScalar, R>(_ tape: Tape<Scalar>, _ body: () throws -> R) rethrows -> R {
    let dictionary = Thread.current.threadDictionary
    let previous = dictionary[gradientTapeKey]
    dictionary[gradientTapeKey] = tape
    defer { dictionary[gradientTapeKey] = previous }
    return try body()
}

/// The tape of the innermost `withGradientTape` on this thread, if it records `Scalar`.
func currentGradientTape<Scalar: TensorScalar>(_ type: Scalar.Type) -> Tape<Scalar>? {
    Thread.current.threadDictionary[gradientTapeKey] as? Tape<Scalar>
}

private let gradientTapeKey = "lowrank.nn.gradientTape"

/// A 64-bit seed for child `index` of a container seeded with `seed`.
func childSeed(_ seed: UInt64, _ index: Int) -> UInt64 {
    mixSeeds(seed, UInt64(bitPattern: Int64(index)), 0x4348_494C_4453_4545)  // "CHILDSEE"
}
