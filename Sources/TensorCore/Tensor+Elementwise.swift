import RealModule

extension Tensor {
    /// The shape two shapes broadcast to (NumPy rules: align on the right; sizes equal or one of them 1).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let n = Swift.max(a.count, b.count)
        let pa = [Int](repeating: 1, count: n - a.count) + a
        let pb = [Int](repeating: 1, count: n - b.count) + b
        return (0..<n).map { i in
            precondition(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1,
                         "broadcast: shapes \(a) and \(b) are incompatible at dimension \(i)")
            return pa[i] == 1 ? pb[i] : pa[i]
        }
    }

    /// Strides (in elements) that read this tensor as if it had shape `target` (0 on broadcast axes).
    func broadcastStrides(to target: [Int]) -> [Int] { Tensor.broadcastStrides(of: shape, to: target) }

    /// Strides (in elements) that read a row-major `shape` as if it had shape `target`.
    static func broadcastStrides(of shape: [Int], to target: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: target.count - shape.count) + shape
        let own = Tensor.strides(for: padded)
        return (0..<target.count).map { padded[$0] == target[$0] ? own[$0] : 0 }
    }

    /// Applies `op` elementwise after broadcasting both operands to a common shape.
    @inlinable
    public func zipMap(_ other: Tensor, _ op: (Scalar, Scalar) -> Scalar) -> Tensor {
        if shape == other.shape {
            return Tensor(shape: shape) { out in
                withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in
                    for i in 0..<out.count { out[i] = op(a[i], b[i]) }
                } }
            }
        }
        if other.scalarCount == 1 && other.rank <= rank {
            let s = other.storage.pointer[0]
            return map { op($0, s) }.reshaped(Tensor.broadcastShape(shape, other.shape))
        }
        if scalarCount == 1 && rank <= other.rank {
            let s = storage.pointer[0]
            return other.map { op(s, $0) }.reshaped(Tensor.broadcastShape(shape, other.shape))
        }
        return broadcastingZipMap(other, op)
    }

    @usableFromInline
    func broadcastingZipMap(_ other: Tensor, _ op: (Scalar, Scalar) -> Scalar) -> Tensor {
        let outShape = Tensor.broadcastShape(shape, other.shape)
        let n = outShape.count
        let sa = broadcastStrides(to: outShape), sb = other.broadcastStrides(to: outShape)
        let inner = outShape.last ?? 1
        let ia = sa.last ?? 0, ib = sb.last ?? 0
        let outerShape = Array(outShape.dropLast())
        return Tensor(shape: outShape) { out in
            guard out.count > 0 else { return }
            withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in
                var index = [Int](repeating: 0, count: Swift.max(0, n - 1))
                var o = 0
                for _ in 0..<outerShape.reduce(1, *) {
                    var offA = 0, offB = 0
                    for k in 0..<index.count { offA += index[k] * sa[k]; offB += index[k] * sb[k] }
                    for j in 0..<inner { out[o + j] = op(a[offA + j * ia], b[offB + j * ib]) }
                    o += inner
                    var k = index.count - 1
                    while k >= 0 {
                        index[k] += 1
                        if index[k] < outerShape[k] { break }
                        index[k] = 0
                        k -= 1
                    }
                }
            } }
        }
    }

    /// Applies `transform` to every scalar.
    @inlinable
    public func map(_ transform: (Scalar) -> Scalar) -> Tensor {
        Tensor(shape: shape) { out in
            withUnsafeBufferPointer { a in for i in 0..<out.count { out[i] = transform(a[i]) } }
        }
    }

    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, +) }
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, -) }
    /// Elementwise (Hadamard) product, broadcasting.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, *) }
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, /) }
    public static func + (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.map { $0 + rhs } }
    public static func - (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.map { $0 - rhs } }
    public static func * (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.map { $0 * rhs } }
    public static func / (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.map { $0 / rhs } }
    public static func + (lhs: Scalar, rhs: Tensor) -> Tensor { rhs.map { lhs + $0 } }
    public static func - (lhs: Scalar, rhs: Tensor) -> Tensor { rhs.map { lhs - $0 } }
    public static func * (lhs: Scalar, rhs: Tensor) -> Tensor { rhs.map { lhs * $0 } }
    public static func / (lhs: Scalar, rhs: Tensor) -> Tensor { rhs.map { lhs / $0 } }
    public static prefix func - (operand: Tensor) -> Tensor { operand.map { -$0 } }

    /// In-place `lhs += rhs`; `rhs` must broadcast to `lhs`'s shape.
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, +) }
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, -) }
    public static func *= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, *) }
    public static func /= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, /) }
    public static func *= (lhs: inout Tensor, rhs: Scalar) { lhs.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= rhs } } }

    @inlinable
    mutating func update(with rhs: Tensor, _ op: (Scalar, Scalar) -> Scalar) {
        if rhs.shape == shape {
            rhs.withUnsafeBufferPointer { b in
                withUnsafeMutableBufferPointer { a in for i in 0..<a.count { a[i] = op(a[i], b[i]) } }
            }
        } else {
            precondition(Tensor.broadcastShape(shape, rhs.shape) == shape,
                         "in-place update: \(rhs.shape) does not broadcast to \(shape)")
            self = zipMap(rhs, op)
        }
    }

    /// `self += alpha * x` through BLAS axpy (shapes must match).
    public mutating func addScaled(_ x: Tensor, by alpha: Scalar) {
        precondition(x.shape == shape, "addScaled: shapes \(shape) and \(x.shape) differ")
        x.withUnsafeBufferPointer { xs in
            withUnsafeMutableBufferPointer { ys in
                if ys.count > 0 { Scalar.axpy(n: ys.count, alpha: alpha, x: xs.baseAddress!, y: ys.baseAddress!) }
            }
        }
    }

    public func exp() -> Tensor { map { .exp($0) } }
    public func log() -> Tensor { map { .log($0) } }
    public func sqrt() -> Tensor { map { $0.squareRoot() } }
    public func abs() -> Tensor { map { Swift.abs($0) } }
    public func squared() -> Tensor { map { $0 * $0 } }
    public func sin() -> Tensor { map { .sin($0) } }
    public func cos() -> Tensor { map { .cos($0) } }
    public func tanh() -> Tensor { map { .tanh($0) } }
    /// 1 / (1 + e^{−x}).
    public func sigmoid() -> Tensor { map { 1 / (1 + .exp(-$0)) } }
    /// Swift.max(x, 0).
    public func relu() -> Tensor { map { Swift.max($0, 0) } }
    /// Each scalar raised to `exponent`.
    public func pow(_ exponent: Scalar) -> Tensor { map { .pow($0, exponent) } }
    /// Each scalar limited to [low, high].
    public func clamped(to low: Scalar, _ high: Scalar) -> Tensor { map { Swift.min(Swift.max($0, low), high) } }
    /// Elementwise maximum, broadcasting.
    public func maximum(_ other: Tensor) -> Tensor { zipMap(other) { Swift.max($0, $1) } }
    /// Elementwise minimum, broadcasting.
    public func minimum(_ other: Tensor) -> Tensor { zipMap(other) { Swift.min($0, $1) } }

    /// True when every scalar is finite (no NaN, no infinity).
    public var isFinite: Bool { withUnsafeBufferPointer { $0.allSatisfy { $0.isFinite } } }
}
