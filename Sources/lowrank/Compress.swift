import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// The format and rank options shared by `lowrank compress` and `lowrank convert`.
struct RankOptions: ParsableArguments {
    @Option(help: "The format: \(CompressionFormat.allCases.map(\.shortName).joined(separator: "|"))|auto (auto: svd, tucker or tt and the ranks chosen per layer under one budget: --ratio, --budget-params or --budget-macs).")
    var format: String

    @Option(parsing: .unconditional, help: "Compression ratio of every compressed layer (dense over factorized weight parameters); with --format auto, of the compressed layers together.")
    var ratio: Double?

    @Option(help: "Ranks of every compressed layer, comma-separated (one number for all ranks of the format).")
    var ranks: String?

    @Option(help: "Rank rule: energy:E keeps a share E of Σσ² per layer (any format; e.g. energy:0.9); evbmf (svd format) picks each layer's rank by EVBMF [56].")
    var rankRule: String?

    @Option(parsing: .unconditional, help: "Global parameter budget for the whole model: ranks allocated across layers (svd, tucker, tt or auto).")
    var budgetParams: Int?

    @Option(parsing: .unconditional, help: "Global multiply-add budget per image for the whole model (svd, tucker, tt or auto).")
    var budgetMacs: Int?

    @Option(parsing: .unconditional, help: "Blocks of block-term (btd) layers.")
    var blocks = 2

    /// The pipeline settings these options describe for the model in `checkpoint` (read only for
    /// `--format auto --ratio R`, whose parameter budget depends on the model).
    func settings(checkpoint: String) throws -> CompressionSettings {
        if format == "auto" { return try autoSettings(checkpoint: checkpoint) }
        guard let chosen = CompressionFormat(name: format) else {
            throw ValidationError("unknown format '\(format)'; choose one of "
                                  + CompressionFormat.allCases.map(\.shortName).joined(separator: ", "))
        }
        var targets: [LayerRankTarget] = []
        var rule: ModelRankRule?
        if let budgetParams { rule = .budget(budgetParams, .parameters); targets.append(.ratio(1)) }
        if let budgetMacs { rule = .budget(budgetMacs, .macs); targets.append(.ratio(1)) }
        if let ratio {
            guard ratio >= 1, ratio.isFinite else {
                throw ValidationError("--ratio is dense over factorized parameters and must be ≥ 1, got \(ratio); for example --ratio 5")
            }
            targets.append(.ratio(ratio))
        }
        if let ranks {
            let values = ranks.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--ranks must be positive integers separated by commas, got '\(ranks)'; for example 8 or 8,8")
            }
            targets.append(.ranks(values.map { $0! }))
        }
        if let rankRule {
            if rankRule.hasPrefix("energy:"), let e = Double(rankRule.dropFirst("energy:".count)), e > 0, e <= 1 {
                targets.append(.energy(e))
            } else if rankRule == "evbmf" {
                rule = .perLayer(.evbmf)
                targets.append(.ratio(1))
            } else {
                throw ValidationError("--rank-rule must be energy:E with 0 < E ≤ 1 (e.g. energy:0.9) or evbmf, got '\(rankRule)'")
            }
        }
        guard targets.count == 1 else {
            throw ValidationError("give exactly one of --ratio, --ranks, --rank-rule, --budget-params, --budget-macs (got \(targets.count))")
        }
        var settings = CompressionSettings(format: chosen, target: targets[0])
        settings.rankRule = rule
        if case .budget = rule { settings.planFormats = [chosen] }
        settings.compressor.blocks = blocks
        return settings
    }

    /// `--format auto`: one whole-model budget, --budget-params N, --budget-macs N, or --ratio R (the parameters of
    /// everything not compressed plus the eligible layers' dense weights / R: `ModelRankPlanner.parameterBudget`),
    /// allocated per layer over `ModelRankPlanner.plannableFormats` (svd, tucker for convs, tt for FC layers).
    func autoSettings(checkpoint: String) throws -> CompressionSettings {
        guard ranks == nil, rankRule == nil else {
            throw ValidationError("--format auto chooses formats and ranks under one budget; give --ratio, --budget-params or --budget-macs instead of --ranks or --rank-rule")
        }
        let rule: ModelRankRule
        switch (ratio, budgetParams, budgetMacs) {
        case let (ratio?, nil, nil):
            let (network, architecture, _) = try CompressedModel.load(checkpoint, as: Float.self)
            rule = .budget(try ModelRankPlanner.parameterBudget(network, inputShape: architecture.base.inputShape, ratio: ratio),
                           .parameters)
        case let (nil, budget?, nil): rule = .budget(budget, .parameters)
        case let (nil, nil, budget?): rule = .budget(budget, .macs)
        default:
            throw ValidationError("--format auto needs exactly one of --ratio, --budget-params, --budget-macs")
        }
        var settings = CompressionSettings(format: .svd, target: .ratio(1))
        settings.rankRule = rule
        settings.planFormats = ModelRankPlanner.plannableFormats
        settings.compressor.blocks = blocks
        return settings
    }
}

/// `lowrank compress`: the pre-train pipeline on a trained checkpoint.
struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a trained model: decompose its layers, fine-tune, evaluate, save (METHODS §2.1).",
        discussion: """
        Loads a checkpoint written by lowrank train, replaces every eligible weight layer (all but the first and \
        the last) by a factorized layer in --format at the given ratio or ranks, fine-tunes the whole network \
        (SGD momentum 0.9, cosine learning rate), optionally distilling from the dense model, and reports accuracy, \
        parameters, multiply-adds and measured inference speed of both models. A layer the format cannot apply to \
        stays dense, and the report says why. The saved model reloads with lowrank evaluate. --format auto chooses \
        per layer svd, tucker (convs, Tucker-2) or tt (FC layers) and their ranks under one whole-model budget, \
        minimizing the summed predicted relative error (exact for svd, an upper bound for tucker and tt); see \
        lowrank rank --formats.

        Examples:
          lowrank compress fmnist-cnn.safetensors --format tt --ratio 5 --finetune-epochs 1 --out small.safetensors
          lowrank compress fmnist-cnn.safetensors --format tucker --ranks 16 --distill --report report/ --json
          lowrank compress fmnist-cnn.safetensors --format auto --ratio 5 --out mixed.safetensors
        """
    )

    @Argument(help: "The trained checkpoint (.safetensors written by lowrank train).")
    var model: String

    @OptionGroup var rank: RankOptions

    @Option(parsing: .unconditional, help: "Fine-tuning epochs.")
    var finetuneEpochs = 1

    @Option(parsing: .unconditional, help: "Initial fine-tuning learning rate (cosine decay to 0).")
    var lr = 0.01

    @Option(parsing: .unconditional, help: "Fine-tuning batch size.")
    var batch = 128

    @Flag(help: "Distill from the dense model (temperature 4, weight 0.5).")
    var distill = false

    @Flag(help: "Convert and fine-tune one layer at a time (MUSCO-style rounds).")
    var layerByLayer = false

    @Option(parsing: .unconditional, help: "Fine-tune on the first N training images only.")
    var limit: Int?

    @Option(help: "The folder with the data files (default: the one recorded in the checkpoint, else the system's).")
    var dataDir: String?

    @Option(help: "Where to save the compressed model.")
    var out: String?

    @Option(help: "Write report.md, result.json and spectra.svg into this folder.")
    var report: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard finetuneEpochs >= 0 else { throw ValidationError("--finetune-epochs must be ≥ 0") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
    }

    func run() throws {
        try runReportingErrors {
            var settings = try rank.settings(checkpoint: model)
            settings.fineTuneEpochs = finetuneEpochs
            settings.learningRate = lr
            settings.batchSize = batch
            settings.layerByLayer = layerByLayer
            if distill { settings.distillation = (temperature: 4, weight: 0.5) }
            settings.progress = output.json ? .silent : .automatic
            if let out { try AtomicFile.checkDestination(out) }
            if let report { try AtomicFile.createFolder(report) }
            let checkpoint = try Checkpoint(contentsOf: model)
            let (training, test) = try CompressionData.load(for: checkpoint, directory: dataDir, limit: limit)
            let result = try CompressionPipeline.run(checkpoint: model, training: training, test: test, settings: settings,
                                                     output: out, log: { if !output.json { print($0) } })
            if let report {
                let (dense, architecture, _) = try CompressedModel.load(model, as: Float.self)
                try CompressionReport.write(result, title: "\(architecture.base.model) compressed with \(settings.formatDisplayName)",
                                            denseModel: dense, inputShape: architecture.base.inputShape, to: report)
            }
            if output.json {
                try printJSON(try CompressionData.jsonObject(result))
                return
            }
            print(CompressionReport.markdown(result, title: "\(model) → \(settings.formatDisplayName)"))
            if let out { print("saved \(out)") }
            if let report { print("report in \(report)/report.md") }
        }
    }
}

/// `lowrank convert`: decomposition without fine-tuning.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a trained model's layers to a factorized format without fine-tuning.",
        discussion: """
        Examples:
          lowrank convert fmnist-cnn.safetensors --format tt --ratio 5 --out small.safetensors
          lowrank convert fmnist-cnn.safetensors --format svd --rank-rule energy:0.9 --out small.safetensors --json
        """
    )

    @Argument(help: "The trained checkpoint (.safetensors written by lowrank train).")
    var model: String

    @OptionGroup var rank: RankOptions

    @Option(help: "Where to save the converted model.")
    var out: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        try runReportingErrors {
            let settings = try rank.settings(checkpoint: model)
            try AtomicFile.checkDestination(out)
            let (student, architecture, source) = try CompressedModel.load(model, as: Float.self)
            guard architecture.layers.isEmpty else {
                throw ValidationError("\(model) is already compressed; give the dense model")
            }
            let start = Date()
            let (reports, records) = try CompressionPipeline.convert(student, inputShape: architecture.base.inputShape,
                                                                     settings: settings)
            try CompressionPipeline.save(student, architecture: CompressedArchitecture(base: architecture.base, layers: records),
                                         to: out, notes: source.trainingState?.notes ?? [:])
            if output.json {
                let data = try JSONEncoder().encode(reports)
                try printJSON(["model": model, "out": out, "format": settings.formatName,
                               "seconds": Date().timeIntervalSince(start),
                               "layers": try JSONSerialization.jsonObject(with: data)])
                return
            }
            print(CompressionReport.layerTable(reports))
            print(String(format: "converted in %.1f s; saved %@", Date().timeIntervalSince(start), out))
        }
    }
}

/// The data a checkpoint was trained on, and JSON output, for the compression commands.
enum CompressionData {
    /// The training and test splits of the data set the checkpoint records (Fashion-MNIST by default).
    static func load(for checkpoint: Checkpoint, directory: String?, limit: Int?) throws -> (Dataset, Dataset) {
        let notes = checkpoint.trainingState?.notes ?? [:]
        let name = notes["data"] ?? Dataset.Source.fashionMNIST.rawValue
        guard let source = Dataset.Source(rawValue: name) else {
            throw ValidationError("\(checkpoint.path) records an unknown data set '\(name)'")
        }
        var training = try Dataset.load(source, directory: directory ?? notes["data_dir"], split: .train)
        let test = try Dataset.load(source, directory: directory ?? notes["data_dir"], split: .test)
        if let limit { training = training.subset(first: Swift.min(limit, training.count)) }
        return (training, test)
    }

    /// A result as a JSON object, with the derived ratios.
    static func jsonObject(_ result: CompressionResult) throws -> [String: Any] {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as! [String: Any]
        object["compressed_layers_ratio"] = result.compressedLayersRatio
        object["network_ratio"] = result.networkRatio
        object["macs_ratio"] = result.macsRatio
        object["speed_up"] = result.speedUp
        return object
    }
}
