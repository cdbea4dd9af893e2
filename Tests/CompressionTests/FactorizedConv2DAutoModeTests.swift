import Autodiff
import Compression
import NeuralNetworks
import Testing
import TensorCore

/// `auto` of `FactorizedConv2D` goes through `ContractionPlanCache.autoMode`, as `FactorizedLinear`'s does.
@Suite struct FactorizedConv2DAutoModeTests {
    /// A channel-SVD 16→16 3×3 conv at rank `rank` (forward MACs per pixel 9·16·R + 16·R against 9·16·16 dense).
    private func layer(rank: Int) throws -> FactorizedConv2D<Double> {
        var generator = SeededGenerator(seed: 7)
        return try FactorizedConv2D<Double>(inChannels: 16, outChannels: 16, kernelSize: 3, padding: 1, format: .svdChannel,
                                            ranks: [rank], generator: &generator)
    }

    private func input(_ shape: [Int]) -> Tensor<Double> {
        var generator = SeededGenerator(seed: 8)
        return Tensor<Double>.randomNormal(shape, generator: &generator)
    }

    /// Counts more than `measuredBand` apart decide without timing, and the choice is cached per input shape
    /// (for training passes: the cores recorded on a tape).
    @Test func countsOutsideTheBandDecide() throws {
        let conv = try layer(rank: 1)
        let shape = [6, 6, 16]
        let f = conv.cost(forInput: shape, batch: 2, mode: .factorized).total
        let r = conv.cost(forInput: shape, batch: 2, mode: .reconstructed).total
        #expect(r > ExecutionMode.measuredBand * f)
        #expect(conv.planCache.measuredMode(inputShape: [2] + shape) == nil)
        _ = withGradientTape(Tape<Double>()) { conv(Variable(constant: input([2] + shape)), mode: .training) }
        #expect(conv.planCache.measuredMode(inputShape: [2] + shape) == .factorized)
        #expect(conv.planCache.measuredMode(inputShape: [3] + shape) == nil)
        #expect(conv.resolvedMode(forInput: shape, batch: 2) == .factorized)
    }

    /// Within the band the modes are timed: the choice is one of the two, cached (a second pass keeps it), the
    /// output is that mode's, the parameters' gradients are untouched by the timing, and the static cost query
    /// stays count-based.
    @Test func countsWithinTheBandAreMeasuredAndCached() throws {
        let conv = try layer(rank: 8)
        let shape = [5, 5, 16]
        let f = conv.cost(forInput: shape, batch: 1, mode: .factorized).total
        let r = conv.cost(forInput: shape, batch: 1, mode: .reconstructed).total
        #expect(Swift.max(f, r) <= ExecutionMode.measuredBand * Swift.min(f, r))
        let x = input([1] + shape)
        let chosen = conv.autoMode(input: x, cores: conv.cores.map(\.value), bias: conv.bias?.value)
        #expect(chosen == .factorized || chosen == .reconstructed)
        #expect(conv.cores.allSatisfy { $0.gradient == nil })
        #expect(conv.planCache.measuredMode(inputShape: [1] + shape) == chosen)
        #expect(conv.resolvedMode(forInput: shape, batch: 1) == chosen)
        #expect(conv.cost(forInput: shape, batch: 1, mode: .auto).mode == (f < r ? .factorized : .reconstructed))

        let y = withGradientTape(Tape<Double>()) { conv(Variable(constant: x), mode: .training) }.value
        let expected = conv.apply(Variable(constant: x), cores: conv.cores.map { Variable(constant: $0.value) },
                                  bias: conv.bias.map { Variable(constant: $0.value) }, mode: chosen).value
        #expect(y == expected)
        #expect(conv.planCache.measuredMode(inputShape: [1] + shape) == chosen)
    }
}
