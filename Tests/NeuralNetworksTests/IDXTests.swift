import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// A fresh temporary folder, removed by `body`'s caller through the returned cleanup.
private func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-idx-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    try body(url.path)
}

private func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func randomBytes(_ count: Int, below bound: Int = 256, generator: inout SeededGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8(generator.nextInt(below: bound)) }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit by bit: the gzip trailer checksum.
private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

private func littleEndian32(_ value: UInt32) -> [UInt8] {
    [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)]
}

/// A gzip member built by hand from RFC 1951/1952: header, one stored (uncompressed) DEFLATE block, CRC-32, size.
private func storedGzip(_ data: [UInt8]) -> [UInt8] {
    precondition(data.count <= 0xFFFF)
    let length = UInt16(data.count)
    var bytes: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF]
    bytes += [0x01, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
    bytes += data
    bytes += littleEndian32(crc32(data)) + littleEndian32(UInt32(data.count))
    return bytes
}

/// The IDX header of an unsigned-byte array, written from the format's definition.
private func idxHeader(_ shape: [Int]) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
    for size in shape { bytes += littleEndian32(UInt32(size)).reversed() }
    return bytes
}

private func problem(_ error: DataError?) -> String {
    guard let error else { return "" }
    if case let .corruptFile(_, problem) = error { return problem }
    return "not a corruptFile error: \(error)"
}

@Suite struct IDXTests {
    // MARK: Gzip

    @Test func handMadeGzipInflatesAndCompressRoundTrips() throws {
        var generator = SeededGenerator(seed: 11)
        let data = randomBytes(5_000, below: 7, generator: &generator)
        #expect(try Gzip.decompress(storedGzip(data), source: "stored") == data)
        // Two members one after the other inflate to the concatenation, as gzip(1) does.
        let second = randomBytes(300, generator: &generator)
        #expect(try Gzip.decompress(storedGzip(data) + storedGzip(second), source: "two") == data + second)
        // Our own deflate output: the gzip magic, smaller than the input for 7-symbol data, exact round trip.
        let packed = Gzip.compress(data)
        #expect(Array(packed.prefix(3)) == [0x1F, 0x8B, 0x08])
        #expect(packed.count < data.count)
        #expect(try Gzip.decompress(packed, source: "packed") == data)
        #expect(try Gzip.decompress(Gzip.compress([]), source: "empty") == [])
        // A gzip trailer carries CRC-32 and length of the data; ours must agree with the hand computation.
        #expect(Array(packed.suffix(8)) == littleEndian32(crc32(data)) + littleEndian32(UInt32(data.count)))
        // Bytes without the gzip magic pass through unchanged.
        #expect(try Gzip.decompress(data, source: "raw") == data)
        // A size-hint mismatch (the output buffer must grow) still works: 200 KB of zeros compresses ~1000:1.
        let zeros = [UInt8](repeating: 0, count: 200_000)
        var lying = Gzip.compress(zeros)
        lying.replaceSubrange((lying.count - 4)..., with: littleEndian32(10))
        let error = #expect(throws: DataError.self) { try Gzip.decompress(lying, source: "lying") }
        #expect(problem(error).contains("gzip data error"))  // zlib checks ISIZE: "incorrect length check"
    }

    @Test func damagedGzipIsReported() throws {
        var generator = SeededGenerator(seed: 12)
        let data = randomBytes(4_000, below: 16, generator: &generator)
        let packed = Gzip.compress(data)
        let truncated = #expect(throws: DataError.self) {
            try Gzip.decompress(Array(packed.prefix(packed.count / 2)), source: "half.gz")
        }
        #expect(truncated?.path == "half.gz")
        #expect(problem(truncated).contains("truncated"))

        var badChecksum = packed
        badChecksum[packed.count - 8] ^= 0xFF
        let checksum = #expect(throws: DataError.self) { try Gzip.decompress(badChecksum, source: "crc.gz") }
        #expect(problem(checksum).contains("gzip data error"))

        var badMethod = packed
        badMethod[2] = 0x07  // compression method other than DEFLATE
        #expect(throws: DataError.self) { try Gzip.decompress(badMethod, source: "method.gz") }

        let trailing = #expect(throws: DataError.self) { try Gzip.decompress(packed + [1, 2, 3], source: "tail.gz") }
        #expect(problem(trailing).contains("unexpected bytes"))
        // Zero padding after the member is accepted, as gzip(1) does.
        #expect(try Gzip.decompress(packed + [0, 0, 0, 0], source: "padded.gz") == data)
    }

    // MARK: IDX

    @Test func idxEncodingFollowsTheFormat() throws {
        let array = IDXArray(shape: [2, 3, 258], bytes: (0..<(2 * 3 * 258)).map { UInt8($0 % 256) })
        let encoded = array.encoded()
        #expect(array.magic == IDX.imagesMagic)
        #expect(Array(encoded.prefix(16)) == [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 1, 2])
        #expect(encoded.count == 16 + 2 * 3 * 258)
        #expect(try IDXArray(decoding: encoded, source: "memory") == array)
        #expect(IDXArray(shape: [5], bytes: [1, 2, 3, 4, 5]).magic == IDX.labelsMagic)
    }

    @Test func idxFilesRoundTripGzipAndRaw() throws {
        var generator = SeededGenerator(seed: 13)
        try withTemporaryDirectory { folder in
            for trial in 0..<4 {
                let shape = [1 + generator.nextInt(below: 20), 1 + generator.nextInt(below: 9), 1 + generator.nextInt(below: 9)]
                let array = IDXArray(shape: shape, bytes: randomBytes(shape.reduce(1, *), generator: &generator))
                let compressed = folder + "/images-\(trial).gz", raw = folder + "/images-\(trial)"
                try array.write(to: compressed)
                try array.write(to: raw, compressed: false)
                #expect(try IDX.readImages(path: compressed) == array)
                #expect(try IDX.readImages(path: raw) == array)
                #expect(try IDXArray(contentsOf: raw) == array)
                // A file gzipped by the hand-made stored encoder reads the same.
                try writeBytes(storedGzip(array.encoded()), to: folder + "/stored.gz")
                #expect(try IDX.readImages(path: folder + "/stored.gz") == array)

                let labels = (0..<shape[0]).map { _ in generator.nextInt(below: 10) }
                try IDXArray(shape: [labels.count], bytes: labels.map(UInt8.init)).write(to: folder + "/labels.gz")
                #expect(try IDX.readLabels(path: folder + "/labels.gz") == labels)
            }
        }
    }

    @Test func malformedIDXDataIsRejectedWithTheReason() throws {
        let good = idxHeader([3, 2, 2]) + [UInt8](repeating: 7, count: 12)
        #expect(try IDX.images(decoding: good, source: "ok").shape == [3, 2, 2])

        let notIDX = #expect(throws: DataError.self) { try IDX.images(decoding: [0x50, 0x4B, 3, 4] + good, source: "zip") }
        #expect(notIDX?.path == "zip")
        #expect(problem(notIDX).contains("bad magic number 0x504B0304"))

        let labelsAsImages = #expect(throws: DataError.self) {
            try IDX.images(decoding: idxHeader([4]) + [0, 1, 2, 3], source: "labels")
        }
        #expect(problem(labelsAsImages).contains("0x00000801"))
        #expect(problem(labelsAsImages).contains("0x00000803"))

        var floats = good
        floats[2] = 0x0D
        #expect(problem(#expect(throws: DataError.self) { try IDX.images(decoding: floats, source: "f") })
            .contains("0xD"))

        let truncated = #expect(throws: DataError.self) { try IDX.images(decoding: Array(good.dropLast(5)), source: "t") }
        #expect(problem(truncated).contains("truncated: 7 bytes of data present"))
        #expect(problem(truncated).contains("needs 12 data bytes"))

        let longer = #expect(throws: DataError.self) { try IDX.images(decoding: good + [9, 9], source: "l") }
        #expect(problem(longer).contains("2 extra bytes"))

        let shortHeader = #expect(throws: DataError.self) { try IDX.images(decoding: Array(good.prefix(9)), source: "h") }
        #expect(problem(shortHeader).contains("truncated"))

        #expect(throws: DataError.self) { try IDX.images(decoding: idxHeader([0, 2, 2]), source: "empty") }
        #expect(throws: DataError.self) { try IDX.images(decoding: [0, 0], source: "tiny") }

        let outOfRange = #expect(throws: DataError.self) {
            try IDX.labels(decoding: idxHeader([4]) + [0, 9, 10, 3], source: "lab", classCount: 10)
        }
        #expect(problem(outOfRange).contains("label 10 at index 2 is outside 0..<10"))
        #expect(try IDX.labels(decoding: idxHeader([4]) + [0, 9, 1, 3], source: "lab", classCount: 10) == [0, 9, 1, 3])
    }

    // MARK: Data sets from IDX files

    /// Writes the four files of an MNIST-style folder; returns (images, labels) of each split.
    private func writeMNISTFolder(_ folder: String, compressed: Bool, generator: inout SeededGenerator)
        throws -> [Dataset.Split: (IDXArray, [Int])] {
        var result: [Dataset.Split: (IDXArray, [Int])] = [:]
        for (split, prefix, count) in [(Dataset.Split.train, "train", 12), (.test, "t10k", 5)] {
            let images = IDXArray(shape: [count, 4, 3], bytes: randomBytes(count * 12, generator: &generator))
            let labels = (0..<count).map { _ in generator.nextInt(below: 10) }
            let suffix = compressed ? ".gz" : ""
            try images.write(to: "\(folder)/\(prefix)-images-idx3-ubyte\(suffix)", compressed: compressed)
            try IDXArray(shape: [count], bytes: labels.map(UInt8.init))
                .write(to: "\(folder)/\(prefix)-labels-idx1-ubyte\(suffix)", compressed: compressed)
            result[split] = (images, labels)
        }
        return result
    }

    @Test func mnistStyleFoldersLoadScaledAndNormalized() throws {
        var generator = SeededGenerator(seed: 14)
        for compressed in [true, false] {
            try withTemporaryDirectory { folder in
                let truth = try writeMNISTFolder(folder, compressed: compressed, generator: &generator)
                for split in Dataset.Split.allCases {
                    let (images, labels) = truth[split]!
                    let raw = try Dataset.fashionMNIST(directory: folder, split: split, normalization: nil)
                    #expect(raw.images.shape == images.shape + [1])
                    #expect(raw.labels == labels)
                    #expect(raw.normalization == nil)
                    #expect(raw.images.scalars == images.bytes.map { Float($0) / 255 })
                    #expect(raw.name == "fashion-mnist/\(split.rawValue)")

                    let normalized = try Dataset.fashionMNIST(directory: folder, split: split)
                    #expect(normalized.normalization == .fashionMNIST)
                    #expect(normalized.images.scalars == images.bytes.map { (Float($0) / 255 - 0.2860) / 0.3530 })
                    #expect(raw.normalized(.fashionMNIST).images == normalized.images)

                    let digits = try Dataset.load(.mnist, directory: folder, split: split)
                    #expect(digits.images.scalars == images.bytes.map { (Float($0) / 255 - 0.1307) / 0.3081 })
                    #expect(digits.classNames == (0...9).map(String.init))
                }
            }
        }
    }

    @Test func missingAndMismatchedFilesAreExplained() throws {
        var generator = SeededGenerator(seed: 15)
        try withTemporaryDirectory { folder in
            let missing = #expect(throws: DataError.self) { try Dataset.fashionMNIST(directory: folder, split: .test) }
            guard case let .missingFile(path, expected, _) = missing else {
                Issue.record("expected missingFile, got \(String(describing: missing))")
                return
            }
            #expect(path == folder + "/t10k-images-idx3-ubyte.gz")
            #expect(expected.contains("Fashion-MNIST test images"))
            let message = missing!.description
            #expect(message.contains("sudo apt-get install dataset-fashion-mnist"))
            #expect(message.contains("--data-dir"))
            #expect(!message.contains("\n"))

            _ = try writeMNISTFolder(folder, compressed: true, generator: &generator)
            // Test labels from the training split: 12 labels for 5 images.
            try FileManager.default.removeItem(atPath: folder + "/t10k-labels-idx1-ubyte.gz")
            try FileManager.default.copyItem(atPath: folder + "/train-labels-idx1-ubyte.gz",
                                             toPath: folder + "/t10k-labels-idx1-ubyte.gz")
            let mismatch = #expect(throws: DataError.self) { try Dataset.fashionMNIST(directory: folder, split: .test) }
            #expect(mismatch == .mismatchedFiles(images: folder + "/t10k-images-idx3-ubyte.gz", imageCount: 5,
                                                 labels: folder + "/t10k-labels-idx1-ubyte.gz", labelCount: 12))

            // A damaged download: the gzip file cut in half.
            let trainImages = folder + "/train-images-idx3-ubyte.gz"
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: trainImages)))
            try writeBytes(Array(bytes.prefix(bytes.count / 2)), to: trainImages)
            let damaged = #expect(throws: DataError.self) { try Dataset.fashionMNIST(directory: folder, split: .train) }
            #expect(damaged?.path == trainImages)
            #expect(problem(damaged).contains("truncated"))
            #expect(damaged?.description.hasPrefix(trainImages + ": corrupt data file") == true)
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: Dataset.fashionMNISTDirectory + "/t10k-images-idx3-ubyte.gz"),
                   "Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist); real-data check skipped"))
    func realFashionMNISTTestSplitLoads() throws {
        let test = try Dataset.fashionMNIST(split: .test, normalization: nil)
        #expect(test.images.shape == [10_000, 28, 28, 1])
        #expect(test.count == 10_000)
        // Fashion-MNIST's test split holds each of its 10 classes exactly 1,000 times.
        #expect(test.classCounts == [Int](repeating: 1_000, count: 10))
        #expect(test.classNames.count == 10)
        // Every value is a byte scaled by 1/255.
        let bad = test.images.scalars.firstIndex { x in
            let byte = (x * 255).rounded()
            return !(0...255).contains(byte) || Float(byte) / 255 != x
        }
        #expect(bad == nil)
        let normalized = test.normalized(.fashionMNIST)
        let again = try Dataset.fashionMNIST(split: .test).subset(first: 100)
        #expect(again.images == normalized.subset(first: 100).images)
        #expect(again.labels == Array(test.labels.prefix(100)))
    }
}
