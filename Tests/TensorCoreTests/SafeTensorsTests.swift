import Foundation
import Testing
import TensorCore

/// Shared by the file I/O tests: fixture paths, temporary folders, error checks, and the formulas of
/// scripts/make_io_fixtures.py (its docstring is the specification; `i` is the row-major index).
enum IOTestSupport {
    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name).path
    }

    /// A new empty folder under the system's temporary folder.
    static func makeTemporaryFolder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        return url.path
    }

    static func removeFolder(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    static func contents(of folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    static func bytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

    static func write(_ bytes: [UInt8], to path: String) {
        precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
    }

    /// Expects `body` to throw `TensorError.file` whose message contains every fragment.
    static func expectFileError(
        _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) {
        let error = #expect(throws: TensorError.self, sourceLocation: sourceLocation) { try body() }
        guard let error else { return }
        guard case .file = error else {
            Issue.record("expected TensorError.file, got \(error)", sourceLocation: sourceLocation)
            return
        }
        for fragment in fragments {
            #expect(error.description.contains(fragment), "message \"\(error.description)\" lacks \"\(fragment)\"",
                    sourceLocation: sourceLocation)
        }
    }

    static let metadata = ["format": "np", "producer": "make_io_fixtures.py", "note": "ünïcödé ✓ \"quoted\" \\ tab\tend"]

    // The tensors of all_dtypes.safetensors and bf16.safetensors.
    static let f64 = Tensor<Double>(shape: [2, 3, 4], scalars: (0..<24).map { Double($0 - 12) / 3 })
    static let f32 = Tensor<Float>(shape: [3, 4], scalars: (0..<12).map { Float($0 - 6) / Float(3) })
    static let f16 = Tensor<Double>(shape: [2, 5], scalars: (0..<10).map { Double($0 - 5) * 0.25 })
    static let f16Special: [Double] = [0, -0.0, 0x1p-24, 0x1p-14, 65504, .infinity, -.infinity, -0x1p-24]
    static let bf16 = Tensor<Float>(shape: [4, 4], scalars: (0..<16).map { Float($0 - 8) * 0.5 })
    static let integers: [(name: String, dtype: SafeTensorsDType, shape: [Int], values: [Int64])] = [
        ("i64", .int64, [7], (0..<7).map { Int64($0 - 3) << 40 + Int64($0) }),
        ("i64_extremes", .int64, [2], [Int64.min, Int64.max]),
        ("i32", .int32, [13], (0..<13).map { Int64($0 - 6) * 100_000 }),
        ("i16", .int16, [13], (0..<13).map { Int64($0 - 6) * 1000 }),
        ("i8", .int8, [13], (0..<13).map { Int64($0 - 6) * 20 }),
        ("u8", .uint8, [16], (0..<16).map { Int64($0) * 17 }),
        ("u16", .uint16, [16], (0..<16).map { Int64($0) * 4369 }),
        ("u32", .uint32, [16], (0..<16).map { Int64($0) * 286_331_153 }),
        ("u64", .uint64, [8], (0..<8).map { Int64($0) << 60 }),
        ("bool", .bool, [2, 5], (0..<10).map { $0 % 3 == 0 ? 1 : 0 }),
    ]

    /// A writer holding the same tensors and metadata as the two Python safetensors fixtures together.
    static func fixtureWriter() throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(name: "f64", tensor: f64, dtype: .float64)
        writer.add(name: "f32", tensor: f32, dtype: .float32)
        writer.add(name: "f16", tensor: f16, dtype: .float16)
        writer.add(name: "f16_special", tensor: Tensor(f16Special), dtype: .float16)
        writer.add(name: "bf16", tensor: bf16, dtype: .bfloat16)
        writer.add(name: "empty", tensor: Tensor<Float>.zeros([0, 3]), dtype: .float32)
        writer.add(name: "scalar", tensor: Tensor<Double>(scalar: 2.5), dtype: .float64)
        for item in integers {
            try writer.add(name: item.name, integers: item.values, shape: item.shape, dtype: item.dtype)
        }
        return writer
    }

    /// A safetensors file made of a raw header and buffer (the header length is computed unless given).
    static func craft(_ header: String, buffer: [UInt8] = [], length: UInt64? = nil, in folder: String) -> String {
        let headerBytes = Array(header.utf8)
        return craft(headerBytes: headerBytes, buffer: buffer, length: length, in: folder)
    }

    static func craft(headerBytes: [UInt8], buffer: [UInt8] = [], length: UInt64? = nil, in folder: String) -> String {
        let n = length ?? UInt64(headerBytes.count)
        let prefix = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
        let path = folder + "/crafted-\(UUID().uuidString).safetensors"
        write(prefix + headerBytes + buffer, to: path)
        return path
    }
}

@Suite("SafeTensorsTests")
struct SafeTensorsTests {
    typealias Support = IOTestSupport

    @Test("The Python fixture of every dtype reads exactly, with its metadata")
    func pythonFixture() throws {
        let file = try SafeTensorsFile(contentsOf: Support.fixture("all_dtypes.safetensors"))
        #expect(file.metadata == Support.metadata)
        let expectedNames = (["f64", "f32", "f16", "f16_special", "empty", "scalar"] + Support.integers.map(\.name))
        #expect(file.entries.map(\.name) == expectedNames.sorted())

        #expect(try file.tensor("f64", as: Double.self) == Support.f64)
        #expect(try file.tensor("f64", as: Float.self) == Support.f64.converted(to: Float.self))
        #expect(try file.tensor("f32", as: Float.self) == Support.f32)
        #expect(try file.tensor("f32", as: Double.self) == Support.f32.converted(to: Double.self))
        #expect(try file.tensor("f16", as: Double.self) == Support.f16)
        #expect(try file.tensor("f16", as: Float.self) == Support.f16.converted(to: Float.self))
        let special = try file.tensor("f16_special", as: Double.self).scalars
        #expect(special == Support.f16Special)
        #expect(special.map(\.sign) == Support.f16Special.map(\.sign))
        #expect(try file.entry("f16_special").dtype == .float16)

        for item in Support.integers {
            let entry = try file.entry(item.name)
            #expect(entry.dtype == item.dtype, "\(item.name)")
            #expect(entry.shape == item.shape, "\(item.name)")
            #expect(entry.byteCount == item.values.count * item.dtype.byteSize, "\(item.name)")
            #expect(try file.integers(item.name) == item.values, "\(item.name)")
            #expect(try file.tensor(item.name, as: Double.self).scalars == item.values.map { Double($0) },
                    "\(item.name)")
        }
        let empty = try file.tensor("empty", as: Float.self)
        #expect(empty.shape == [0, 3] && empty.scalarCount == 0)
        #expect(try file.entry("empty").byteCount == 0)
        let scalar = try file.tensor("scalar", as: Double.self)
        #expect(scalar.shape == [] && scalar.scalar == 2.5)

        Support.expectFileError("'f32'", "floating-point", "tensor(_:as:)") { _ = try file.integers("f32") }
        Support.expectFileError("no tensor named 'missing'", "'bool'", "'u8'") { _ = try file.tensor("missing", as: Float.self) }
    }

    @Test("The Python bfloat16 fixture reads exactly")
    func pythonBFloat16Fixture() throws {
        let file = try SafeTensorsFile(contentsOf: Support.fixture("bf16.safetensors"))
        #expect(file.metadata == ["format": "bf16"])
        #expect(file.entries.map(\.dtype) == [.bfloat16])
        #expect(try file.tensor("bf16", as: Float.self) == Support.bf16)
        #expect(try file.tensor("bf16", as: Double.self) == Support.bf16.converted(to: Double.self))
    }

    @Test("A file written from Swift holds exactly the tensors the Python fixtures hold")
    func writerMatchesPythonFixtures() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let path = folder + "/lowrank_written.safetensors"
        try Support.fixtureWriter().write(to: path)
        // For the manual cross-check: LOWRANK_IO_CHECK_DIR=/some/dir swift test --filter SafeTensorsTests, then
        // python3 scripts/make_io_fixtures.py --check /some/dir/lowrank_written.safetensors
        if let keep = ProcessInfo.processInfo.environment["LOWRANK_IO_CHECK_DIR"] {
            try Support.fixtureWriter().write(to: keep + "/lowrank_written.safetensors")
        }

        let written = try SafeTensorsFile(contentsOf: path)
        let python = try SafeTensorsFile(contentsOf: Support.fixture("all_dtypes.safetensors"))
        let pythonBF16 = try SafeTensorsFile(contentsOf: Support.fixture("bf16.safetensors"))
        #expect(written.metadata == python.metadata)
        #expect(written.entries.map(\.name) == (python.entries.map(\.name) + ["bf16"]).sorted())
        for entry in python.entries + pythonBF16.entries {
            let source = entry.name == "bf16" ? pythonBF16 : python
            let mine = try written.entry(entry.name)
            #expect(mine.dtype == entry.dtype && mine.shape == entry.shape && mine.byteCount == entry.byteCount,
                    "\(entry.name)")
            let (a, b) = try (written.tensor(entry.name, as: Double.self), source.tensor(entry.name, as: Double.self))
            #expect(a == b && a.scalars.map(\.sign) == b.scalars.map(\.sign), "\(entry.name)")
            if !entry.dtype.isFloatingPoint { #expect(try written.integers(entry.name) == source.integers(entry.name)) }
        }
        // Data in name order: offsets increase with the name.
        let offsets = written.entries.map(\.dataOffset)
        #expect(offsets == offsets.sorted())
    }

    @Test("The header is sorted JSON padded with spaces to 8 bytes; data follows in name order, little-endian")
    func exactLayout() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        var writer = SafeTensorsWriter(metadata: ["b": "2", "a": "1"])
        writer.add(name: "z", tensor: Tensor<Float>([1.5]))
        try writer.add(name: "a", integers: [1, -1], shape: [2])
        try writer.write(to: folder + "/layout.safetensors")

        let json = #"{"__metadata__":{"a":"1","b":"2"},"a":{"data_offsets":[0,16],"dtype":"I64","shape":[2]},"#
            + #""z":{"data_offsets":[16,20],"dtype":"F32","shape":[1]}}"#
        var header = Array(json.utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        let length = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        let data: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8)  // 1, -1 as I64
            + [0x00, 0x00, 0xC0, 0x3F]  // 1.5 as F32 = 0x3FC00000
        #expect(Support.bytes(folder + "/layout.safetensors") == length + header + data)
        #expect(header.count % 8 == 0)
    }

    @Test("Round trip of every dtype, from Float and Double tensors")
    func roundTripEveryDType() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        // k/8 with |k| < 256 has at most 8 significant bits: exact in F16 (11) and BF16 (8).
        let exact = Tensor<Float>(shape: [3, 5], scalars: (0..<15).map { Float($0 * 17 - 120) / 8 })
        let random = Tensor<Double>.randomNormal([4, 6], seed: 7)
        var writer = SafeTensorsWriter()
        for dtype in SafeTensorsDType.allCases where dtype.isFloatingPoint {
            writer.add(name: "float.\(dtype.rawValue)", tensor: exact, dtype: dtype)
            writer.add(name: "double.\(dtype.rawValue)", tensor: exact.converted(to: Double.self), dtype: dtype)
        }
        writer.add(name: "random.default", tensor: random)
        writer.add(name: "random.f32", tensor: random, dtype: .float32)
        var integerCases: [(String, SafeTensorsDType, [Int64])] = []
        let ranges: [SafeTensorsDType: ClosedRange<Int64>] = [
            .int64: Int64.min...Int64.max, .int32: Int64(Int32.min)...Int64(Int32.max),
            .int16: Int64(Int16.min)...Int64(Int16.max), .int8: -128...127, .uint64: 0...Int64.max,
            .uint32: 0...Int64(UInt32.max), .uint16: 0...65535, .uint8: 0...255, .bool: 0...1,
        ]
        for (dtype, range) in ranges {
            let values = [range.lowerBound, range.upperBound, range.lowerBound + 1, range.upperBound - 1, 1]
            integerCases.append(("int.\(dtype.rawValue)", dtype, values))
            try writer.add(name: "int.\(dtype.rawValue)", integers: values, shape: [5], dtype: dtype)
        }
        #expect(integerCases.count + 4 == SafeTensorsDType.allCases.count)
        let path = folder + "/all.safetensors"
        try writer.write(to: path)

        let file = try SafeTensorsFile(contentsOf: path)
        #expect(file.metadata.isEmpty)
        for dtype in SafeTensorsDType.allCases where dtype.isFloatingPoint {
            #expect(try file.entry("float.\(dtype.rawValue)").dtype == dtype)
            #expect(try file.entry("float.\(dtype.rawValue)").byteCount == 15 * dtype.byteSize)
            #expect(try file.tensor("float.\(dtype.rawValue)", as: Float.self) == exact, "\(dtype)")
            #expect(try file.tensor("double.\(dtype.rawValue)", as: Double.self) == exact.converted(to: Double.self))
        }
        #expect(try file.entry("random.default").dtype == .float64)
        #expect(try file.tensor("random.default", as: Double.self) == random)
        #expect(try file.tensor("random.f32", as: Float.self) == random.converted(to: Float.self))
        for (name, dtype, values) in integerCases {
            #expect(try file.entry(name).dtype == dtype)
            #expect(try file.integers(name) == values, "\(name)")
        }
    }

    @Test("F16 and BF16 round to nearest, ties to even, in one rounding from Double")
    func halfPrecisionRounding() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        // (input, nearest F16, nearest BF16); F16 has 10 fraction bits, BF16 7, so ulp(1) = 2^-10 and 2^-7.
        let cases: [(Double, Double, Double)] = [
            (1 + 0x1p-11, 1, 1),                              // F16 tie -> even (1)
            (1 + 3 * 0x1p-11, 1 + 0x1p-9, 1),                 // F16 tie -> even (1 + 2^-9)
            (1 + 0x1p-8, 1 + 0x1p-8, 1),                      // BF16 tie -> even (1)
            (1 + 3 * 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-6),     // BF16 tie -> even (1 + 2^-6)
            (1 + 0x1p-11 + 0x1p-40, 1 + 0x1p-10, 1),          // just above the F16 tie: up (via Float it would tie)
            (-(1 + 0x1p-11 + 0x1p-20), -(1 + 0x1p-10), -1),   // symmetric for negatives
            (1.0 / 3, 1365.0 / 4096, 171.0 / 512),            // 1/3 = 0.010101…b
            (65519, 65504, 65536),                            // below F16 half-ulp over the max: max
            (65520, .infinity, 65536),                        // at F16 tie with 2^16: overflow to infinity
            (0x1p-25, 0, 0x1p-25),                            // F16 tie between 0 and 2^-24: even (0)
            (3 * 0x1p-25, 0x1p-23, 3 * 0x1p-25),              // F16 subnormal tie -> even (2^-23)
            (0x1p-25 + 0x1p-30, 0x1p-24, 0x1p-25 + 0x1p-30),  // above the tie: smallest F16 subnormal
            (0x1p-134, 0, 0),                                 // BF16 tie between 0 and 2^-133: even (0)
            (0x1.8p-133, 0, 0x1p-132),                        // BF16 subnormal tie -> even
            (0x1.fffp-15, 0x1p-14, 0x1p-14),                  // F16 subnormal rounds up to the smallest normal
            (Double(Float.greatestFiniteMagnitude), .infinity, .infinity),
            (-.infinity, -.infinity, -.infinity),
        ]
        let input = Tensor<Double>(cases.map(\.0))
        var writer = SafeTensorsWriter()
        writer.add(name: "f16", tensor: input, dtype: .float16)
        writer.add(name: "bf16", tensor: input, dtype: .bfloat16)
        writer.add(name: "nan", tensor: Tensor<Float>([.nan, -.nan]), dtype: .float16)
        writer.add(name: "nan.bf16", tensor: Tensor<Float>([.nan]), dtype: .bfloat16)
        writer.add(name: "zero", tensor: Tensor<Double>([-0.0, 0x1p-60, -0x1p-60]), dtype: .float16)
        try writer.write(to: folder + "/round.safetensors")
        let file = try SafeTensorsFile(contentsOf: folder + "/round.safetensors")
        let f16 = try file.tensor("f16", as: Double.self).scalars
        let bf16 = try file.tensor("bf16", as: Double.self).scalars
        for (index, item) in cases.enumerated() {
            #expect(f16[index] == item.1, "F16 of \(item.0): got \(f16[index]), want \(item.1)")
            #expect(bf16[index] == item.2, "BF16 of \(item.0): got \(bf16[index]), want \(item.2)")
        }
        #expect(try file.tensor("nan", as: Float.self).scalars.allSatisfy(\.isNaN))
        #expect(try file.tensor("nan.bf16", as: Double.self).scalars.allSatisfy(\.isNaN))
        let zeros = try file.tensor("zero", as: Double.self).scalars
        #expect(zeros == [0, 0, 0] && zeros.map(\.sign) == [.minus, .plus, .minus])
    }

    @Test("Metadata with quotes, backslashes, control characters and non-ASCII text round-trips")
    func metadataRoundTrip() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let metadata = ["quote\"key": "back\\slash", "lines": "a\nb\r\tc\u{01}\u{1F}", "ünï": "✓ 😀", "": "empty key"]
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(name: "x", tensor: Tensor<Float>([1]))
        try writer.write(to: folder + "/meta.safetensors")
        #expect(try SafeTensorsFile(contentsOf: folder + "/meta.safetensors").metadata == metadata)

        // No metadata: no __metadata__ key at all.
        try SafeTensorsWriter().write(to: folder + "/none.safetensors")
        let none = try SafeTensorsFile(contentsOf: folder + "/none.safetensors")
        #expect(none.metadata.isEmpty && none.entries.isEmpty)
        #expect(!String(decoding: Support.bytes(folder + "/none.safetensors"), as: UTF8.self).contains("__metadata__"))
    }

    @Test("Headers from other writers: whitespace, escapes, any key order, padding")
    func lenientJSON() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let header = """
        {
          "caf\\u00e9" : {"shape": [ 2 ], "data_offsets" : [4, 12], "dtype": "F32"},
          "\\ud83d\\ude00": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]},
          "__metadata__": {"k\\"ey": "v\\/al\\u0041"},
          "pad": {"dtype": "U8", "shape": [3], "data_offsets": [1, 4]}
        }\("    ")
        """
        var buffer: [UInt8] = [7, 0, 0, 0]
        for value: Float in [2.5, -4] { withUnsafeBytes(of: value.bitPattern.littleEndian) { buffer += $0 } }
        let file = try SafeTensorsFile(contentsOf: Support.craft(header, buffer: buffer, in: folder))
        #expect(file.metadata == ["k\"ey": "v/alA"])
        #expect(try file.tensor("café", as: Float.self) == Tensor<Float>([2.5, -4]))
        #expect(try file.integers("😀") == [7])
        #expect(try file.tensor("😀", as: Float.self).shape == [])

        let nullMetadata = Support.craft(#"{"__metadata__": null, "x": {"dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#,
                                         buffer: [0xFE], in: folder)
        let withNull = try SafeTensorsFile(contentsOf: nullMetadata)
        #expect(withNull.metadata.isEmpty)
        #expect(try withNull.integers("x") == [-2])
    }

    @Test("Malformed files throw errors that name the problem")
    func malformedFiles() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        let eight = [UInt8](repeating: 0, count: 8)
        func expect(_ header: String, buffer: [UInt8] = eight, _ fragments: String...,
                    sourceLocation: SourceLocation = #_sourceLocation) {
            let path = Support.craft(header, buffer: buffer, in: folder)
            let error = #expect(throws: TensorError.self, sourceLocation: sourceLocation) {
                _ = try SafeTensorsFile(contentsOf: path)
            }
            guard let error else { return }
            guard case let .file(errorPath, _) = error else {
                Issue.record("expected TensorError.file, got \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(errorPath == path, sourceLocation: sourceLocation)
            for fragment in fragments + ["re-export it"] {
                #expect(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"",
                        sourceLocation: sourceLocation)
            }
        }

        // Length field and header envelope.
        let short = folder + "/short.safetensors"
        Support.write([1, 2, 3], to: short)
        Support.expectFileError("only 3 bytes", "8-byte header length") { _ = try SafeTensorsFile(contentsOf: short) }
        let empty = folder + "/empty.safetensors"
        Support.write([], to: empty)
        Support.expectFileError("only 0 bytes") { _ = try SafeTensorsFile(contentsOf: empty) }
        let pastEnd = Support.craft("{}", length: 1000, in: folder)
        Support.expectFileError("header length 1000 runs past the end", "2 bytes follow") {
            _ = try SafeTensorsFile(contentsOf: pastEnd)
        }
        let hugeLength = Support.craft("{}", length: UInt64.max, in: folder)
        Support.expectFileError("runs past the end") { _ = try SafeTensorsFile(contentsOf: hugeLength) }
        let badUTF8 = Support.craft(headerBytes: Array("{\"a".utf8) + [0xFF, 0xFE] + Array("\":1}".utf8), in: folder)
        Support.expectFileError("not valid UTF-8") { _ = try SafeTensorsFile(contentsOf: badUTF8) }
        Support.expectFileError("No such file", "check the path") {
            _ = try SafeTensorsFile(contentsOf: folder + "/does-not-exist.safetensors")
        }
        Support.expectFileError("not a regular file") { _ = try SafeTensorsFile(contentsOf: folder) }

        // JSON syntax.
        expect("{\"a\": ", "not valid JSON", "expected a value")
        expect("{\"a\": {\"dtype\": \"F32\",}}", "not valid JSON", "expected a quoted object key")
        expect("{\"a\": 01}", "not valid JSON", "leading zeros")
        expect("{\"a\": \"x\ny\"}", "not valid JSON", "control character")
        expect("{\"a\": \"\\q\"}", "not valid JSON", "invalid escape")
        expect("{\"a\": \"\\ud800\"}", "not valid JSON", "surrogate")
        expect("{} {}", "not valid JSON", "after the JSON value")
        expect("{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}", "64 levels")
        expect("[1, 2]", "must start with '{'")
        expect(" {}", "must start with '{'")
        expect("{}", "last 8 bytes", "belong to no tensor")

        // Entries.
        expect(#"{"a": [1]}"#, "entry 'a' is a list")
        expect(#"{"a": {"shape":[2],"data_offsets":[0,8]}}"#, "no \"dtype\"")
        expect(#"{"a": {"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
               "unknown or unsupported dtype 'Q4'", "supported: F64, F32, F16, BF16")
        expect(#"{"a": {"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#, "dtype 'F8_E4M3'")
        expect(#"{"a": {"dtype":"F32","shape":2,"data_offsets":[0,8]}}"#, "list of non-negative integers", "a number")
        expect(#"{"a": {"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "list of non-negative integers")
        expect(#"{"a": {"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, "list of non-negative integers")
        expect(#"{"a": {"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}"#, "list of non-negative integers")
        expect(#"{"a": {"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#,
               "list of non-negative integers")
        expect(#"{"a": {"dtype":"F64","shape":[4294967296, 4294967296],"data_offsets":[0,8]}}"#, "impossibly large")
        expect(#"{"a": {"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "two non-negative integers")
        expect(#"{"a": {"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, "end before they begin")
        expect(#"{"a": {"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, buffer: [0, 0, 0, 0],
               "needs 8 bytes", "span 4")
        expect(#"{"a": \#(entry), "a": \#(entry)}"#, "names 'a' twice")

        // Offsets.
        expect(#"{"a": \#(entry), "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
               buffer: [UInt8](repeating: 0, count: 12), "overlapping")
        expect(#"{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "b": {"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
               buffer: [UInt8](repeating: 0, count: 12), "bytes 4..<8", "belong to no tensor")
        expect(#"{"a": \#(entry)}"#, buffer: [0, 0, 0, 0], "past the end of the data buffer", "truncated")
        expect(#"{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, "last 4 bytes", "belong to no tensor")

        // Metadata.
        expect(#"{"__metadata__": {"k": 1}, "a": \#(entry)}"#, "value for 'k' is a number", "must be strings")
        expect(#"{"__metadata__": {"k": null}, "a": \#(entry)}"#, "value for 'k' is null")
        expect(#"{"__metadata__": ["k"], "a": \#(entry)}"#, "__metadata__ must be an object")
    }

    @Test("A U64 value above Int64.max converts to floating point but not to Int64")
    func hugeUnsigned() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let path = Support.craft(#"{"u": {"dtype":"U64","shape":[2],"data_offsets":[0,16]}}"#,
                                 buffer: [5, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8), in: folder)
        let file = try SafeTensorsFile(contentsOf: path)
        #expect(try file.tensor("u", as: Double.self).scalars == [5, 0x1p64])  // 2^64 - 1 rounds to 2^64
        Support.expectFileError("'u'", "above Int64.max at element 1") { _ = try file.integers("u") }
    }

    @Test("Integers that do not fit the dtype are refused when added")
    func integerRange() throws {
        var writer = SafeTensorsWriter()
        for (dtype, value) in [(SafeTensorsDType.uint8, Int64(256)), (.int8, -129), (.bool, 2), (.uint64, -1),
                               (.int32, Int64(Int32.max) + 1), (.uint16, 65536)] {
            let error = #expect(throws: TensorError.self) {
                try writer.add(name: "x", integers: [0, value], shape: [2], dtype: dtype)
            }
            #expect(error?.description.contains("value \(value) at element 1 does not fit \(dtype.rawValue)") == true)
        }
        #expect(writer.names.isEmpty)
    }

    @Test("A failed write leaves no file, no temporary file, and an existing file untouched")
    func failedWrites() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        var writer = SafeTensorsWriter(metadata: ["v": "2"])
        writer.add(name: "x", tensor: Tensor<Float>([1, 2, 3]))

        // The folder does not exist.
        Support.expectFileError("cannot create a temporary file", "check that the folder exists") {
            try writer.write(to: folder + "/missing/out.safetensors")
        }
        #expect(Support.contents(of: folder).isEmpty)

        // The destination is a folder: the rename fails after the data was written.
        try FileManager.default.createDirectory(atPath: folder + "/taken", withIntermediateDirectories: false)
        Support.expectFileError("cannot replace the file") { try writer.write(to: folder + "/taken") }
        #expect(Support.contents(of: folder) == ["taken"])
        #expect(Support.contents(of: folder + "/taken").isEmpty)

        // An existing file survives a body that fails halfway, and is replaced by a successful write.
        let path = folder + "/model.safetensors"
        var original = SafeTensorsWriter(metadata: ["v": "1"])
        original.add(name: "x", tensor: Tensor<Float>([9]))
        try original.write(to: path)
        let before = Support.bytes(path)
        struct Interrupted: Error {}
        #expect(throws: Interrupted.self) {
            try AtomicFile.write(to: path) { output in
                try output.write([UInt8](repeating: 1, count: 100))
                throw Interrupted()
            }
        }
        #expect(Support.bytes(path) == before)
        #expect(Support.contents(of: folder) == ["model.safetensors", "taken"])
        #expect(try SafeTensorsFile(contentsOf: path).metadata == ["v": "1"])

        try writer.write(to: path)
        #expect(try SafeTensorsFile(contentsOf: path).metadata == ["v": "2"])
        #expect(try SafeTensorsFile(contentsOf: path).tensor("x", as: Float.self) == Tensor<Float>([1, 2, 3]))
        #expect(Support.contents(of: folder) == ["model.safetensors", "taken"])
        Support.expectFileError("not a file name") { try writer.write(to: folder + "/") }
    }

    @Test("Destinations and output folders are checked before long work, with the fix named")
    func destinationsAndFolders() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        try AtomicFile.checkDestination(folder + "/model.safetensors")
        Support.expectFileError("folder '\(folder)/missing' does not exist", "create it first") {
            try AtomicFile.checkDestination(folder + "/missing/model.safetensors")
        }
        Support.expectFileError("is a folder", "give a file name") { try AtomicFile.checkDestination(folder) }
        Support.expectFileError("not a file name") { try AtomicFile.checkDestination(folder + "/") }

        // A .npy array given where a safetensors file is expected is named as such.
        try NPYFile.write(Tensor<Float>([1, 2]), to: folder + "/array.npy")
        Support.expectFileError("is a NumPy .npy array, not a safetensors file") { _ = try SafeTensorsFile(contentsOf: folder + "/array.npy") }
        try FileManager.default.removeItem(atPath: folder + "/array.npy")

        try AtomicFile.createFolder(folder + "/report/deep")
        try AtomicFile.createFolder(folder + "/report/deep")
        #expect(Support.contents(of: folder + "/report") == ["deep"])
        try Data("text".utf8).write(to: URL(fileURLWithPath: folder + "/notes.txt"))
        Support.expectFileError("is a file, not a folder") { try AtomicFile.createFolder(folder + "/notes.txt") }
        #expect(Support.contents(of: folder) == ["notes.txt", "report"])
    }

    @Test("Zero-size tensors, several at one offset, and scalars")
    func zeroSize() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        var writer = SafeTensorsWriter()
        writer.add(name: "a.empty", tensor: Tensor<Float>.zeros([0]))
        writer.add(name: "b.scalar", tensor: Tensor<Double>(scalar: -3.25), dtype: .float16)
        writer.add(name: "c.empty", tensor: Tensor<Double>.zeros([3, 0, 2]), dtype: .bfloat16)
        try writer.add(name: "d.empty", integers: [], shape: [0, 5], dtype: .int32)
        writer.add(name: "e.empty", tensor: Tensor<Float>.zeros([0]))
        try writer.write(to: folder + "/zero.safetensors")
        let file = try SafeTensorsFile(contentsOf: folder + "/zero.safetensors")
        #expect(file.entries.map(\.byteCount) == [0, 2, 0, 0, 0])
        #expect(file.entries.map(\.dataOffset) == [0, 0, 2, 2, 2])
        #expect(try file.tensor("a.empty", as: Float.self).shape == [0])
        #expect(try file.tensor("b.scalar", as: Double.self) == Tensor(scalar: -3.25))
        #expect(try file.tensor("c.empty", as: Float.self).shape == [3, 0, 2])
        #expect(try file.integers("d.empty") == [])
        #expect(try file.entry("d.empty").shape == [0, 5])

        // Only zero-size tensors: an empty buffer.
        var emptyOnly = SafeTensorsWriter()
        emptyOnly.add(name: "e", tensor: Tensor<Float>.zeros([0, 4]))
        try emptyOnly.write(to: folder + "/only-empty.safetensors")
        #expect(try SafeTensorsFile(contentsOf: folder + "/only-empty.safetensors").tensor("e", as: Float.self).shape
                == [0, 4])
    }

    @Test("A file of several megabytes is mapped and read tensor by tensor")
    func largeFile() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let big = Tensor<Float>.randomUniform([1024, 1024], low: -1, high: 1, seed: 42)
        let small = Tensor<Double>.randomNormal([3, 3], seed: 43)
        var writer = SafeTensorsWriter()
        writer.add(name: "big", tensor: big)
        writer.add(name: "small", tensor: small)
        let path = folder + "/large.safetensors"
        try writer.write(to: path)
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size > 4 * 1024 * 1024 && size < 4 * 1024 * 1024 + 256)

        let file = try SafeTensorsFile(contentsOf: path)
        #expect(try file.tensor("small", as: Double.self) == small)
        #expect(try file.tensor("big", as: Float.self) == big)
        #expect(try file.entry("big").byteCount == 4 * 1024 * 1024)
        let asDouble = try file.tensor("big", as: Double.self)
        #expect(asDouble.scalars[123_456] == Double(big.scalars[123_456]))
    }
}
