import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// The `lowrank train` options of compression-aware training (METHODS §2.3) and what they do around `fit`.
struct CompressionAwareOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Train toward low rank, then truncate: \(CompressionAwareMethod.allCases.map(\.rawValue).joined(separator: ", ")).",
        discussion: "Every Linear layer and convolution but the first is trained toward low rank and truncated into "
            + "factorized layers at the end (no fine-tuning); the report compares the accuracy before and after."))
    var compressionAware: String?

    @Option(help: "The sparsity measure svd-training regularizes: \(SparsityMeasure.all.filter(\.isDifferentiable).map(\.name).joined(separator: ", ")).")
    var measure = "effective-rank"

    @Option(parsing: .unconditional, help: "λ (nuclear, trp: per nuclear norm; lc: per stored parameter), λ_s (svd-training) or the radius scale ρ (frank-wolfe). Defaults: nuclear 0.02, trp 1e-4, svd-training 0.01, lc 1e-6, frank-wolfe 0.5.")
    var strength: Double?

    @Option(help: ArgumentHelp(
        "Truncate keeping this fraction of each layer's Σσ² (default: 0.95; after nuclear training: the non-zero singular values).",
        discussion: "Several comma-separated fractions (e.g. 0.9,0.95,0.99) truncate the one trained network at each "
            + "and report each; the model keeps the last."))
    var truncateEnergy: String?

    @Flag(help: "Train the classifier (the last Linear) toward low rank and truncate it too (default: it stays dense).")
    var compressClassifier = false

    /// The --truncate-energy fractions (empty without the option).
    var truncationEnergies: [Double] {
        truncateEnergy.map { $0.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } } ?? []
    }

    func validate() throws {
        guard let compressionAware else {
            if strength != nil || truncateEnergy != nil || compressClassifier {
                throw ValidationError("--strength, --truncate-energy and --compress-classifier belong to compression-aware training; "
                                      + "add --compression-aware (for example svd-training) or drop them")
            }
            return
        }
        guard CompressionAwareMethod(rawValue: compressionAware) != nil else {
            throw ValidationError("unknown --compression-aware '\(compressionAware)'; choose one of "
                                  + CompressionAwareMethod.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let parsed = SparsityMeasure(name: measure), parsed.isDifferentiable else {
            throw ValidationError("--measure must be one of "
                                  + SparsityMeasure.all.filter(\.isDifferentiable).map(\.name).joined(separator: ", "))
        }
        if let strength, !(strength >= 0 && strength.isFinite) { throw ValidationError("--strength must be a number ≥ 0") }
        if let truncateEnergy {
            let parts = truncateEnergy.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count == truncationEnergies.count, truncationEnergies.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
                throw ValidationError("--truncate-energy takes fractions in (0, 1], comma-separated; got '\(truncateEnergy)'; try 0.95 or 0.9,0.95,0.99")
            }
        }
    }

    /// The settings, or nil without --compression-aware.
    var settings: CompressionAwareSettings? {
        guard let name = compressionAware, let method = CompressionAwareMethod(rawValue: name) else { return nil }
        let defaults: [CompressionAwareMethod: Double] = [.nuclear: 0.02, .trp: 1e-4, .svdTraining: 0.01, .lc: 1e-6,
                                                          .frankWolfe: 0.5]
        var settings = CompressionAwareSettings(method: method, strength: strength ?? defaults[method]!)
        settings.measure = SparsityMeasure(name: measure) ?? .effectiveRank
        if let last = truncationEnergies.last { settings.truncation = .energy(last) }
        settings.keepClassifierDense = !compressClassifier
        return settings
    }

    /// Truncates after training (at each of `energies`, undoing in between, the model keeping the last; the
    /// settings' rule when empty), evaluates the truncated model on `test` with the batch-normalization statistics
    /// as trained and re-estimated on `training` (no weight changes), and prints the report (or returns it as a
    /// JSON object).
    static func finish(_ run: CompressionAwareTraining<Float>, energies: [Double], model: any ShapedLayer<Float>,
                       training: Dataset, test: Dataset, inputShape: [Int], json: Bool) throws -> [String: Any] {
        let before = Trainer<Float>.evaluate(model, on: test)
        var rows: [(rule: MatrixRankRule, report: TruncationReport, stale: Double, after: Double)] = []
        for rule in energies.isEmpty ? [run.settings.truncation] : energies.map(MatrixRankRule.energy) {
            run.undoTruncation()
            let report = try run.truncate(selection: rule)
            let stale = Trainer<Float>.evaluate(model, on: test).accuracy
            ModelSurgery.recalibrateBatchNorm(in: model, on: training)
            rows.append((rule, report, stale, Trainer<Float>.evaluate(model, on: test).accuracy))
        }
        let last = rows.last!
        let object: [String: Any] = [
            "method": run.settings.method.rawValue, "strength": run.settings.strength,
            "classifier_kept_dense": run.settings.keepClassifierDense,
            "truncation": last.rule.description, "accuracy_before_truncation": before.accuracy,
            "accuracy_after_truncation_trained_statistics": last.stale,
            "accuracy_after_truncation": last.after, "compression_ratio": last.report.compressionRatio,
            "parameters_after": model.trainableParameterCount,
            "multiply_adds_per_image_after": model.multiplyAdds(forInput: inputShape),
            "layers": last.report.layers.map {
                ["name": $0.name, "rows": $0.rows, "columns": $0.columns, "rank": $0.rank, "full_rank": $0.fullRank,
                 "dense_parameters": $0.denseParameters, "parameters": $0.parameters, "kept_dense": $0.keptDense] as [String: Any]
            },
            "truncations": rows.map {
                ["truncation": $0.rule.description, "compression_ratio": $0.report.compressionRatio,
                 "accuracy_after_truncation": $0.after, "ranks": $0.report.layers.map(\.rank)] as [String: Any]
            },
        ]
        guard !json else { return object }
        if rows.count > 1 {
            print(String(format: "truncations of the one trained network (test accuracy %.2f%% before truncation; batch-norm "
                         + "statistics re-estimated after each):", 100 * before.accuracy))
            printTable([["truncation", "ranks", "compression", "accuracy"]] + rows.map {
                [$0.rule.description, $0.report.layers.map { "\($0.rank)" }.joined(separator: ","),
                 String(format: "%.2f×", $0.report.compressionRatio), String(format: "%.2f%%", 100 * $0.after)]
            }, rightAligned: 2...)
        }
        print("compression-aware \(run.settings.method.rawValue) (strength \(run.settings.strength)), truncation by "
              + "\(last.rule), no fine-tuning" + (run.settings.keepClassifierDense ? " (classifier kept dense)" : "") + ":")
        printTable([["layer", "matrix", "rank", "of", "parameters", "dense", "form"]] + last.report.layers.map {
            [$0.name, "\($0.rows)×\($0.columns)", "\($0.rank)", "\($0.fullRank)", grouped($0.parameters),
             grouped($0.denseParameters), $0.keptDense ? "dense" : "factorized"]
        }, rightAligned: 2...)
        print(String(format: "test accuracy %.2f%% before truncation, %.2f%% after (%.2f%% before re-estimating the "
                     + "batch-norm statistics on %d training batches); %.2f× fewer parameters in the compressed layers; ",
                     100 * before.accuracy, 100 * last.after, 100 * last.stale, ModelSurgery.recalibrationBatches,
                     last.report.compressionRatio)
              + "model \(grouped(model.trainableParameterCount)) parameters, "
              + "\(Train.millions(model.multiplyAdds(forInput: inputShape))) M multiply-adds per image")
        return object
    }
}
