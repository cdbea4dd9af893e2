import NeuralNetworks
import TensorCore

extension FactorizedConv2D {
    /// The layer's cost on `batch` samples of shape [H, W, C_in] in every mode (METHODS §0.3 and §8.3), as
    /// `FactorizedLayer.modeCosts` for FC layers.
    ///
    /// Factorized: every tensor the stage pipeline creates but the output — each channel stage's contraction
    /// results, and for a spatial stage that moves channel modes into the batch the permuted input, the conv output
    /// and its permuted copy. Reconstructed: the weight path's results (the partial merges and 𝒦) and one conv
    /// writing the output.
    ///
    /// - Parameters:
    ///   - energy: the per-operation energies.
    ///   - weightsOnChip: whether the model's weights fit on chip (METHODS §8.3).
    public func modeCosts(forInput shape: [Int], batch: Int, energy: EnergyModel = .float32, weightsOnChip: Bool) -> [ModeCost] {
        let outputShape = outputShape(forInput: shape)
        let input = batch * shape.reduce(1, *), output = batch * outputShape.reduce(1, *)
        let weights = coreParameterCount + (bias.map { $0.value.scalarCount } ?? 0)
        func modeCost(_ mode: ExecutionMode, _ intermediates: [Int], largest: Int) -> ModeCost {
            let split = cost(forInput: shape, batch: batch, mode: mode)
            return ModeCost(mode: mode, activationSideMACs: split.activationSide, weightSideMACs: split.weightSide,
                            largestIntermediate: largest, storedForBackward: input + intermediates.reduce(0, +),
                            energy: energy.estimate(macs: split.total, weights: weights, weightsOnChip: weightsOnChip,
                                                    input: input, output: output, intermediates: intermediates))
        }
        var created: [Int] = []
        var largest = 0
        var (h, w, channels) = (shape[0], shape[1], shape[2])
        for stage in wiring.stages {
            switch stage {
            case let .channels(s):
                let path = s.path(rows: batch * h * w)
                created += (path.reductions + path.steps).map(\.resultSize)
                largest = Swift.max(largest, path.largestIntermediate)
                channels = s.network.outputFeatures
            case let .spatial(s):
                let kernel = wiring.coreShapes[s.core]
                let moved = s.sharedCount > 0 || s.permutation != Array(s.permutation.indices)
                if moved { created.append(batch * h * w * channels) }
                (h, w) = s.params.outputSize(inputHeight: h, inputWidth: w, kernelHeight: kernel[2], kernelWidth: kernel[3])
                channels = s.sharedSize * kernel[0]
                created += Array(repeating: batch * h * w * channels, count: moved ? 2 : 1)
            }
        }
        largest = Swift.max(largest, created.max() ?? 0)
        let weightIntermediates = (weightPath.reductions + weightPath.steps).map(\.resultSize)
        return [modeCost(.factorized, Array(created.dropLast()), largest: largest),
                modeCost(.reconstructed, weightIntermediates, largest: Swift.max(weightPath.largestIntermediate, output))]
    }
}

extension FactorizedConv2D {
    /// The multiply-adds of one forward + backward pass on `batch` samples of shape [H, W, C_in] in `mode`
    /// (`factorized` or `reconstructed`): the forward count (`cost(forInput:batch:mode:)`) plus, in reverse, one
    /// gradient per operand that needs one for every contraction step and every convolution, each as many MACs as
    /// its forward step. Cores always need one; the layer input only with `inputGradient` (so its first steps
    /// compute only the core's gradient). Single-operand reductions are counted forward only.
    public func trainingMultiplyAdds(forInput shape: [Int], batch: Int, mode: ExecutionMode, inputGradient: Bool = false) -> Int {
        precondition(mode != .auto, "\(name): trainingMultiplyAdds needs a resolved mode, not auto")
        let forward = cost(forInput: shape, batch: batch, mode: mode).total
        if mode == .reconstructed {
            let conv = cost(forInput: shape, batch: batch, mode: .reconstructed).activationSide
            return forward + 2 * weightPath.steps.reduce(0) { $0 + $1.multiplyAdds } + conv * (inputGradient ? 2 : 1)
        }
        var backward = 0
        var (h, w) = (shape[0], shape[1])
        for (index, stage) in wiring.stages.enumerated() {
            let constantInput = index == 0 && !inputGradient
            switch stage {
            case let .channels(s):
                let inputTerm = [s.network.batchLetter] + s.network.inputLetters
                for step in s.path(rows: batch * h * w).steps {
                    let constants = constantInput ? step.operandIndices.filter { $0 == inputTerm }.count : 0
                    backward += step.multiplyAdds * (step.operandIndices.count - constants)
                }
            case let .spatial(s):
                let kernel = wiring.coreShapes[s.core]
                let macs = s.params.multiplyAdds(input: [batch * s.sharedSize, h, w, s.convInputChannels], weight: kernel)
                backward += macs * (constantInput ? 1 : 2)
                (h, w) = s.params.outputSize(inputHeight: h, inputWidth: w, kernelHeight: kernel[2], kernelWidth: kernel[3])
            }
        }
        return forward + backward
    }
}
