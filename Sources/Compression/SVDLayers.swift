import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

/// A layer trained in SVD form, W = U·diag(s)·Vᵀ at full rank (SVD training [85], METHODS §2.3 (3)): U, s and V
/// are parameters; an orthogonality regularizer keeps U and V near-orthonormal and a sparsity regularizer on s
/// makes the spectrum compressible, so truncation (`LowRankTruncation`) loses little.
public protocol SVDLayer<Scalar>: ShapedLayer {
    /// The singular values s ∈ ℝ^R (signed and unsorted during training; truncation orders them by |s|).
    var s: Parameter<Scalar> { get }
    /// ‖UᵀU − I‖_F² + ‖VᵀV − I‖_F², with U and V read from the tape of `anchor` (or the current gradient tape).
    func orthogonalityPenalty(_ anchor: Variable<Scalar>) -> Variable<Scalar>
    /// The weight as left·diag(s)·rightᵀ in the input × output orientation.
    func spectralFactors() -> SpectralFactors<Scalar>
}

/// ‖MᵀM − I‖_F² (columns of M orthonormal) or ‖MMᵀ − I‖_F² (rows).
func gramDeviation<Scalar: TensorScalar>(_ matrix: Variable<Scalar>, rows: Bool) -> Variable<Scalar> {
    let gram = rows ? matmul(matrix, matrix, transposeB: true) : matmul(matrix, matrix, transposeA: true)
    return (gram - Variable(constant: Tensor<Scalar>.identity(gram.shape[0]))).squared().sum()
}

/// A fully connected layer held as y = x·U·diag(s)·Vᵀ + b (SVD training [85]): `u` U ∈ ℝ^{I×R}, `s` ∈ ℝ^R,
/// `vt` Vᵀ ∈ ℝ^{R×O}, R = min(I, O). The forward pass is two GEMMs with a scaling in between.
public final class SVDLinear<Scalar: TensorScalar>: SVDLayer {
    /// U, I×R.
    public let u: Parameter<Scalar>
    /// s, R.
    public let s: Parameter<Scalar>
    /// Vᵀ, R×O.
    public let vt: Parameter<Scalar>
    /// b, O, or nil.
    public let bias: Parameter<Scalar>?

    /// The layer with W = U·diag(s)·Vᵀ from the thin SVD of a `Linear`'s weight (the same function).
    ///
    /// - Throws: `TensorError` when the SVD fails (a NaN or infinite weight).
    public init(converting linear: Linear<Scalar>) throws {
        let svd = try linear.weight.value.svd()
        u = Parameter(svd.u)
        s = Parameter(svd.s)
        vt = Parameter(svd.vt)
        bias = linear.bias.map { Parameter($0.value) }
    }

    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        let projected = linear(input, weight: input.watching(u)) * input.watching(s)
        return linear(projected, weight: input.watching(vt), bias: bias.map { input.watching($0) })
    }

    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "u", u)
        visitor(prefix + "s", s)
        visitor(prefix + "vt", vt)
        if let bias { visitor(prefix + "bias", bias) }
    }

    public func orthogonalityPenalty(_ anchor: Variable<Scalar>) -> Variable<Scalar> {
        gramDeviation(anchor.watching(u), rows: false) + gramDeviation(anchor.watching(vt), rows: true)
    }

    public func spectralFactors() -> SpectralFactors<Scalar> {
        SpectralFactors(left: u.value, s: s.value.scalars.map { Double($0) }, rightTransposed: vt.value)
    }

    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.last == u.value.shape[0], "SVDLinear: input \(shape) for U \(u.value.shape)")
        return Array(shape.dropLast()) + [vt.value.shape[1]]
    }

    public func multiplyAdds(forInput shape: [Int]) -> Int {
        shape.dropLast().reduce(1, *) * (u.value.shape[0] + 1 + vt.value.shape[1]) * s.value.scalarCount
    }

    public var layerDescription: String {
        "SVDLinear(\(u.value.shape[0]) → \(vt.value.shape[1]), rank \(s.value.scalarCount))"
    }
}

/// A convolution held in SVD form (SVD training [85], channel-wise): the kernel's matrix view
/// W ∈ ℝ^{O×(C·KH·KW)} is written Wᵀ = U·diag(s)·Vᵀ, and the layer runs a KH×KW convolution with the R kernels
/// `u` (Uᵀ reshaped to [R, C, KH, KW]), scales channel r by s_r, then maps R → O per pixel with `vt` (Vᵀ, R×O) and
/// adds the bias. R = min(O, C·KH·KW).
public final class SVDConv2D<Scalar: TensorScalar>: SVDLayer {
    /// Uᵀ as R kernels, [R, C, KH, KW].
    public let u: Parameter<Scalar>
    /// s, R.
    public let s: Parameter<Scalar>
    /// Vᵀ, R×O.
    public let vt: Parameter<Scalar>
    /// b, O, or nil.
    public let bias: Parameter<Scalar>?
    /// Stride, padding and dilation (one group).
    public let params: Convolution2D

    /// The layer computing the same function as `conv`, from the SVD of its kernel's matrix view.
    ///
    /// - Throws: `CompressionError.unsupportedFormat` for a grouped convolution; `TensorError` when the SVD fails.
    public init(converting conv: Conv2D<Scalar>, name: String = "Conv2D") throws {
        guard conv.params.groups == 1 else {
            throw CompressionError.unsupportedFormat(layer: name, problem:
                "SVD training treats a convolution as one O×(C·KH·KW) matrix; this one has \(conv.params.groups) groups (leave it dense)")
        }
        let shape = conv.weight.value.shape
        let patch = shape[1] * shape[2] * shape[3]
        let svd = try conv.weight.value.reshaped([shape[0], patch]).transposed.svd()
        u = Parameter(svd.u.transposed.reshaped([svd.rank] + Array(shape.dropFirst())))
        s = Parameter(svd.s)
        vt = Parameter(svd.vt)
        bias = conv.bias.map { Parameter($0.value) }
        params = conv.params
    }

    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        let projected = conv2d(input, weight: input.watching(u), params: params) * input.watching(s)
        return linear(projected, weight: input.watching(vt), bias: bias.map { input.watching($0) })
    }

    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "u", u)
        visitor(prefix + "s", s)
        visitor(prefix + "vt", vt)
        if let bias { visitor(prefix + "bias", bias) }
    }

    private var rank: Int { u.value.shape[0] }
    private var patch: Int { u.value.scalarCount / rank }

    public func orthogonalityPenalty(_ anchor: Variable<Scalar>) -> Variable<Scalar> {
        gramDeviation(anchor.watching(u).reshaped([rank, patch]), rows: true) + gramDeviation(anchor.watching(vt), rows: true)
    }

    public func spectralFactors() -> SpectralFactors<Scalar> {
        SpectralFactors(left: u.value.reshaped([rank, patch]).transposed, s: s.value.scalars.map { Double($0) },
                        rightTransposed: vt.value)
    }

    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.count == 3 && shape[2] == u.value.shape[1], "SVDConv2D: input \(shape) for kernels \(u.value.shape)")
        let size = params.outputSize(inputHeight: shape[0], inputWidth: shape[1], kernelHeight: u.value.shape[2],
                                     kernelWidth: u.value.shape[3])
        return [size.height, size.width, vt.value.shape[1]]
    }

    public func multiplyAdds(forInput shape: [Int]) -> Int {
        let out = outputShape(forInput: shape)
        return out[0] * out[1] * rank * (patch + 1 + vt.value.shape[1])
    }

    public var layerDescription: String {
        "SVDConv2D(\(u.value.shape[1]) → \(vt.value.shape[1]), \(u.value.shape[2])×\(u.value.shape[3]), rank \(rank))"
    }
}
