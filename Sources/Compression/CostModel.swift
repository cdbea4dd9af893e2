import NeuralNetworks
import TensorCore

// The cost model of METHODS §0.3 and §8 per layer and per model: parameters, MACs, activation memory and energy,
// in every execution mode, from the einsum engine's exact counts (the closed forms of `FCCostFormulas` are tests
// of those counts, not inputs).

/// The cost of one forward pass of one layer on a batch in one way of running it.
public struct ModeCost: Sendable, Equatable {
    /// `factorized` or `reconstructed` for a factorized layer; nil for a dense layer.
    public var mode: ExecutionMode?
    /// MACs of the steps that involve the activation, for the whole batch.
    public var activationSideMACs: Int
    /// MACs among weights only (core merges, the weight rebuild), once per forward pass.
    public var weightSideMACs: Int
    /// Elements of the largest tensor the pass creates (intermediates and the output; METHODS §0.3).
    public var largestIntermediate: Int
    /// Elements kept for the backward pass: the layer input plus every intermediate the reverse pass reads (the
    /// results of all contraction steps but the last; in the reconstructed mode the merged weight and its
    /// partial merges). Parameters are not counted.
    public var storedForBackward: Int
    /// METHODS §8.3 energy of the pass, for the whole batch.
    public var energy: EnergyEstimate

    /// activation-side + weight-side MACs of the pass.
    public var totalMACs: Int { activationSideMACs + weightSideMACs }
}

/// The cost of one layer at a batch size: what it stores, the dense layer it stands for, and its cost in every
/// execution mode with the one it runs in.
public struct LayerCost: Sendable, Equatable {
    /// The layer's name (its parameter prefix: `features.0`, `fc`).
    public var name: String
    /// The layer's description.
    public var description: String
    /// Images per forward pass.
    public var batch: Int
    /// Stored scalars (cores or weight, bias, normalization state).
    public var parameters: Int
    /// Stored scalars of the dense layer it stands for (`parameters` for a dense layer).
    public var denseParameters: Int
    /// MACs per image of the dense layer it stands for.
    public var denseMACsPerImage: Int
    /// The cost in every execution mode: one entry (mode nil) for a dense layer; `factorized` then
    /// `reconstructed` for a factorized one (`auto` is whichever of them it resolves to).
    public var modes: [ModeCost]
    /// The mode the layer runs in at this batch size (nil for a dense layer).
    public var chosenMode: ExecutionMode?

    /// The entry of `modes` the layer runs in.
    public var chosen: ModeCost { modes.first { $0.mode == chosenMode } ?? modes[0] }
    /// MACs per image in the chosen mode, the weight side amortized over the batch.
    public var macsPerImage: Double { Double(chosen.totalMACs) / Double(batch) }
    /// denseParameters / parameters (METHODS §0.3); 1 for a layer without parameters.
    public var compressionRatio: Double { parameters == 0 ? 1 : Double(denseParameters) / Double(parameters) }
    /// Energy per image in the chosen mode.
    public var energyPerImage: EnergyEstimate { chosen.energy.divided(by: batch) }
}

extension FactorizedLayer {
    /// The layer's cost on `batch` rows in every mode (METHODS §0.3 and §8.3).
    ///
    /// Factorized: the cheapest forward path; its intermediates are the results of every step but the last (the
    /// output). Reconstructed: the weight path's results (the partial merges and W) and one GEMM writing B·O.
    ///
    /// - Parameters:
    ///   - batch: rows of the input (B ≥ 1).
    ///   - energy: the per-operation energies.
    ///   - weightsOnChip: whether the model's weights fit on chip (METHODS §8.3).
    public func modeCosts(batch: Int, energy: EnergyModel = .float32, weightsOnChip: Bool) -> [ModeCost] {
        let input = batch * inputFeatures, output = batch * outputFeatures
        let weights = coreParameterCount + (bias.map { $0.value.scalarCount } ?? 0)
        func modeCost(_ mode: ExecutionMode, _ intermediates: [Int], largest: Int) -> ModeCost {
            let split = cost(batch: batch, mode: mode)
            return ModeCost(mode: mode, activationSideMACs: split.activationSide, weightSideMACs: split.weightSide,
                            largestIntermediate: largest, storedForBackward: input + intermediates.reduce(0, +),
                            energy: energy.estimate(macs: split.total, weights: weights, weightsOnChip: weightsOnChip,
                                                    input: input, output: output, intermediates: intermediates))
        }
        let forward = forwardPath(batch: batch)
        let forwardIntermediates = (forward.reductions + forward.steps.dropLast()).map(\.resultSize)
        let weightPath = weightPath()
        let weightIntermediates = (weightPath.reductions + weightPath.steps).map(\.resultSize)
        return [modeCost(.factorized, forwardIntermediates, largest: forward.largestIntermediate),
                modeCost(.reconstructed, weightIntermediates, largest: Swift.max(weightPath.largestIntermediate, output))]
    }
}

/// Costs of every leaf layer of a model and their totals (METHODS §0.3: network-level ratios count every layer,
/// compressed or not).
public struct ModelCost: Sendable, Equatable {
    /// One entry per leaf layer, in forward order.
    public var layers: [LayerCost]
    /// Images per forward pass.
    public var batch: Int
    /// Whether the model's weights fit on chip (decides the weight-access energy, METHODS §8.3).
    public var weightsOnChip: Bool

    /// Σ stored scalars.
    public var parameters: Int { layers.reduce(0) { $0 + $1.parameters } }
    /// Σ stored scalars of the dense model.
    public var denseParameters: Int { layers.reduce(0) { $0 + $1.denseParameters } }
    /// Network-level compression ratio.
    public var compressionRatio: Double { Double(denseParameters) / Double(Swift.max(parameters, 1)) }
    /// Σ MACs per image in the chosen modes.
    public var macsPerImage: Double { layers.reduce(0) { $0 + $1.macsPerImage } }
    /// Σ MACs per image of the dense model.
    public var denseMACsPerImage: Int { layers.reduce(0) { $0 + $1.denseMACsPerImage } }
    /// The largest tensor any layer creates, in elements, at this batch.
    public var largestIntermediate: Int { layers.map(\.chosen.largestIntermediate).max() ?? 0 }
    /// Σ elements kept for the backward pass, at this batch.
    public var storedForBackward: Int { layers.reduce(0) { $0 + $1.chosen.storedForBackward } }
    /// Σ energy per image in the chosen modes.
    public var energyPerImage: EnergyEstimate {
        layers.reduce(EnergyEstimate(computePicojoules: 0, memoryPicojoules: 0)) { $0 + $1.energyPerImage }
    }

    /// The cost of `model` on `batch` images of `inputShape`, any `ShapedLayer`: each leaf (from
    /// `layerSummaries`) that is a `FactorizedLayer` or a `FactorizedConv2D` — itself or its stand-in in `replacing` —
    /// is priced in every execution mode from its contraction paths; every other leaf is priced as dense from its `multiplyAdds`
    /// (its input, output and weights as memory traffic, no intermediates).
    ///
    /// - Parameters:
    ///   - replacing: leaf name → the layer to price in its place (for example a pre-set `FactorizedLinear` for a
    ///     `Linear`), so a model can be priced in a format without being rebuilt. The replaced leaf's parameters
    ///     and MACs are its dense reference.
    ///   - energy: the per-operation energies.
    /// - Precondition: batch ≥ 1; `inputShape` fits the model; a stand-in takes its leaf's input shape.
    public static func measure<Scalar: TensorScalar>(_ model: any ShapedLayer<Scalar>, inputShape: [Int], batch: Int,
                                       replacing: [String: any Layer<Scalar>] = [:],
                                       energy: EnergyModel = .float32) -> ModelCost {
        precondition(batch >= 1, "ModelCost.measure: batch \(batch) must be at least 1")
        let summaries = model.layerSummaries(prefix: "", inputShape: inputShape)
        let leaves = leafLayers(of: model)
        // Stored scalars of the priced model decide where weights live.
        var parameters: [Int] = []
        for summary in summaries {
            let layer = replacing[summary.name] ?? leaves[summary.name]
            parameters.append(layer?.parameterCount ?? summary.trainableParameters)
        }
        let onChip = energy.fitsOnChip(elements: parameters.reduce(0, +))
        var layers: [LayerCost] = []
        for (summary, stored) in zip(summaries, parameters) {
            let original = leaves[summary.name]
            let denseParameters = original?.parameterCount ?? summary.trainableParameters
            let input = batch * summary.inputShape.reduce(1, *), output = batch * summary.outputShape.reduce(1, *)
            if let factorized = (replacing[summary.name] ?? original) as? any FactorizedLayer<Scalar> {
                let rows = batch * summary.inputShape.dropLast().reduce(1, *)
                let modes = factorized.modeCosts(batch: rows, energy: energy, weightsOnChip: onChip)
                let isStandIn = replacing[summary.name] != nil
                let dense = factorized.inputFeatures * factorized.outputFeatures
                layers.append(LayerCost(
                    name: summary.name, description: (factorized as? any ShapedLayer<Scalar>)?.layerDescription ?? summary.description,
                    batch: batch, parameters: stored,
                    denseParameters: isStandIn ? denseParameters : stored - factorized.coreParameterCount + dense,
                    denseMACsPerImage: isStandIn ? summary.multiplyAdds : rows / batch * dense,
                    modes: modes, chosenMode: factorized.resolvedMode(batch: rows)))
            } else if let conv = (replacing[summary.name] ?? original) as? FactorizedConv2D<Scalar> {
                let isStandIn = replacing[summary.name] != nil
                let kernel = conv.outChannels * conv.inChannels * conv.kernelSize.height * conv.kernelSize.width
                layers.append(LayerCost(
                    name: summary.name, description: conv.layerDescription, batch: batch, parameters: stored,
                    denseParameters: isStandIn ? denseParameters : stored - conv.coreParameterCount + kernel,
                    denseMACsPerImage: isStandIn ? summary.multiplyAdds
                        : conv.cost(forInput: summary.inputShape, mode: .reconstructed).activationSide,
                    modes: conv.modeCosts(forInput: summary.inputShape, batch: batch, energy: energy, weightsOnChip: onChip),
                    chosenMode: conv.resolvedMode(forInput: summary.inputShape, batch: batch)))
            } else {
                let macs = batch * summary.multiplyAdds
                let mode = ModeCost(mode: nil, activationSideMACs: macs, weightSideMACs: 0, largestIntermediate: output,
                                    storedForBackward: input,
                                    energy: energy.estimate(macs: macs, weights: stored, weightsOnChip: onChip,
                                                            input: input, output: output, intermediates: []))
                layers.append(LayerCost(name: summary.name, description: summary.description, batch: batch,
                                        parameters: stored, denseParameters: denseParameters,
                                        denseMACsPerImage: summary.multiplyAdds, modes: [mode], chosenMode: nil))
            }
        }
        return ModelCost(layers: layers, batch: batch, weightsOnChip: onChip)
    }

    /// The leaf layers of `model` by the names `layerSummaries` gives them, looking inside the containers it
    /// knows (Sequential, BasicBlock, ResNet); any other layer is a leaf.
    public static func leafLayers<Scalar: TensorScalar>(of model: any Layer<Scalar>) -> [String: any Layer<Scalar>] {
        collectLeaves(of: model, prefix: "")
    }
}

private func collectLeaves<Scalar: TensorScalar>(of layer: any Layer<Scalar>, prefix: String) -> [String: any Layer<Scalar>] {
    var result: [String: any Layer<Scalar>] = [:]
    func add(_ child: any Layer<Scalar>, _ name: String) {
        result.merge(collectLeaves(of: child, prefix: prefix + name + "."), uniquingKeysWith: { first, _ in first })
    }
    switch layer {
    case let sequential as Sequential<Scalar>:
        for (name, child) in sequential.children { add(child, name) }
    case let block as BasicBlock<Scalar>:
        add(block.conv1, "conv1"); add(block.bn1, "bn1"); add(block.conv2, "conv2"); add(block.bn2, "bn2")
        if let downsample = block.downsample { add(downsample, "downsample") }
    case let resnet as ResNet<Scalar>:
        add(resnet.conv1, "conv1"); add(resnet.bn1, "bn1")
        add(resnet.layer1, "layer1"); add(resnet.layer2, "layer2"); add(resnet.layer3, "layer3")
        add(resnet.fc, "fc")
    default:
        result[prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix] = layer
    }
    return result
}
