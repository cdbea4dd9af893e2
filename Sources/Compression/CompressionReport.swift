import Foundation
import NeuralNetworks
import TensorCore

/// Markdown tables and SVG plots of compression runs (issue 6, item 3; METHODS §9.3's report).
public enum CompressionReport {
    /// One run: the dense and compressed model side by side, then every weight layer.
    public static func markdown(_ result: CompressionResult, title: String) -> String {
        var text = "# \(title)\n\n"
        text += "| | dense | compressed | ratio |\n|---|---:|---:|---:|\n"
        text += "| test accuracy (%) | \(percent(result.dense.accuracy)) | \(percent(result.compressed.accuracy)) | |\n"
        text += "| accuracy right after conversion (%) | | \(percent(result.accuracyBeforeFineTuning)) | |\n"
        text += "| parameters | \(result.dense.parameters) | \(result.compressed.parameters) | \(ratio(result.networkRatio)) |\n"
        text += "| multiply-adds per image | \(result.dense.macs) | \(result.compressed.macs) | \(ratio(result.macsRatio)) |\n"
        text += "| inference images/s (measured side by side) | \(Int(result.dense.imagesPerSecond)) | "
            + "\(Int(result.compressed.imagesPerSecond)) | \(ratio(result.speedUp)) |\n\n"
        text += String(format: "Compressed layers: %.2f× fewer weight parameters. Conversion %.1f s, fine-tuning %.1f s.\n\n",
                       result.compressedLayersRatio, result.conversionSeconds, result.fineTuneSeconds)
        text += layerTable(result.layers)
        return text
    }

    /// The per-layer table: format, modes, ranks, parameters, MACs, errors, or why the layer stayed dense.
    public static func layerTable(_ layers: [LayerReport]) -> String {
        var text = "| layer | kind | format | modes | ranks | parameters | ratio | MACs | weight error | output error |\n"
        text += "|---|---|---|---|---|---:|---:|---:|---:|---:|\n"
        for layer in layers {
            if let reason = layer.keptDenseReason {
                text += "| \(layer.name) | \(layer.kind) | dense: \(cell(reason)) | | | \(layer.denseParameters) | 1× | \(layer.denseMACs) | | |\n"
                continue
            }
            text += "| \(layer.name) | \(layer.kind) | \(layer.format ?? "") | \(layer.inputModes) → \(layer.outputModes) | "
                + "\(layer.ranks) | \(layer.parameters) | \(ratio(layer.compressionRatio)) | \(layer.macs) | "
                + "\(layer.weightError.map { String(format: "%.3f", $0) } ?? "") | "
                + "\(layer.outputError.map { String(format: "%.3f", $0) } ?? "") |\n"
        }
        return text
    }

    /// The survey's Table 1 on one network: a row per method (the dense baseline first) with top-1 accuracy, the
    /// ratio over the compressed layers and over the network, the MACs ratio and the measured speed-up.
    public static func comparisonTable(_ results: [(method: String, result: CompressionResult)]) -> String {
        var text = "| method | top-1 (%) | Δ top-1 | right after conversion (%) | CR compressed layers | CR network "
            + "| MACs ratio | measured speed-up | fine-tune s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        if let dense = results.first?.result.dense {
            text += "| dense | \(percent(dense.accuracy)) | | | 1× | 1× | 1× | 1× | |\n"
        }
        for (method, result) in results {
            let compressedAny = result.layers.contains { $0.format != nil }
            text += "| \(method) | \(percent(result.compressed.accuracy)) | "
                + String(format: "%+.2f", 100 * (result.compressed.accuracy - result.dense.accuracy))
                + " | \(percent(result.accuracyBeforeFineTuning)) | "
                + (compressedAny ? ratio(result.compressedLayersRatio) : "none applied") + " | \(ratio(result.networkRatio)) | "
                + "\(ratio(result.macsRatio)) | \(ratio(result.speedUp)) | \(String(format: "%.0f", result.fineTuneSeconds)) |\n"
        }
        return text
    }

    /// Accuracy against the compressed layers' compression ratio (log x), one point per method, the dense model
    /// as a dashed line.
    public static func accuracyPlot(_ results: [(method: String, result: CompressionResult)], title: String) -> SVGPlot {
        var plot = SVGPlot(title: title, xLabel: "compression ratio of the compressed layers (×, log scale)",
                           yLabel: "test top-1 accuracy (%)")
        plot.logX = true
        let applied = results.filter { $0.result.layers.contains { $0.format != nil } }
        for (method, result) in applied {
            plot.series.append(SVGPlot.Series(name: method, points: [(result.compressedLayersRatio, 100 * result.compressed.accuracy)],
                                              style: .markers, pointLabels: [method]))
        }
        if let dense = results.first?.result.dense {
            let ratios = applied.map(\.result.compressedLayersRatio)
            let (low, high) = (Swift.min(ratios.min() ?? 1, 1), Swift.max(ratios.max() ?? 10, 2))
            plot.series.append(SVGPlot.Series(name: "dense", points: [(low, 100 * dense.accuracy), (high, 100 * dense.accuracy)],
                                              style: .dashedLine))
        }
        return plot
    }

    /// The singular values σ_i/σ_1 of every dense weight layer of `model` (FC: W; conv: the O × (I·k_h·k_w)
    /// matricization), on a log scale: how fast the spectrum decays is how well a low rank can fit the layer.
    ///
    /// - Throws: `TensorError` when an SVD fails.
    public static func spectraPlot<Scalar: TensorScalar>(_ model: any Layer<Scalar>, inputShape: [Int], title: String) throws -> SVGPlot {
        var plot = SVGPlot(title: title, xLabel: "index i", yLabel: "σ_i / σ_1 (log scale)")
        plot.logY = true
        for layer in ModelSurgery.compressibleLayers(of: model, inputShape: inputShape) {
            let matrix: Tensor<Scalar>
            if let linear = layer.layer as? Linear<Scalar> {
                matrix = linear.weight.value
            } else if let conv = layer.layer as? Conv2D<Scalar> {
                let w = conv.weight.value
                matrix = w.reshaped([w.shape[0], w.shape[1] * w.shape[2] * w.shape[3]])
            } else { continue }
            let sigma = try matrix.singularValues().scalars.map(Double.init)
            guard let first = sigma.first, first > 0 else { continue }
            plot.series.append(SVGPlot.Series(name: "layer \(layer.name): \(matrix.shape[0])×\(matrix.shape[1])",
                                              points: sigma.enumerated().map { (Double($0 + 1), $1 / first) }, style: .line))
        }
        return plot
    }

    /// Writes `report.md`, `result.json` and `spectra.svg` for one run into `directory` (created if needed).
    ///
    /// - Throws: file errors; `TensorError` when an SVD fails.
    public static func write<Scalar: TensorScalar>(_ result: CompressionResult, title: String, denseModel: any Layer<Scalar>,
                                                   inputShape: [Int], to directory: String) throws {
        try AtomicFile.createFolder(directory)
        var text = markdown(result, title: title)
        text += "\nSingular-value spectra of the dense layers: `spectra.svg`.\n"
        try text.write(toFile: directory + "/report.md", atomically: true, encoding: .utf8)
        try ResultStore(directory: directory).save(result, as: "result")
        try spectraPlot(denseModel, inputShape: inputShape, title: "Singular values of the dense layers").write(to: directory + "/spectra.svg")
    }

    static func percent(_ value: Double) -> String { String(format: "%.2f", 100 * value) }
    static func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
    static func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
}

/// Results of a series of compression runs, one JSON file per method in a folder, written atomically, so an
/// interrupted series resumes after the last finished method.
public struct ResultStore: Sendable {
    /// The folder.
    public let directory: String

    /// A store in `directory` (created on the first save).
    public init(directory: String) { self.directory = directory }

    /// The file of `method`.
    public func path(for method: String) -> String { directory + "/" + method + ".json" }

    /// The saved result of `method`, or nil when there is none or it cannot be read (it is then redone).
    public func result(for method: String) -> CompressionResult? {
        guard let data = FileManager.default.contents(atPath: path(for: method)) else { return nil }
        return try? JSONDecoder().decode(CompressionResult.self, from: data)
    }

    /// Saves the result of `method` atomically (`AtomicFile`).
    ///
    /// - Throws: `TensorError.file` when it cannot be written.
    public func save(_ result: CompressionResult, as method: String) throws {
        try AtomicFile.createFolder(directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes = [UInt8](try encoder.encode(result))
        try AtomicFile.write(to: path(for: method)) { try $0.write(bytes) }
    }

    /// The saved result of `method` (reused: true), or else runs `body` and saves its result as soon as it is done.
    ///
    /// - Throws: what `body` or `save` throws (results saved before stay).
    public func run(_ method: String, _ body: () throws -> CompressionResult) throws -> (result: CompressionResult, reused: Bool) {
        if let saved = result(for: method) { return (saved, true) }
        let fresh = try body()
        try save(fresh, as: method)
        return (fresh, false)
    }
}
