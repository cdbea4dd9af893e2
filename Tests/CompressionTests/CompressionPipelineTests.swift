import Autodiff
import Compression
import Foundation
import NeuralNetworks
import Testing
import TensorCore

private func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-pipeline-\(UUID().uuidString)-\(name)").path
}

/// A tiny data set of random 28×28 images (for tests that stop before training).
private func randomData(_ count: Int) -> Dataset {
    var generator = SeededGenerator(seed: 11)
    return Dataset(images: Tensor<Float>.randomNormal([count, 28, 28, 1], generator: &generator),
                   labels: (0..<count).map { $0 % 10 }, classCount: 10)
}

/// The pipeline without real data: bad input, per-layer reasons, saving and reloading, resumable result stores.
@Suite struct CompressionPipelineTests {
    @Test func aSafetensorsFileThatIsNoCheckpointIsRejected() throws {
        let path = temporaryPath("plain.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var writer = SafeTensorsWriter()
        writer.add(name: "weight", tensor: Tensor<Float>.zeros([2, 2]))
        try writer.write(to: path)
        do {
            _ = try CompressionPipeline.run(checkpoint: path, training: randomData(4), test: randomData(4),
                                            settings: CompressionSettings(format: .tucker, target: .ratio(5)))
            Issue.record("a plain safetensors file was accepted")
        } catch let error as CheckpointError {
            #expect(error == .notACheckpoint(path: path))
            #expect("\(error)".contains("not a LowRank checkpoint"))
        }
    }

    /// Ranks the decomposition clamps to full (an SVD of rank 100,000) would make layers bigger: they stay dense.
    @Test func replacementsThatAreNotSmallerStayDense() throws {
        let (model, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let before = model.trainableParameterCount
        let (reports, records) = try CompressionPipeline.convert(model, inputShape: [28, 28, 1],
                                                                 settings: CompressionSettings(format: .svd, target: .ranks([100_000])))
        #expect(records.isEmpty && model.trainableParameterCount == before)
        let fc = try #require(reports.first { $0.kind == "linear" && $0.keptDenseReason?.contains("not fewer than the dense") == true },
                              "\(reports.map { $0.keptDenseReason ?? "replaced" })")
        #expect(fc.format == nil)
        // CP has no clamp: a rank far too large is refused by the decomposition, and the layers stay dense too.
        let (cpReports, cpRecords) = try CompressionPipeline.convert(model, inputShape: [28, 28, 1],
                                                                     settings: CompressionSettings(format: .cp, target: .ranks([100_000])))
        #expect(cpRecords.isEmpty && cpReports.contains { $0.keptDenseReason?.contains("lower the ranks") == true })
    }

    @Test func everyLayerIsReportedWithItsFormatOrWhyItStayedDense() throws {
        let (model, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let (reports, records) = try CompressionPipeline.convert(model, inputShape: [28, 28, 1],
                                                                 settings: CompressionSettings(format: .tucker, target: .ratio(5)))
        #expect(reports.map(\.name) == ["0", "3", "7", "10", "15", "17"])
        #expect(reports[0].keptDenseReason == "first layer kept dense")
        #expect(reports[5].keptDenseReason == "last layer kept dense")
        for report in reports[1...4] { #expect(report.format == "tucker" && report.compressionRatio >= 5) }
        #expect(records.map(\.name) == ["3", "7", "10", "15"] && records[0].kind == "conv")
        #expect((reports[4].weightError ?? 2) < 1 && (reports[4].outputError ?? 2) < 1)
        #expect(!(ModelSurgery.compressibleLayers(of: model, inputShape: [28, 28, 1]).contains { $0.name == "15" }))

        // STT has no conv form: the convs stay dense, saying why; the wide FC layer is converted.
        let (fresh, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let (stt, sttRecords) = try CompressionPipeline.convert(fresh, inputShape: [28, 28, 1],
                                                                settings: CompressionSettings(format: .semiTensorTrain, target: .ratio(5)))
        #expect(sttRecords.map(\.name) == ["15"] && sttRecords[0].extra["stpFactor"] == [2])
        for report in stt[1...3] { #expect(report.keptDenseReason?.contains("no convolution form") == true) }
        #expect(stt[4].format == "stt" && stt[4].parameters * 5 <= stt[4].denseParameters)
    }

    @Test(arguments: [CompressionFormat.tensorTrain, .svd, .kronecker])
    func aSavedCompressedModelReloadsWithIdenticalOutputs(format: CompressionFormat) throws {
        let (model, architecture) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0,
                                                           as: Float.self)
        let (_, records) = try CompressionPipeline.convert(model, inputShape: [28, 28, 1],
                                                           settings: CompressionSettings(format: format, target: .ratio(5)))
        let path = temporaryPath("small.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CompressionPipeline.save(model, architecture: CompressedArchitecture(base: architecture, layers: records), to: path,
                                     notes: ["data": "fashion-mnist"])
        let (reloaded, recorded, checkpoint) = try CompressedModel.load(path, as: Float.self)
        #expect(recorded.base == architecture && recorded.layers == records)
        #expect(checkpoint.trainingState?.notes["data"] == "fashion-mnist")
        // The plain model record still reads from the compressed checkpoint.
        #expect(try ModelArchitecture(json: checkpoint.architecture) == architecture)
        var generator = SeededGenerator(seed: 4)
        let x = Variable(constant: Tensor<Float>.randomNormal([5, 28, 28, 1], generator: &generator))
        // `.auto` may pick another (equivalent) contraction per process by timing, which changes rounding only; with
        // the execution modes fixed the outputs are bit-identical.
        for network in [model, reloaded] as [any Layer<Float>] {
            #expect(ModelSurgery.setExecutionMode(.factorized, in: network, inputShape: [28, 28, 1]) == records.count)
        }
        #expect(reloaded(x, mode: .inference).value.scalars == model(x, mode: .inference).value.scalars)
        #expect(reloaded.trainableParameterCount == model.trainableParameterCount)
    }

    @Test func distillationAddsTheWeightedKLTermAndLeavesTheTeacherAlone() throws {
        let teacher = Linear<Double>(weight: Tensor(shape: [2, 3], scalars: [1, -1, 0.5, 0.2, 0.3, -0.4]))
        let objective = DistillationObjective(teacher: teacher, temperature: 2, weight: 0.25)
        #expect(teacher.weight.isFrozen)
        let images = Tensor<Double>(shape: [2, 2], scalars: [0.5, -1, 2, 0.1])
        let teacherLogits = teacher(Variable(constant: images), mode: .inference).value
        let tape = Tape<Double>()
        let logits = tape.variable(Tensor<Double>(shape: [2, 3], scalars: [0.1, 0.2, -0.3, 1, 0, -1]))
        let task = crossEntropy(logits: logits, labels: [0, 2])
        let loss = withGradientTape(tape) { objective.loss(task: task, logits: logits, images: images, labels: [0, 2]) }
        let kl = distillationKLDivergence(studentLogits: Variable(constant: logits.value), teacherLogits: teacherLogits,
                                          temperature: 2)
        #expect(abs(loss.value.scalar - (0.75 * task.value.scalar + 0.25 * kl.value.scalar)) < 1e-12)
        tape.gradients(of: loss)
        #expect(teacher.weight.gradient == nil)
    }

    @Test func aResultStoreRunsOnlyTheMethodsWithoutASavedResult() throws {
        let directory = temporaryPath("store")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ResultStore(directory: directory)
        func fake(_ method: String) -> CompressionResult {
            let measurement = ModelMeasurement(accuracy: 0.9, loss: 0.3, parameters: 100, macs: 1000, imagesPerSecond: 50)
            return CompressionResult(format: method, dense: measurement, compressed: measurement, accuracyBeforeFineTuning: 0.5,
                                     layers: [], conversionSeconds: 0, fineTuneSeconds: 0)
        }
        struct Interrupted: Error {}
        var ran: [String] = []
        // An interrupted series: the first method finishes, the second fails.
        #expect(throws: Interrupted.self) {
            for method in ["tt", "tr", "ht"] {
                _ = try store.run(method) {
                    if method == "tr" { throw Interrupted() }
                    ran.append(method)
                    return fake(method)
                }
            }
        }
        #expect(ran == ["tt"] && store.result(for: "tt") == fake("tt") && store.result(for: "tr") == nil)
        // A damaged file is redone, not trusted.
        try "{ not json".write(toFile: store.path(for: "ht"), atomically: true, encoding: .utf8)
        ran = []
        let results = try ["tt", "tr", "ht"].map { method in
            try store.run(method) {
                ran.append(method)
                return fake(method)
            }
        }
        #expect(ran == ["tr", "ht"])
        #expect(results.map(\.reused) == [true, false, false])
        #expect(results.map(\.result) == ["tt", "tr", "ht"].map(fake))
    }

    @Test func plotsEscapeTextAndLabelTheirAxes() {
        var plot = SVGPlot(title: "a < b & \"c\"", xLabel: "ratio (×)", yLabel: "top-1")
        plot.logX = true
        plot.series.append(SVGPlot.Series(name: "T&T", points: [(1, 90), (10, 91), (100, 92)], pointLabels: ["x<1", "", ""]))
        let svg = plot.render()
        #expect(svg.contains("a &lt; b &amp; &quot;c&quot;") && svg.contains("T&amp;T") && svg.contains("x&lt;1"))
        #expect(!svg.contains("a < b"))
        for tick in [">1<", ">10<", ">100<", ">91<"] { #expect(svg.contains(tick), "missing tick \(tick)") }
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(SVGPlot.escape("'") == "&apos;")
    }
}

/// Whether the Debian package `dataset-fashion-mnist` is installed (`make` installs it).
private let fashionMNISTInstalled = FileManager.default.fileExists(
    atPath: Dataset.fashionMNISTDirectory + "/train-images-idx3-ubyte.gz")

#if DEBUG
private let optimizedBuild = false
#else
private let optimizedBuild = true
#endif

/// The pre-train pipeline end to end on real Fashion-MNIST data (2,000 training images, 1,000 test images).
@Suite(.enabled(if: fashionMNISTInstalled, "needs the Debian package dataset-fashion-mnist"),
       .enabled(if: optimizedBuild, "runs in release builds (make test); minutes in debug"))
struct CompressionPipelineRealDataTests {
    @Test func tuckerAtFiveTimesRecoversTheDenseAccuracyAndReloadsExactly() throws {
        let train = try Dataset.fashionMNIST(split: .train).subset(first: 2_000)
        let test = try Dataset.fashionMNIST(split: .test).subset(first: 1_000)
        let (model, architecture) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10,
                                                           seed: 0, as: Float.self)
        let densePath = temporaryPath("dense.safetensors"), smallPath = temporaryPath("small.safetensors")
        defer { for path in [densePath, smallPath] { try? FileManager.default.removeItem(atPath: path) } }
        var configuration = TrainingConfiguration(epochs: 2)
        configuration.batchSize = 64
        configuration.progress = .silent
        configuration.architecture = architecture.json
        configuration.checkpointPath = densePath
        try Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration).fit(training: train)

        var settings = CompressionSettings(format: .tucker, target: .ratio(5))
        settings.fineTuneEpochs = 1
        settings.batchSize = 64
        settings.distillation = (temperature: 4, weight: 0.5)
        settings.timingImages = 256
        let result = try CompressionPipeline.run(checkpoint: densePath, training: train, test: test, settings: settings,
                                                 output: smallPath)
        let compressed = result.layers.filter { $0.format != nil }
        #expect(compressed.map(\.name) == ["3", "7", "10", "15"])  // Tucker-2 on the middle convs, Tucker on the FC
        #expect(compressed.allSatisfy { $0.format == "tucker" && $0.compressionRatio >= 5 })
        // The network loses exactly the dense weights of the compressed layers and gains their cores.
        #expect(result.compressed.parameters == result.dense.parameters
                - compressed.reduce(0) { $0 + $1.denseParameters } + compressed.reduce(0) { $0 + $1.parameters })
        #expect(result.dense.accuracy > 0.6, "dense accuracy \(result.dense.accuracy)")
        // Stated margin: within 3 points of the dense model (1,000 test images: one standard error is ≈ 1.4 points).
        #expect(result.compressed.accuracy >= result.dense.accuracy - 0.03,
                "dense \(result.dense.accuracy), compressed \(result.compressed.accuracy)")

        let (reloaded, recorded, _) = try CompressedModel.load(smallPath, as: Float.self)
        #expect(recorded.layers.map(\.name) == ["3", "7", "10", "15"])
        // The same function as the fine-tuned model in memory. `.auto` picks each layer's contraction by timing per
        // process, which may change rounding (bit-identical outputs with fixed modes are tested above), so the loss
        // is compared to 1e-4 relative and the accuracy to one image.
        let evaluation = Trainer<Float>.evaluate(reloaded, on: test, batchSize: settings.batchSize)
        #expect(abs(evaluation.accuracy - result.compressed.accuracy) <= 1.0 / Double(test.count))
        #expect(abs(evaluation.loss - result.compressed.loss) <= 1e-4 * result.compressed.loss)
    }
}
