import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank rank`: the ranks a rule would choose, with predicted error and cost, changing nothing.
struct Rank: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the formats and ranks a rule would choose for every layer, with predicted error and cost (METHODS §3).",
        discussion: """
        Every eligible layer (all but the first and the last weight layer) is seen in its SVD form: an FC weight, or \
        a conv kernel as [C_in·K·K, C_out]. Rules: energy:E (smallest rank keeping a share E of Σσ²), evbmf \
        (EVBMF, Nakajima et al. [56]), erank (⌈effective rank⌉ [97]), budget-params:N or budget-macs:N (ranks \
        allocated across layers to minimize the summed relative error within a whole-model budget [55]). A budget \
        may also choose the format per layer among --formats: svd (exact Eckart–Young error), tucker (convs, \
        Tucker-2 [9]: truncated-HOSVD error bound) and tt (FC layers, TT-matrix [45]: TT-SVD error bound [33]).

        Examples:
          lowrank rank fmnist-cnn.safetensors --rule evbmf
          lowrank rank fmnist-cnn.safetensors --rule budget-params:200000 --json
          lowrank rank fmnist-cnn.safetensors --rule budget-params:200000 --formats svd,tucker,tt
        """
    )

    @Argument(help: "A checkpoint written by lowrank train.")
    var model: String

    @Option(help: "energy:E | evbmf | erank | budget-params:N | budget-macs:N")
    var rule: String

    @Option(help: "Formats a budget rule chooses among per layer, comma-separated: svd, tucker (convs), tt (FC layers).")
    var formats = "svd"

    @OptionGroup var output: OutputOptions

    /// The model-wide rule `text` names.
    static func parse(_ text: String) throws -> ModelRankRule {
        func number<T: LosslessStringConvertible>(_ prefix: String) -> T? {
            text.hasPrefix(prefix) ? T(String(text.dropFirst(prefix.count))) : nil
        }
        if text == "evbmf" { return .perLayer(.evbmf) }
        if text == "erank" { return .perLayer(.measure(.effectiveRank, scale: 1)) }
        if let e: Double = number("energy:"), e > 0, e <= 1 { return .perLayer(.energy(e)) }
        if let n: Int = number("budget-params:"), n > 0 { return .budget(n, .parameters) }
        if let n: Int = number("budget-macs:"), n > 0 { return .budget(n, .macs) }
        throw ValidationError("--rule must be energy:E (0 < E ≤ 1), evbmf, erank, budget-params:N or budget-macs:N, got '\(text)'")
    }

    /// The formats `text` lists (comma-separated short names).
    static func parseFormats(_ text: String) throws -> [CompressionFormat] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let formats = names.compactMap(CompressionFormat.init(name:))
        guard !formats.isEmpty, formats.count == names.count else {
            throw ValidationError("--formats must list formats separated by commas (svd, tucker, tt), got '\(text)'; for example svd,tucker,tt")
        }
        return formats
    }

    func run() throws {
        try runReportingErrors {
            let rule = try Self.parse(rule)
            let formats = try Self.parseFormats(formats)
            let (network, architecture, _) = try CompressedModel.load(model, as: Float.self)
            let plan = try ModelRankPlanner.plan(network, inputShape: architecture.base.inputShape, rule: rule,
                                                 formats: formats)
            let report = plan.report
            if output.json {
                let data = try JSONEncoder().encode(report)
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("\(model): \(architecture.base.model), rule \(report.method)")
            print("layer        format      ranks  predicted error      params  dense params          MACs    dense MACs")
            for layer in report.layers {
                let ranks = layer.ranks.isEmpty ? "-" : layer.ranks.map(String.init).joined(separator: ",")
                print(layer.name.padding(toLength: 12, withPad: " ", startingAt: 0) + " "
                      + layer.format.padding(toLength: 6, withPad: " ", startingAt: 0) + " "
                      + String(repeating: " ", count: Swift.max(0, 10 - ranks.count)) + ranks
                      + String(format: " %15.4f %11d %13d %13d %13d", layer.predictedRelativeError, layer.parameters,
                               layer.denseParameters, layer.macs, layer.denseMACs))
            }
            print(String(format: "compressed layers: %d → %d parameters (%.2f×), summed relative error %.4f",
                         report.denseParameters, report.parameters, report.compressionRatio ?? 0, report.summedRelativeError))
        }
    }
}
