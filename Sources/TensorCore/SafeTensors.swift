#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  UTF-8 JSON object, possibly padded with trailing spaces:
//              {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
//               "__metadata__": {"key": "value", ...}}
//   [rest]     the byte buffer; BEGIN..<END is relative to its start; data is little-endian, row-major.
//
// Like the reference implementation, the reader insists that the tensors tile the buffer exactly:
// sorted by offset, each begins where the previous one ends and the last one ends at the end of the file.

// MARK: - Element types

/// An element type of a safetensors file, named as in the file's header.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    /// IEEE binary64.
    case float64 = "F64"
    /// IEEE binary32.
    case float32 = "F32"
    /// IEEE binary16 (1 sign, 5 exponent, 10 fraction bits).
    case float16 = "F16"
    /// bfloat16 (1 sign, 8 exponent, 7 fraction bits): the top half of a binary32.
    case bfloat16 = "BF16"
    /// Signed 64-bit integer.
    case int64 = "I64"
    /// Signed 32-bit integer.
    case int32 = "I32"
    /// Signed 16-bit integer.
    case int16 = "I16"
    /// Signed 8-bit integer.
    case int8 = "I8"
    /// Unsigned 64-bit integer.
    case uint64 = "U64"
    /// Unsigned 32-bit integer.
    case uint32 = "U32"
    /// Unsigned 16-bit integer.
    case uint16 = "U16"
    /// Unsigned 8-bit integer.
    case uint8 = "U8"
    /// Boolean, one byte per element (0 or 1).
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Whether the type holds floating-point numbers (F64, F32, F16, BF16).
    public var isFloatingPoint: Bool {
        switch self {
        case .float64, .float32, .float16, .bfloat16: return true
        default: return false
        }
    }

    /// The integers an integer type can hold, as `Int64` (U64 is limited to `Int64.max`); `nil` for
    /// floating-point types.
    var integerRange: ClosedRange<Int64>? {
        switch self {
        case .int64: return Int64.min...Int64.max
        case .int32: return Int64(Int32.min)...Int64(Int32.max)
        case .int16: return Int64(Int16.min)...Int64(Int16.max)
        case .int8: return Int64(Int8.min)...Int64(Int8.max)
        case .uint64: return 0...Int64.max
        case .uint32: return 0...Int64(UInt32.max)
        case .uint16: return 0...Int64(UInt16.max)
        case .uint8: return 0...Int64(UInt8.max)
        case .bool: return 0...1
        case .float64, .float32, .float16, .bfloat16: return nil
        }
    }
}

// MARK: - Element conversion (little-endian bytes <-> numbers)

/// A 16-bit binary floating-point format: IEEE binary16 or bfloat16.
///
/// Conversions go through `Double`, which holds every value of both formats and every `Float` exactly, so
/// encoding rounds once, to nearest with ties to even, as IEEE 754 prescribes.
struct HalfPrecisionFormat {
    let exponentBits: Int
    let fractionBits: Int

    static let float16 = HalfPrecisionFormat(exponentBits: 5, fractionBits: 10)
    static let bfloat16 = HalfPrecisionFormat(exponentBits: 8, fractionBits: 7)

    private var bias: Int { (1 << (exponentBits - 1)) - 1 }
    private var exponentField: Int { (1 << exponentBits) - 1 }

    /// The bits of the format's value nearest to `x` (ties to even); too large magnitudes become infinity.
    func encode(_ x: Double) -> UInt16 {
        let sign: UInt16 = x.sign == .minus ? 0x8000 : 0
        let infinity = UInt16(exponentField << fractionBits)
        if x.isNaN { return sign | infinity | UInt16(1 << (fractionBits - 1)) }
        let magnitude = x.magnitude
        if magnitude.isInfinite { return sign | infinity }
        if magnitude == 0 { return sign }
        // Value = significand × 2^quantum with an integer significand below 2^(fractionBits + 1).
        var quantum = max(Int(magnitude.exponent), 1 - bias) - fractionBits
        // Scaling by a power of two is exact, so the rounding below is the only one.
        var significand = (magnitude * Double(sign: .plus, exponent: -quantum, significand: 1))
            .rounded(.toNearestOrEven)
        if significand == Double(2 << fractionBits) {
            significand /= 2
            quantum += 1
        }
        let hidden = Double(1 << fractionBits)
        if significand < hidden { return sign | UInt16(significand) }  // subnormal
        let biasedExponent = quantum + fractionBits + bias
        if biasedExponent >= exponentField { return sign | infinity }
        return sign | UInt16(biasedExponent << fractionBits) | UInt16(significand - hidden)
    }

    /// The value of `bits`.
    func decode(_ bits: UInt16) -> Double {
        let exponent = Int(bits >> fractionBits) & exponentField
        let fraction = Int(bits) & ((1 << fractionBits) - 1)
        let magnitude: Double
        if exponent == exponentField {
            magnitude = fraction == 0 ? .infinity : .nan
        } else if exponent == 0 {
            magnitude = Double(fraction) * Double(sign: .plus, exponent: 1 - bias - fractionBits, significand: 1)
        } else {
            magnitude = Double((1 << fractionBits) | fraction)
                * Double(sign: .plus, exponent: exponent - bias - fractionBits, significand: 1)
        }
        return bits & 0x8000 != 0 ? -magnitude : magnitude
    }
}

@inline(__always)
private func loadLittleEndian<T: FixedWidthInteger>(_ source: UnsafeRawPointer, _ index: Int, as: T.Type) -> T {
    T(littleEndian: source.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self))
}

@inline(__always)
private func storeLittleEndian<T: FixedWidthInteger>(_ value: T, _ destination: UnsafeMutableRawPointer, _ index: Int) {
    destination.storeBytes(of: value.littleEndian, toByteOffset: index * MemoryLayout<T>.size, as: T.self)
}

extension SafeTensorsDType {
    /// Converts `count` little-endian elements at `source` to `S` (rounding to nearest where `S` is narrower).
    func decode<S: TensorScalar>(_ source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<S>) {
        switch self {
        case .float64:
            if S.self == Double.self {
                UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 8)
            } else {
                for i in 0..<count { out[i] = S(Double(bitPattern: loadLittleEndian(source, i, as: UInt64.self))) }
            }
        case .float32:
            if S.self == Float.self {
                UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)
            } else {
                for i in 0..<count { out[i] = S(Float(bitPattern: loadLittleEndian(source, i, as: UInt32.self))) }
            }
        case .float16:
            let format = HalfPrecisionFormat.float16
            for i in 0..<count { out[i] = S(format.decode(loadLittleEndian(source, i, as: UInt16.self))) }
        case .bfloat16:
            for i in 0..<count {
                out[i] = S(Float(bitPattern: UInt32(loadLittleEndian(source, i, as: UInt16.self)) << 16))
            }
        case .int64: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: Int64.self)) }
        case .int32: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: Int32.self)) }
        case .int16: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: Int16.self)) }
        case .int8: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: Int8.self)) }
        case .uint64: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: UInt64.self)) }
        case .uint32: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: UInt32.self)) }
        case .uint16: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: UInt16.self)) }
        case .uint8, .bool: for i in 0..<count { out[i] = S(loadLittleEndian(source, i, as: UInt8.self)) }
        }
    }

    /// Reads `count` integer elements at `source`; `nil` for a floating-point type. A U64 element above
    /// `Int64.max` is reported through `tooLarge` (its index) instead.
    func decodeIntegers(_ source: UnsafeRawPointer, count: Int) -> (values: [Int64], tooLarge: Int?)? {
        var tooLarge: Int?
        let values: [Int64]
        switch self {
        case .float64, .float32, .float16, .bfloat16: return nil
        case .int64: values = (0..<count).map { loadLittleEndian(source, $0, as: Int64.self) }
        case .int32: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: Int32.self)) }
        case .int16: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: Int16.self)) }
        case .int8: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: Int8.self)) }
        case .uint64:
            values = (0..<count).map { i in
                let value = loadLittleEndian(source, i, as: UInt64.self)
                if value > UInt64(Int64.max), tooLarge == nil { tooLarge = i }
                return Int64(truncatingIfNeeded: value)
            }
        case .uint32: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: UInt32.self)) }
        case .uint16: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: UInt16.self)) }
        case .uint8, .bool: values = (0..<count).map { Int64(loadLittleEndian(source, $0, as: UInt8.self)) }
        }
        return (values, tooLarge)
    }

    /// The little-endian bytes of `scalars` stored in this floating-point type (rounding to nearest even).
    func encode<S: TensorScalar>(_ scalars: UnsafeBufferPointer<S>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: scalars.count * byteSize) { buffer, initialized in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            switch self {
            case .float64:
                for i in scalars.indices { storeLittleEndian(Double(scalars[i]).bitPattern, out, i) }
            case .float32:
                for i in scalars.indices { storeLittleEndian(Float(scalars[i]).bitPattern, out, i) }
            case .float16, .bfloat16:
                let format: HalfPrecisionFormat = self == .float16 ? .float16 : .bfloat16
                for i in scalars.indices { storeLittleEndian(format.encode(Double(scalars[i])), out, i) }
            default:
                preconditionFailure("SafeTensorsDType.encode: \(rawValue) is not a floating-point type")
            }
            initialized = scalars.count * byteSize
        }
    }

    /// The little-endian bytes of `values` stored in this integer type; the values must lie in its range.
    func encode(integers values: [Int64]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: values.count * byteSize) { buffer, initialized in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            for (i, value) in values.enumerated() {
                switch self {
                case .int64, .uint64: storeLittleEndian(value, out, i)
                case .int32, .uint32: storeLittleEndian(UInt32(truncatingIfNeeded: value), out, i)
                case .int16, .uint16: storeLittleEndian(UInt16(truncatingIfNeeded: value), out, i)
                case .int8, .uint8, .bool: storeLittleEndian(UInt8(truncatingIfNeeded: value), out, i)
                case .float64, .float32, .float16, .bfloat16:
                    preconditionFailure("SafeTensorsDType.encode(integers:): \(rawValue) is not an integer type")
                }
            }
            initialized = values.count * byteSize
        }
    }
}

// MARK: - Memory-mapped file

/// A read-only memory map of a whole file, unmapped when the last reference goes away.
///
/// Pages are read from disk only when touched, so opening a large file costs almost nothing.
/// (As with any memory map, truncating the file while it is mapped makes later reads crash.)
final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer

    init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw TensorError.file(path: path, problem: "cannot open for reading (\(systemErrorMessage())); "
                                   + "check the path and the file's permissions")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw TensorError.file(path: path, problem: "cannot read the file's size (\(systemErrorMessage())); "
                                   + "check the path")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TensorError.file(path: path, problem: "is not a regular file; give the path of a file, not a folder")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw TensorError.file(path: path, problem: "cannot map the file into memory (\(systemErrorMessage())); "
                                   + "check that it is a regular, readable file")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

// MARK: - Reading

/// One tensor listed in a safetensors header.
public struct SafeTensorsEntry: Sendable, Equatable {
    /// The tensor's name (for example `layers.0.weight`).
    public let name: String
    /// The element type as stored.
    public let dtype: SafeTensorsDType
    /// The shape, row-major.
    public let shape: [Int]
    /// Bytes the tensor occupies in the file: `shape.product × dtype.byteSize`.
    public let byteCount: Int
    /// Where the bytes begin, relative to the start of the byte buffer.
    public let dataOffset: Int

    /// The number of elements (the product of the shape).
    public var scalarCount: Int { byteCount / dtype.byteSize }
}

/// A safetensors file opened for reading: header parsed and checked, tensor data read on demand.
///
/// The file is memory-mapped, so opening it reads only the header; each `tensor(_:as:)` or `integers(_:)`
/// call converts just that tensor's bytes. Values are stored little-endian in row-major order; any stored
/// element type converts to `Float` or `Double` (rounding to nearest), integer types also to `[Int64]`.
///
/// ```swift
/// let file = try SafeTensorsFile(contentsOf: "model.safetensors")
/// let weight = try file.tensor("fc.weight", as: Float.self)
/// ```
public struct SafeTensorsFile: Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The string-to-string `__metadata__` of the header (empty when absent).
    public let metadata: [String: String]
    /// Every tensor in the file, sorted by name.
    public let entries: [SafeTensorsEntry]

    private let file: MappedFile
    private let bufferStart: Int
    private let indexByName: [String: Int]

    /// Opens and validates a safetensors file.
    ///
    /// - Throws: `TensorError.file` naming the problem when the file cannot be read or is malformed: shorter
    ///   than 8 bytes, a header length past the end of the file, a header that is not a UTF-8 JSON object
    ///   starting with `{`, an
    ///   unknown dtype, a shape that is not a list of non-negative integers, a byte count that does not match
    ///   shape × dtype size, offsets that overlap, leave gaps, or run past the end, a duplicate tensor name, or
    ///   metadata values that are not strings.
    public init(contentsOf path: String) throws {
        func failure(_ problem: String) -> TensorError {
            TensorError.file(path: path, problem: problem + "; the file is damaged or is not a safetensors file "
                             + "(re-export it with a safetensors writer)")
        }
        let file = try MappedFile(path: path)
        let bytes = file.bytes
        if bytes.starts(with: [0x93] + Array("NUMPY".utf8)) {
            throw TensorError.file(path: path, problem: "is a NumPy .npy array, not a safetensors file; give a .safetensors file "
                                   + "(lowrank info and decompose read .npy)")
        }
        guard bytes.count >= 8 else {
            throw failure("only \(bytes.count) bytes long, but a safetensors file starts with an 8-byte header length")
        }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw failure("the header length \(headerLength) runs past the end of the file "
                          + "(\(bytes.count - 8) bytes follow the length field)")
        }
        let headerBytes = [UInt8](bytes[8..<(8 + Int(headerLength))])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw failure("the header must start with '{' right after the 8-byte length")
        }
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw failure("the header is not valid UTF-8")
        }
        let header: JSONValue
        do {
            header = try JSONParser.parse(headerBytes)
        } catch let error as JSONParser.SyntaxError {
            throw failure("the header is not valid JSON (at header byte \(error.offset): \(error.message))")
        }
        guard case let .object(members) = header else {
            throw failure("the header is JSON but not an object {\"name\": {...}, ...}")
        }

        let bufferStart = 8 + Int(headerLength)
        let bufferLength = bytes.count - bufferStart
        var metadata: [String: String] = [:]
        var entries: [SafeTensorsEntry] = []
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else { throw failure("the header names '\(name)' twice") }
            if name == "__metadata__" {
                if case .null = value { continue }  // the reference reader accepts null for "no metadata"
                guard case let .object(pairs) = value else {
                    throw failure("__metadata__ must be an object of string values")
                }
                for (key, item) in pairs {
                    guard case let .string(text) = item else {
                        throw failure("__metadata__ value for '\(key)' is \(item.kind), but metadata values must be "
                                      + "strings")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries.append(try Self.entry(name: name, value: value, failure: failure))
        }

        // The tensors must tile the buffer: sorted by offset, each starts where the previous one ended.
        var end = 0
        for entry in entries.sorted(by: { ($0.dataOffset, $0.byteCount) < ($1.dataOffset, $1.byteCount) }) {
            if entry.dataOffset < end {
                throw failure("tensor '\(entry.name)' begins at byte \(entry.dataOffset), inside the data of another "
                              + "tensor (overlapping data_offsets)")
            }
            if entry.dataOffset > end {
                throw failure("bytes \(end)..<\(entry.dataOffset) of the data buffer belong to no tensor "
                              + "(a gap before '\(entry.name)')")
            }
            end = entry.dataOffset + entry.byteCount
            if end > bufferLength {
                throw failure("tensor '\(entry.name)' ends at byte \(end), past the end of the data buffer "
                              + "(\(bufferLength) bytes): it is truncated")
            }
        }
        guard end == bufferLength else {
            throw failure("the last \(bufferLength - end) bytes of the data buffer belong to no tensor")
        }

        self.path = path
        self.file = file
        self.bufferStart = bufferStart
        self.metadata = metadata
        self.entries = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        self.indexByName = Dictionary(uniqueKeysWithValues: self.entries.enumerated().map { ($1.name, $0) })
    }

    /// Checks one header entry `{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}`.
    private static func entry(name: String, value: JSONValue, failure: (String) -> TensorError) throws
        -> SafeTensorsEntry
    {
        guard case let .object(fields) = value else {
            throw failure("entry '\(name)' is \(value.kind), not an object with dtype, shape and data_offsets")
        }
        let field = Dictionary(fields.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard case let .string(dtypeName)? = field["dtype"] else {
            throw failure("entry '\(name)' has no \"dtype\" string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw failure("tensor '\(name)' has unknown or unsupported dtype '\(dtypeName)' (supported: \(known))")
        }
        guard case let .array(shapeValues)? = field["shape"],
              let shape = shapeValues.nonNegativeIntegers() else {
            throw failure("tensor '\(name)': \"shape\" must be a list of non-negative integers, got "
                          + "\(field["shape"]?.kind ?? "nothing")")
        }
        guard case let .array(offsetValues)? = field["data_offsets"], offsetValues.count == 2,
              let offsets = offsetValues.nonNegativeIntegers() else {
            throw failure("tensor '\(name)': \"data_offsets\" must be a list of two non-negative integers [begin, end]")
        }
        guard offsets[0] <= offsets[1] else {
            throw failure("tensor '\(name)': data_offsets [\(offsets[0]), \(offsets[1])] end before they begin")
        }
        var byteCount = dtype.byteSize
        for dimension in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw failure("tensor '\(name)': shape \(shape) is impossibly large") }
            byteCount = product
        }
        guard offsets[1] - offsets[0] == byteCount else {
            throw failure("tensor '\(name)' of shape \(shape) and dtype \(dtype.rawValue) needs \(byteCount) bytes, "
                          + "but its data_offsets [\(offsets[0]), \(offsets[1])] span \(offsets[1] - offsets[0])")
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, byteCount: byteCount, dataOffset: offsets[0])
    }

    /// The header entry of the tensor called `name`.
    ///
    /// - Throws: `TensorError.file` when there is no such tensor; the message lists the names there are.
    public func entry(_ name: String) throws -> SafeTensorsEntry {
        guard let index = indexByName[name] else {
            let names = entries.prefix(20).map { "'\($0.name)'" }.joined(separator: ", ")
            let more = entries.count > 20 ? " and \(entries.count - 20) more" : ""
            throw TensorError.file(path: path, problem: "has no tensor named '\(name)'; it holds "
                                   + (entries.isEmpty ? "no tensors" : "\(names)\(more)"))
        }
        return entries[index]
    }

    /// The tensor called `name`, converted to `S` (rounding to nearest when `S` is narrower than the stored type).
    ///
    /// - Throws: `TensorError.file` when there is no such tensor.
    public func tensor<S: TensorScalar>(_ name: String, as: S.Type = S.self) throws -> Tensor<S> {
        let entry = try entry(name)
        return Tensor<S>(shape: entry.shape) { out in
            if out.isEmpty { return }
            entry.dtype.decode(dataStart(of: entry), count: out.count, into: out.baseAddress!)
        }
    }

    /// The integer tensor called `name`, as row-major `Int64` values (BOOL gives 0 and 1).
    ///
    /// - Throws: `TensorError.file` when there is no such tensor, when it holds floating-point values (read those
    ///   with `tensor(_:as:)`), or when a U64 value is above `Int64.max`.
    public func integers(_ name: String) throws -> [Int64] {
        let entry = try entry(name)
        guard let (values, tooLarge) = entry.dtype.decodeIntegers(dataStart(of: entry), count: entry.scalarCount) else {
            throw TensorError.file(path: path, problem: "tensor '\(name)' holds floating-point values "
                                   + "(\(entry.dtype.rawValue)); read it with tensor(_:as:) instead")
        }
        if let index = tooLarge {
            throw TensorError.file(path: path, problem: "tensor '\(name)' (U64) holds a value above Int64.max at "
                                   + "element \(index); such values cannot be read as Int64")
        }
        return values
    }

    private func dataStart(of entry: SafeTensorsEntry) -> UnsafeRawPointer {
        file.bytes.baseAddress! + bufferStart + entry.dataOffset
    }
}

// MARK: - Writing

/// Collects named tensors and metadata and writes them as one safetensors file.
///
/// The header is JSON with sorted keys, padded with spaces to a multiple of 8 bytes (so the data starts
/// 8-byte aligned); tensors are laid out contiguously in name order; the file is written atomically
/// (see `AtomicFile`). Files load in the Python `safetensors` package.
///
/// ```swift
/// var writer = SafeTensorsWriter(metadata: ["format": "lowrank"])
/// writer.add(name: "fc.weight", tensor: weight)                    // F32 for Tensor<Float>
/// writer.add(name: "fc.weight.bf16", tensor: weight, dtype: .bfloat16)
/// try writer.add(name: "step", integers: [1200], shape: [], dtype: .int64)
/// try writer.write(to: "model.safetensors")
/// ```
public struct SafeTensorsWriter: Sendable {
    /// String-to-string metadata written as the header's `__metadata__` (omitted when empty).
    public var metadata: [String: String]
    private var records: [String: (dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8])] = [:]

    /// An empty writer.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// The names added so far, sorted (the order of the data in the file).
    public var names: [String] { records.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    /// Adds a floating-point tensor, stored as `dtype` (default: F32 for `Float`, F64 for `Double`).
    ///
    /// Narrower types round to nearest, ties to even; magnitudes beyond the type's range become infinity.
    /// The name must be new and must not be `__metadata__`; `dtype` must be F64, F32, F16 or BF16.
    public mutating func add<S: TensorScalar>(name: String, tensor: Tensor<S>, dtype: SafeTensorsDType? = nil) {
        let dtype = dtype ?? (S.self == Float.self ? .float32 : .float64)
        precondition(dtype.isFloatingPoint,
                     "SafeTensorsWriter.add(name:tensor:dtype:): \(dtype.rawValue) is not a floating-point type; "
                     + "use add(name:integers:shape:dtype:)")
        checkNew(name)
        records[name] = (dtype, tensor.shape, tensor.withUnsafeBufferPointer { dtype.encode($0) })
    }

    /// Adds an integer (or boolean) tensor of the given shape, stored as `dtype` (default I64).
    ///
    /// The name must be new and must not be `__metadata__`; `shape` must hold `integers.count` elements;
    /// `dtype` must be an integer type or BOOL.
    /// - Throws: `TensorError.invalidArgument` when a value does not fit `dtype` (BOOL takes 0 and 1).
    public mutating func add(name: String, integers: [Int64], shape: [Int], dtype: SafeTensorsDType = .int64) throws {
        guard let range = dtype.integerRange else {
            preconditionFailure("SafeTensorsWriter.add(name:integers:shape:dtype:): \(dtype.rawValue) is not an "
                                + "integer type; use add(name:tensor:dtype:)")
        }
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == integers.count,
                     "SafeTensorsWriter.add(name:integers:shape:dtype:): shape \(shape) does not hold "
                     + "\(integers.count) values")
        checkNew(name)
        if let index = integers.firstIndex(where: { !range.contains($0) }) {
            throw TensorError.invalidArgument(
                "safetensors tensor '\(name)': value \(integers[index]) at element \(index) does not fit "
                + "\(dtype.rawValue) (\(range.lowerBound)...\(range.upperBound)); choose a wider dtype")
        }
        records[name] = (dtype, shape, dtype.encode(integers: integers))
    }

    private func checkNew(_ name: String) {
        precondition(name != "__metadata__", "SafeTensorsWriter: '__metadata__' is reserved for the metadata")
        precondition(records[name] == nil, "SafeTensorsWriter: a tensor named '\(name)' was already added")
    }

    /// The header bytes: JSON with sorted keys, padded with spaces to a multiple of 8 bytes.
    private func header() -> [UInt8] {
        var members: [(key: String, json: String)] = []
        var offset = 0
        for name in names {
            let record = records[name]!
            let shape = record.shape.map(String.init).joined(separator: ",")
            members.append((name, "{\"data_offsets\":[\(offset),\(offset + record.bytes.count)],"
                                  + "\"dtype\":\"\(record.dtype.rawValue)\",\"shape\":[\(shape)]}"))
            offset += record.bytes.count
        }
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                .map { jsonQuoted($0) + ":" + jsonQuoted(metadata[$0]!) }
            members.append(("__metadata__", "{" + pairs.joined(separator: ",") + "}"))
        }
        members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        var bytes = Array(("{" + members.map { jsonQuoted($0.key) + ":" + $0.json }.joined(separator: ",") + "}").utf8)
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8))
        return bytes
    }

    /// Writes the file atomically: the header length, the header, then every tensor's bytes in name order.
    ///
    /// - Throws: `TensorError.file` when the file cannot be written; then nothing is left behind and an existing
    ///   file at `path` is unchanged.
    public func write(to path: String) throws {
        let header = header()
        var length = [UInt8](repeating: 0, count: 8)
        length.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(header.count).littleEndian, as: UInt64.self) }
        try AtomicFile.write(to: path) { output in
            try output.write(length)
            try output.write(header)
            for name in names { try output.write(records[name]!.bytes) }
        }
    }
}

// MARK: - JSON (just what a safetensors header needs)

/// A parsed JSON value; objects keep their members in file order (duplicates included) so callers can
/// reject duplicate names.
enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case null

    /// A short description of the value's type for error messages.
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "a list"
        case .string: return "a string"
        case .integer, .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

extension Array where Element == JSONValue {
    /// The values as `Int`s when every one is a non-negative integer literal.
    fileprivate func nonNegativeIntegers() -> [Int]? {
        var result: [Int] = []
        for value in self {
            guard case let .integer(n) = value, n >= 0 else { return nil }
            result.append(n)
        }
        return result
    }
}

/// A strict RFC 8259 JSON parser over UTF-8 bytes (already checked to be valid UTF-8).
struct JSONParser {
    struct SyntaxError: Error {
        let offset: Int
        let message: String
    }

    private let bytes: [UInt8]
    private var position = 0
    private var depth = 0

    /// Parses one JSON value followed only by whitespace.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> SyntaxError { SyntaxError(offset: position, message: message) }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func expect(_ character: Character) throws {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == character.asciiValue! else {
            throw error("expected '\(character)'")
        }
        position += 1
    }

    private mutating func value() throws -> JSONValue {
        skipWhitespace()
        guard position < bytes.count else { throw error("unexpected end of the header, expected a value") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
        }
    }

    private mutating func nested<T>(_ body: (inout JSONParser) throws -> T) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { throw error("nested more than 64 levels deep") }
        return try body(&self)
    }

    private mutating func object() throws -> JSONValue {
        try nested { parser in
            parser.position += 1
            var members: [(key: String, value: JSONValue)] = []
            parser.skipWhitespace()
            if parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: "}") {
                parser.position += 1
                return .object(members)
            }
            while true {
                parser.skipWhitespace()
                guard parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: "\"") else {
                    throw parser.error("expected a quoted object key")
                }
                let key = try parser.string()
                try parser.expect(":")
                members.append((key, try parser.value()))
                parser.skipWhitespace()
                guard parser.position < parser.bytes.count else { throw parser.error("unterminated object") }
                let next = parser.bytes[parser.position]
                parser.position += 1
                if next == UInt8(ascii: "}") { return .object(members) }
                guard next == UInt8(ascii: ",") else {
                    parser.position -= 1
                    throw parser.error("expected ',' or '}' in an object")
                }
            }
        }
    }

    private mutating func array() throws -> JSONValue {
        try nested { parser in
            parser.position += 1
            var elements: [JSONValue] = []
            parser.skipWhitespace()
            if parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: "]") {
                parser.position += 1
                return .array(elements)
            }
            while true {
                elements.append(try parser.value())
                parser.skipWhitespace()
                guard parser.position < parser.bytes.count else { throw parser.error("unterminated list") }
                let next = parser.bytes[parser.position]
                parser.position += 1
                if next == UInt8(ascii: "]") { return .array(elements) }
                guard next == UInt8(ascii: ",") else {
                    parser.position -= 1
                    throw parser.error("expected ',' or ']' in a list")
                }
            }
        }
    }

    private mutating func literal(_ word: String) throws {
        let expected = Array(word.utf8)
        guard bytes.count - position >= expected.count,
              Array(bytes[position..<(position + expected.count)]) == expected else {
            throw error("expected '\(word)'")
        }
        position += expected.count
    }

    private mutating func number() throws -> JSONValue {
        let start = position
        func digits() -> Int {
            let from = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            return position - from
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        guard digits() > 0 else { throw error("expected digits in a number") }
        if bytes[integerStart] == UInt8(ascii: "0"), position - integerStart > 1 {
            throw SyntaxError(offset: integerStart, message: "numbers must not have leading zeros")
        }
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            isInteger = false
            guard digits() > 0 else { throw error("expected digits after the decimal point") }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            isInteger = false
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits() > 0 else { throw error("expected digits in the exponent") }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let integer = Int(text) { return .integer(integer) }
        return .number(Double(text) ?? .nan)
    }

    private mutating func hexQuad() throws -> UInt32 {
        guard bytes.count - position >= 4,
              let value = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16) else {
            throw error("expected four hexadecimal digits after \\u")
        }
        position += 4
        return value
    }

    private mutating func string() throws -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard position < bytes.count else { throw error("unterminated string") }
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw error("unterminated escape sequence") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hexQuad()
                    if (0xD800..<0xDC00).contains(code) {
                        guard bytes.count - position >= 2, bytes[position] == UInt8(ascii: "\\"),
                              bytes[position + 1] == UInt8(ascii: "u") else {
                            throw error("a high surrogate \\u escape must be followed by a low surrogate")
                        }
                        position += 2
                        let low = try hexQuad()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate in \\u escape") }
                    utf8.append(contentsOf: String(Character(scalar)).utf8)
                default:
                    throw error("invalid escape sequence")
                }
            case 0x00..<0x20:
                throw error("control character in a string")
            default:
                utf8.append(byte)
            }
        }
    }
}

/// `text` as a JSON string literal.
func jsonQuoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
