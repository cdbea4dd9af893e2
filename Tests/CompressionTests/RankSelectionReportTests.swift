import Compression
import Foundation
import Testing
import TensorCore

@Suite("Rank selection: report") struct RankSelectionReportTests {
    /// The report of an allocation carries each layer's choice, the exact totals and ratios, and survives JSON.
    @Test func reportOfAnAllocationRoundTripsThroughJSON() throws {
        let layers = [
            LayerCandidates.svd(name: "fc1", singularValues: [5, 3, 1], inputFeatures: 3, outputFeatures: 8),
            LayerCandidates.svd(name: "conv1", singularValues: [4, 4, 2, 1], inputFeatures: 4, outputFeatures: 6, outputPositions: 10),
        ]
        let allocation = try RankSelection.allocate(layers, budget: 60)
        let report = RankSelectionReport(layers, allocation: allocation)
        #expect(report.layers.map(\.name) == ["fc1", "conv1"])
        #expect(report.budget == 60 && report.measure == .parameters && report.method == "budget exactDynamicProgram")
        for (l, entry) in report.layers.enumerated() {
            let chosen = layers[l].candidates[allocation.choices[l]]
            #expect(entry.ranks == chosen.ranks && entry.parameters == chosen.parameters && entry.macs == chosen.macs)
            #expect(entry.predictedRelativeError == chosen.relativeError)
        }
        #expect(report.parameters == allocation.cost && report.parameters <= 60)
        #expect(report.denseParameters == 24 + 24 && report.denseMACs == 24 + 240)
        #expect(report.compressionRatio == Double(48) / Double(report.parameters))
        #expect(report.speedUp == Double(264) / Double(report.macs))
        let decoded = try JSONDecoder().decode(RankSelectionReport.self, from: JSONEncoder().encode(report))
        #expect(decoded == report)
    }

    @Test func reportOfPerLayerRules() throws {
        let entry = RankSelectionReport.Layer(name: "fc", format: "svd", ranks: [2], predictedRelativeError: 0.1,
                                              parameters: 20, macs: 20, denseParameters: 50, denseMACs: 50)
        let report = RankSelectionReport(method: "evbmf", layers: [entry, entry])
        #expect(report.budget == nil && report.compressionRatio == 2.5 && report.speedUp == 2.5)
        #expect(abs(report.summedRelativeError - 0.2) < 1e-15)
        let empty = RankSelectionReport(method: "none", layers: [])
        #expect(empty.compressionRatio == nil)
        #expect(try JSONDecoder().decode(RankSelectionReport.self, from: JSONEncoder().encode(empty)) == empty)
    }
}
