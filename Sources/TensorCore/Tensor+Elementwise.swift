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
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func zipMap(_ other: Tensor, _ op: (Scalar, Scalar) -> Scalar) -> Tensor { zipKernel(other, op) }

    /// Applies `transform` to every scalar.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func map(_ transform: (Scalar) -> Scalar) -> Tensor { mapKernel(transform) }

    // The built-in operations below switch once on an operation code inside a function pre-specialized for
    // Float and Double, so each loop is concrete and vectorizable even when the caller is generic code in
    // another module (which would otherwise run the unspecialized generic loop, 10–50× slower).

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func combined(_ other: Tensor, _ operation: BinaryOperation) -> Tensor {
        switch operation {
        case .add: return zipKernel(other) { $0 + $1 }
        case .subtract: return zipKernel(other) { $0 - $1 }
        case .multiply: return zipKernel(other) { $0 * $1 }
        case .divide: return zipKernel(other) { $0 / $1 }
        case .maximum: return zipKernel(other) { Swift.max($0, $1) }
        case .minimum: return zipKernel(other) { Swift.min($0, $1) }
        }
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func applying(_ operation: UnaryOperation) -> Tensor {
        switch operation {
        case .negate: return mapKernel { -$0 }
        case .exp: return mapKernel { .exp($0) }
        case .log: return mapKernel { .log($0) }
        case .sqrt: return mapKernel { $0.squareRoot() }
        case .abs: return mapKernel { Swift.abs($0) }
        case .square: return mapKernel { $0 * $0 }
        case .sin: return mapKernel { .sin($0) }
        case .cos: return mapKernel { .cos($0) }
        case .tanh: return mapKernel { .tanh($0) }
        case .sigmoid: return mapKernel { 1 / (1 + .exp(-$0)) }
        case .relu: return mapKernel { Swift.max($0, 0) }
        }
    }

    @inline(__always)
    func mapKernel(_ transform: (Scalar) -> Scalar) -> Tensor {
        Tensor(shape: shape) { out in
            withUnsafeBufferPointer { a in for i in 0..<out.count { out[i] = transform(a[i]) } }
        }
    }

    /// Broadcasting elementwise kernel: same-shape and scalar operands run one flat loop. Otherwise axes are merged
    /// where both operands stay contiguous (or both broadcast), and the output is walked row by row with pointer
    /// increments along the second-to-last axis and unit-stride inner loops where an operand is contiguous or
    /// constant along the last axis.
    @inline(__always)
    func zipKernel(_ other: Tensor, _ op: (Scalar, Scalar) -> Scalar) -> Tensor {
        let outShape = shape == other.shape ? shape : Tensor.broadcastShape(shape, other.shape)
        return Tensor(shape: outShape) { out in
            guard out.count > 0 else { return }
            withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!, po = out.baseAddress!
                if a.count == out.count && b.count == out.count {
                    for i in 0..<out.count { po[i] = op(pa[i], pb[i]) }
                    return
                }
                if b.count == 1 && a.count == out.count {
                    let s = pb[0]
                    for i in 0..<out.count { po[i] = op(pa[i], s) }
                    return
                }
                if a.count == 1 && b.count == out.count {
                    let s = pa[0]
                    for i in 0..<out.count { po[i] = op(s, pb[i]) }
                    return
                }
                let (dims, sa, sb) = Tensor.mergedBroadcastAxes(outShape, broadcastStrides(to: outShape),
                                                                other.broadcastStrides(to: outShape))
                let n = dims.count
                let inner = dims[n - 1], ia = sa[n - 1], ib = sb[n - 1]
                let rows = n >= 2 ? dims[n - 2] : 1
                let rowA = n >= 2 ? sa[n - 2] : 0, rowB = n >= 2 ? sb[n - 2] : 0
                let outerDims = Array(dims.prefix(Swift.max(0, n - 2)))
                var index = [Int](repeating: 0, count: outerDims.count)
                var o = 0
                for _ in 0..<outerDims.reduce(1, *) {
                    var ra = pa, rb = pb
                    for k in 0..<index.count { ra += index[k] * sa[k]; rb += index[k] * sb[k] }
                    for _ in 0..<rows {
                        let ro = po + o
                        switch (ia, ib) {
                        case (1, 1): for j in 0..<inner { ro[j] = op(ra[j], rb[j]) }
                        case (1, 0): let s = rb[0]; for j in 0..<inner { ro[j] = op(ra[j], s) }
                        case (0, 1): let s = ra[0]; for j in 0..<inner { ro[j] = op(s, rb[j]) }
                        default: for j in 0..<inner { ro[j] = op(ra[j * ia], rb[j * ib]) }
                        }
                        o += inner
                        ra += rowA
                        rb += rowB
                    }
                    var k = index.count - 1
                    while k >= 0 {
                        index[k] += 1
                        if index[k] < outerDims[k] { break }
                        index[k] = 0
                        k -= 1
                    }
                }
            } }
        }
    }

    /// Merges adjacent output axes along which both operands are either contiguous or broadcast.
    static func mergedBroadcastAxes(_ shape: [Int], _ sa: [Int], _ sb: [Int]) -> ([Int], [Int], [Int]) {
        var dims: [Int] = [], ma: [Int] = [], mb: [Int] = []
        for axis in shape.indices where shape[axis] != 1 {
            if let last = dims.indices.last,
               ma[last] == sa[axis] * shape[axis], mb[last] == sb[axis] * shape[axis] {
                dims[last] *= shape[axis]
                ma[last] = sa[axis]
                mb[last] = sb[axis]
            } else {
                dims.append(shape[axis]); ma.append(sa[axis]); mb.append(sb[axis])
            }
        }
        if dims.isEmpty { return ([1], [0], [0]) }
        return (dims, ma, mb)
    }

    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.combined(rhs, .add) }
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.combined(rhs, .subtract) }
    /// Elementwise (Hadamard) product, broadcasting.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.combined(rhs, .multiply) }
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.combined(rhs, .divide) }
    public static func + (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.combined(Tensor(scalar: rhs), .add) }
    public static func - (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.combined(Tensor(scalar: rhs), .subtract) }
    public static func * (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.combined(Tensor(scalar: rhs), .multiply) }
    public static func / (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.combined(Tensor(scalar: rhs), .divide) }
    public static func + (lhs: Scalar, rhs: Tensor) -> Tensor { Tensor(scalar: lhs).combined(rhs, .add) }
    public static func - (lhs: Scalar, rhs: Tensor) -> Tensor { Tensor(scalar: lhs).combined(rhs, .subtract) }
    public static func * (lhs: Scalar, rhs: Tensor) -> Tensor { Tensor(scalar: lhs).combined(rhs, .multiply) }
    public static func / (lhs: Scalar, rhs: Tensor) -> Tensor { Tensor(scalar: lhs).combined(rhs, .divide) }
    public static prefix func - (operand: Tensor) -> Tensor { operand.applying(.negate) }

    /// In-place `lhs += rhs`; `rhs` must broadcast to `lhs`'s shape.
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, .add) }
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, .subtract) }
    public static func *= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, .multiply) }
    public static func /= (lhs: inout Tensor, rhs: Tensor) { lhs.update(with: rhs, .divide) }
    public static func *= (lhs: inout Tensor, rhs: Scalar) { lhs.update(with: Tensor(scalar: rhs), .multiply) }

    /// Updates in place when the storage is not shared and `rhs` already has this shape; otherwise combines.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    mutating func update(with rhs: Tensor, _ operation: BinaryOperation) {
        precondition(Tensor.broadcastShape(shape, rhs.shape) == shape,
                     "in-place update: \(rhs.shape) does not broadcast to \(shape)")
        guard rhs.shape == shape || rhs.scalarCount == 1, isKnownUniquelyReferenced(&storage), rhs.storage !== storage else {
            self = combined(rhs, operation)
            return
        }
        let p = storage.pointer, count = scalarCount
        rhs.withUnsafeBufferPointer { b in
            let q = b.baseAddress!
            func run(_ op: (Scalar, Scalar) -> Scalar) {
                if b.count == 1 { let s = q[0]; for i in 0..<count { p[i] = op(p[i], s) } }
                else { for i in 0..<count { p[i] = op(p[i], q[i]) } }
            }
            switch operation {
            case .add: run { $0 + $1 }
            case .subtract: run { $0 - $1 }
            case .multiply: run { $0 * $1 }
            case .divide: run { $0 / $1 }
            case .maximum: run { Swift.max($0, $1) }
            case .minimum: run { Swift.min($0, $1) }
            }
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

    public func exp() -> Tensor { applying(.exp) }
    public func log() -> Tensor { applying(.log) }
    public func sqrt() -> Tensor { applying(.sqrt) }
    public func abs() -> Tensor { applying(.abs) }
    public func squared() -> Tensor { applying(.square) }
    public func sin() -> Tensor { applying(.sin) }
    public func cos() -> Tensor { applying(.cos) }
    public func tanh() -> Tensor { applying(.tanh) }
    /// 1 / (1 + e^{−x}).
    public func sigmoid() -> Tensor { applying(.sigmoid) }
    /// max(x, 0).
    public func relu() -> Tensor { applying(.relu) }
    /// Each scalar raised to `exponent`.
    public func pow(_ exponent: Scalar) -> Tensor { map { .pow($0, exponent) } }
    /// Each scalar limited to [low, high].
    public func clamped(to low: Scalar, _ high: Scalar) -> Tensor { map { Swift.min(Swift.max($0, low), high) } }
    /// Elementwise maximum, broadcasting.
    public func maximum(_ other: Tensor) -> Tensor { combined(other, .maximum) }
    /// Elementwise minimum, broadcasting.
    public func minimum(_ other: Tensor) -> Tensor { combined(other, .minimum) }

    /// True when every scalar is finite (no NaN, no infinity).
    public var isFinite: Bool { withUnsafeBufferPointer { $0.allSatisfy { $0.isFinite } } }
}

/// Binary operations with dedicated specialized loops (see `Tensor.combined`).
enum BinaryOperation: Sendable { case add, subtract, multiply, divide, maximum, minimum }

/// Unary operations with dedicated specialized loops (see `Tensor.applying`).
enum UnaryOperation: Sendable { case negate, exp, log, sqrt, abs, square, sin, cos, tanh, sigmoid, relu }
