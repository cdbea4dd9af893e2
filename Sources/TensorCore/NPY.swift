// The NumPy .npy format (numpy.lib.format):
//
//   [6 bytes]  magic "\x93NUMPY"
//   [2 bytes]  version major, minor: 1.0, 2.0 or 3.0
//   [2 or 4]   header length, little-endian (2 bytes in version 1.0, 4 bytes in 2.0 and 3.0)
//   [header]   a Python dict literal, padded with spaces and ending in '\n':
//              {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   [rest]     the data, shape.product × itemsize bytes

/// A NumPy `.npy` file opened for reading: header parsed and checked, data memory-mapped.
///
/// Reads versions 1.0, 2.0 and 3.0 of the format, C (row-major) order, little-endian element types
/// `<f8`, `<f4`, `<f2`, `<i8`, `<i4`, `<i2`, `|i1`, `<u8`, `<u4`, `<u2`, `|u1` and `|b1`; any of them
/// converts to `Tensor<Float>` or `Tensor<Double>` (rounding to nearest where needed).
///
/// ```swift
/// let array = try NPYFile(contentsOf: "weights.npy")
/// let weights: Tensor<Float> = array.tensor()
/// try NPYFile.write(weights, to: "copy.npy")
/// ```
public struct NPYFile: Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The format version, "1.0", "2.0" or "3.0".
    public let version: String
    /// NumPy's type string for the elements, as written in the header (for example `<f4`).
    public let dtype: String
    /// The array's shape, row-major.
    public let shape: [Int]
    /// Bytes of element data: `shape.product × itemsize`.
    public let byteCount: Int

    private let elementType: SafeTensorsDType
    private let file: MappedFile
    private let dataStart: Int

    /// The NumPy type strings this reader understands, with the element type each maps to.
    static let supportedTypes: [(descr: String, type: SafeTensorsDType)] = [
        ("<f8", .float64), ("<f4", .float32), ("<f2", .float16),
        ("<i8", .int64), ("<i4", .int32), ("<i2", .int16), ("|i1", .int8),
        ("<u8", .uint64), ("<u4", .uint32), ("<u2", .uint16), ("|u1", .uint8), ("|b1", .bool),
    ]

    /// Opens and validates a `.npy` file.
    ///
    /// - Throws: `TensorError.file` naming the problem: not starting with the `\x93NUMPY` magic, an unknown
    ///   version, a header that is truncated or not a dict with exactly `descr`, `fortran_order` and `shape`,
    ///   an unsupported element type (the message lists the supported ones), Fortran order, or a data size that
    ///   differs from shape × itemsize.
    public init(contentsOf path: String) throws {
        func failure(_ problem: String) -> TensorError {
            TensorError.file(path: path, problem: problem + "; the file is damaged or is not a .npy file "
                             + "(re-save it with numpy.save)")
        }
        let file = try MappedFile(path: path)
        let bytes = file.bytes
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 8, Array(bytes[0..<6]) == magic else {
            throw failure("does not start with the .npy magic bytes \\x93NUMPY")
        }
        let (major, minor) = (bytes[6], bytes[7])
        let lengthSize: Int
        switch (major, minor) {
        case (1, 0): lengthSize = 2
        case (2, 0), (3, 0): lengthSize = 4
        default:
            throw TensorError.file(path: path, problem: "uses .npy format version \(major).\(minor), which LowRank "
                                   + "does not read (supported: 1.0, 2.0, 3.0); re-save it with numpy.save")
        }
        guard bytes.count >= 8 + lengthSize else {
            throw failure("the file ends inside the header length field (\(bytes.count) bytes)")
        }
        var headerLength = 0
        for i in 0..<lengthSize { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        let headerStart = 8 + lengthSize
        guard headerLength <= bytes.count - headerStart else {
            throw failure("the header is truncated: it should be \(headerLength) bytes, but the file has only "
                          + "\(bytes.count - headerStart) bytes after the length field")
        }
        // Versions 1.0 and 2.0 store the header as latin-1, 3.0 as UTF-8; the dict itself is ASCII.
        let headerBytes = Array(bytes[headerStart..<(headerStart + headerLength)])
        let headerText = major == 3
            ? String(decoding: headerBytes, as: UTF8.self)
            : String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))

        let header: [String: PythonLiteral]
        do {
            header = try PythonLiteralParser.parseDictionary(headerText)
        } catch let error as PythonLiteralParser.SyntaxError {
            throw failure("the header is not a Python dict literal (at character \(error.offset): \(error.message))")
        }
        guard Set(header.keys) == ["descr", "fortran_order", "shape"] else {
            throw failure("the header must have exactly the keys 'descr', 'fortran_order' and 'shape', but has "
                          + header.keys.sorted().map { "'\($0)'" }.joined(separator: ", "))
        }
        guard case let .string(descr)? = header["descr"] else {
            throw failure("the header's 'descr' is not a type string like '<f4' (structured dtypes are not supported)")
        }
        guard let elementType = Self.supportedTypes.first(where: { $0.descr == descr })?.type else {
            throw TensorError.file(path: path, problem: "holds elements of NumPy type '\(descr)', which LowRank does "
                                   + "not read (supported: " + Self.supportedTypes.map(\.descr).joined(separator: ", ")
                                   + "); convert it with numpy, e.g. a.astype('<f4')")
        }
        guard case let .bool(fortranOrder)? = header["fortran_order"] else {
            throw failure("the header's 'fortran_order' is not True or False")
        }
        guard !fortranOrder else {
            throw TensorError.file(path: path, problem: "is stored in Fortran (column-major) order, but LowRank reads "
                                   + "only C (row-major) order; re-save it with "
                                   + "numpy.save(path, numpy.ascontiguousarray(a))")
        }
        guard case let .sequence(shapeValues)? = header["shape"] else {
            throw failure("the header's 'shape' is not a tuple of integers")
        }
        var shape: [Int] = []
        var byteCount = elementType.byteSize
        for value in shapeValues {
            guard case let .integer(dimension) = value, dimension >= 0 else {
                throw failure("the header's 'shape' must hold non-negative integers only")
            }
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw failure("the shape \(shape + [dimension]) is impossibly large") }
            byteCount = product
            shape.append(dimension)
        }
        let dataStart = headerStart + headerLength
        guard bytes.count - dataStart == byteCount else {
            throw failure("shape \(shape) of '\(descr)' needs \(byteCount) bytes of data, but the file holds "
                          + "\(bytes.count - dataStart)")
        }

        self.path = path
        self.version = "\(major).\(minor)"
        self.dtype = descr
        self.shape = shape
        self.byteCount = byteCount
        self.elementType = elementType
        self.file = file
        self.dataStart = dataStart
    }

    /// The array, converted to `S` (rounding to nearest where `S` is narrower than the stored type).
    public func tensor<S: TensorScalar>(as: S.Type = S.self) -> Tensor<S> {
        Tensor<S>(shape: shape) { out in
            if out.isEmpty { return }
            elementType.decode(file.bytes.baseAddress! + dataStart, count: out.count, into: out.baseAddress!)
        }
    }

    /// Writes `tensor` as a version 1.0 `.npy` file (`<f4` for `Float`, `<f8` for `Double`, C order), atomically.
    ///
    /// The bytes are the same as `numpy.save` writes: the header is padded with spaces so the data starts at a
    /// multiple of 64 bytes. (Version 2.0 is used only if the header would exceed 65535 bytes.)
    /// - Throws: `TensorError.file` when the file cannot be written; then nothing is left behind and an existing
    ///   file at `path` is unchanged.
    public static func write<S: TensorScalar>(_ tensor: Tensor<S>, to path: String) throws {
        let descr = S.self == Float.self ? "<f4" : "<f8"
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)"
            : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        let dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // As numpy.lib.format._wrap_header: pad so magic + version + length field + header is a multiple of 64.
        var lengthSize = 2
        var padding = 64 - (8 + lengthSize + dict.count + 1) % 64
        if dict.count + 1 + padding > 65535 {
            lengthSize = 4
            padding = 64 - (8 + lengthSize + dict.count + 1) % 64
        }
        let headerLength = dict.count + padding + 1
        var prefix: [UInt8] = [0x93] + Array("NUMPY".utf8) + [lengthSize == 2 ? 1 : 2, 0]
        for i in 0..<lengthSize { prefix.append(UInt8(truncatingIfNeeded: headerLength >> (8 * i))) }
        let header = prefix + dict + [UInt8](repeating: UInt8(ascii: " "), count: padding) + [UInt8(ascii: "\n")]
        let dtype: SafeTensorsDType = S.self == Float.self ? .float32 : .float64
        let data = tensor.withUnsafeBufferPointer { dtype.encode($0) }
        try AtomicFile.write(to: path) { output in
            try output.write(header)
            try output.write(data)
        }
    }
}

// MARK: - Python literals (just what a .npy header needs)

/// A value of a Python literal: tuples and lists are both `sequence`.
enum PythonLiteral {
    case dictionary([String: PythonLiteral])
    case sequence([PythonLiteral])
    case string(String)
    case integer(Int)
    case bool(Bool)
    case none
}

/// Parses the Python dict literal of a `.npy` header: strings, integers, True/False/None, tuples, lists, dicts.
struct PythonLiteralParser {
    struct SyntaxError: Error {
        let offset: Int
        let message: String
    }

    private let characters: [Unicode.Scalar]
    private var position = 0
    private var depth = 0

    /// Parses `text` as one dict literal followed only by whitespace.
    static func parseDictionary(_ text: String) throws -> [String: PythonLiteral] {
        var parser = PythonLiteralParser(characters: Array(text.unicodeScalars))
        parser.skipWhitespace()
        guard parser.peek == "{" else { throw parser.error("expected '{'") }
        guard case let .dictionary(result) = try parser.value() else { throw parser.error("expected a dict") }
        parser.skipWhitespace()
        guard parser.position == parser.characters.count else { throw parser.error("unexpected text after the dict") }
        return result
    }

    private init(characters: [Unicode.Scalar]) { self.characters = characters }

    private var peek: Unicode.Scalar? { position < characters.count ? characters[position] : nil }

    private func error(_ message: String) -> SyntaxError { SyntaxError(offset: position, message: message) }

    private mutating func skipWhitespace() {
        while let c = peek, c == " " || c == "\n" || c == "\t" || c == "\r" { position += 1 }
    }

    private mutating func value() throws -> PythonLiteral {
        skipWhitespace()
        guard let c = peek else { throw error("unexpected end of the header, expected a value") }
        switch c {
        case "{":
            return .dictionary(try nested { try $0.dictionary() })
        case "(":
            return .sequence(try nested { try $0.sequence(closing: ")") })
        case "[":
            return .sequence(try nested { try $0.sequence(closing: "]") })
        case "'", "\"":
            return .string(try string())
        case "-", "0"..."9":
            return .integer(try integer())
        default:
            for (word, literal) in [("True", PythonLiteral.bool(true)), ("False", .bool(false)), ("None", .none)]
            where characters[position...].starts(with: word.unicodeScalars) {
                position += word.unicodeScalars.count
                return literal
            }
            throw error("unexpected character '\(c)'")
        }
    }

    private mutating func nested<T>(_ body: (inout PythonLiteralParser) throws -> T) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 32 else { throw error("nested more than 32 levels deep") }
        position += 1  // the opening bracket
        return try body(&self)
    }

    private mutating func dictionary() throws -> [String: PythonLiteral] {
        var result: [String: PythonLiteral] = [:]
        while true {
            skipWhitespace()
            if peek == "}" { position += 1; return result }
            guard peek == "'" || peek == "\"" else { throw error("expected a quoted key or '}'") }
            let key = try string()
            skipWhitespace()
            guard peek == ":" else { throw error("expected ':' after a key") }
            position += 1
            guard result.updateValue(try value(), forKey: key) == nil else { throw error("duplicate key '\(key)'") }
            skipWhitespace()
            if peek == "," { position += 1 } else if peek != "}" { throw error("expected ',' or '}'") }
        }
    }

    private mutating func sequence(closing: Unicode.Scalar) throws -> [PythonLiteral] {
        var result: [PythonLiteral] = []
        while true {
            skipWhitespace()
            if peek == closing { position += 1; return result }
            result.append(try value())
            skipWhitespace()
            if peek == "," { position += 1 } else if peek != closing { throw error("expected ',' or '\(closing)'") }
        }
    }

    private mutating func string() throws -> String {
        let quote = characters[position]
        position += 1
        var result = String.UnicodeScalarView()
        while true {
            guard let c = peek else { throw error("unterminated string") }
            position += 1
            if c == quote { return String(result) }
            if c == "\\" {
                guard let escaped = peek else { throw error("unterminated string") }
                position += 1
                result.append(escaped)
            } else {
                result.append(c)
            }
        }
    }

    private mutating func integer() throws -> Int {
        let start = position
        if peek == "-" { position += 1 }
        while let c = peek, ("0"..."9").contains(c) { position += 1 }
        guard let value = Int(String(String.UnicodeScalarView(characters[start..<position]))) else {
            throw SyntaxError(offset: start, message: "expected an integer that fits in 64 bits")
        }
        return value
    }
}
