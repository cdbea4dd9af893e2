import Autodiff
import Compression
import Foundation
import NeuralNetworks
import Testing
import TensorCore

private let fmnistRecord = ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10).json

/// Σ_k r_{k−1}·I_k·O_k·r_k with r_0 = 1 and r_d = 1: the TT-matrix cores' parameters (METHODS §1.6).
private func ttMatrixParameters(_ inputModes: [Int], _ outputModes: [Int], _ ranks: [Int]) -> Int {
    let bonds = [1] + ranks + [1]
    return inputModes.indices.reduce(0) { $0 + bonds[$1] * inputModes[$1] * outputModes[$1] * bonds[$1 + 1] }
}

/// TT-conv [38]: the spatial core R_0·K_h·K_w, then the channel cores Σ_k R_{k−1}·I_k·O_k·R_k with R_d = 1.
private func ttConvParameters(_ inputModes: [Int], _ outputModes: [Int], _ ranks: [Int], kernelArea: Int) -> Int {
    let bonds = ranks + [1]
    return ranks[0] * kernelArea
        + inputModes.indices.reduce(0) { $0 + bonds[$1] * inputModes[$1] * outputModes[$1] * bonds[$1 + 1] }
}

private func forward(_ model: any ShapedLayer<Float>, _ x: Tensor<Float>) -> Tensor<Float> {
    model(Variable(constant: x), mode: .inference).value
}

@Suite("Tensorized reference models") struct TensorizedModelTests {
    /// TT at ratio 5: every layer's parameters equal the TT closed form at the chosen ranks, the model's total is
    /// the dense total with the replaced layers swapped, every replaced layer (and their sum) has ≥ 5× fewer
    /// parameters, and the ranks are the largest that do (rank + 1 breaks the budget of the FC layers).
    @Test func ttParameterCountsAtRatioFive() throws {
        let dense: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: fmnistRecord, seed: 0)
        #expect(dense.model.trainableParameterCount == 870_826)
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: .tt, ranks: .compressionRatio(5)), seed: 0)
        let plan = try #require(built.plan)
        #expect(built.layers.map(\.name) == ["0", "3", "7", "10", "15", "17"])
        #expect(built.layers.map(\.isReplaced) == [false, true, true, true, true, true])
        #expect(plan.layers.map(\.name) == ["3", "7", "10", "15", "17"])
        let fc1 = try #require(plan.layers.first { $0.name == "15" })
        #expect(fc1.inputModes == [8, 8, 7, 7] && fc1.outputModes == [4, 4, 4, 4])

        var expectedTotal = dense.model.trainableParameterCount
        for (layerPlan, summary) in zip(plan.layers, built.layers.dropFirst()) {
            let isConv = Int(layerPlan.name)! < 14
            let bias = isConv ? 0 : (layerPlan.name == "15" ? 256 : 10)
            let cores = isConv
                ? ttConvParameters(layerPlan.inputModes, layerPlan.outputModes, layerPlan.ranks, kernelArea: 9)
                : ttMatrixParameters(layerPlan.inputModes, layerPlan.outputModes, layerPlan.ranks)
            #expect(summary.parameters == cores + bias, "layer \(summary.name)")
            #expect(5 * summary.parameters <= summary.denseParameters, "layer \(summary.name): \(summary.parameters) of \(summary.denseParameters)")
            if !isConv {
                let larger = layerPlan.ranks.map { $0 + 1 }
                #expect(5 * (ttMatrixParameters(layerPlan.inputModes, layerPlan.outputModes, larger) + bias) > summary.denseParameters,
                        "layer \(summary.name): rank \(layerPlan.ranks) is not the largest within the budget")
            }
            expectedTotal += summary.parameters - summary.denseParameters
        }
        #expect(built.model.trainableParameterCount == expectedTotal)
        #expect(built.compressionRatio >= 5)
        #expect(built.model.multiplyAdds(forInput: [28, 28, 1]) > 0)
    }

    /// Every format gives a model whose forward pass maps [4, 28, 28, 1] to finite [4, 10] logits.
    @Test(arguments: TensorizationFormat.allCases) func forwardShapes(format: TensorizationFormat) throws {
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: format, ranks: .compressionRatio(5)), seed: 1)
        #expect(built.layers.contains { $0.isReplaced }, "\(format): nothing replaced: \(built.layers.map { $0.reason ?? "" })")
        let y = forward(built.model, Tensor<Float>.randomNormal([4, 28, 28, 1], seed: 2))
        #expect(y.shape == [4, 10])
        #expect(y.scalars.allSatisfy { $0.isFinite })
        #expect(built.model.outputShape(forInput: [28, 28, 1]) == [10])
    }

    /// The same seed in the factorized and the reconstructed execution modes gives the same network: outputs agree
    /// to Float rounding.
    @Test func executionModesComputeTheSameFunction() throws {
        let x = Tensor<Float>.randomNormal([2, 28, 28, 1], seed: 8)
        for format in [TensorizationFormat.tt, .tr] {
            let outputs = try [ExecutionMode.factorized, .reconstructed].map { mode in
                let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
                    architectureJSON: fmnistRecord,
                    request: TensorizationRequest(format: format, ranks: .compressionRatio(5), executionMode: mode), seed: 9)
                return forward(built.model, x)
            }
            let difference = (outputs[0] - outputs[1]).squaredNorm().squareRoot(), scale = outputs[1].squaredNorm().squareRoot()
            #expect(difference <= 1e-4 * scale, "\(format): ‖Δ‖ \(difference) for ‖y‖ \(scale)")
        }
    }

    /// Saving a tensorized model and rebuilding it from the checkpoint's architecture record (another seed) gives
    /// the same plan, the same parameters and the same outputs.
    @Test func checkpointRoundTrip() throws {
        let request = try TensorizationRequest(format: "tr", rank: nil, ratio: 5, execution: "reconstructed")
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: fmnistRecord, request: request, seed: 3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tensorized-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint.save(built.model, to: path, architecture: built.architectureJSON)
        let saved = try Checkpoint(contentsOf: path)
        let rebuilt: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: saved.architecture, seed: 99)
        #expect(rebuilt.plan == built.plan)
        #expect(rebuilt.architectureJSON == built.architectureJSON)
        let x = Tensor<Float>.randomNormal([3, 28, 28, 1], seed: 4)
        #expect(forward(rebuilt.model, x) != forward(built.model, x))
        try saved.restore(into: rebuilt.model)
        #expect(forward(rebuilt.model, x) == forward(built.model, x))
        #expect(throws: CompressionError.self) {
            let _: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: saved.architecture, request: request, seed: 0)
        }
    }

    /// Tucker at rank 40: neither the 32-channel convolutions (Tucker-2 ranks are at most the channels) nor the FC
    /// layers (4-mode Tucker ranks are at most the mode sizes, 8 and less) can take it; they stay dense with the
    /// reason, the 64→64 convolution is replaced, and the model still runs.
    @Test func layersTheFormatCannotTakeStayDense() throws {
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: .tucker, ranks: .uniform(40)), seed: 5)
        let byName = Dictionary(uniqueKeysWithValues: built.layers.map { ($0.name, $0) })
        for name in ["3", "7", "15", "17"] {
            let reason = try #require(byName[name]?.reason)
            #expect(reason.contains("exceed"), "layer \(name): \(reason)")
            #expect(byName[name]?.parameters == byName[name]?.denseParameters)
        }
        #expect(byName["10"]?.format == "tucker2" && byName["10"]?.ranks == [40, 40])
        let sequential = try #require(built.model as? Sequential<Float>)
        #expect(sequential.layers[3] is Conv2D<Float> && sequential.layers[15] is Linear<Float>)
        #expect(sequential.layers[10] is FactorizedConv2D<Float>)
        #expect(forward(built.model, Tensor<Float>.randomNormal([2, 28, 28, 1], seed: 6)).shape == [2, 10])
        #expect(throws: CompressionError.self) { try TensorizationRequest(format: "tt", rank: 8, ratio: 5) }
        #expect(throws: CompressionError.self) { try TensorizationRequest(format: "qr", rank: 8, ratio: nil) }
    }

    /// STR [37] (t = 2) at ratio 5: the three convolutions (STR-conv) and the 3136→256 layer (STR-matrix) are
    /// replaced with ranks that are multiples of t and ≥ 5× fewer parameters each. The 10-way classifier stays dense:
    /// 10 = 2·5 cannot be split into output modes that t divides, and its reason says so. The checkpoint's record
    /// rebuilds the same layers, and the factorized and reconstructed modes compute the same function.
    @Test func semiTensorRingTakesTheLayersItsFactorDivides() throws {
        let request = TensorizationRequest(format: .str, ranks: .compressionRatio(5), executionMode: .factorized)
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: fmnistRecord, request: request, seed: 2)
        #expect(built.layers.map(\.isReplaced) == [false, true, true, true, true, false])
        #expect(built.layers.filter(\.isReplaced).map { $0.format } == ["semiTensorRing", "semiTensorRing", "semiTensorRing", "semiTensorRing"])
        for summary in built.layers where summary.isReplaced {
            #expect(summary.ranks.allSatisfy { $0 % 2 == 0 }, "layer \(summary.name): ranks \(summary.ranks)")
            #expect(5 * summary.parameters <= summary.denseParameters, "layer \(summary.name): \(summary.parameters) of \(summary.denseParameters)")
        }
        let classifier = try #require(built.layers.last)
        #expect(classifier.reason?.contains("not a multiple of 2") == true, "\(classifier.reason ?? "no reason")")

        let rebuilt: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: built.architectureJSON, seed: 5)
        #expect(rebuilt.plan == built.plan)
        #expect(rebuilt.model.trainableParameterCount == built.model.trainableParameterCount)

        let x = Tensor<Float>.randomNormal([2, 28, 28, 1], seed: 3)
        let factorized = forward(built.model, x)
        let sequential = try #require(built.model as? Sequential<Float>)
        for layer in sequential.layers {
            (layer as? FactorizedConv2D<Float>)?.executionMode = .reconstructed
            (layer as? FactorizedLinear<Float>)?.executionMode = .reconstructed
        }
        let reconstructed = forward(built.model, x)
        #expect((factorized - reconstructed).squaredNorm().squareRoot() <= 1e-4 * reconstructed.squaredNorm().squareRoot())
    }

    /// The STP factor travels with the record: STR at t = 4 gives ranks that are multiples of 4, the plan stores t,
    /// and the model rebuilt from the record has the same plan and parameters. Formats without the STP store none.
    @Test func semiTensorRingAtAnotherFactor() throws {
        let request = TensorizationRequest(format: .str, ranks: .compressionRatio(5), stpFactor: 4)
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: fmnistRecord, request: request, seed: 2)
        let plan = try #require(built.plan)
        #expect(plan.stpFactor == 4)
        let replaced = built.layers.filter(\.isReplaced)
        #expect(!replaced.isEmpty, "\(built.layers.map { $0.reason ?? "" })")
        for summary in replaced { #expect(summary.ranks.allSatisfy { $0 % 4 == 0 }, "layer \(summary.name): \(summary.ranks)") }
        let rebuilt: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: built.architectureJSON, seed: 1)
        #expect(rebuilt.plan == plan)
        #expect(rebuilt.model.trainableParameterCount == built.model.trainableParameterCount)
        let tt: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: .tt, ranks: .uniform(4)), seed: 2)
        #expect(tt.plan?.stpFactor == nil && !tt.architectureJSON.contains("stp_factor"))
        #expect(throws: CompressionError.self) { try TensorizationRequest(format: "str", rank: 8, ratio: nil, stpFactor: 0) }
    }

    /// STT [37] has no conv form: at ratio 5 only the 3136→256 layer becomes STT (ranks multiples of t = 2, ≥ 5×
    /// fewer parameters); the convolutions stay dense with that reason, and so does the 10-way classifier.
    @Test func semiTensorTrainTakesTheFullyConnectedLayers() throws {
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: .stt, ranks: .compressionRatio(5)), seed: 4)
        #expect(built.layers.map(\.isReplaced) == [false, false, false, false, true, false])
        let fc = built.layers[4]
        #expect(fc.format == "semiTensorTrain" && fc.ranks.allSatisfy { $0 % 2 == 0 }, "\(fc)")
        #expect(5 * fc.parameters <= fc.denseParameters)
        for conv in built.layers[1...3] {
            #expect(conv.reason?.contains("no convolution form") == true, "layer \(conv.name): \(conv.reason ?? "no reason")")
        }
        #expect(forward(built.model, Tensor<Float>.randomNormal([2, 28, 28, 1], seed: 6)).shape == [2, 10])
    }

    /// In the reconstructed mode each factorized layer rebuilds its weight once per pass, whatever the batch: for
    /// one image the TT model costs more than the dense one, and per image at a batch of 10⁹ it costs the dense
    /// model's multiply-adds plus at most one per layer (each rebuild's share, rounded up).
    @Test func rebuildsAreSharedByTheBatch() throws {
        let dense: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: fmnistRecord, seed: 0)
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord,
            request: TensorizationRequest(format: .tt, ranks: .compressionRatio(5), executionMode: .reconstructed), seed: 0)
        let shape = [28, 28, 1]
        let denseMACs = dense.model.multiplyAdds(forInput: shape)
        let single = ModelSurgery.multiplyAddsPerImage(of: built.model, inputShape: shape, batch: 1)
        #expect(single == built.model.multiplyAdds(forInput: shape))
        #expect(single > denseMACs)
        let replaced = built.layers.filter(\.isReplaced).count
        let large = ModelSurgery.multiplyAddsPerImage(of: built.model, inputShape: shape, batch: 1_000_000_000)
        #expect(large >= denseMACs && large <= denseMACs + replaced, "\(large) for dense \(denseMACs)")
        let training = ModelSurgery.multiplyAddsPerImage(of: built.model, inputShape: shape, batch: 128)
        #expect(large <= training && training < single)
    }

    /// ResNet-20 in TT at ratio 5: every convolution of the residual blocks (and the 1×1 projections, where TT fits)
    /// and the classifier are replaced, each with ≥ 5× fewer parameters; the stem stays dense. The record names the
    /// layers by path and rebuilds the same plan and parameter count, and the model maps [2, 28, 28, 1] to finite
    /// [2, 10] logits. A record written before layers were named by path (`"index": 15`) still reads.
    @Test func residualModelsAreTensorizedInsideTheirBlocks() throws {
        let record = ModelArchitecture(model: "resnet20", inputShape: [28, 28, 1], classes: 10).json
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: record, request: TensorizationRequest(format: .tt, ranks: .compressionRatio(5)), seed: 0)
        let plan = try #require(built.plan)
        #expect(built.layers.first?.name == "conv1" && built.layers.first?.isReplaced == false)
        let blockConvs = built.layers.filter { $0.name.hasSuffix(".conv1") || $0.name.hasSuffix(".conv2") }
        #expect(blockConvs.count == 18 && blockConvs.allSatisfy(\.isReplaced), "\(blockConvs.map { $0.reason ?? "" })")
        #expect(built.layers.last?.name == "fc" && built.layers.last?.isReplaced == true)
        for summary in built.layers where summary.isReplaced {
            #expect(5 * summary.parameters <= summary.denseParameters, "layer \(summary.name): \(summary.parameters) of \(summary.denseParameters)")
        }
        #expect(plan.layers.contains { $0.name == "layer2.0.conv1" })
        let rebuilt: TensorizedModelBuild<Float> = try TensorizedModel.build(architectureJSON: built.architectureJSON, seed: 1)
        #expect(rebuilt.plan == plan)
        #expect(rebuilt.model.trainableParameterCount == built.model.trainableParameterCount)
        let y = forward(built.model, Tensor<Float>.randomNormal([2, 28, 28, 1], seed: 2))
        #expect(y.shape == [2, 10] && y.scalars.allSatisfy { $0.isFinite })

        let legacy = #"{"index": 15, "ranks": [4, 4, 4], "input_modes": [8, 8, 7, 7], "output_modes": [4, 4, 4, 4], "blocks": 1}"#
        #expect(try JSONDecoder().decode(TensorizedLayerPlan.self, from: Data(legacy.utf8)).name == "15")
    }

    /// Three Adam epochs on 256 real Fashion-MNIST images lower the loss of the TT-tensorized fmnist-cnn.
    @Test func shortTrainingLowersTheLoss() throws {
        let images = try Dataset.load(.fashionMNIST, split: .train).subset(first: 256)
        let built: TensorizedModelBuild<Float> = try TensorizedModel.build(
            architectureJSON: fmnistRecord, request: TensorizationRequest(format: .tt, ranks: .compressionRatio(5)), seed: 7)
        let before = Trainer<Float>.evaluate(built.model, on: images).loss
        var configuration = TrainingConfiguration(epochs: 3)
        configuration.batchSize = 64
        configuration.schedule = .constant(0.001)
        configuration.progress = .silent
        let trainer = Trainer(model: built.model, optimizer: Adam<Float>(), configuration: configuration)
        _ = try trainer.fit(training: images)
        let after = Trainer<Float>.evaluate(built.model, on: images).loss
        #expect(after < 0.8 * before, "loss \(before) → \(after)")
    }
}
