/// The binary version of CIFAR-10 (Krizhevsky, "Learning multiple layers of features from tiny images", 2009).
///
/// The archive `cifar-10-binary.tar.gz` unpacks to a folder `cifar-10-batches-bin` holding `data_batch_1.bin`
/// … `data_batch_5.bin` (training, 10,000 images each) and `test_batch.bin` (10,000 images). Each file is a
/// sequence of 3,073-byte records: one label byte (0–9), then the 32×32 red plane, the green plane and the
/// blue plane, each row-major (so the pixels are CHW). `Dataset.cifar10(directory:split:)` turns them into
/// NHWC images.
public enum CIFAR10 {
    /// Image height and width.
    public static let side = 32
    /// Colour channels (red, green, blue).
    public static let channels = 3
    /// Bytes per image: 3 planes of 32×32.
    public static let imageBytes = 3 * 32 * 32
    /// Bytes per record: the label byte plus the image.
    public static let recordBytes = 1 + imageBytes
    /// Number of classes.
    public static let classCount = 10
    /// The class names in label order.
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer",
                                    "dog", "frog", "horse", "ship", "truck"]
    /// The training files in reading order.
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    /// The test file.
    public static let testFiles = ["test_batch.bin"]
    /// How to obtain the files, for error messages.
    public static let installHint = "download cifar-10-binary.tar.gz (the \"CIFAR-10 binary version\" from the "
        + "CIFAR web page of the University of Toronto), unpack it and pass --data-dir with the folder "
        + "cifar-10-batches-bin"

    /// The records of one batch file: labels and CHW pixel planes, as stored.
    public struct Records: Sendable, Equatable {
        /// One label per record, in `0..<10`.
        public var labels: [UInt8]
        /// `labels.count × 3072` bytes: for each record its R, G and B planes of 32×32, row-major.
        public var pixels: [UInt8]
    }

    /// Parses the contents of a batch file.
    ///
    /// - Parameters:
    ///   - data: The file's bytes (gzip-compressed data is inflated first).
    ///   - source: The file name used in error messages.
    /// - Throws: `DataError.corruptFile` naming `source` when the file is empty, its size is not a multiple of
    ///   3,073 bytes (truncated or not a CIFAR-10 binary file) or a label is outside 0–9.
    public static func records(decoding data: [UInt8], source: String) throws -> Records {
        let data = try Gzip.decompress(data, source: source)
        guard !data.isEmpty else {
            throw DataError.corruptFile(path: source, problem: "the file is empty; expected 3,073-byte CIFAR-10 records")
        }
        guard data.count % recordBytes == 0 else {
            throw DataError.corruptFile(
                path: source,
                problem: "\(data.count) bytes is not a whole number of 3,073-byte CIFAR-10 records "
                    + "(\(data.count / recordBytes) full records and \(data.count % recordBytes) bytes left over): "
                    + "the file is truncated or is not from the binary version of CIFAR-10")
        }
        let count = data.count / recordBytes
        var labels = [UInt8](repeating: 0, count: count)
        var pixels = [UInt8](repeating: 0, count: count * imageBytes)
        data.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for record in 0..<count {
                    let start = record * recordBytes
                    labels[record] = source[start]
                    (target.baseAddress! + record * imageBytes)
                        .update(from: source.baseAddress! + start + 1, count: imageBytes)
                }
            }
        }
        if let bad = labels.firstIndex(where: { Int($0) >= classCount }) {
            throw DataError.corruptFile(
                path: source,
                problem: "record \(bad) has label \(labels[bad]), outside 0..<\(classCount): "
                    + "not a CIFAR-10 binary file (CIFAR-100 records have two label bytes)")
        }
        return Records(labels: labels, pixels: pixels)
    }

    /// Reads one batch file from disk.
    ///
    /// - Throws: `DataError.missingFile` (with how to get CIFAR-10), `.unreadableFile` or `.corruptFile`.
    public static func readRecords(path: String) throws -> Records {
        let data = try DataFile.rawContents(of: path, expected: "a CIFAR-10 binary batch file", remedy: installHint)
        return try records(decoding: data, source: path)
    }

    /// The folder that holds the batch files: `directory` itself, or its `cifar-10-batches-bin` subfolder
    /// when the files are there (the archive unpacked into `directory`).
    static func resolve(directory: String, files: [String]) -> String {
        if DataFile.exists(DataFile.join(directory, files[0])) { return directory }
        let nested = DataFile.join(directory, "cifar-10-batches-bin")
        if DataFile.exists(DataFile.join(nested, files[0])) { return nested }
        return directory
    }
}
