import Autodiff
import Compression
import Decompositions
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// The per-layer compressor seam on FC layers: ratio search, energy targets, formats that do not apply, rebuilding.
@Suite struct LayerCompressorTests {
    static let fcFormats: [CompressionFormat] = [.svd, .cp, .tucker, .tensorTrain, .tensorRing, .hierarchicalTucker,
                                                 .blockTerm, .kronecker, .semiTensorTrain, .semiTensorRing]

    static func linear(_ inputs: Int, _ outputs: Int, seed: UInt64 = 1) -> Linear<Float> {
        var generator = SeededGenerator(seed: seed)
        return Linear<Float>(inputFeatures: inputs, outputFeatures: outputs, generator: &generator)
    }

    @Test(arguments: fcFormats)
    func ratioTargetMeetsTheRatioWithTheLargestUniformRank(format: CompressionFormat) throws {
        let dense = Self.linear(96, 64)
        let outcome = try LayerCompressor.compress(dense, name: "fc", inputShape: [96], format: format, target: .ratio(5))
        guard case let .replaced(layer, record) = outcome else {
            Issue.record("\(format) kept the layer dense")
            return
        }
        let factorized = try #require(layer as? FactorizedLinear<Float>)
        #expect(factorized.coreParameterCount * 5 <= 96 * 64, "\(format): \(factorized.coreParameterCount) core parameters")
        #expect(record.format == format.shortName && record.kind == "linear" && record.bias)
        // The replacement is the decomposition of W: its output is x·Ŵ + b.
        var generator = SeededGenerator(seed: 2)
        let x = Variable(constant: Tensor<Float>.randomNormal([3, 96], generator: &generator))
        let expected = Tensor.matmul(x.value, factorized.reconstructWeight()) + dense.bias!.value
        let difference = (factorized(x, mode: .inference).value - expected).squaredNorm().squareRoot()
        #expect(difference <= 1e-4 * expected.squaredNorm().squareRoot(), "\(format): ‖Δ‖ = \(difference)")
    }

    @Test func svdRatioSearchFindsTheKnownRank() throws {
        // R(I + O) ≤ I·O/5 = 1228.8 with I + O = 160 gives R = 7 (8·160 = 1280 is over).
        let outcome = try LayerCompressor.compress(Self.linear(96, 64), name: "fc", inputShape: [96], format: .svd,
                                                   target: .ratio(5))
        guard case let .replaced(_, record) = outcome else { Issue.record("kept dense"); return }
        #expect(record.ranks == [7])
    }

    @Test func tuckerRanksAreCappedByTheModeSizes() throws {
        // 96 → [12, 8], 64 → [8, 8]; at ratio 1.2 (budget 5,120) the uniform rank 9 fits (core 9·8³ = 4,608 plus
        // factors 12·9 + 3·8·8 = 300) and 10 does not (5,120 + 312), with the ranks of the size-8 modes capped at 8.
        let outcome = try LayerCompressor.compress(Self.linear(96, 64), name: "fc", inputShape: [96], format: .tucker,
                                                   target: .ratio(1.2))
        guard case let .replaced(_, record) = outcome else { Issue.record("kept dense"); return }
        #expect(record.inputModes == [12, 8] && record.outputModes == [8, 8])
        #expect(record.ranks == [9, 8, 8, 8])
    }

    @Test(arguments: [0.5, 0.9, 0.99])
    func energyTargetBoundsTheWeightError(energy: Double) throws {
        let dense = Self.linear(48, 40)
        let outcome = try LayerCompressor.compress(dense, name: "fc", inputShape: [48], format: .svd, target: .energy(energy))
        guard case let .replaced(layer, _) = outcome else { Issue.record("kept dense"); return }
        let w = dense.weight.value
        let error = ((layer as! FactorizedLinear<Float>).reconstructWeight() - w).squaredNorm().squareRoot() / w.squaredNorm().squareRoot()
        #expect(Double(error) <= (1 - energy).squareRoot() + 1e-4, "error \(error) at energy \(energy)")
    }

    @Test func semiTensorTrainHasNoConvFormAndKeepsTheConvDenseWithAReason() throws {
        var generator = SeededGenerator(seed: 3)
        let conv = Conv2D<Float>(inChannels: 4, outChannels: 8, kernelSize: 3, padding: 1, generator: &generator)
        let outcome = try LayerCompressor.compress(conv, name: "0", inputShape: [8, 8, 4], format: .semiTensorTrain, target: .ratio(2))
        guard case let .keptDense(reason) = outcome else { Issue.record("STT replaced a conv"); return }
        #expect(reason.contains("no convolution form"))
    }

    /// Every conv format reaches the ratio, and its record rebuilds a layer of the same structure.
    @Test(arguments: CompressionFormat.allCases.filter { $0.convolutionFormat != nil })
    func convolutionsAreCompressedAndRebuiltFromTheirRecord(format: CompressionFormat) throws {
        var generator = SeededGenerator(seed: 3)
        let conv = Conv2D<Float>(inChannels: 16, outChannels: 16, kernelSize: 3, stride: 2, padding: 1, generator: &generator)
        let outcome = try LayerCompressor.compress(conv, name: "c", inputShape: [8, 8, 16], format: format, target: .ratio(2))
        guard case let .replaced(layer, record) = outcome else { Issue.record("\(format) kept the conv dense: \(outcome)"); return }
        let factorized = try #require(layer as? FactorizedConv2D<Float>)
        #expect(factorized.compressionRatio >= 2)
        let rebuilt = try #require(try LayerCompressor.rebuild(record, as: Float.self) as? FactorizedConv2D<Float>)
        #expect(rebuilt.cores.map(\.value.shape) == factorized.cores.map(\.value.shape))
        #expect(rebuilt.outputShape(forInput: [8, 8, 16]) == [4, 4, 16])
    }

    @Test func aRatioBeyondRankOneKeepsTheLayerDense() throws {
        // SVD rank 1 keeps 16 + 16 = 32 of 256 parameters: 8×, short of 100×.
        let outcome = try LayerCompressor.compress(Self.linear(16, 16), name: "fc", inputShape: [16], format: .svd,
                                                   target: .ratio(100))
        guard case let .keptDense(reason) = outcome else { Issue.record("replaced"); return }
        #expect(reason.contains("even rank 1"))
    }

    @Test func featureCountsThatDoNotSplitKeepTheLayerDense() throws {
        // 7 → 10 cannot split into 3 modes > 1.
        let outcome = try LayerCompressor.compress(Self.linear(7, 10), name: "fc", inputShape: [7], format: .tensorTrain,
                                                   target: .ratio(1.5))
        guard case let .keptDense(reason) = outcome else { Issue.record("replaced"); return }
        #expect(reason.contains("do not split"))
    }

    @Test func invalidTargetsThrowNamingTheLayer() {
        let dense = Self.linear(16, 16)
        #expect(throws: CompressionError.self) {
            _ = try LayerCompressor.compress(dense, name: "fc", inputShape: [16], format: .cp, target: .energy(0.9))
        }
        #expect(throws: CompressionError.self) {
            _ = try LayerCompressor.compress(dense, name: "fc", inputShape: [16], format: .semiTensorRing, target: .energy(0.9))
        }
        #expect(throws: CompressionError.self) {
            _ = try LayerCompressor.compress(dense, name: "fc", inputShape: [16], format: .svd, target: .ratio(0.5))
        }
        #expect(throws: CompressionError.self) {
            _ = try LayerCompressor.compress(dense, name: "fc", inputShape: [16], format: .svd, target: .energy(1.5))
        }
        do {
            _ = try LayerCompressor.compress(dense, name: "fc", inputShape: [16], format: .svd, target: .ratio(0.5))
        } catch {
            #expect("\(error)".hasPrefix("fc: "))
        }
    }

    @Test(arguments: fcFormats)
    func recordsRebuildTheSameStructure(format: CompressionFormat) throws {
        let outcome = try LayerCompressor.compress(Self.linear(48, 64), name: "fc", inputShape: [48], format: format,
                                                   target: .ratio(3))
        guard case let .replaced(layer, record) = outcome else { Issue.record("kept dense"); return }
        let rebuilt = try LayerCompressor.rebuild(record, as: Float.self)
        #expect(rebuilt.namedParameters().map(\.name) == layer.namedParameters().map(\.name))
        #expect(rebuilt.namedParameters().map(\.parameter.value.shape) == layer.namedParameters().map(\.parameter.value.shape))
        if format.linearFormat.usesSemiTensorProduct {
            // t is in the record, the ranks are multiples of it, and the modes are the layer's O_k.
            #expect(record.extra["stpFactor"] == [2] && record.ranks.allSatisfy { $0 % 2 == 0 }, "\(record.ranks)")
            #expect(record.outputModes.reduce(1, *) == 64 && record.outputModes.count == record.inputModes.count)
        }
    }

    @Test func semiTensorProductNeedsOutputModesTheFactorDivides() throws {
        // 40 → [5, 4, 2]: STR links output mode 0 too, and t = 2 does not divide 5.
        let outcome = try LayerCompressor.compress(Self.linear(48, 40), name: "fc", inputShape: [48],
                                                   format: .semiTensorRing, target: .ratio(3))
        guard case let .keptDense(reason) = outcome else { Issue.record("replaced"); return }
        #expect(reason.contains("not a multiple of 2"))
    }

    @Test func formatNamesRoundTrip() {
        for format in CompressionFormat.allCases {
            #expect(CompressionFormat(name: format.shortName) == format)
            #expect(CompressionFormat(name: format.rawValue) == format)
        }
        #expect(CompressionFormat(name: "tt") == .tensorTrain && CompressionFormat(name: "gkpd") == .kronecker)
        #expect(CompressionFormat(name: "nope") == nil)
    }
}
