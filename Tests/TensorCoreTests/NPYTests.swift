import Foundation
import Testing
import TensorCore

@Suite("NPYTests")
struct NPYTests {
    typealias Support = IOTestSupport

    // The arrays of the .npy fixtures (see scripts/make_io_fixtures.py; `i` is the row-major index).
    static let f4 = Tensor<Float>(shape: [3, 4], scalars: (0..<12).map { Float($0 - 6) / Float(3) })
    static let f8 = Tensor<Double>(shape: [2, 3, 4], scalars: (0..<24).map { Double($0 - 12) / 3 })
    static let f8Vector = Tensor<Double>((0..<5).map { Double($0 - 2) / 3 })

    /// A .npy file from a raw header dict (padded as numpy pads, unless `rawHeader` is used) and data.
    static func craft(_ dict: String, data: [UInt8], version: UInt8 = 1, in folder: String) -> String {
        let lengthSize = version == 1 ? 2 : 4
        var header = Array(dict.utf8)
        header += [UInt8](repeating: 0x20, count: 63 - (8 + lengthSize + header.count) % 64) + [0x0A]
        let length = (0..<lengthSize).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        return craft(bytes: [0x93] + Array("NUMPY".utf8) + [version, 0] + length + header + data, in: folder)
    }

    static func craft(bytes: [UInt8], in folder: String) -> String {
        let path = folder + "/crafted-\(UUID().uuidString).npy"
        Support.write(bytes, to: path)
        return path
    }

    @Test("NumPy fixtures of every version and element type read exactly")
    func numpyFixtures() throws {
        let f4File = try NPYFile(contentsOf: Support.fixture("f4_3x4.npy"))
        #expect(f4File.dtype == "<f4" && f4File.version == "1.0" && f4File.shape == [3, 4] && f4File.byteCount == 48)
        #expect(f4File.tensor(as: Float.self) == Self.f4)
        #expect(f4File.tensor(as: Double.self) == Self.f4.converted(to: Double.self))

        let f8File = try NPYFile(contentsOf: Support.fixture("f8_2x3x4.npy"))
        #expect(f8File.dtype == "<f8" && f8File.shape == [2, 3, 4] && f8File.byteCount == 192)
        #expect(f8File.tensor(as: Double.self) == Self.f8)
        #expect(f8File.tensor(as: Float.self) == Self.f8.converted(to: Float.self))

        #expect(try NPYFile(contentsOf: Support.fixture("f8_vector.npy")).tensor() == Self.f8Vector)
        let scalar: Tensor<Double> = try NPYFile(contentsOf: Support.fixture("f8_scalar.npy")).tensor()
        #expect(scalar.shape == [] && scalar.scalar == 2.5)
        let empty = try NPYFile(contentsOf: Support.fixture("f4_empty.npy"))
        #expect(empty.shape == [0, 3] && empty.byteCount == 0 && empty.tensor(as: Float.self).scalarCount == 0)

        let v2 = try NPYFile(contentsOf: Support.fixture("f8_v2.npy"))
        #expect(v2.version == "2.0" && v2.tensor(as: Double.self) == Self.f8Vector)
        let v3 = try NPYFile(contentsOf: Support.fixture("f4_v3.npy"))
        #expect(v3.version == "3.0" && v3.tensor(as: Float.self) == Self.f4)

        let thousands = Tensor<Double>((0..<7).map { Double($0 - 3) * 1000 })
        for (name, dtype) in [("i8.npy", "<i8"), ("i4.npy", "<i4")] {
            let file = try NPYFile(contentsOf: Support.fixture(name))
            #expect(file.dtype == dtype)
            #expect(file.tensor(as: Double.self) == thousands)
        }
        let bytes = try NPYFile(contentsOf: Support.fixture("u1.npy"))
        #expect(bytes.dtype == "|u1" && bytes.tensor(as: Float.self) == Tensor((0..<16).map { Float($0 * 17) }))
    }

    @Test("Fortran order and big-endian data are refused with a way out")
    func refusedFixtures() {
        Support.expectFileError("Fortran (column-major) order", "numpy.ascontiguousarray") {
            _ = try NPYFile(contentsOf: Support.fixture("fortran.npy"))
        }
        Support.expectFileError("'>f4'", "supported: <f8, <f4", "|u1", "astype") {
            _ = try NPYFile(contentsOf: Support.fixture("big_endian.npy"))
        }
    }

    @Test("Written files are byte-for-byte what numpy.save writes")
    func matchesNumpyBytes() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        try NPYFile.write(Self.f4, to: folder + "/f4.npy")
        #expect(Support.bytes(folder + "/f4.npy") == Support.bytes(Support.fixture("f4_3x4.npy")))
        try NPYFile.write(Self.f8, to: folder + "/f8.npy")
        #expect(Support.bytes(folder + "/f8.npy") == Support.bytes(Support.fixture("f8_2x3x4.npy")))
        try NPYFile.write(Self.f8Vector, to: folder + "/vector.npy")
        #expect(Support.bytes(folder + "/vector.npy") == Support.bytes(Support.fixture("f8_vector.npy")))
        try NPYFile.write(Tensor<Double>(scalar: 2.5), to: folder + "/scalar.npy")
        #expect(Support.bytes(folder + "/scalar.npy") == Support.bytes(Support.fixture("f8_scalar.npy")))
        try NPYFile.write(Tensor<Float>.zeros([0, 3]), to: folder + "/empty.npy")
        #expect(Support.bytes(folder + "/empty.npy") == Support.bytes(Support.fixture("f4_empty.npy")))
        // For the manual cross-check with python3 scripts/make_io_fixtures.py --check DIR/lowrank_written_f4.npy
        if let keep = ProcessInfo.processInfo.environment["LOWRANK_IO_CHECK_DIR"] {
            try NPYFile.write(Self.f4, to: keep + "/lowrank_written_f4.npy")
            try NPYFile.write(Self.f8, to: keep + "/lowrank_written_f8.npy")
        }
    }

    @Test("Round trip of seeded random tensors of several ranks, and replacing an existing file")
    func roundTrip() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        for (index, shape) in [[], [1], [7], [3, 5], [2, 3, 4], [2, 1, 3, 2], [4, 0, 2]].enumerated() {
            let single = Tensor<Float>.randomNormal(shape, seed: UInt64(index))
            let double = Tensor<Double>.randomNormal(shape, seed: UInt64(100 + index))
            try NPYFile.write(single, to: folder + "/f.npy")
            try NPYFile.write(double, to: folder + "/d.npy")
            let f = try NPYFile(contentsOf: folder + "/f.npy")
            let d = try NPYFile(contentsOf: folder + "/d.npy")
            #expect(f.dtype == "<f4" && f.shape == shape && f.tensor(as: Float.self) == single)
            #expect(d.dtype == "<f8" && d.shape == shape && d.tensor(as: Double.self) == double)
            // numpy.lib.format aligns the data to 64 bytes.
            #expect((Support.bytes(folder + "/d.npy").count - d.byteCount) % 64 == 0)
        }
        #expect(Support.contents(of: folder) == ["d.npy", "f.npy"])
    }

    @Test("Malformed files throw errors that name the problem")
    func malformedFiles() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        let twelve = [UInt8](repeating: 0, count: 12)
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
        // The crafting helper itself makes readable files.
        #expect(try NPYFile(contentsOf: Self.craft(good, data: twelve, in: folder)).shape == [3])
        #expect(try NPYFile(contentsOf: Self.craft(good, data: twelve, version: 3, in: folder)).version == "3.0")

        func expect(_ path: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
            let error = #expect(throws: TensorError.self, sourceLocation: sourceLocation) {
                _ = try NPYFile(contentsOf: path)
            }
            guard let error else { return }
            guard case let .file(errorPath, _) = error else {
                Issue.record("expected TensorError.file, got \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(errorPath == path, sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"",
                        sourceLocation: sourceLocation)
            }
        }

        // Magic, version, length.
        expect(Self.craft(bytes: Array("PK\u{3}\u{4} not numpy".utf8), in: folder), "magic bytes", "numpy.save")
        expect(Self.craft(bytes: [0x93] + Array("NUMP".utf8), in: folder), "magic bytes")
        expect(Self.craft(bytes: [0x93] + Array("NUMPY".utf8) + [4, 0, 10, 0], in: folder),
               "version 4.0", "supported: 1.0, 2.0, 3.0")
        expect(Self.craft(bytes: [0x93] + Array("NUMPY".utf8) + [2, 0, 10], in: folder), "inside the header length")
        expect(Self.craft(bytes: [0x93] + Array("NUMPY".utf8) + [1, 0, 100, 0] + Array("{'descr'".utf8), in: folder),
               "header is truncated", "100 bytes", "only 8 bytes")

        // The dict.
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", data: twelve, in: folder),
               "not a Python dict literal", "expected ',' or '}'")
        expect(Self.craft("['descr', '<f4']", data: twelve, in: folder), "not a Python dict literal", "expected '{'")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,)}", data: twelve, in: folder),
               "not a Python dict literal", "unexpected character 'M'")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'descr': '<f4'}", data: twelve,
                          in: folder), "duplicate key 'descr'")
        expect(Self.craft("{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}", data: twelve, in: folder),
               "not a Python dict literal")
        expect(Self.craft("{'descr': '<f4', 'shape': (3,)}", data: twelve, in: folder),
               "exactly the keys 'descr', 'fortran_order' and 'shape'", "has 'descr', 'shape'")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", data: twelve,
                          in: folder), "exactly the keys", "'extra'")
        expect(Self.craft("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (3,)}", data: twelve,
                          in: folder), "structured dtypes are not supported")
        expect(Self.craft("{'descr': '|O', 'fortran_order': False, 'shape': (3,)}", data: twelve, in: folder),
               "NumPy type '|O'", "supported: <f8, <f4")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}", data: twelve, in: folder),
               "'fortran_order' is not True or False")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 1)}", data: twelve, in: folder),
               "Fortran (column-major) order")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': 3}", data: twelve, in: folder),
               "'shape' is not a tuple")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1)}", data: twelve, in: folder),
               "non-negative integers")
        expect(Self.craft("{'descr': '<f4', 'fortran_order': False, 'shape': (3, None)}", data: twelve, in: folder),
               "non-negative integers")

        // Data size.
        expect(Self.craft(good, data: [UInt8](repeating: 0, count: 8), in: folder),
               "shape [3] of '<f4' needs 12 bytes", "holds 8")
        expect(Self.craft(good, data: [UInt8](repeating: 0, count: 16), in: folder), "needs 12 bytes", "holds 16")
        expect(Self.craft("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", data: twelve,
                          in: folder), "impossibly large")
    }

    @Test("A failed write leaves nothing behind and keeps the existing file")
    func failedWrite() throws {
        let folder = try Support.makeTemporaryFolder()
        defer { Support.removeFolder(folder) }
        Support.expectFileError("cannot create a temporary file", "check that the folder exists") {
            try NPYFile.write(Self.f4, to: folder + "/missing/out.npy")
        }
        #expect(Support.contents(of: folder).isEmpty)
        try FileManager.default.createDirectory(atPath: folder + "/out.npy", withIntermediateDirectories: false)
        Support.expectFileError("cannot replace the file") { try NPYFile.write(Self.f4, to: folder + "/out.npy") }
        #expect(Support.contents(of: folder) == ["out.npy"])
    }
}
