import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank cost`: per-layer parameters, MACs, compression ratio, execution mode, activation memory and energy of
/// a model, dense or with its FC layers tensorized in a format (METHODS §0.3, §1, §8).
struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer parameters, MACs, compression, execution mode, activation memory and energy of a model.",
        discussion: """
        Without --format the model is priced as it is. With --format (svd, cp, tucker, tt, tr, ht, btd, kpd or \
        gkpd, stt, str) and --ranks, every linear layer is priced as a pre-set factorized layer of that format (its \
        features split into --cores balanced modes; KPD uses 2, SVD 1) and every convolution as a pre-set \
        FactorizedConv2D of the format's conv form (svd: channel SVD, tucker: Tucker-2, kpd: GKPD; channels split \
        into 2 balanced modes; str: STR-conv with --stp-factor; stt has none). A layer the format cannot take stays dense, with the reason \
        printed. MACs and memory come from the einsum engine's exact \
        counts at --batch; energy from METHODS §8's fp32 per-operation energies (weights on chip when the model \
        fits in 1 MiB). Factorized layers list both execution modes; * marks the one auto picks.

        Examples:
          lowrank cost --model fmnist-cnn
          lowrank cost --model fmnist-cnn --format tt --ranks 8
          lowrank cost --model resnet32 --format str --ranks 8 --stp-factor 2 --json
          lowrank cost --model run.safetensors --format tucker --ranks 4
        """
    )

    @Option(help: "fmnist-cnn, lenet5, resnet20, resnet32, resnet56, or a checkpoint written by lowrank train.")
    var model: String

    @Option(help: "The factorized format (svd, cp, tucker, tt, tr, ht, btd, kpd or gkpd, stt, str).")
    var format: String?

    @Option(help: "Ranks, comma-separated (one value for every rank); meaning as in the format's documentation (default 8).")
    var ranks: String?

    @Option(parsing: .unconditional, help: "Number of modes each FC layer's features are split into.")
    var cores = 4

    @Option(parsing: .unconditional, help: "The STP factor t of stt and str.")
    var stpFactor = 2

    @Option(help: "Execution mode of the factorized layers: auto (default), factorized or reconstructed.")
    var mode: String?

    @Option(parsing: .unconditional, help: "Images per forward pass (MACs are per image; memory and the auto choice depend on it).")
    var batch = 256

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (1...(1 << 20)).contains(batch) else { throw ValidationError("--batch must be between 1 and 1,048,576, got \(batch)") }
        guard cores > 0 else { throw ValidationError("--cores must be positive") }
        guard stpFactor >= 1 else { throw ValidationError("--stp-factor must be ≥ 1 (1: plain TT/TR), got \(stpFactor)") }
        if let format, parsedFormat == nil {
            throw ValidationError("unknown format '\(format)'; choose one of "
                                  + FactorizedFormat.allCases.map(\.shortName).joined(separator: ", ") + " (or gkpd)")
        }
        if format == nil, ranks != nil || mode != nil {
            throw ValidationError("--ranks and --mode price factorized layers; add --format (for example --format tt) or drop them")
        }
        guard parsedRanks != nil else { throw ValidationError("--ranks must be positive integers separated by commas, got '\(rankList)'") }
        guard executionMode != nil else { throw ValidationError("--mode must be auto, factorized or reconstructed, got '\(mode ?? "")'") }
    }

    /// The format named by --format; a conv name (gkpd) stands for the FC format whose conv form it is.
    private var parsedFormat: FactorizedFormat? {
        format.flatMap { name in
            FactorizedFormat(name: name) ?? FactorizedConvFormat(name: name).flatMap { conv in
                FactorizedFormat.allCases.first { FactorizedConvFormat($0) == conv }
            }
        }
    }

    /// --ranks, or the default 8.
    private var rankList: String { ranks ?? "8" }

    private var parsedRanks: [Int]? {
        let values = rankList.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    private var executionMode: ExecutionMode? {
        ["auto": ExecutionMode.auto, "factorized": .factorized, "reconstructed": .reconstructed][mode ?? "auto"]
    }

    func run() throws {
        try runReportingErrors { try price() }
    }

    private func price() throws {
        let (network, inputShape, modelName) = try loadModel(model)
        var replacing: [String: any Layer<Float>] = [:]
        var notes: [String] = []
        if let format = parsedFormat {
            let leaves = ModelCost.leafLayers(of: network)
            for summary in network.layerSummaries(prefix: "", inputShape: inputShape) {
                do {
                    if let linear = leaves[summary.name] as? Linear<Float> {
                        replacing[summary.name] = try factorizedLinear(linear, name: summary.name, format: format)
                    } else if let conv = leaves[summary.name] as? Conv2D<Float> {
                        replacing[summary.name] = try factorizedConvolution(conv, name: summary.name, format: format,
                                                                            ranks: parsedRanks!, stpFactor: stpFactor,
                                                                            executionMode: executionMode!)
                    }
                } catch {
                    notes.append("\(summary.name) kept dense: \(error)")
                }
            }
        }
        let cost = ModelCost.measure(network, inputShape: inputShape, batch: batch, replacing: replacing)
        if output.json {
            try printJSON(json(cost, model: modelName, notes: notes))
        } else {
            printTable(cost, model: modelName, notes: notes)
        }
    }

    /// A pre-set FactorizedLinear standing in for `linear` (values irrelevant to the costs).
    private func factorizedLinear(_ linear: Linear<Float>, name: String, format: FactorizedFormat) throws -> FactorizedLinear<Float> {
        let d = format == .kronecker ? 2 : format == .svd ? 1 : cores
        var generator = SeededGenerator(seed: 0)
        return try FactorizedLinear<Float>(inputModes: balancedFactorization(of: linear.inputFeatures, into: d),
                                           outputModes: balancedFactorization(of: linear.outputFeatures, into: d),
                                           format: format, ranks: parsedRanks!, stpFactor: stpFactor, bias: linear.bias != nil,
                                           executionMode: executionMode!, name: name, generator: &generator)
    }

    private func json(_ cost: ModelCost, model: String, notes: [String]) -> [String: Any] {
        func energy(_ e: EnergyEstimate) -> [String: Any] {
            ["compute_pj": e.computePicojoules, "memory_pj": e.memoryPicojoules, "total_pj": e.totalPicojoules]
        }
        return [
            "model": model, "batch": cost.batch, "format": parsedFormat?.shortName ?? "dense",
            "weights_on_chip": cost.weightsOnChip, "notes": notes,
            "layers": cost.layers.map { layer -> [String: Any] in
                [
                    "name": layer.name, "description": layer.description, "parameters": layer.parameters,
                    "dense_parameters": layer.denseParameters, "compression_ratio": layer.compressionRatio,
                    "macs_per_image": layer.macsPerImage, "dense_macs_per_image": layer.denseMACsPerImage,
                    "mode": modeName(layer.chosenMode),
                    "energy_per_image": energy(layer.energyPerImage),
                    "modes": layer.modes.map { m -> [String: Any] in
                        ["mode": modeName(m.mode), "activation_side_macs": m.activationSideMACs,
                         "weight_side_macs": m.weightSideMACs, "macs_per_image": Double(m.totalMACs) / Double(cost.batch),
                         "largest_intermediate": m.largestIntermediate, "stored_for_backward": m.storedForBackward,
                         "energy_per_batch": energy(m.energy)]
                    },
                ]
            },
            "totals": [
                "parameters": cost.parameters, "dense_parameters": cost.denseParameters,
                "compression_ratio": cost.compressionRatio, "macs_per_image": cost.macsPerImage,
                "dense_macs_per_image": cost.denseMACsPerImage, "largest_intermediate": cost.largestIntermediate,
                "stored_for_backward": cost.storedForBackward, "energy_per_image": energy(cost.energyPerImage),
            ] as [String: Any],
        ]
    }

    private func printTable(_ cost: ModelCost, model: String, notes: [String]) {
        let formatName = parsedFormat.map { "\($0.shortName), ranks \(rankList)" } ?? "dense"
        print("\(model) (\(formatName)), batch \(cost.batch); memory in elements at this batch, energy per image (METHODS §8, fp32, "
              + "weights \(cost.weightsOnChip ? "on chip" : "in DRAM"))")
        var rows = [["layer", "params", "MACs/image", "CR", "mode", "largest", "stored", "energy µJ"]]
        func modeRow(_ label: String, _ m: ModeCost) -> [String] {
            [grouped(Int((Double(m.totalMACs) / Double(cost.batch)).rounded())), grouped(m.largestIntermediate),
             grouped(m.storedForBackward), String(format: "%.3f", m.energy.divided(by: cost.batch).totalPicojoules / 1e6)]
        }
        for layer in cost.layers {
            let ratio = layer.parameters == 0 ? "—" : String(format: "%.1f", layer.compressionRatio)
            guard layer.chosenMode != nil else {
                let m = layer.chosen, values = modeRow(layer.name, m)
                rows.append([layer.name, grouped(layer.parameters), values[0], ratio, "dense"] + values[1...])
                continue
            }
            rows.append([layer.name, grouped(layer.parameters), "", ratio, modeName(layer.chosenMode), "", "", ""])
            for m in layer.modes {
                let values = modeRow(modeName(m.mode), m)
                rows.append([(m.mode == layer.chosenMode ? "  * " : "    ") + modeName(m.mode), "", values[0], "", ""] + values[1...])
            }
        }
        rows.append(["total", grouped(cost.parameters), grouped(Int(cost.macsPerImage.rounded())),
                     String(format: "%.1f", cost.compressionRatio), "", grouped(cost.largestIntermediate),
                     grouped(cost.storedForBackward), String(format: "%.3f", cost.energyPerImage.totalPicojoules / 1e6)])
        rows.append(["dense", grouped(cost.denseParameters), grouped(cost.denseMACsPerImage), "1.0", "", "", "", ""])
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
        for row in rows {
            print(row.enumerated().map { c, text in
                c == 0 ? text.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - text.count) + text
            }.joined(separator: "  "))
        }
        for note in notes { print("note: \(note)") }
    }

    private func modeName(_ mode: ExecutionMode?) -> String {
        switch mode {
        case nil: return "dense"
        case .factorized?: return "factorized"
        case .reconstructed?: return "reconstructed"
        case .auto?: return "auto"
        }
    }
}

/// A pre-set `FactorizedConv2D` standing in for `conv` in the conv form of `format` (`FactorizedConvFormat.init(_:)`)
/// at `ranks` (one value stands for every rank), with the conv's kernel, stride, padding, dilation and bias (values
/// irrelevant to the costs; channels split into two balanced modes where the format splits them).
///
/// - Throws: `CompressionError` when the format has no conv form or does not fit the conv (the caller keeps it dense).
func factorizedConvolution(_ conv: Conv2D<Float>, name: String, format: FactorizedFormat, ranks: [Int], stpFactor: Int,
                           executionMode: ExecutionMode) throws -> FactorizedConv2D<Float> {
    guard let convFormat = FactorizedConvFormat(format) else {
        throw CompressionError.unsupportedFormat(layer: name, problem:
            "\(format.shortName) has no convolution form; conv formats: "
            + FactorizedConvFormat.allCases.map(\.shortName).joined(separator: ", "))
    }
    var generator = SeededGenerator(seed: 0)
    return try FactorizedConv2D<Float>(format: convFormat, inChannels: conv.inChannels, outChannels: conv.outChannels,
                                       kernelHeight: conv.kernelSize.height, kernelWidth: conv.kernelSize.width,
                                       params: conv.params, ranks: ranks, stpFactor: stpFactor, bias: conv.bias != nil,
                                       executionMode: executionMode, name: name, generator: &generator)
}

/// The model named `name` (registered, with its default input) or restored from a checkpoint.
private func loadModel(_ name: String) throws -> (any ShapedLayer<Float>, [Int], String) {
    if ModelRegistry.modelNames.contains(name) {
        let inputShape = name == "fmnist-cnn" || name == "lenet5" ? [28, 28, 1] : [32, 32, 3]
        let (model, _) = try ModelRegistry.make(named: name, inputShape: inputShape, classes: 10, seed: 0, as: Float.self)
        return (model, inputShape, name)
    }
    guard FileManager.default.fileExists(atPath: name) else {
        throw ValidationError("'\(name)' is neither a registered model (\(ModelRegistry.modelNames.joined(separator: ", "))) nor a checkpoint file")
    }
    // Dense, tensorized and compressed checkpoints alike (a compressed one rebuilds its factorized layers).
    let (model, architecture, _) = try CompressedModel.load(name, as: Float.self)
    let compressed = architecture.layers.isEmpty ? "" : " (\(architecture.layers.count) factorized layers)"
    return (model, architecture.base.inputShape, "\(architecture.base.model)\(compressed) from \(name)")
}
