import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// One generated CIFAR-10 batch: labels and, per record, the three 32×32 planes R, G, B.
private struct GeneratedBatch {
    var labels: [UInt8]
    var planes: [[[UInt8]]]  // [record][channel][y * 32 + x]

    init(records: Int, generator: inout SeededGenerator) {
        labels = (0..<records).map { _ in UInt8(generator.nextInt(below: 10)) }
        planes = (0..<records).map { _ in
            (0..<3).map { _ in (0..<1024).map { _ in UInt8(truncatingIfNeeded: generator.next()) } }
        }
    }

    /// The official binary layout: per record, the label byte then the R, G and B planes.
    var fileBytes: [UInt8] {
        var bytes: [UInt8] = []
        for record in labels.indices { bytes += [labels[record]] + planes[record][0] + planes[record][1] + planes[record][2] }
        return bytes
    }
}

private func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-cifar-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    try body(url.path)
}

private func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Writes data_batch_1…5 and test_batch into `folder`; returns the train batches then the test batch.
private func writeCIFARFolder(_ folder: String, generator: inout SeededGenerator) throws -> [GeneratedBatch] {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    var batches: [GeneratedBatch] = []
    for (file, records) in zip(CIFAR10.trainFiles + CIFAR10.testFiles, [3, 1, 2, 2, 1, 4]) {
        let batch = GeneratedBatch(records: records, generator: &generator)
        try write(batch.fileBytes, to: folder + "/" + file)
        batches.append(batch)
    }
    return batches
}

private func problem(_ error: DataError?) -> String {
    if case let .corruptFile(_, problem)? = error { return problem }
    return "not a corruptFile error: \(String(describing: error))"
}

@Suite struct CIFAR10Tests {
    @Test func generatedBatchesLoadAsNHWC() throws {
        var generator = SeededGenerator(seed: 21)
        try withTemporaryDirectory { root in
            // The archive's layout: the files inside cifar-10-batches-bin; the loader is given the parent.
            let batches = try writeCIFARFolder(root + "/cifar-10-batches-bin", generator: &generator)
            for split in Dataset.Split.allCases {
                let expected = split == .train ? Array(batches[0..<5]) : [batches[5]]
                let records = expected.flatMap { batch in batch.labels.indices.map { (batch, $0) } }
                let data = try Dataset.cifar10(directory: root, split: split, normalization: nil)
                #expect(data.images.shape == [records.count, 32, 32, 3])
                #expect(data.labels == expected.flatMap { $0.labels.map(Int.init) })
                #expect(data.classNames[0] == "airplane" && data.classNames[9] == "truck")
                var mismatches = 0
                for (i, (batch, record)) in records.enumerated() {
                    for y in 0..<32 { for x in 0..<32 { for c in 0..<3 {
                        if data.images[i, y, x, c] != Float(batch.planes[record][c][y * 32 + x]) / 255 { mismatches += 1 }
                    } } }
                }
                #expect(mismatches == 0)

                // Default normalization: per channel (x − mean[c]) / std[c] with CIFAR-10's statistics.
                let normalized = try Dataset.cifar10(directory: root + "/cifar-10-batches-bin", split: split)
                #expect(normalized.normalization == .cifar10)
                #expect(normalized.images == data.normalized(.cifar10).images)
                let (batch, record) = records[0]
                for c in 0..<3 {
                    let byte = Float(batch.planes[record][c][5 * 32 + 7])
                    let mean = [Float(0.4914), 0.4822, 0.4465][c], deviation = [Float(0.2470), 0.2435, 0.2616][c]
                    #expect(normalized.images[0, 5, 7, c] == (byte / 255 - mean) / deviation)
                }
            }
        }
    }

    @Test func recordsParseTheOfficialLayout() throws {
        var generator = SeededGenerator(seed: 22)
        let batch = GeneratedBatch(records: 3, generator: &generator)
        let records = try CIFAR10.records(decoding: batch.fileBytes, source: "memory")
        #expect(records.labels == batch.labels)
        #expect(records.pixels == batch.planes.flatMap { $0.flatMap { $0 } })
        // Gzip-compressed batches read the same.
        #expect(try CIFAR10.records(decoding: Gzip.compress(batch.fileBytes), source: "memory.gz") == records)
    }

    @Test func badBatchFilesAreExplained() throws {
        var generator = SeededGenerator(seed: 23)
        try withTemporaryDirectory { folder in
            let batches = try writeCIFARFolder(folder, generator: &generator)

            try FileManager.default.removeItem(atPath: folder + "/data_batch_3.bin")
            let missing = #expect(throws: DataError.self) { try Dataset.cifar10(directory: folder, split: .train) }
            guard case let .missingFile(path, expected, remedy)? = missing else {
                Issue.record("expected missingFile, got \(String(describing: missing))")
                return
            }
            #expect(path == folder + "/data_batch_3.bin")
            #expect(expected.contains("data_batch_3.bin"))
            #expect(remedy.contains("cifar-10-binary.tar.gz") && remedy.contains("--data-dir"))
            #expect(try Dataset.cifar10(directory: folder, split: .test).count == 4)

            // Truncated: the last record loses 100 bytes.
            let truncatedPath = folder + "/test_batch.bin"
            try write(Array(batches[5].fileBytes.dropLast(100)), to: truncatedPath)
            let truncated = #expect(throws: DataError.self) { try Dataset.cifar10(directory: folder, split: .test) }
            #expect(truncated?.path == truncatedPath)
            #expect(problem(truncated).contains("3 full records and 2973 bytes left over"))

            var badLabel = batches[5].fileBytes
            badLabel[2 * 3073] = 10
            try write(badLabel, to: truncatedPath)
            let label = #expect(throws: DataError.self) { try Dataset.cifar10(directory: folder, split: .test) }
            #expect(problem(label).contains("record 2 has label 10"))

            try write([], to: truncatedPath)
            #expect(problem(#expect(throws: DataError.self) { try CIFAR10.readRecords(path: truncatedPath) })
                .contains("empty"))
        }
    }
}
