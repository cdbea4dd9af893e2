import Autodiff
import Compression
import NeuralNetworks
import Testing
import TensorCore

@Suite("Cost model") struct CostModelTests {
    /// METHODS §8.3's hand-computed case: a dense FC layer with I = O = 4 at fp32, everything in SRAM, costs
    /// 16·(3.7 + 0.9) + (16 + 4 + 4)·5 pJ.
    @Test func denseFCEnergyMatchesTheMethodsExample() {
        var generator = SeededGenerator(seed: 1)
        let model = Sequential<Float>(Linear<Float>(inputFeatures: 4, outputFeatures: 4, bias: false, generator: &generator))
        let cost = ModelCost.measure(model, inputShape: [4], batch: 1)
        #expect(cost.weightsOnChip)
        let expected: Double = 16 * (3.7 + 0.9) + (16 + 4 + 4) * 5
        #expect(abs(cost.energyPerImage.totalPicojoules - expected) <= 1e-9)
        #expect(cost.layers.count == 1 && cost.layers[0].chosenMode == nil && cost.layers[0].macsPerImage == 16)
    }

    /// An SVD layer I = 6, O = 4, R = 2 at B = 3, counted by hand: factorized x·A (36 MACs, a 3×2 intermediate)
    /// then ·Bᵀ (24 MACs, the 3×4 output); reconstructed A·Bᵀ (48 MACs, W of 24) then the GEMM (72 MACs).
    @Test func factorizedModeCostsCountedByHand() throws {
        var generator = SeededGenerator(seed: 2)
        let layer = try FactorizedLinear<Double>(inputModes: [6], outputModes: [4], format: .svd, ranks: [2], generator: &generator)
        let energy = EnergyModel.float32
        let modes = layer.modeCosts(batch: 3, energy: energy, weightsOnChip: true)
        let factorized = try #require(modes.first { $0.mode == .factorized })
        #expect(factorized.activationSideMACs == 60 && factorized.weightSideMACs == 0)
        #expect(factorized.largestIntermediate == 12 && factorized.storedForBackward == 18 + 6)
        let weights = 12 + 8 + 4
        let expectedFactorized: Double = 60 * 4.6 + Double(weights + 18 + 12 + 2 * 6) * 5
        #expect(abs(factorized.energy.totalPicojoules - expectedFactorized) <= 1e-9)
        let reconstructed = try #require(modes.first { $0.mode == .reconstructed })
        #expect(reconstructed.activationSideMACs == 72 && reconstructed.weightSideMACs == 48)
        #expect(reconstructed.largestIntermediate == 24 && reconstructed.storedForBackward == 18 + 24)
        let expected: Double = 120 * 4.6 + Double(weights + 18 + 12 + 2 * 24) * 5
        #expect(abs(reconstructed.energy.totalPicojoules - expected) <= 1e-9)
    }

    /// Tensors beyond the on-chip capacity are charged at DRAM cost.
    @Test func largeTensorsGoToDRAM() {
        let energy = EnergyModel(onChipCapacityBytes: 64)
        #expect(energy.access(elements: 16) == 16 * 5 && energy.access(elements: 17) == 17 * 640)
        let e = energy.estimate(macs: 0, weights: 10, weightsOnChip: false, input: 1, output: 1, intermediates: [32])
        let expected: Double = 10 * 640 + 5 + 5 + 2 * 32 * 640
        #expect(e.memoryPicojoules == expected && e.computePicojoules == 0)
    }

    /// The dense fmnist-cnn: per-layer sums equal the model's own counts; with its FC layers priced as TT stand-ins,
    /// the dense references are unchanged, the parameters drop by exactly the replaced weights, and each factorized
    /// layer runs in the cheaper mode.
    @Test func modelAggregationOverFashionCNN() throws {
        let (model, _) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self)
        let dense = ModelCost.measure(model, inputShape: [28, 28, 1], batch: 8)
        #expect(dense.parameters == model.parameterCount)
        #expect(dense.denseMACsPerImage == model.multiplyAdds(forInput: [28, 28, 1]))
        #expect(abs(dense.macsPerImage - Double(dense.denseMACsPerImage)) <= 1e-6)
        #expect(dense.compressionRatio == 1)

        let leaves = ModelCost.leafLayers(of: model)
        var replacing: [String: any Layer<Float>] = [:]
        var saved = 0
        var generator = SeededGenerator(seed: 3)
        for (name, layer) in leaves {
            guard let linear = layer as? Linear<Float> else { continue }
            let d = linear.outputFeatures == 10 ? 2 : 4
            let tt = try FactorizedLinear<Float>(inputModes: balancedFactorization(of: linear.inputFeatures, into: d),
                                                 outputModes: balancedFactorization(of: linear.outputFeatures, into: d),
                                                 format: .tensorTrain, ranks: [8], generator: &generator)
            replacing[name] = tt
            saved += linear.inputFeatures * linear.outputFeatures - tt.coreParameterCount
        }
        #expect(replacing.count == 2)
        let tensorized = ModelCost.measure(model, inputShape: [28, 28, 1], batch: 8, replacing: replacing)
        #expect(tensorized.denseParameters == dense.parameters)
        #expect(tensorized.denseMACsPerImage == dense.denseMACsPerImage)
        #expect(tensorized.parameters == dense.parameters - saved)
        for layer in tensorized.layers where layer.chosenMode != nil {
            #expect(layer.modes.count == 2)
            #expect(layer.chosen.totalMACs == layer.modes.map(\.totalMACs).min()!, "\(layer.name)")
        }
    }

    @Test func resNetLeavesAreFound() throws {
        let (model, _) = try ModelRegistry.make(named: "resnet20", inputShape: [32, 32, 3], classes: 10, seed: 0, as: Float.self)
        let leaves = ModelCost.leafLayers(of: model)
        #expect(leaves["fc"] is Linear<Float> && leaves["layer1.0.conv1"] is Conv2D<Float>)
        let cost = ModelCost.measure(model, inputShape: [32, 32, 3], batch: 2)
        #expect(cost.parameters == model.parameterCount)
        #expect(cost.denseMACsPerImage == model.multiplyAdds(forInput: [32, 32, 3]))
    }
}
