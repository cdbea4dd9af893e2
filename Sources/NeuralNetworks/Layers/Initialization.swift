import TensorCore

/// Weight initialization schemes, drawn from a `SeededGenerator` so a seed fixes every initial weight.
///
/// Fan-in and fan-out follow PyTorch's `_calculate_fan_in_and_fan_out`: for a convolution kernel OIHW
/// `[O, I/groups, KH, KW]`, fan-in = (I/groups)·KH·KW and fan-out = O·KH·KW; for a `Linear` weight stored
/// `[I, O]` (LowRank's layout, METHODS §0.2), fan-in = I and fan-out = O. Samples are drawn in `Double` and
/// rounded to the layer's precision, so a `Float` and a `Double` layer built from the same seed agree up to
/// rounding.
///
/// - Kaiming (He et al., "Delving Deep into Rectifiers", 2015; not in the survey's reference list):
///   gain g = √(2/(1 + a²)) for a leaky-ReLU slope a (a = 0: ReLU); normal with σ = g/√fan, uniform on
///   [−b, b] with b = g·√(3/fan).
/// - Xavier / Glorot (Glorot & Bengio, 2010; not in the survey's reference list): normal with
///   σ = gain·√(2/(fan-in + fan-out)), uniform with b = gain·√(6/(fan-in + fan-out)).
/// - `pytorchDefault`: PyTorch's default for `nn.Linear` and `nn.Conv2d`, Kaiming-uniform with a = √5, i.e.
///   b = 1/√fan-in, and the bias uniform on [−1/√fan-in, 1/√fan-in].
public enum Initializer: Sendable, Equatable {
    /// Which fan the Kaiming schemes scale by.
    public enum Fan: Sendable, Equatable {
        /// Preserve the variance of activations in the forward pass.
        case fanIn
        /// Preserve the variance of gradients in the backward pass.
        case fanOut
    }

    /// Kaiming (He) uniform with negative slope `a` (0 for ReLU).
    case kaimingUniform(a: Double = 0, fan: Fan = .fanIn)
    /// Kaiming (He) normal with negative slope `a` (0 for ReLU).
    case kaimingNormal(a: Double = 0, fan: Fan = .fanIn)
    /// Xavier (Glorot) uniform with the given gain.
    case xavierUniform(gain: Double = 1)
    /// Xavier (Glorot) normal with the given gain.
    case xavierNormal(gain: Double = 1)
    /// PyTorch's default for linear and convolution weights: Kaiming-uniform with a = √5 (b = 1/√fan-in).
    case pytorchDefault
    /// Every weight zero.
    case zeros
    /// Every weight one.
    case ones

    /// The bound b of the uniform schemes or the standard deviation σ of the normal ones, for the given fans
    /// (0 for `zeros` / `ones`).
    public func scale(fanIn: Int, fanOut: Int) -> Double {
        precondition(fanIn > 0 && fanOut > 0, "Initializer: fan-in \(fanIn) and fan-out \(fanOut) must be positive")
        func kaimingGain(_ a: Double) -> Double { (2 / (1 + a * a)).squareRoot() }
        switch self {
        case let .kaimingUniform(a, fan):
            return kaimingGain(a) * (3 / Double(fan == .fanIn ? fanIn : fanOut)).squareRoot()
        case let .kaimingNormal(a, fan):
            return kaimingGain(a) / Double(fan == .fanIn ? fanIn : fanOut).squareRoot()
        case let .xavierUniform(gain):
            return gain * (6 / Double(fanIn + fanOut)).squareRoot()
        case let .xavierNormal(gain):
            return gain * (2 / Double(fanIn + fanOut)).squareRoot()
        case .pytorchDefault:
            return 1 / Double(fanIn).squareRoot()
        case .zeros, .ones:
            return 0
        }
    }

    /// A tensor of `shape` initialized by this scheme with the given fans.
    ///
    /// - Precondition: fans are positive.
    public func make<Scalar: TensorScalar>(_ shape: [Int], fanIn: Int, fanOut: Int,
                                           generator: inout SeededGenerator) -> Tensor<Scalar> {
        let s = scale(fanIn: fanIn, fanOut: fanOut)
        switch self {
        case .zeros:
            return Tensor(repeating: 0, shape: shape)
        case .ones:
            return Tensor(repeating: 1, shape: shape)
        case .kaimingNormal, .xavierNormal:
            return Tensor(shape: shape) { out in
                for i in 0..<out.count { out[i] = Scalar(s * generator.nextNormal()) }
            }
        case .kaimingUniform, .xavierUniform, .pytorchDefault:
            return uniformTensor(shape, bound: s, generator: &generator)
        }
    }

    /// (fan-in, fan-out) of a weight: `[I, O]` for a linear layer, OIHW for a convolution (PyTorch's rule:
    /// fan-in = shape[1]·receptive field, fan-out = shape[0]·receptive field).
    public static func fans(linearWeight shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count == 2, "Initializer.fans: a linear weight is [in, out], got \(shape)")
        return (shape[0], shape[1])
    }

    /// (fan-in, fan-out) of an OIHW convolution kernel `[O, I/groups, KH, KW]`.
    public static func fans(convolutionWeight shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count == 4, "Initializer.fans: a convolution weight is [O, I/groups, KH, KW], got \(shape)")
        let receptive = shape[2] * shape[3]
        return (shape[1] * receptive, shape[0] * receptive)
    }
}

/// Independent uniform samples on [−bound, bound), drawn in `Double`.
func uniformTensor<Scalar: TensorScalar>(_ shape: [Int], bound: Double,
                                         generator: inout SeededGenerator) -> Tensor<Scalar> {
    Tensor(shape: shape) { out in
        for i in 0..<out.count { out[i] = Scalar((2 * generator.nextUnitDouble() - 1) * bound) }
    }
}
