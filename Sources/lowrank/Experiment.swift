import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank experiment …`: the survey's experiments, run end to end.
struct Experiment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment of the survey and write its table and plot.",
        subcommands: [SparsityMeasures.self]
    )
}

/// `lowrank experiment sparsity-measures`: SVD training under each sparsity measure (METHODS §4.4 Mode A, reduced
/// to a CPU budget), truncation without fine-tuning, accuracy against compression ratio.
struct SparsityMeasures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparsity-measures",
        abstract: "Does the effective rank beat the other sparsity measures? SVD training under each measure, truncated without fine-tuning.",
        discussion: """
        Protocol (our reduction of METHODS §4.4 Mode A to a CPU budget): fmnist-cnn on Fashion-MNIST, every \
        convolution but the first and the first linear layer (the classifier stays dense) trained in SVD form [85] from the same seeded \
        initialization, SGD (momentum 0.9, learning rate 0.05 annealed to 0 by a cosine over the epochs, batch 128, seed 0), orthogonality weight λ_o = 10, \
        sparsity term λ_s·Σ_l ±S(|s_l|)/S(|s_l⁽⁰⁾|) for each measure S and each strength λ_s. After training, \
        every layer is truncated at several energy thresholds e (smallest rank keeping e of Σs²), with no \
        fine-tuning (the batch-norm statistics are re-estimated on \(ModelSurgery.recalibrationBatches) training batches, no weight changes), and the \
        truncated network is evaluated on the test set. A dense \
        network trained with the same recipe and truncated the same way is the "no regularizer" baseline. \
        Budgets: quick = the first 5,000 training images, 1 epoch (40 steps), λ_s ∈ {0.03, 0.3}, e ∈ {0.8, 0.9, 0.95}, \
        evaluated on the first 5,000 test images; full = 60,000 training images, 3 epochs, \
        λ_s ∈ {0.03, 0.1, 0.3, 1, 1.5}, e ∈ {0.8, 0.9, 0.95, 0.99}, the 10,000 test images. One seed. \
        A strength that makes training diverge is reported and skipped.

        Writes sparsity-measures.md (protocol, every run, and the best accuracy per measure at each minimum \
        compression ratio) and sparsity-measures.svg (accuracy against compression ratio, the Pareto front of \
        each measure) into --out.

        Examples:
          lowrank experiment sparsity-measures --budget quick --out results
        """
    )

    @Option(help: "The model (fmnist-cnn).")
    var model = "fmnist-cnn"

    @Option(help: "quick (15 trainings on 5,000 images, 1 epoch each) or full (36 trainings on 60,000 images, 3 epochs each).")
    var budget = "quick"

    @Option(help: "The folder with the Fashion-MNIST files (default: /usr/share/datasets/fashion-mnist).")
    var dataDir: String?

    @Option(help: "The output folder (created if needed).")
    var out = "sparsity-measures"

    @Option(help: "Comma-separated measures (default: l1, lp, l1-l2, hoyer, gini, entropy, effective-rank).")
    var measures: String?

    func validate() throws {
        guard model == "fmnist-cnn" else {
            throw ValidationError("--model: only fmnist-cnn is supported (its layers sit in one Sequential); got '\(model)'")
        }
        guard ["quick", "full"].contains(budget) else { throw ValidationError("--budget must be quick or full, got '\(budget)'") }
        _ = try selectedMeasures()
    }

    func run() throws {
        try runReportingErrors { try experiment() }
    }

    private func selectedMeasures() throws -> [SparsityMeasure] {
        guard let measures else { return [.l1, .lp(p: 0.5), .l1OverL2, .hoyer, .gini, .entropy, .effectiveRank] }
        let valid = SparsityMeasure.all.filter(\.isDifferentiable).map(\.name).joined(separator: ", ")
        return try measures.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let measure = SparsityMeasure(name: String(name)), measure.isDifferentiable else {
                throw ValidationError("unknown or non-differentiable measure '\(name)' in --measures; choose among \(valid)")
            }
            return measure
        }
    }

    /// One trained-and-truncated point.
    struct Point {
        var measure: String, strength: Double, energy: Double
        var ratio: Double, compressedParameters: Int, denseParameters: Int
        var accuracyBefore: Double, accuracyAfter: Double, orthogonalityError: Double?
    }

    private func experiment() throws {
        let started = Date()
        let quick = budget == "quick"
        let (trainCount, testCount, epochs) = quick ? (5_000, 5_000, 1) : (60_000, 10_000, 3)
        let strengths = quick ? [0.03, 0.3] : [0.03, 0.1, 0.3, 1, 1.5]
        let energies = quick ? [0.8, 0.9, 0.95] : [0.8, 0.9, 0.95, 0.99]
        var training = try Dataset.load(.fashionMNIST, directory: dataDir, split: .train)
        training = training.subset(first: min(trainCount, training.count))
        let allTest = try Dataset.load(.fashionMNIST, directory: dataDir, split: .test)
        let test = allTest.subset(first: min(testCount, allTest.count))
        try AtomicFile.createFolder(out)
        let architecture = ModelArchitecture(model: model, inputShape: [28, 28, 1], classes: 10)

        var points: [Point] = [], failures: [String] = []
        func train(_ settings: CompressionAwareSettings?, label: String) throws -> (CompressionAwareTraining<Float>?, any ShapedLayer<Float>)? {
            let model: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 0)
            let run = try settings.map { try CompressionAwareTraining(model: model, settings: $0) }
            var configuration = TrainingConfiguration(epochs: epochs)
            configuration.schedule = .cosine(initial: 0.05, floor: 0, epochs: epochs,
                                             stepsPerEpoch: (training.count + configuration.batchSize - 1) / configuration.batchSize)
            configuration.progress = .silent
            let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
            trainer.objective = run?.objective
            do {
                try trainer.fit(training: training)
            } catch let error as TrainingError {
                failures.append("\(label): \(error)")
                print("\(label): skipped, \(error)")
                return nil
            }
            return (run, model)
        }
        func truncations(_ run: CompressionAwareTraining<Float>, _ model: any ShapedLayer<Float>, measure: String,
                         strength: Double) throws {
            let before = Trainer<Float>.evaluate(model, on: test).accuracy
            let orthogonality = (run.objective as? SVDTrainingObjective<Float>)?.orthogonalityError
            for energy in energies {
                let report = try run.truncate(selection: .energy(energy), recalibratingOn: training)
                let after = Trainer<Float>.evaluate(model, on: test).accuracy
                run.undoTruncation()
                let point = Point(measure: measure, strength: strength, energy: energy, ratio: report.compressionRatio,
                                  compressedParameters: report.layers.reduce(0) { $0 + $1.parameters },
                                  denseParameters: report.layers.reduce(0) { $0 + $1.denseParameters },
                                  accuracyBefore: before, accuracyAfter: after, orthogonalityError: orthogonality)
                points.append(point)
                print("\(measure) λ=\(strength) e=\(energy): " + String(format: "%.2f×, accuracy %.2f%% → %.2f%% (%.0f s)",
                             point.ratio, 100 * before, 100 * after, Date().timeIntervalSince(started)))
                fflush(nil)
            }
        }
        print("training on \(training.count) images for \(epochs) epoch(s); evaluating on \(test.count)")
        // The dense baseline, truncated the same way (a `nuclear` run with λ = 0 only provides the slots).
        if let (_, model) = try train(nil, label: "dense") {
            let slots = try CompressionAwareTraining(model: model, settings: CompressionAwareSettings(method: .nuclear, strength: 0))
            try truncations(slots, model, measure: "none (dense)", strength: 0)
        }
        for measure in try selectedMeasures() {
            for strength in strengths {
                var settings = CompressionAwareSettings(method: .svdTraining, strength: strength)
                settings.measure = measure
                guard let (run, model) = try train(settings, label: "\(measure.name) λ=\(strength)") else { continue }
                try truncations(run!, model, measure: measure.name, strength: strength)
            }
        }
        let seconds = Date().timeIntervalSince(started)
        let markdown = report(points, failures: failures, trainCount: training.count, epochs: epochs, strengths: strengths,
                              energies: energies, seconds: seconds)
        let markdownPath = (out as NSString).appendingPathComponent("sparsity-measures.md")
        let svgPath = (out as NSString).appendingPathComponent("sparsity-measures.svg")
        try markdown.write(toFile: markdownPath, atomically: true, encoding: .utf8)
        try plot(points).render().write(toFile: svgPath, atomically: true, encoding: .utf8)
        print("wrote \(markdownPath) and \(svgPath) (" + String(format: "%.0f s)", seconds))
    }

    /// The points no other point of the same measure beats in both ratio and accuracy, by increasing ratio.
    private func front(_ points: [Point]) -> [Point] {
        points.filter { p in
            !points.contains { q in q.ratio >= p.ratio && q.accuracyAfter >= p.accuracyAfter
                && (q.ratio > p.ratio || q.accuracyAfter > p.accuracyAfter) }
        }.sorted { $0.ratio < $1.ratio }
    }

    private func groups(_ points: [Point]) -> [(String, [Point])] {
        var order: [String] = []
        for point in points where !order.contains(point.measure) { order.append(point.measure) }
        return order.map { name in (name, points.filter { $0.measure == name }) }
    }

    private func plot(_ points: [Point]) -> SVGPlot {
        var plot = SVGPlot(title: "fmnist-cnn, SVD training per sparsity measure, truncated without fine-tuning",
                           xLabel: "compression ratio of the compressed layers (×)", yLabel: "test accuracy (%)")
        for (name, group) in groups(points) {
            plot.series.append(.init(name: name, points: front(group).map { ($0.ratio, 100 * $0.accuracyAfter) }))
        }
        return plot
    }

    private func report(_ points: [Point], failures: [String], trainCount: Int, epochs: Int, strengths: [Double],
                        energies: [Double], seconds: Double) -> String {
        var text = """
        # Sparsity measures as SVD-training regularizers (fmnist-cnn, Fashion-MNIST)

        \(SparsityMeasures.configuration.discussion.components(separatedBy: "\n\n").first!)

        This run: budget \(budget), \(trainCount) training images, \(epochs) epoch(s), λ_s ∈ \(strengths), \
        e ∈ \(energies), \(LinearAlgebraThreads.count) thread(s), \(String(format: "%.0f", seconds)) s in total.
        Compression ratio = dense weight parameters / factorized weight parameters over the compressed layers \
        (every convolution but the first and the first linear layer; the classifier, biases and batch norm excluded).

        ## Best accuracy after truncation at a minimum compression ratio

        """
        let thresholds = [2.0, 3, 5, 10]
        text += "| measure | " + thresholds.map { "≥ \(Int($0))×" }.joined(separator: " | ") + " |\n"
        text += "|---|" + thresholds.map { _ in "---:|" }.joined() + "\n"
        for (name, group) in groups(points) {
            text += "| \(name) | " + thresholds.map { threshold in
                group.filter { $0.ratio >= threshold }.map(\.accuracyAfter).max().map { String(format: "%.2f %%", 100 * $0) } ?? "–"
            }.joined(separator: " | ") + " |\n"
        }
        text += "\n## Every run\n\n| measure | λ_s | e | ratio | params (compressed layers) | accuracy before | after | ‖UᵀU−I‖ |\n"
        text += "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for p in points {
            text += "| \(p.measure) | \(p.strength) | \(p.energy) | " + String(format: "%.2f× | ", p.ratio)
                + "\(p.compressedParameters) of \(p.denseParameters) | "
                + String(format: "%.2f %% | %.2f %% | ", 100 * p.accuracyBefore, 100 * p.accuracyAfter)
                + (p.orthogonalityError.map { String(format: "%.3f", $0) } ?? "–") + " |\n"
        }
        if !failures.isEmpty {
            text += "\n## Diverged runs\n\n" + failures.map { "- \($0)" }.joined(separator: "\n") + "\n"
        }
        return text
    }
}
