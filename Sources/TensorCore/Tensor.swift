/// Heap storage of a tensor's scalars. Shared between tensor values until one of them mutates.
@usableFromInline
final class TensorStorage<Scalar: TensorScalar>: @unchecked Sendable {
    @usableFromInline let count: Int
    @usableFromInline let pointer: UnsafeMutablePointer<Scalar>

    @usableFromInline
    init(uninitializedCount count: Int) {
        self.count = count
        // 64-byte alignment keeps SIMD loads and BLAS panels on cache-line boundaries.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Scalar>.stride,
                                                   alignment: 64)
        self.pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
    }

    @usableFromInline
    convenience init(repeating value: Scalar, count: Int) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    @usableFromInline
    func copy() -> TensorStorage {
        let new = TensorStorage(uninitializedCount: count)
        new.pointer.update(from: pointer, count: count)
        return new
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// A dense, row-major (last index fastest) n-dimensional array of `Float` or `Double`.
///
/// `Tensor` is a value type over copy-on-write storage: copies are free until one of them is mutated.
/// Shapes are `[Int]`; a rank-0 tensor (shape `[]`) holds one scalar. Zero-size dimensions are allowed.
public struct Tensor<Scalar: TensorScalar>: Sendable {
    /// The size of each dimension.
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage<Scalar>

    /// Wraps existing storage; `shape` must describe exactly `storage.count` scalars.
    @usableFromInline
    init(shape: [Int], storage: TensorStorage<Scalar>) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == storage.count,
                     "Tensor: shape \(shape) needs \(shape.reduce(1, *)) scalars, storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor whose scalars are left for `initializer` to write; every scalar must be written.
    @inlinable
    public init(shape: [Int], unsafeUninitialized initializer: (UnsafeMutableBufferPointer<Scalar>) throws -> Void) rethrows {
        let storage = TensorStorage<Scalar>(uninitializedCount: shape.reduce(1, *))
        try initializer(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
        self.init(shape: shape, storage: storage)
    }

    /// A tensor of the given shape with every scalar equal to `value`.
    public init(repeating value: Scalar, shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        self.init(shape: shape, storage: TensorStorage(repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    public init(shape: [Int], scalars: [Scalar]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "Tensor(shape:scalars:): shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        let storage = TensorStorage<Scalar>(uninitializedCount: scalars.count)
        scalars.withUnsafeBufferPointer { storage.pointer.initialize(from: $0.baseAddress!, count: scalars.count) }
        self.init(shape: shape, storage: storage)
    }

    /// A one-dimensional tensor holding `scalars`.
    public init(_ scalars: [Scalar]) { self.init(shape: [scalars.count], scalars: scalars) }

    /// A rank-0 tensor holding `scalar`.
    public init(scalar: Scalar) { self.init(shape: [], scalars: [scalar]) }

    /// The number of dimensions.
    @inlinable public var rank: Int { shape.count }
    /// The number of scalars (the product of the shape).
    @inlinable public var scalarCount: Int { storage.count }
    /// The scalars in row-major order.
    public var scalars: [Scalar] { Array(UnsafeBufferPointer(start: storage.pointer, count: storage.count)) }
    /// The single scalar of a tensor with one element.
    public var scalar: Scalar {
        precondition(scalarCount == 1, "Tensor.scalar: tensor of shape \(shape) has \(scalarCount) scalars, not 1")
        return storage.pointer[0]
    }

    /// Row-major strides, in elements.
    public var strides: [Int] { Tensor.strides(for: shape) }

    /// Row-major strides of a shape, in elements.
    public static func strides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Reads the scalars without copying.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Writes the scalars in place, copying the storage first if another tensor shares it.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// The linear (row-major) offset of a multi-index.
    @inlinable
    func offset(of indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "Tensor: \(indices.count) indices for shape \(shape)")
        var offset = 0
        for axis in 0..<shape.count {
            precondition(indices[axis] >= 0 && indices[axis] < shape[axis],
                         "Tensor: index \(indices) out of range for shape \(shape)")
            offset = offset * shape[axis] + indices[axis]
        }
        return offset
    }

    /// The scalar at a multi-index.
    @inlinable
    public subscript(_ indices: Int...) -> Scalar {
        get { storage.pointer[offset(of: indices)] }
        set {
            let offset = offset(of: indices)
            withUnsafeMutableBufferPointer { $0[offset] = newValue }
        }
    }

    /// The scalar at a multi-index given as an array.
    @inlinable
    public subscript(indices indices: [Int]) -> Scalar {
        get { storage.pointer[offset(of: indices)] }
        set {
            let offset = offset(of: indices)
            withUnsafeMutableBufferPointer { $0[offset] = newValue }
        }
    }

    /// Converts to another precision (the same precision shares the storage). Float ↔ Double runs as a concrete
    /// loop: the generic `Other(src[i])` is a dynamic conversion per element wherever this is not specialized.
    public func converted<Other: TensorScalar>(to: Other.Type = Other.self) -> Tensor<Other> {
        if Other.self == Scalar.self { return unsafeBitCast(self, to: Tensor<Other>.self) }
        return Tensor<Other>(shape: shape) { out in
            withUnsafeBufferPointer { src in
                guard src.count > 0 else { return }
                let (source, target) = (UnsafeRawPointer(src.baseAddress!), UnsafeMutableRawPointer(out.baseAddress!))
                if Scalar.self == Float.self && Other.self == Double.self {
                    let f = source.assumingMemoryBound(to: Float.self), d = target.assumingMemoryBound(to: Double.self)
                    for i in 0..<src.count { d[i] = Double(f[i]) }
                } else if Scalar.self == Double.self && Other.self == Float.self {
                    let d = source.assumingMemoryBound(to: Double.self), f = target.assumingMemoryBound(to: Float.self)
                    for i in 0..<src.count { f[i] = Float(d[i]) }
                } else {
                    for i in 0..<src.count { out[i] = Other(src[i]) }
                }
            }
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(Scalar.dtypeName)>\(shape)[\(preview)\(scalarCount > 8 ? ", …" : "")]"
    }
}

extension Tensor: Equatable {
    /// Exact equality of shapes and scalars.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return true }
        return lhs.withUnsafeBufferPointer { a in rhs.withUnsafeBufferPointer { b in a.elementsEqual(b) } }
    }
}
