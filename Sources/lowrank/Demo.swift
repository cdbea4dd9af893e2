import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank demo`: the main job on the default data, the survey's Table 1 on one network with one budget.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train (or reuse) fmnist-cnn on Fashion-MNIST, compress it with every format at 5×, compare.",
        discussion: """
        The survey's Table 1 (METHODS §9) run as a controlled comparison: the same trained fmnist-cnn, the same \
        data and the same fine-tuning budget for every format, all at a compression ratio of 5 in the compressed \
        layers (all weight layers but the first and the last). The dense model is cached in --cache and reused; each \
        format's result is saved in --out as soon as it is done, so an interrupted demo resumes after the last \
        finished format. Writes table.md, accuracy.svg (accuracy against compression ratio) and spectra.svg \
        (singular values of the dense layers) into --out.

        Presets: --quick (default; 4 dense epochs, 1 fine-tuning epoch on 20,000 images per format) and --full \
        (10 dense epochs, 3 fine-tuning epochs on all 60,000 images).

        Examples:
          lowrank demo
          lowrank demo --full --out demo-full
          lowrank demo --formats tucker,tt,tr
        """
    )

    enum Preset: String, EnumerableFlag {
        case quick, full
    }

    @Flag(help: "The preset.")
    var preset: Preset = .quick

    @Option(help: "Where results, the table and the plots go.")
    var out = "lowrank-demo"

    @Option(help: "Where the trained dense model is cached (default: $XDG_CACHE_HOME/lowrank or ~/.cache/lowrank).")
    var cache: String?

    @Option(help: "The folder with the Fashion-MNIST files (default: the system's).")
    var dataDir: String?

    @Option(help: "Formats to run, comma-separated (default: all).")
    var formats: String?

    @Option(parsing: .unconditional, help: "Compression ratio of the compressed layers.")
    var ratio = 5.0

    func validate() throws {
        guard ratio >= 1, ratio.isFinite else { throw ValidationError("--ratio must be ≥ 1, got \(ratio)") }
        _ = try chosenFormats()
    }

    func run() throws {
        try runReportingErrors { try demo() }
    }

    private func demo() throws {
        let started = Date()
        let methods = try chosenFormats()
        let (denseEpochs, fineTuneEpochs, fineTuneImages) = preset == .quick ? (4, 1, 20_000) : (10, 3, 60_000)
        let training = try Dataset.load(.fashionMNIST, directory: dataDir, split: .train)
        let test = try Dataset.load(.fashionMNIST, directory: dataDir, split: .test)
        let folder = cache ?? Self.defaultCache()
        try AtomicFile.createFolder(folder)
        try AtomicFile.createFolder(out)
        let densePath = "\(folder)/fmnist-cnn-\(denseEpochs)ep-seed0.safetensors"
        let store = ResultStore(directory: "\(out)/\(preset.rawValue)-ratio\(ratio)")
        if try trainDenseIfNeeded(path: densePath, epochs: denseEpochs, training: training, test: test) {
            // A new dense model: results computed from another one no longer apply.
            for method in methods { try? FileManager.default.removeItem(atPath: store.path(for: method.shortName)) }
        }
        var settingsTemplate = CompressionSettings(format: .svd, target: .ratio(ratio))
        settingsTemplate.fineTuneEpochs = fineTuneEpochs
        settingsTemplate.progress = .automatic
        let fineTuneSet = training.subset(first: Swift.min(fineTuneImages, training.count))
        print("compressing with \(methods.map(\.displayName).joined(separator: ", ")) at \(ratio)×; fine-tuning "
              + "\(fineTuneEpochs) epoch(s) on \(fineTuneSet.count) images each; results in \(store.directory)")
        fflush(nil)
        var rows: [(method: String, result: CompressionResult)] = [], failures: [String] = []
        for method in methods {
            do {
                let (result, reused) = try store.run(method.shortName) {
                    var settings = settingsTemplate
                    settings.format = method
                    print("— \(method.displayName)")
                    fflush(nil)
                    return try CompressionPipeline.run(checkpoint: densePath, training: fineTuneSet, test: test,
                                                       settings: settings, log: { print("  " + $0); fflush(nil) })
                }
                if reused { print("reused the saved result of \(method.displayName)") }
                rows.append((method.displayName, result))
            } catch {
                // One format failing does not lose the others; a rerun retries it.
                print("  \(method.displayName) failed: \(error)")
                failures.append("\(method.displayName): \(error)")
            }
        }
        var table = "# LowRank demo: fmnist-cnn on Fashion-MNIST, every format at \(ratio)× (\(preset.rawValue) preset)\n\n"
        table += "Dense model: \(denseEpochs) epochs (cached at \(densePath)). Every format: batch-norm statistics "
            + "re-estimated on \(ModelSurgery.recalibrationBatches) training batches right after conversion, then the same \(fineTuneEpochs) "
            + "fine-tuning epoch(s) on \(fineTuneSet.count) training images, SGD momentum 0.9, learning rate 0.01 "
            + "with cosine decay. CR = dense over factorized weight parameters; MACs per image; speed-up measured "
            + "side by side on the same \(Swift.min(settingsTemplate.timingImages, test.count)) test images, "
            + "batch \(settingsTemplate.batchSize).\n\n"
        table += CompressionReport.comparisonTable(rows)
        table += "\nLayers kept dense:\n\n"
        for (method, result) in rows {
            let kept = result.layers.filter { $0.format == nil }.map { "\($0.name) (\($0.keptDenseReason ?? ""))" }
            table += "- \(method): " + kept.joined(separator: "; ") + "\n"
        }
        if !failures.isEmpty {
            table += "\nFailed (rerun the demo to retry them):\n\n" + failures.map { "- \($0)\n" }.joined()
        }
        try table.write(toFile: "\(out)/table.md", atomically: true, encoding: .utf8)
        try CompressionReport.accuracyPlot(rows, title: "fmnist-cnn on Fashion-MNIST: accuracy vs compression")
            .write(to: "\(out)/accuracy.svg")
        let (dense, _, _) = try CompressedModel.load(densePath, as: Float.self)
        try CompressionReport.spectraPlot(dense, inputShape: [28, 28, 1], title: "fmnist-cnn: singular values of the weight layers")
            .write(to: "\(out)/spectra.svg")
        print("\n" + table)
        print(String(format: "wrote %@/table.md, %@/accuracy.svg, %@/spectra.svg in %.0f s", out, out, out,
                     Date().timeIntervalSince(started)))
        if !failures.isEmpty { throw ExitCode.failure }
    }

    private func chosenFormats() throws -> [CompressionFormat] {
        guard let formats else { return CompressionFormat.allCases }
        return try formats.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let format = CompressionFormat(name: String(name)) else {
                throw ValidationError("unknown format '\(name)'; choose from "
                                      + CompressionFormat.allCases.map(\.shortName).joined(separator: ", "))
            }
            return format
        }
    }

    /// Trains the dense model into `path` unless it is there already (resuming a partial run); true when it trained.
    private func trainDenseIfNeeded(path: String, epochs: Int, training: Dataset, test: Dataset) throws -> Bool {
        var resumeFrom: Checkpoint?
        if FileManager.default.fileExists(atPath: path) {
            let saved = try Checkpoint(contentsOf: path)
            if (saved.trainingState?.epoch ?? 0) >= epochs {
                print("reusing the dense model \(path)")
                return false
            }
            resumeFrom = saved
        }
        let (model, architecture) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10,
                                                           seed: 0, as: Float.self)
        var configuration = TrainingConfiguration(epochs: epochs)
        configuration.checkpointPath = path
        configuration.architecture = architecture.json
        configuration.notes = ["data": Dataset.Source.fashionMNIST.rawValue, "batch": "128"]
        if let dataDir { configuration.notes["data_dir"] = dataDir }
        let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
        if let resumeFrom { try trainer.resume(from: resumeFrom) }
        print("training the dense fmnist-cnn for \(epochs) epochs (cached for later runs in \(path))")
        fflush(nil)
        try trainer.fit(training: training, test: test)
        return true
    }

    static func defaultCache() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/lowrank" }
        return (environment["HOME"] ?? ".") + "/.cache/lowrank"
    }
}
