import ArgumentParser
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank measure MODEL`: the sparsity measures of every layer's singular values.
struct Measure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the sparsity measures of each layer's singular values (METHODS §4.2).",
        discussion: """
        Every Linear layer (weight I×O) and convolution (kernel viewed as O×(C·KH·KW)) of the checkpoint's model \
        is measured: l0 (relative tolerance 1e-3), l1 (nuclear norm), lp (p = 0.5), l1/l2, Hoyer, Gini, Shannon \
        entropy, effective rank exp(H) [97] and stable rank. Effective and stable rank lie in [1, rank]; Hoyer \
        and Gini are higher for a sparser spectrum, the others lower. "erank rank" is the rank the effective rank \
        selects, ⌈erank⌉, and "energy 95%" the smallest rank keeping 95% of Σσ².

        Examples:
          lowrank measure fmnist-cnn.safetensors
          lowrank measure fmnist-cnn.safetensors --json
        """
    )

    @Argument(help: "The checkpoint (.safetensors written by lowrank train).")
    var checkpoint: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        try runReportingErrors { try measure() }
    }

    private func measure() throws {
        let saved = try Checkpoint(contentsOf: checkpoint)
        let architecture = try ModelArchitecture(json: saved.architecture)
        let model: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 0)
        try saved.restore(into: model)
        let slots = LayerSlot<Float>.find(in: model, skippingFirst: false)
        guard !slots.isEmpty else {
            throw ValidationError("\(architecture.model) has no Linear or Conv2D layer inside Sequential containers to measure")
        }
        var rows: [[String: Any]] = []
        for slot in slots {
            guard let matrix = slot.weightMatrix, let shape = slot.matrixShape else { continue }
            let sigma = try matrix.singularValues().scalars.map { Double($0) }
            var row: [String: Any] = ["layer": slot.name, "rows": shape.rows, "columns": shape.columns,
                                      "full_rank": sigma.count]
            for measure in SparsityMeasure.all {
                row[measure.name] = (try? measure.value(sigma)) ?? Double.nan
            }
            row["erank_rank"] = try SparsityMeasure.effectiveRank.selectedRank(sigma)
            row["energy95_rank"] = try MatrixRankRule.energy(0.95).rank(singularValues: sigma, inputFeatures: shape.rows, outputFeatures: shape.columns, layer: slot.name)
            rows.append(row)
        }
        if output.json {
            try printJSON(["checkpoint": checkpoint, "model": architecture.model,
                           "layers": rows.map { $0.mapValues { ($0 as? Double).map { $0.isFinite ? $0 as Any : NSNull() } ?? $0 } }])
            return
        }
        print("\(checkpoint): \(architecture.model), singular values of each layer's weight matrix")
        let names = SparsityMeasure.all.map(\.name)
        let header = ["layer", "matrix", "rank"] + names + ["erank rank", "energy 95%"]
        let table = [header] + rows.map { row -> [String] in
            ["\(row["layer"]!)", "\(row["rows"]!)×\(row["columns"]!)", "\(row["full_rank"]!)"]
                + names.map { String(format: "%.4g", row[$0] as! Double) }
                + ["\(row["erank_rank"]!)", "\(row["energy95_rank"]!)"]
        }
        printTable(table, rightAligned: 1...)
    }
}

/// Prints rows of cells in aligned columns (two spaces apart); columns in `rightAligned` are padded on the left.
func printTable(_ rows: [[String]], rightAligned: PartialRangeFrom<Int>) {
    guard let columns = rows.first?.count else { return }
    let widths = (0..<columns).map { column in rows.map { $0[column].count }.max()! }
    for row in rows {
        print((0..<columns).map { column in
            let pad = String(repeating: " ", count: widths[column] - row[column].count)
            return rightAligned.contains(column) ? pad + row[column] : row[column] + pad
        }.joined(separator: "  "))
    }
}
