import TensorCore

// Broadcasting elementwise arithmetic and the elementary functions, each a forward computation on `Tensor`
// plus a vector–Jacobian product recorded with `recordOperation`.
//
// Broadcasting follows NumPy (align shapes on the right; a size-1 or missing dimension repeats). The VJP of a
// broadcasting operation sums the output gradient over every axis an input was repeated along, back to the
// input's own shape (`reduceToShape`). Gradients are computed only for inputs that are on a tape.

/// Sums a gradient over the axes along which a value of shape `shape` was broadcast, giving back `shape`.
///
/// If `x` of shape `shape` was broadcast to `gradient.shape` (leading dimensions added, size-1 dimensions
/// repeated), then ∂ℓ/∂x = Σ over those axes of ∂ℓ/∂(broadcast x). Returns `gradient` itself when the shapes
/// already agree.
///
/// - Precondition: `shape` broadcasts to `gradient.shape`.
public func reduceToShape<Scalar>(_ gradient: Tensor<Scalar>, _ shape: [Int]) -> Tensor<Scalar> {
    if gradient.shape == shape { return gradient }
    let extra = gradient.rank - shape.count
    precondition(extra >= 0 && shape.indices.allSatisfy { shape[$0] == gradient.shape[extra + $0] || shape[$0] == 1 },
                 "reduceToShape: shape \(shape) does not broadcast to the gradient's shape \(gradient.shape)")
    var reduced = [Bool](repeating: true, count: extra)
    for (axis, size) in shape.enumerated() { reduced.append(size == 1 && gradient.shape[extra + axis] != 1) }
    if !reduced.contains(true) { return gradient.reshaped(shape) }
    // Merge runs of reduced / kept axes (size-1 axes join either run): the common patterns, a leading block
    // summed away (bias gradients: [N, H, W, C] → [C]) or a trailing one, become one BLAS gemv each.
    var blocks: [(reduced: Bool, size: Int)] = []
    for (axis, size) in gradient.shape.enumerated() where size != 1 {
        if let last = blocks.last, last.reduced == reduced[axis] {
            blocks[blocks.count - 1].size *= size
        } else {
            blocks.append((reduced[axis], size))
        }
    }
    var result = gradient
    if blocks.count <= 3 && (blocks.count < 3 || blocks[0].reduced) {
        var rows = 1, remaining = blocks[...]
        if let first = remaining.first, first.reduced {
            rows = first.size
            remaining = remaining.dropFirst()
        }
        let kept = remaining.first?.size ?? 1
        let tail = remaining.count > 1 ? remaining.last!.size : 1
        if tail != 1 { result = sumsOfRows(result, rows: rows * kept, columns: tail) }
        if rows != 1 { result = sumsOfColumns(result, rows: rows, columns: kept) }
        return result.reshaped(shape)
    }
    let axes = reduced.indices.filter { reduced[$0] }
    return gradient.sum(axes: axes, keepingDimensions: true).reshaped(shape)
}

/// Σ over the rows of `tensor` viewed as a rows×columns matrix (a BLAS gemv with a vector of ones).
func sumsOfColumns<Scalar>(_ tensor: Tensor<Scalar>, rows: Int, columns: Int) -> Tensor<Scalar> {
    let ones = [Scalar](repeating: 1, count: rows)
    return Tensor(shape: [columns]) { out in
        guard columns > 0 else { return }
        if rows == 0 { out.initialize(repeating: 0); return }
        tensor.withUnsafeBufferPointer { a in ones.withUnsafeBufferPointer { x in
            Scalar.gemv(transpose: true, m: rows, n: columns, alpha: 1, a: a.baseAddress!, lda: columns,
                        x: x.baseAddress!, beta: 0, y: out.baseAddress!)
        } }
    }
}

/// Σ over the columns of `tensor` viewed as a rows×columns matrix (a BLAS gemv with a vector of ones).
func sumsOfRows<Scalar>(_ tensor: Tensor<Scalar>, rows: Int, columns: Int) -> Tensor<Scalar> {
    let ones = [Scalar](repeating: 1, count: columns)
    return Tensor(shape: [rows]) { out in
        guard rows > 0 else { return }
        if columns == 0 { out.initialize(repeating: 0); return }
        tensor.withUnsafeBufferPointer { a in ones.withUnsafeBufferPointer { x in
            Scalar.gemv(transpose: false, m: rows, n: columns, alpha: 1, a: a.baseAddress!, lda: columns,
                        x: x.baseAddress!, beta: 0, y: out.baseAddress!)
        } }
    }
}

/// `a op b` with NumPy broadcasting, with a fast path when one operand's shape is a suffix of the other's
/// (a per-channel vector against NHWC activations): the long operand is walked row by row against the short
/// one, without the general strided loop.
@inline(__always)
func broadcastingApply<Scalar>(_ a: Tensor<Scalar>, _ b: Tensor<Scalar>,
                               _ op: (Scalar, Scalar) -> Scalar) -> Tensor<Scalar> {
    func isSuffix(_ short: [Int], of long: [Int]) -> Bool {
        var s = short[...]
        while s.first == 1 { s = s.dropFirst() }
        return s.count <= long.count && Array(long.suffix(s.count)) == Array(s) && s.reduce(1, *) > 1
    }
    if a.shape != b.shape {
        if isSuffix(b.shape, of: a.shape) && a.rank >= b.rank {
            let n = b.scalarCount, rows = a.scalarCount / n
            return Tensor(shape: a.shape) { out in
                a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in
                    // Row pointers: an overflow-checked `base + j` index keeps the loop scalar.
                    guard let bases = rowBases(out, x, y) else { return }
                    let (o, xp, yp) = bases
                    for r in 0..<rows {
                        let (orow, xrow) = (o + r * n, xp + r * n)
                        for j in 0..<n { orow[j] = op(xrow[j], yp[j]) }
                    }
                } }
            }
        }
        if isSuffix(a.shape, of: b.shape) && b.rank >= a.rank {
            let n = a.scalarCount, rows = b.scalarCount / n
            return Tensor(shape: b.shape) { out in
                a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in
                    guard let bases = rowBases(out, x, y) else { return }
                    let (o, xp, yp) = bases
                    for r in 0..<rows {
                        let (orow, yrow) = (o + r * n, yp + r * n)
                        for j in 0..<n { orow[j] = op(xp[j], yrow[j]) }
                    }
                } }
            }
        }
    }
    return a.zipMap(b, op)
}

/// The base addresses of three buffers, or nil when any is empty.
@inline(__always)
private func rowBases<Scalar>(_ out: UnsafeMutableBufferPointer<Scalar>, _ x: UnsafeBufferPointer<Scalar>,
                              _ y: UnsafeBufferPointer<Scalar>)
    -> (UnsafeMutablePointer<Scalar>, UnsafePointer<Scalar>, UnsafePointer<Scalar>)? {
    guard let o = out.baseAddress, let xp = x.baseAddress, let yp = y.baseAddress, !out.isEmpty else { return nil }
    return (o, xp, yp)
}

/// Repeats `tensor` along broadcast axes to `shape` (NumPy rules); returns `tensor` when the shapes agree.
///
/// - Precondition: `tensor.shape` broadcasts to `shape`.
func broadcast<Scalar>(_ tensor: Tensor<Scalar>, to shape: [Int]) -> Tensor<Scalar> {
    if tensor.shape == shape { return tensor }
    let extra = shape.count - tensor.rank
    precondition(extra >= 0 && tensor.shape.indices.allSatisfy { tensor.shape[$0] == shape[extra + $0] || tensor.shape[$0] == 1 },
                 "broadcast: shape \(tensor.shape) does not broadcast to \(shape)")
    if tensor.scalarCount == 1 { return Tensor(repeating: tensor.withUnsafeBufferPointer { $0[0] }, shape: shape) }
    let padded = [Int](repeating: 1, count: extra) + tensor.shape
    let own = Tensor<Scalar>.strides(for: padded)
    let strides = shape.indices.map { padded[$0] == shape[$0] ? own[$0] : 0 }
    return Tensor(shape: shape) { out in
        guard out.count > 0 else { return }
        tensor.withUnsafeBufferPointer { source in
            let src = source.baseAddress!, dst = out.baseAddress!
            let rank = shape.count
            let inner = shape[rank - 1], innerStride = strides[rank - 1]
            var index = [Int](repeating: 0, count: rank - 1)
            var base = 0, written = 0
            for _ in 0..<(out.count / inner) {
                if innerStride == 0 {
                    (dst + written).update(repeating: src[base], count: inner)
                } else {
                    (dst + written).update(from: src + base, count: inner)
                }
                written += inner
                var k = rank - 2
                while k >= 0 {
                    index[k] += 1
                    base += strides[k]
                    if index[k] < shape[k] { break }
                    base -= strides[k] * shape[k]
                    index[k] = 0
                    k -= 1
                }
            }
        }
    }
}

extension Variable {
    /// Elementwise sum with broadcasting: ∂/∂a = Σ_broadcast g, ∂/∂b = Σ_broadcast g.
    public static func + (lhs: Variable, rhs: Variable) -> Variable {
        let (ls, rs) = (lhs.shape, rhs.shape)
        let (needL, needR) = (lhs.isRecorded, rhs.isRecorded)
        return recordOperation(broadcastingApply(lhs.value, rhs.value, +), inputs: [lhs, rhs]) { g in
            [needL ? reduceToShape(g, ls) : nil, needR ? reduceToShape(g, rs) : nil]
        }
    }

    /// Elementwise difference with broadcasting: ∂/∂a = Σ_broadcast g, ∂/∂b = −Σ_broadcast g.
    public static func - (lhs: Variable, rhs: Variable) -> Variable {
        let (ls, rs) = (lhs.shape, rhs.shape)
        let (needL, needR) = (lhs.isRecorded, rhs.isRecorded)
        return recordOperation(broadcastingApply(lhs.value, rhs.value, -), inputs: [lhs, rhs]) { g in
            [needL ? reduceToShape(g, ls) : nil, needR ? -reduceToShape(g, rs) : nil]
        }
    }

    /// Elementwise (Hadamard) product with broadcasting: ∂/∂a = Σ_broadcast g·b, ∂/∂b = Σ_broadcast g·a.
    public static func * (lhs: Variable, rhs: Variable) -> Variable {
        let (a, b) = (lhs.value, rhs.value)
        let (needL, needR) = (lhs.isRecorded, rhs.isRecorded)
        return recordOperation(broadcastingApply(a, b, *), inputs: [lhs, rhs]) { g in
            [needL ? reduceToShape(broadcastingApply(g, b, *), a.shape) : nil,
             needR ? reduceToShape(broadcastingApply(g, a, *), b.shape) : nil]
        }
    }

    /// Elementwise quotient with broadcasting: ∂/∂a = Σ_broadcast g/b, ∂/∂b = −Σ_broadcast g·a/b².
    public static func / (lhs: Variable, rhs: Variable) -> Variable {
        let (a, b) = (lhs.value, rhs.value)
        let (needL, needR) = (lhs.isRecorded, rhs.isRecorded)
        let y = broadcastingApply(a, b, /)
        return recordOperation(y, inputs: [lhs, rhs]) { g in
            let gOverB = broadcastingApply(g, b, /)
            return [needL ? reduceToShape(gOverB, a.shape) : nil,
                    needR ? reduceToShape(-(gOverB * y), b.shape) : nil]
        }
    }

    /// Negation: ∂/∂x = −g.
    public static prefix func - (operand: Variable) -> Variable {
        recordOperation(-operand.value, inputs: [operand]) { g in [-g] }
    }

    /// Adds a scalar to every element: ∂/∂x = g.
    public static func + (lhs: Variable, rhs: Scalar) -> Variable {
        recordOperation(lhs.value + rhs, inputs: [lhs]) { g in [g] }
    }

    /// Adds a scalar to every element: ∂/∂x = g.
    public static func + (lhs: Scalar, rhs: Variable) -> Variable { rhs + lhs }

    /// Subtracts a scalar from every element: ∂/∂x = g.
    public static func - (lhs: Variable, rhs: Scalar) -> Variable {
        recordOperation(lhs.value - rhs, inputs: [lhs]) { g in [g] }
    }

    /// Subtracts every element from a scalar: ∂/∂x = −g.
    public static func - (lhs: Scalar, rhs: Variable) -> Variable {
        recordOperation(lhs - rhs.value, inputs: [rhs]) { g in [-g] }
    }

    /// Multiplies every element by a scalar: ∂/∂x = s·g.
    public static func * (lhs: Variable, rhs: Scalar) -> Variable {
        recordOperation(lhs.value * rhs, inputs: [lhs]) { g in [g * rhs] }
    }

    /// Multiplies every element by a scalar: ∂/∂x = s·g.
    public static func * (lhs: Scalar, rhs: Variable) -> Variable { rhs * lhs }

    /// Divides every element by a scalar: ∂/∂x = g/s.
    public static func / (lhs: Variable, rhs: Scalar) -> Variable {
        recordOperation(lhs.value / rhs, inputs: [lhs]) { g in [g / rhs] }
    }

    /// Divides a scalar by every element, y = s/x: ∂/∂x = −g·y/x.
    public static func / (lhs: Scalar, rhs: Variable) -> Variable {
        let x = rhs.value
        let y = lhs / x
        return recordOperation(y, inputs: [rhs]) { g in [g.zipMap(y.zipMap(x, /)) { -$0 * $1 }] }
    }

    /// Elementwise exponential, y = eˣ: ∂/∂x = g·y.
    public func exp() -> Variable {
        let y = value.exp()
        return recordOperation(y, inputs: [self]) { g in [g * y] }
    }

    /// Elementwise natural logarithm: ∂/∂x = g/x.
    public func log() -> Variable {
        let x = value
        return recordOperation(x.log(), inputs: [self]) { g in [g / x] }
    }

    /// Elementwise square root, y = √x: ∂/∂x = g/(2y).
    public func sqrt() -> Variable {
        let y = value.sqrt()
        return recordOperation(y, inputs: [self]) { g in [g.zipMap(y) { $0 / (2 * $1) }] }
    }

    /// Elementwise square, y = x²: ∂/∂x = 2x·g.
    public func squared() -> Variable {
        let x = value
        return recordOperation(x.squared(), inputs: [self]) { g in [g.zipMap(x) { 2 * $0 * $1 }] }
    }

    /// Elementwise power with a constant exponent, y = xᵖ: ∂/∂x = g·p·xᵖ⁻¹.
    ///
    /// An integral exponent is applied by repeated multiplication, so negative bases are allowed; a
    /// non-integral exponent needs x ≥ 0 (NaN otherwise, as `Tensor.pow`).
    public func pow(_ exponent: Scalar) -> Variable {
        let x = value
        let power: (Scalar, Scalar) -> Scalar
        if exponent == exponent.rounded(), Swift.abs(exponent) < Scalar(1 << 30) {
            power = { Scalar.pow($0, Int($1)) }
        } else {
            power = { Scalar.pow($0, $1) }
        }
        return recordOperation(x.map { power($0, exponent) }, inputs: [self]) { g in
            [g.zipMap(x) { $0 * exponent * power($1, exponent - 1) }]
        }
    }

    /// Elementwise absolute value: ∂/∂x = g·sign(x) (0 at x = 0).
    public func abs() -> Variable {
        let x = value
        return recordOperation(x.abs(), inputs: [self]) { g in [g.zipMap(x) { $1 > 0 ? $0 : ($1 < 0 ? -$0 : 0) }] }
    }
}
