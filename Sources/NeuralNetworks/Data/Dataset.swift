import TensorCore

/// Per-channel normalization of pixels: `x = (p / 255 − mean[c]) / standardDeviation[c]` for a byte `p` of
/// channel `c`, i.e. scale to [0, 1], subtract the mean, divide by the standard deviation (the
/// `ToTensor` + `Normalize` pipeline of torchvision, so models trained elsewhere see the same inputs).
public struct Normalization: Sendable, Equatable {
    /// The mean of each channel, on the [0, 1] pixel scale.
    public var mean: [Float]
    /// The standard deviation of each channel, on the [0, 1] pixel scale; all positive.
    public var standardDeviation: [Float]

    /// A normalization with one mean and one standard deviation per channel.
    public init(mean: [Float], standardDeviation: [Float]) {
        precondition(!mean.isEmpty && mean.count == standardDeviation.count,
                     "Normalization: \(mean.count) means and \(standardDeviation.count) standard deviations; "
                        + "give one of each per channel")
        precondition(standardDeviation.allSatisfy { $0 > 0 && $0.isFinite } && mean.allSatisfy(\.isFinite),
                     "Normalization: standard deviations must be positive and finite, got \(standardDeviation)")
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// Fashion-MNIST's training-set statistics: mean 0.2860, standard deviation 0.3530.
    public static let fashionMNIST = Normalization(mean: [0.2860], standardDeviation: [0.3530])
    /// MNIST's training-set statistics: mean 0.1307, standard deviation 0.3081.
    public static let mnist = Normalization(mean: [0.1307], standardDeviation: [0.3081])
    /// CIFAR-10's per-channel training-set statistics (R, G, B): mean (0.4914, 0.4822, 0.4465), standard
    /// deviation (0.2470, 0.2435, 0.2616).
    public static let cifar10 = Normalization(mean: [0.4914, 0.4822, 0.4465],
                                              standardDeviation: [0.2470, 0.2435, 0.2616])

    /// The number of channels.
    public var channels: Int { mean.count }

    /// `(x − mean[c]) / standardDeviation[c]` for a value `x` on the [0, 1] scale.
    @inlinable
    public func apply(_ x: Float, channel: Int) -> Float { (x - mean[channel]) / standardDeviation[channel] }

    /// The normalized value of a black pixel (byte 0) in each channel: `−mean[c] / standardDeviation[c]`.
    public var black: [Float] { (0..<channels).map { apply(0, channel: $0) } }

    /// `table[c][p]` = the normalized value of byte `p` in channel `c`.
    func lookupTables() -> [[Float]] {
        (0..<channels).map { c in (0..<256).map { apply(Float($0) / 255, channel: c) } }
    }
}

/// A labelled image data set held in memory: images `[n, height, width, channels]` (NHWC, the layout of the
/// convolution kernels) as `Float`, labels in `0..<classCount`.
///
/// Loaders read the standard files and scale pixels to [0, 1]; by default they also apply the data set's
/// usual `Normalization`. Fashion-MNIST comes from the Debian package `dataset-fashion-mnist`:
///
/// ```swift
/// let train = try Dataset.fashionMNIST(split: .train)             // 60,000 × 28 × 28 × 1, normalized
/// let quick = try Dataset.fashionMNIST(split: .test).subset(first: 1_000)
/// let raw = try Dataset.cifar10(directory: "cifar-10-batches-bin", split: .test, normalization: nil)
/// ```
public struct Dataset: Sendable {
    /// Which part of a data set to load.
    public enum Split: String, Sendable, CaseIterable {
        /// The training examples.
        case train
        /// The held-out test examples.
        case test
    }

    /// The data sets LowRank can read, named as on the command line.
    public enum Source: String, Sendable, CaseIterable {
        /// Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 28×28 grey images of 10 kinds of clothing.
        case fashionMNIST = "fashion-mnist"
        /// MNIST (LeCun, Cortes & Burges): 28×28 grey handwritten digits.
        case mnist
        /// CIFAR-10 (Krizhevsky, 2009): 32×32 colour images of 10 object classes.
        case cifar10

        /// Where the files are looked for when no folder is given: the Debian package's folder for
        /// Fashion-MNIST, the same convention (`/usr/share/datasets/NAME`) for the others.
        public var defaultDirectory: String {
            switch self {
            case .fashionMNIST: return Dataset.fashionMNISTDirectory
            case .mnist: return "/usr/share/datasets/mnist"
            case .cifar10: return "/usr/share/datasets/cifar-10"
            }
        }

        /// The usual normalization of this data set.
        public var normalization: Normalization {
            switch self {
            case .fashionMNIST: return .fashionMNIST
            case .mnist: return .mnist
            case .cifar10: return .cifar10
            }
        }
    }

    /// Where the Debian package `dataset-fashion-mnist` installs the files.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"
    /// How to get Fashion-MNIST, for error messages.
    public static let fashionMNISTInstallHint = "install the Debian package dataset-fashion-mnist "
        + "(sudo apt-get install dataset-fashion-mnist) or pass --data-dir with a folder holding the four IDX files"
    /// How to get MNIST, for error messages.
    public static let mnistInstallHint = "download the four MNIST IDX files (train-images-idx3-ubyte.gz, "
        + "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into one folder and "
        + "pass --data-dir with that folder (for Fashion-MNIST instead: sudo apt-get install dataset-fashion-mnist)"
    /// Fashion-MNIST's class names in label order.
    public static let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// A short name of the data set and split, for logs (`"fashion-mnist/test"`).
    public var name: String
    /// The images, `[count, height, width, channels]`.
    public private(set) var images: Tensor<Float>
    /// The label of each image, in `0..<classCount`.
    public private(set) var labels: [Int]
    /// The number of classes.
    public let classCount: Int
    /// A name for each class, in label order.
    public let classNames: [String]
    /// The normalization applied to `images`, or `nil` when they are on the [0, 1] scale as loaded.
    public private(set) var normalization: Normalization?

    /// A data set from images `[n, height, width, channels]` and `n` labels in `0..<classCount`.
    ///
    /// - Parameters:
    ///   - normalization: The normalization `images` already carry (`nil`: none), recorded so that
    ///     augmentation pads with the value of a black pixel.
    public init(name: String = "custom", images: Tensor<Float>, labels: [Int], classCount: Int,
                classNames: [String]? = nil, normalization: Normalization? = nil) {
        precondition(images.rank == 4, "Dataset: images must be [n, height, width, channels], got shape \(images.shape)")
        precondition(images.shape[0] == labels.count,
                     "Dataset: images of shape \(images.shape) but \(labels.count) labels")
        precondition(classCount > 0, "Dataset: classCount must be positive, got \(classCount)")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < classCount },
                     "Dataset: every label must be in 0..<\(classCount)")
        precondition(classNames == nil || classNames!.count == classCount,
                     "Dataset: \(classNames?.count ?? 0) class names for \(classCount) classes")
        precondition(normalization == nil || normalization!.channels == images.shape[3],
                     "Dataset: normalization for \(normalization?.channels ?? 0) channels, images of shape \(images.shape)")
        self.name = name
        self.images = images
        self.labels = labels
        self.classCount = classCount
        self.classNames = classNames ?? (0..<classCount).map { "\($0)" }
        self.normalization = normalization
    }

    /// The number of examples.
    public var count: Int { labels.count }
    /// Image height in pixels.
    public var height: Int { images.shape[1] }
    /// Image width in pixels.
    public var width: Int { images.shape[2] }
    /// Channels per pixel (1 grey, 3 RGB).
    public var channels: Int { images.shape[3] }
    /// The shape of one image, `[height, width, channels]`.
    public var imageShape: [Int] { Array(images.shape.dropFirst()) }
    /// How many examples each class has: `classCounts[k]` = number of labels equal to `k`.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for label in labels { counts[label] += 1 }
        return counts
    }

    // MARK: Loading

    /// Loads a split of Fashion-MNIST from its four IDX files (gzip or raw).
    ///
    /// Looks for `train-images-idx3-ubyte.gz` / `train-labels-idx1-ubyte.gz` (or `t10k-…` for the test split) in
    /// `directory`, falling back to the uncompressed names without `.gz`.
    /// - Parameters:
    ///   - directory: The folder with the files; by default where `dataset-fashion-mnist` installs them.
    ///   - split: Training (60,000 images) or test (10,000 images), each 28×28×1.
    ///   - normalization: Applied to the [0, 1] pixels; `nil` keeps them on [0, 1].
    /// - Throws: `DataError.missingFile` naming the file and how to install the Debian package;
    ///   `.corruptFile` for a bad magic number, truncation, gzip damage or a label outside 0–9;
    ///   `.mismatchedFiles` when images and labels differ in count.
    public static func fashionMNIST(directory: String = fashionMNISTDirectory, split: Split,
                                    normalization: Normalization? = .fashionMNIST) throws -> Dataset {
        try loadIDX(directory: directory, split: split, dataset: "Fashion-MNIST", name: "fashion-mnist",
                    remedy: fashionMNISTInstallHint, classNames: fashionMNISTClassNames, normalization: normalization)
    }

    /// Loads a split of MNIST from its four IDX files (gzip or raw); file names and checks as in
    /// `fashionMNIST(directory:split:normalization:)`.
    ///
    /// - Throws: `DataError.missingFile` naming the file and where to get it; `.corruptFile`; `.mismatchedFiles`.
    public static func mnist(directory: String, split: Split, normalization: Normalization? = .mnist) throws -> Dataset {
        try loadIDX(directory: directory, split: split, dataset: "MNIST", name: "mnist",
                    remedy: mnistInstallHint, classNames: (0...9).map { "\($0)" }, normalization: normalization)
    }

    /// Loads a split of CIFAR-10 from the binary batch files (`data_batch_1.bin` … `data_batch_5.bin` for
    /// training, `test_batch.bin` for test), found in `directory` or its `cifar-10-batches-bin` subfolder.
    ///
    /// Images become `[n, 32, 32, 3]` (NHWC, channels R, G, B).
    /// - Parameters:
    ///   - normalization: Applied to the [0, 1] pixels per channel; `nil` keeps them on [0, 1].
    /// - Throws: `DataError.missingFile` naming the first missing batch file and how to get CIFAR-10;
    ///   `.corruptFile` for a size that is not a whole number of records or a label outside 0–9.
    public static func cifar10(directory: String, split: Split,
                               normalization: Normalization? = .cifar10) throws -> Dataset {
        let files = split == .train ? CIFAR10.trainFiles : CIFAR10.testFiles
        let folder = CIFAR10.resolve(directory: directory, files: files)
        var parts: [CIFAR10.Records] = []
        for file in files {
            let path = DataFile.join(folder, file)
            let data = try DataFile.rawContents(
                of: path, expected: "the CIFAR-10 \(split.rawValue) batch \(file) (binary version)",
                remedy: CIFAR10.installHint)
            parts.append(try CIFAR10.records(decoding: data, source: path))
        }
        let count = parts.reduce(0) { $0 + $1.labels.count }
        let side = CIFAR10.side, plane = side * side
        let tables = (normalization ?? identityNormalization(channels: 3)).lookupTables()
        let images = Tensor<Float>(shape: [count, side, side, 3]) { out in
            var image = 0
            for part in parts {
                part.pixels.withUnsafeBufferPointer { src in
                    for local in 0..<part.labels.count {
                        let input = src.baseAddress! + local * CIFAR10.imageBytes
                        let output = out.baseAddress! + image * CIFAR10.imageBytes
                        for c in 0..<3 {
                            tables[c].withUnsafeBufferPointer { table in
                                for p in 0..<plane { output[p * 3 + c] = table[Int(input[c * plane + p])] }
                            }
                        }
                        image += 1
                    }
                }
            }
        }
        return Dataset(name: "cifar10/\(split.rawValue)", images: images,
                       labels: parts.flatMap { $0.labels.map(Int.init) }, classCount: CIFAR10.classCount,
                       classNames: CIFAR10.classNames, normalization: normalization)
    }

    /// Loads a split of any supported data set, normalized with its usual statistics unless `normalized` is
    /// false; `directory` `nil` means `source.defaultDirectory`.
    ///
    /// - Throws: The errors of `fashionMNIST`, `mnist` or `cifar10`.
    public static func load(_ source: Source, directory: String? = nil, split: Split,
                            normalized: Bool = true) throws -> Dataset {
        let directory = directory ?? source.defaultDirectory
        let normalization = normalized ? source.normalization : nil
        switch source {
        case .fashionMNIST: return try fashionMNIST(directory: directory, split: split, normalization: normalization)
        case .mnist: return try mnist(directory: directory, split: split, normalization: normalization)
        case .cifar10: return try cifar10(directory: directory, split: split, normalization: normalization)
        }
    }

    /// The images and labels of an IDX pair as a data set.
    private static func loadIDX(directory: String, split: Split, dataset: String, name: String, remedy: String,
                                classNames: [String], normalization: Normalization?) throws -> Dataset {
        let prefix = split == .train ? "train" : "t10k"
        let imagesPath = locate(directory: directory, name: "\(prefix)-images-idx3-ubyte")
        let labelsPath = locate(directory: directory, name: "\(prefix)-labels-idx1-ubyte")
        let splitName = split == .train ? "training" : "test"
        let imageBytes = try DataFile.contents(
            of: imagesPath, expected: "the \(dataset) \(splitName) images, IDX format, gzip or raw", remedy: remedy)
        let images = try IDX.images(decoding: imageBytes, source: imagesPath)
        let labelBytes = try DataFile.contents(
            of: labelsPath, expected: "the \(dataset) \(splitName) labels, IDX format, gzip or raw", remedy: remedy)
        let labels = try IDX.labels(decoding: labelBytes, source: labelsPath, classCount: classNames.count)
        guard images.shape[0] == labels.count else {
            throw DataError.mismatchedFiles(images: imagesPath, imageCount: images.shape[0],
                                            labels: labelsPath, labelCount: labels.count)
        }
        let table = (normalization ?? identityNormalization(channels: 1)).lookupTables()[0]
        let tensor = Tensor<Float>(shape: images.shape + [1]) { out in
            images.bytes.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { table in
                    for i in 0..<src.count { out[i] = table[Int(src[i])] }
                }
            }
        }
        return Dataset(name: "\(name)/\(split.rawValue)", images: tensor, labels: labels,
                       classCount: classNames.count, classNames: classNames, normalization: normalization)
    }

    /// `directory/name.gz` when it exists, else `directory/name` when that exists, else the `.gz` path (so a
    /// missing-file error names the file the package installs).
    private static func locate(directory: String, name: String) -> String {
        let compressed = DataFile.join(directory, name + ".gz")
        if DataFile.exists(compressed) { return compressed }
        let raw = DataFile.join(directory, name)
        return DataFile.exists(raw) ? raw : compressed
    }

    // MARK: Transforming

    /// The same data normalized per channel: `x ← (x − mean[c]) / standardDeviation[c]`.
    ///
    /// The images must be on the [0, 1] scale (`normalization == nil`); normalizing twice is a programmer
    /// error.
    public func normalized(_ normalization: Normalization) -> Dataset {
        precondition(self.normalization == nil,
                     "Dataset.normalized: \(name) is already normalized; load it with normalization: nil first")
        precondition(normalization.channels == channels,
                     "Dataset.normalized: normalization for \(normalization.channels) channels, images of shape \(images.shape)")
        var result = self
        let channels = self.channels
        let mean = normalization.mean, deviation = normalization.standardDeviation
        result.images.withUnsafeMutableBufferPointer { values in
            for i in 0..<values.count {
                let c = i % channels
                values[i] = (values[i] - mean[c]) / deviation[c]
            }
        }
        result.normalization = normalization
        return result
    }

    /// The first `count` examples (all of them when `count` exceeds the size), for quick runs.
    public func subset(first count: Int) -> Dataset {
        precondition(count >= 0, "Dataset.subset(first:): count must be non-negative, got \(count)")
        let kept = min(count, self.count)
        if kept == self.count { return self }
        var result = self
        result.images = images.slice(axis: 0, start: 0, count: kept)
        result.labels = Array(labels[..<kept])
        return result
    }

    /// The images at `indices`, in that order, as `[indices.count, height, width, channels]`.
    public func images(at indices: [Int]) -> Tensor<Float> {
        let perImage = height * width * channels
        let count = self.count
        return Tensor<Float>(shape: [indices.count] + imageShape) { out in
            images.withUnsafeBufferPointer { src in
                for (slot, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count,
                                 "Dataset.images(at:): index \(index) out of range for \(count) examples")
                    (out.baseAddress! + slot * perImage).update(from: src.baseAddress! + index * perImage, count: perImage)
                }
            }
        }
    }

    /// The labels at `indices`, in that order.
    public func labels(at indices: [Int]) -> [Int] { indices.map { labels[$0] } }
}

/// Scaling to [0, 1] only: mean 0, standard deviation 1.
private func identityNormalization(channels: Int) -> Normalization {
    Normalization(mean: [Float](repeating: 0, count: channels), standardDeviation: [Float](repeating: 1, count: channels))
}
