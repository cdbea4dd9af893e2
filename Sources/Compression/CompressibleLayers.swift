import Autodiff
import NeuralNetworks
import TensorCore

/// A place in a model that holds a layer compression-aware training acts on: a `Linear`, a `Conv2D` with
/// one group, or their SVD-parameterized forms (`SVDLinear`, `SVDConv2D`), found inside (nested) `Sequential`s.
///
/// The layer's weight is seen as a matrix (METHODS §2.3): a `Linear` weight as I×O, a convolution kernel OIHW as
/// O×(C·KH·KW) (a free reshape). The slot can replace the layer (`replace(with:)`), which is how SVD training
/// installs its layers and how truncation installs factorized ones.
public struct LayerSlot<Scalar: TensorScalar> {
    /// The flattened name of the layer (`"15"`, `"features.3"`), the prefix of its parameters.
    public let name: String
    /// The container holding it.
    public let container: Sequential<Scalar>
    /// Its position in `container`.
    public let index: Int

    /// The layer now in the slot.
    public var layer: any Layer<Scalar> { container.children[index].layer }

    /// Puts `layer` in the slot (its parameters keep the slot's name as prefix).
    public func replace(with layer: any Layer<Scalar>) { container.replace(at: index, with: layer) }

    /// The dense weight parameter of a `Linear` or `Conv2D` in the slot, nil for other layers.
    public var denseWeight: Parameter<Scalar>? {
        if let linear = layer as? Linear<Scalar> { return linear.weight }
        if let conv = layer as? Conv2D<Scalar> { return conv.weight }
        return nil
    }

    /// The matrix view (rows, columns) of the layer's weight: I×O for `Linear`, O×(C·KH·KW) for `Conv2D`.
    public var matrixShape: (rows: Int, columns: Int)? {
        guard let weight = denseWeight?.value else { return nil }
        return weight.rank == 2 ? (weight.shape[0], weight.shape[1])
                                : (weight.shape[0], weight.shape[1] * weight.shape[2] * weight.shape[3])
    }

    /// The layer's weight as its matrix view (nil for a layer without a dense weight).
    public var weightMatrix: Tensor<Scalar>? {
        guard let weight = denseWeight?.value, let shape = matrixShape else { return nil }
        return weight.reshaped([shape.rows, shape.columns])
    }

    /// Stores `matrix` (the matrix view's shape) as the layer's weight.
    public func setWeightMatrix(_ matrix: Tensor<Scalar>) {
        guard let weight = denseWeight else { return }
        weight.value = matrix.reshaped(weight.value.shape)
    }

    /// The slots of `model` (depth first through `Sequential` children), skipping the first one when
    /// `skippingFirst` (METHODS §4.4 treats every layer but the first convolution: its 1·K·K-column matrix has no
    /// rank to spare) and the last one (the classifier) when `skippingLast`.
    public static func find(in model: any Layer<Scalar>, skippingFirst: Bool = true, skippingLast: Bool = false) -> [LayerSlot] {
        var slots: [LayerSlot] = []
        func visit(_ sequential: Sequential<Scalar>, prefix: String) {
            for (index, child) in sequential.children.enumerated() {
                let name = prefix + child.name
                if let nested = child.layer as? Sequential<Scalar> {
                    visit(nested, prefix: name + ".")
                } else if child.layer is Linear<Scalar> || child.layer is SVDLinear<Scalar> || child.layer is SVDConv2D<Scalar>
                            || (child.layer as? Conv2D<Scalar>).map({ $0.params.groups == 1 }) == true {
                    slots.append(LayerSlot(name: name, container: sequential, index: index))
                }
            }
        }
        if let sequential = model as? Sequential<Scalar> { visit(sequential, prefix: "") }
        if skippingLast { slots = Array(slots.dropLast()) }
        return skippingFirst ? Array(slots.dropFirst()) : slots
    }
}

/// Singular value thresholding SVT_τ(Y) = U·diag(max(σ_i − τ, 0))·Vᵀ, the proximal operator of τ‖·‖_* [81].
///
/// - Returns: the thresholded matrix and its rank (the number of σ_i > τ).
/// - Throws: `TensorError` when the SVD fails (a NaN or infinite entry).
public func singularValueThresholding<Scalar: TensorScalar>(_ matrix: Tensor<Scalar>, threshold: Scalar) throws
    -> (matrix: Tensor<Scalar>, rank: Int)
{
    let svd = try matrix.svd()
    let shrunk = svd.s.scalars.map { Swift.max($0 - threshold, 0) }
    let rank = shrunk.filter { $0 > 0 }.count
    let kept = SingularValueDecomposition(u: svd.u, s: Tensor(shrunk), vt: svd.vt).truncated(to: rank)
    return (rank == 0 ? Tensor.zeros(matrix.shape) : kept.reconstruct(), rank)
}

/// What truncating one layer did.
public struct TruncatedLayer: Sendable, Equatable, Codable {
    /// The slot's name.
    public var name: String
    /// The matrix view (rows × columns).
    public var rows: Int, columns: Int
    /// Singular values kept, and min(rows, columns).
    public var rank: Int, fullRank: Int
    /// Weight parameters before and after (biases excluded; equal when the layer stayed dense).
    public var denseParameters: Int, parameters: Int
    /// True when the factorized form would not have been smaller, so the layer stayed dense (with its weight
    /// replaced by the truncated one).
    public var keptDense: Bool
}

/// The result of truncating a model's compressible layers.
public struct TruncationReport: Sendable, Equatable, Codable {
    /// One entry per slot, in model order.
    public var layers: [TruncatedLayer]
    /// Σ dense weight parameters / Σ weight parameters after, over the truncated layers.
    public var compressionRatio: Double {
        let after = layers.reduce(0) { $0 + $1.parameters }
        return after == 0 ? .infinity : Double(layers.reduce(0) { $0 + $1.denseParameters }) / Double(after)
    }
}

/// Truncation of trained layers into factorized ones (METHODS §2.3: "drop the small singular values, convert to
/// an SVD layer"): a `Linear` I×O of rank r becomes `FactorizedLinear` `.svd` (cores I×r and O×r, W = ABᵀ); a
/// convolution becomes a K×K convolution to r channels followed by a per-pixel `Linear` r → O (a 1×1
/// convolution on NHWC activations), with the original stride, padding and dilation on the first. The factors
/// split √σ between the two sides. A layer whose factorized form would not be smaller (r·(rows + columns) ≥
/// rows·columns) keeps its dense form with the truncated weight.
public enum LowRankTruncation {
    /// Truncates every slot with `selection` (SVD layers by |s|, dense layers by the SVD of their matrix view).
    ///
    /// - Throws: `CompressionError.invalidSetting` for a bad selection; `TensorError` when an SVD fails.
    @discardableResult
    public static func truncate<Scalar: TensorScalar>(_ slots: [LayerSlot<Scalar>], selection: MatrixRankRule) throws
        -> TruncationReport
    {
        var report = TruncationReport(layers: [])
        for slot in slots {
            let factors: SpectralFactors<Scalar>
            if let svdLayer = slot.layer as? any SVDLayer<Scalar> {
                factors = svdLayer.spectralFactors()
            } else if let matrix = slot.weightMatrix {
                // A convolution's matrix view is O×(C·KH·KW); its transpose is the input × output orientation.
                let svd = try (slot.layer is Conv2D<Scalar> ? matrix.transposed : matrix).svd()
                factors = SpectralFactors(left: svd.u, s: svd.s.scalars.map { Double($0) }, rightTransposed: svd.vt)
            } else {
                continue
            }
            let order = factors.s.indices.sorted { Swift.abs(factors.s[$0]) > Swift.abs(factors.s[$1]) }
            let (rows, columns) = (factors.left.shape[0], factors.rightTransposed.shape[1])
            let spectrum = order.map { Swift.abs(factors.s[$0]) }
            let rank = spectrum.allSatisfy { $0 == 0 } ? 0
                : try selection.rank(singularValues: spectrum, inputFeatures: rows, outputFeatures: columns, layer: slot.name)
            let kept = Array(order.prefix(rank))
            let dense = rows * columns, factorized = rank * (rows + columns)
            // left·diag(√|s|) and diag(sign·√|s|)·rightᵀ.
            let roots = kept.map { Scalar(Swift.abs(factors.s[$0]).squareRoot()) }
            let signs = kept.map { factors.s[$0] < 0 ? Scalar(-1) : Scalar(1) }
            let left = gatherColumns(factors.left, kept) * Tensor(shape: [1, rank], scalars: roots)
            let right = gatherRows(factors.rightTransposed, kept) * Tensor(shape: [rank, 1], scalars: zip(roots, signs).map(*))
            let bias = slot.layer.namedParameters().first { $0.name == "bias" }?.parameter.value
            let original = slot.layer
            let geometry: (params: Convolution2D, kernel: [Int])? = {
                if let conv = original as? Conv2D<Scalar> { return (conv.params, Array(conv.weight.value.shape.dropFirst())) }
                if let conv = original as? SVDConv2D<Scalar> { return (conv.params, Array(conv.u.value.shape.dropFirst())) }
                return nil
            }()
            let keptDense = factorized >= dense
            if keptDense {
                let weight = rank == 0 ? Tensor<Scalar>.zeros([rows, columns]) : Tensor.matmul(left, right)
                if let geometry {
                    let kernel = weight.transposed.reshaped([columns] + geometry.kernel)
                    slot.replace(with: Conv2D(weight: kernel, bias: bias, params: geometry.params))
                } else {
                    slot.replace(with: Linear(weight: weight, bias: bias))
                }
            } else if let geometry {
                let first = Conv2D(weight: left.transposed.reshaped([rank] + geometry.kernel), bias: nil, params: geometry.params)
                slot.replace(with: Sequential<Scalar>([first, Linear(weight: right, bias: bias)]))
            } else {
                slot.replace(with: try FactorizedLinear(format: .svd, inputModes: [rows], outputModes: [columns],
                                                        cores: [left, right.transposed], bias: bias, name: slot.name))
            }
            report.layers.append(TruncatedLayer(name: slot.name, rows: rows, columns: columns, rank: rank,
                                                fullRank: Swift.min(rows, columns), denseParameters: dense,
                                                parameters: keptDense ? dense : factorized, keptDense: keptDense))
        }
        return report
    }
}

/// A layer's weight as left·diag(s)·rightᵀ in the input × output orientation (the `Linear` convention W ∈ ℝ^{I×O},
/// and (C·KH·KW)×O for a convolution), s possibly signed and unsorted.
public struct SpectralFactors<Scalar: TensorScalar> {
    /// I×R.
    public var left: Tensor<Scalar>
    /// R values.
    public var s: [Double]
    /// R×O.
    public var rightTransposed: Tensor<Scalar>

    public init(left: Tensor<Scalar>, s: [Double], rightTransposed: Tensor<Scalar>) {
        self.left = left; self.s = s; self.rightTransposed = rightTransposed
    }
}

/// The columns `indices` of a matrix, in that order.
func gatherColumns<Scalar: TensorScalar>(_ matrix: Tensor<Scalar>, _ indices: [Int]) -> Tensor<Scalar> {
    gatherRows(matrix.transposed, indices).transposed
}

/// The rows `indices` of a matrix, in that order.
func gatherRows<Scalar: TensorScalar>(_ matrix: Tensor<Scalar>, _ indices: [Int]) -> Tensor<Scalar> {
    let columns = matrix.shape[1]
    let values = matrix.scalars
    var result: [Scalar] = []
    result.reserveCapacity(indices.count * columns)
    for row in indices { result += values[row * columns..<(row + 1) * columns] }
    return Tensor(shape: [indices.count, columns], scalars: result)
}
