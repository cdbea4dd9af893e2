import TensorCore

/// An array of unsigned bytes in the IDX format of the MNIST distribution (LeCun, Cortes & Burges).
///
/// Layout (all integers big-endian): two zero bytes, a type code (`0x08` = unsigned byte), the number of
/// dimensions `d`, then `d` 32-bit sizes, then the elements in row-major order. So the magic number of an
/// image file `[n, rows, cols]` is `0x00000803` and that of a label file `[n]` is `0x00000801`. Files may be
/// gzip-compressed (`.gz`) or raw; reading detects which. MNIST and Fashion-MNIST (Xiao, Rasul & Vollgraf,
/// 2017) use this format.
///
/// ```swift
/// let images = try IDXArray(contentsOf: "t10k-images-idx3-ubyte.gz")   // shape [10000, 28, 28]
/// ```
public struct IDXArray: Sendable, Equatable {
    /// The size of each dimension.
    public let shape: [Int]
    /// The elements in row-major order; `bytes.count == shape.product`.
    public let bytes: [UInt8]

    /// The type code of unsigned bytes, the only element type LowRank reads.
    public static let unsignedByteType: UInt8 = 0x08

    /// An array of the given shape holding `bytes` in row-major order.
    public init(shape: [Int], bytes: [UInt8]) {
        precondition(!shape.isEmpty && shape.count <= 255,
                     "IDXArray: an IDX array has 1...255 dimensions, got shape \(shape)")
        precondition(shape.allSatisfy { $0 >= 0 && $0 <= Int(UInt32.max) },
                     "IDXArray: every dimension must fit in 32 bits, got shape \(shape)")
        precondition(shape.reduce(1, *) == bytes.count,
                     "IDXArray: shape \(shape) needs \(shape.reduce(1, *)) bytes, got \(bytes.count)")
        self.shape = shape
        self.bytes = bytes
    }

    /// The magic number of this array's file: `0x0000_08_dd` with `dd` the number of dimensions.
    public var magic: UInt32 { UInt32(IDXArray.unsignedByteType) << 8 | UInt32(shape.count) }

    /// Parses the contents of an IDX file (already uncompressed).
    ///
    /// - Parameters:
    ///   - data: The file's bytes.
    ///   - source: The file name used in error messages.
    /// - Throws: `DataError.corruptFile` naming `source` when the magic number is wrong, the element type is not
    ///   unsigned byte, the header is cut short, or the data is shorter (truncated) or longer than the
    ///   dimensions say.
    public init(decoding data: [UInt8], source: String) throws {
        guard data.count >= 4 else {
            throw DataError.corruptFile(
                path: source, problem: "only \(data.count) bytes long, too short for an IDX header (4-byte magic number)")
        }
        let magic = readBigEndian32(data, at: 0)
        guard data[0] == 0 && data[1] == 0 else {
            throw DataError.corruptFile(
                path: source,
                problem: "bad magic number \(hex(magic)): not an IDX file (IDX files start with two zero bytes, "
                    + "a type code and the number of dimensions, e.g. 0x00000803 for images)")
        }
        guard data[2] == IDXArray.unsignedByteType else {
            throw DataError.corruptFile(
                path: source,
                problem: "magic number \(hex(magic)) declares element type 0x\(String(data[2], radix: 16, uppercase: true)); "
                    + "LowRank reads only unsigned-byte IDX files (type 0x08), as MNIST and Fashion-MNIST use")
        }
        let dimensions = Int(data[3])
        guard dimensions >= 1 else {
            throw DataError.corruptFile(path: source, problem: "magic number \(hex(magic)) declares zero dimensions")
        }
        let headerSize = 4 + 4 * dimensions
        guard data.count >= headerSize else {
            throw DataError.corruptFile(
                path: source,
                problem: "the header declares \(dimensions) dimensions (\(headerSize) header bytes) but the file has only "
                    + "\(data.count) bytes (truncated)")
        }
        var shape: [Int] = []
        var total = 1
        var overflow = false
        for axis in 0..<dimensions {
            let size = Int(readBigEndian32(data, at: 4 + 4 * axis))
            shape.append(size)
            let (product, didOverflow) = total.multipliedReportingOverflow(by: size)
            total = product
            overflow = overflow || didOverflow
        }
        let payload = data.count - headerSize
        guard !overflow, payload == total else {
            let need = overflow ? "more than \(Int.max)" : "\(total)"
            let verdict = !overflow && payload > total
                ? "\(payload - total) extra bytes at the end" : "truncated: \(payload) bytes of data present"
            throw DataError.corruptFile(
                path: source, problem: "the header declares shape \(shape), which needs \(need) data bytes; \(verdict)")
        }
        self.shape = shape
        self.bytes = Array(data[headerSize...])
    }

    /// Reads an IDX file, gzip-compressed or raw.
    ///
    /// - Parameter path: The file to read.
    /// - Throws: `DataError.missingFile`, `.unreadableFile`, or `.corruptFile` (gzip damage or a malformed IDX
    ///   layout, see `init(decoding:source:)`).
    public init(contentsOf path: String) throws {
        let data = try DataFile.contents(
            of: path, expected: "an IDX file (gzip or raw)", remedy: "check the path or pass --data-dir")
        try self.init(decoding: data, source: path)
    }

    /// The IDX file contents of this array (uncompressed).
    public func encoded() -> [UInt8] {
        var data: [UInt8] = [0, 0, IDXArray.unsignedByteType, UInt8(shape.count)]
        data.reserveCapacity(4 + 4 * shape.count + bytes.count)
        for size in shape {
            let value = UInt32(size)
            data += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        data += bytes
        return data
    }

    /// Writes the array as an IDX file, gzip-compressed when `compressed` (the `.gz` files of MNIST).
    ///
    /// The file is replaced atomically (see `AtomicFile`).
    /// - Throws: `TensorError.file` when the file cannot be written.
    public func write(to path: String, compressed: Bool = true) throws {
        let data = compressed ? Gzip.compress(encoded()) : encoded()
        try AtomicFile.write(to: path) { try $0.write(data) }
    }
}

/// Checked readers for the two IDX files of an image-classification data set.
public enum IDX {
    /// The magic number of an image file `[n, rows, cols]` of unsigned bytes.
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// The magic number of a label file `[n]` of unsigned bytes.
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// Parses an image file: an unsigned-byte IDX array of shape `[n, rows, cols]`, all positive.
    ///
    /// - Throws: `DataError.corruptFile` naming `source` for any layout error of `IDXArray.init(decoding:source:)`,
    ///   a magic number other than `0x00000803`, or a zero dimension.
    public static func images(decoding data: [UInt8], source: String) throws -> IDXArray {
        if data.count >= 4 && data[0] == 0 && data[1] == 0 && readBigEndian32(data, at: 0) != imagesMagic {
            throw DataError.corruptFile(
                path: source,
                problem: "magic number \(hex(readBigEndian32(data, at: 0))) \(describeMagic(data)), but an image file "
                    + "needs \(hex(imagesMagic)) (unsigned bytes, 3 dimensions: count, rows, columns)")
        }
        let array = try IDXArray(decoding: data, source: source)
        guard array.shape.allSatisfy({ $0 > 0 }) else {
            throw DataError.corruptFile(
                path: source, problem: "image file of shape \(array.shape): every dimension must be positive")
        }
        return array
    }

    /// Parses a label file: an unsigned-byte IDX array of shape `[n]` with every label in `0..<classCount`.
    ///
    /// - Throws: `DataError.corruptFile` naming `source` for any layout error of `IDXArray.init(decoding:source:)`,
    ///   a magic number other than `0x00000801`, no labels, or a label outside `0..<classCount`.
    public static func labels(decoding data: [UInt8], source: String, classCount: Int) throws -> [Int] {
        precondition(classCount > 0 && classCount <= 256, "IDX.labels: classCount must be 1...256, got \(classCount)")
        if data.count >= 4 && data[0] == 0 && data[1] == 0 && readBigEndian32(data, at: 0) != labelsMagic {
            throw DataError.corruptFile(
                path: source,
                problem: "magic number \(hex(readBigEndian32(data, at: 0))) \(describeMagic(data)), but a label file "
                    + "needs \(hex(labelsMagic)) (unsigned bytes, 1 dimension)")
        }
        let array = try IDXArray(decoding: data, source: source)
        guard array.shape[0] > 0 else {
            throw DataError.corruptFile(path: source, problem: "the label file holds no labels")
        }
        if let bad = array.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw DataError.corruptFile(
                path: source,
                problem: "label \(array.bytes[bad]) at index \(bad) is outside 0..<\(classCount)")
        }
        return array.bytes.map { Int($0) }
    }

    /// Reads an image file (gzip or raw) from disk; see `images(decoding:source:)`.
    ///
    /// - Throws: `DataError.missingFile`, `.unreadableFile` or `.corruptFile`.
    public static func readImages(path: String) throws -> IDXArray {
        try images(decoding: DataFile.contents(of: path, expected: "an IDX image file [n, rows, cols] (gzip or raw)",
                                               remedy: "check the path or pass --data-dir"),
                   source: path)
    }

    /// Reads a label file (gzip or raw) from disk; see `labels(decoding:source:classCount:)`.
    ///
    /// - Throws: `DataError.missingFile`, `.unreadableFile` or `.corruptFile`.
    public static func readLabels(path: String, classCount: Int = 10) throws -> [Int] {
        try labels(decoding: DataFile.contents(of: path, expected: "an IDX label file [n] (gzip or raw)",
                                               remedy: "check the path or pass --data-dir"),
                   source: path, classCount: classCount)
    }
}

@inline(__always)
func readBigEndian32(_ data: [UInt8], at offset: Int) -> UInt32 {
    UInt32(data[offset]) << 24 | UInt32(data[offset + 1]) << 16 | UInt32(data[offset + 2]) << 8 | UInt32(data[offset + 3])
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

/// "(unsigned bytes, 1 dimension)"-style reading of a magic number whose first two bytes are zero.
private func describeMagic(_ data: [UInt8]) -> String {
    let type = data[2] == IDXArray.unsignedByteType ? "unsigned bytes" : "type 0x\(String(data[2], radix: 16, uppercase: true))"
    return "(\(type), \(data[3]) dimension\(data[3] == 1 ? "" : "s"))"
}
