import Autodiff
import TensorCore

/// A fully connected layer, y = x·W + b (METHODS §0.2: y = Wᵀx + b per sample, W ∈ ℝ^{I×O}).
///
/// The weight is stored `[in, out]` (I×O, LowRank's layout), the transpose of PyTorch's `[out, in]`: a PyTorch
/// `nn.Linear` weight is imported by transposing it. The input may have any rank ≥ 1 with the features on the
/// last axis (`[..., I]` → `[..., O]`). Forward and backward passes are single BLAS GEMMs on the flattened
/// leading axes (`linear(_:weight:bias:)`), so the layer adds no copies around them.
///
/// Parameters: `weight` `[I, O]` and, unless disabled, `bias` `[O]`. Default initialization is PyTorch's
/// (`Initializer.pytorchDefault`: uniform on ±1/√I for both), so a model compares fairly with its PyTorch twin.
public final class Linear<Scalar: TensorScalar>: Layer {
    /// W, shape `[inputFeatures, outputFeatures]`.
    public let weight: Parameter<Scalar>
    /// b, shape `[outputFeatures]`, or nil.
    public let bias: Parameter<Scalar>?

    /// I, the number of input features.
    public var inputFeatures: Int { weight.value.shape[0] }
    /// O, the number of output features.
    public var outputFeatures: Int { weight.value.shape[1] }

    /// A layer with freshly initialized parameters.
    ///
    /// - Parameters:
    ///   - inputFeatures: I > 0.
    ///   - outputFeatures: O > 0.
    ///   - bias: whether the layer has a bias (initialized uniform on ±1/√I, as PyTorch does).
    ///   - initializer: the weight's scheme (fans: I and O).
    ///   - generator: the source of the initial values.
    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true,
                initializer: Initializer = .pytorchDefault, generator: inout SeededGenerator) {
        precondition(inputFeatures > 0 && outputFeatures > 0,
                     "Linear: features must be positive, got \(inputFeatures) → \(outputFeatures)")
        let shape = [inputFeatures, outputFeatures]
        let (fanIn, fanOut) = Initializer.fans(linearWeight: shape)
        weight = Parameter(initializer.make(shape, fanIn: fanIn, fanOut: fanOut, generator: &generator))
        self.bias = bias
            ? Parameter(uniformTensor([outputFeatures], bound: 1 / Double(inputFeatures).squareRoot(), generator: &generator))
            : nil
    }

    /// A layer with the given weight `[I, O]` and optional bias `[O]`.
    public init(weight: Tensor<Scalar>, bias: Tensor<Scalar>? = nil) {
        precondition(weight.rank == 2, "Linear: weight must be [in, out], got \(weight.shape)")
        if let bias {
            precondition(bias.shape == [weight.shape[1]], "Linear: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
    }

    /// y = x·W + b over the last axis of `input`.
    ///
    /// - Precondition: the last axis of `input` has I entries.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        linear(input, weight: input.watching(weight), bias: bias.map { input.watching($0) })
    }

    /// Yields `weight` and `bias`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "weight", weight)
        if let bias { visitor(prefix + "bias", bias) }
    }
}

extension Linear: ShapedLayer {
    /// `[..., I]` → `[..., O]`.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.last == inputFeatures, "Linear: input \(shape) for weight \(weight.value.shape)")
        return Array(shape.dropLast()) + [outputFeatures]
    }

    /// I·O per row of features (the bias additions are not counted).
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        outputShape(forInput: shape).dropLast().reduce(1, *) * inputFeatures * outputFeatures
    }

    public var layerDescription: String { "Linear(\(inputFeatures) → \(outputFeatures)\(bias == nil ? ", no bias" : ""))" }
}

/// The affine map y = x·W + b over the last axis, as one differentiable operation.
///
/// x `[..., I]` is viewed as a matrix `[M, I]` (M = product of the leading axes, no copy), W is `[I, O]` and b
/// `[O]`. Forward: y is filled with b row by row, then one GEMM y += x·W. VJP with G = ∂ℓ/∂y `[M, O]`:
/// ∂x = G·Wᵀ, ∂W = xᵀ·G (one GEMM each, transposes passed to BLAS) and ∂b = Σ_rows G.
///
/// - Precondition: W is a matrix whose first dimension equals the last axis of x; b has O entries.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
public func linear<Scalar>(_ x: Variable<Scalar>, weight: Variable<Scalar>, bias: Variable<Scalar>? = nil) -> Variable<Scalar> {
    let input = x.value, w = weight.value
    precondition(w.rank == 2 && input.rank >= 1 && input.shape.last == w.shape[0],
                 "linear: input \(input.shape) and weight \(w.shape) do not match (expected [..., I] and [I, O])")
    let features = w.shape[0], outputs = w.shape[1]
    let rows = input.scalarCount / Swift.max(features, 1)
    if let bias { precondition(bias.shape == [outputs], "linear: bias \(bias.shape) for weight \(w.shape)") }
    let outputShape = Array(input.shape.dropLast()) + [outputs]
    let b = bias?.value
    let y = Tensor<Scalar>(shape: outputShape) { out in
        if let b {
            b.withUnsafeBufferPointer { bp in
                for r in 0..<rows { (out.baseAddress! + r * outputs).update(from: bp.baseAddress!, count: outputs) }
            }
        } else {
            out.initialize(repeating: 0)
        }
        guard rows > 0, features > 0, outputs > 0 else { return }
        input.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
            Scalar.gemm(transposeA: false, transposeB: false, m: rows, n: outputs, k: features, alpha: 1,
                        a: xp.baseAddress!, lda: features, b: wp.baseAddress!, ldb: outputs,
                        beta: 1, c: out.baseAddress!, ldc: outputs)
        } }
    }
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    let needX = x.isRecorded, needW = weight.isRecorded, needB = bias?.isRecorded ?? false
    let hasBias = bias != nil
    return recordOperation(y, inputs: inputs) { g in
        var grads: [Tensor<Scalar>?] = [nil, nil]
        if needX {
            grads[0] = Tensor<Scalar>(shape: input.shape) { out in
                guard rows > 0, features > 0 else { return }
                if outputs == 0 { out.initialize(repeating: 0); return }
                g.withUnsafeBufferPointer { gp in w.withUnsafeBufferPointer { wp in
                    Scalar.gemm(transposeA: false, transposeB: true, m: rows, n: features, k: outputs, alpha: 1,
                                a: gp.baseAddress!, lda: outputs, b: wp.baseAddress!, ldb: outputs,
                                beta: 0, c: out.baseAddress!, ldc: features)
                } }
            }
        }
        if needW {
            grads[1] = Tensor<Scalar>(shape: w.shape) { out in
                guard features > 0, outputs > 0 else { return }
                if rows == 0 { out.initialize(repeating: 0); return }
                input.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in
                    Scalar.gemm(transposeA: true, transposeB: false, m: features, n: outputs, k: rows, alpha: 1,
                                a: xp.baseAddress!, lda: features, b: gp.baseAddress!, ldb: outputs,
                                beta: 0, c: out.baseAddress!, ldc: outputs)
                } }
            }
        }
        if hasBias { grads.append(needB ? columnSums(g, rows: rows, columns: outputs) : nil) }
        return grads
    }
}

/// Σ over rows of a `[rows, columns]` buffer, accumulated row by row (vectorizes across columns).
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func columnSums<Scalar: TensorScalar>(_ g: Tensor<Scalar>, rows: Int, columns: Int) -> Tensor<Scalar> {
    Tensor<Scalar>(shape: [columns]) { out in
        out.initialize(repeating: 0)
        g.withUnsafeBufferPointer { gp in
            for r in 0..<rows {
                let row = gp.baseAddress! + r * columns
                for c in 0..<columns { out[c] += row[c] }
            }
        }
    }
}
