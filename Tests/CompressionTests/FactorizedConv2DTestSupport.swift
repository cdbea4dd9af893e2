import Autodiff
import Compression
import Decompositions
import NeuralNetworks
import Testing
import TensorCore

/// A small factorized-conv configuration of one format for the per-format checks.
struct FactorizedConvCase: Sendable, CustomStringConvertible {
    var format: FactorizedConvFormat
    var inChannels: Int
    var outChannels: Int
    var kernelHeight = 3
    var kernelWidth = 3
    var params = Convolution2D(stride: 1, padding: 1)
    /// Ranks for pre-set layers (meaning as on `FactorizedConvFormat`).
    var ranks: [Int]
    var modes: ConvChannelModes? = nil
    var blocks = 1
    var stpFactor = 2
    /// The conversion target that reproduces the kernel exactly (full ranks or ε = 0).
    var fullTarget: RankTarget<Double>
    /// Convert a kernel drawn in the format at `ranks` (exactly representable) instead of a generic one.
    var kernelInFormat = false

    var description: String { "\(format) \(inChannels)→\(outChannels) \(kernelHeight)×\(kernelWidth) ranks \(ranks) \(params)" }

    /// The standard cases: every format, with strides, paddings, a dilation and non-square kernels spread over them.
    static let all: [FactorizedConvCase] = [
        FactorizedConvCase(format: .svdChannel, inChannels: 3, outChannels: 4, params: Convolution2D(stride: 2, padding: 1), ranks: [2],
                 fullTarget: .ranks([4])),
        FactorizedConvCase(format: .svdSpatial, inChannels: 3, outChannels: 4, kernelHeight: 3, kernelWidth: 2,
                 params: Convolution2D(stride: (2, 1), padding: (1, 0)), ranks: [2], fullTarget: .ranks([8])),
        // Full rank is no finite CP-ALS target: convert a kernel that is exactly CP of rank 2.
        FactorizedConvCase(format: .cp, inChannels: 3, outChannels: 4, params: Convolution2D(stride: 1, padding: 2, dilation: 2), ranks: [2],
                 fullTarget: .ranks([2]), kernelInFormat: true),
        FactorizedConvCase(format: .tucker2, inChannels: 4, outChannels: 6, params: Convolution2D(stride: 2, padding: 0), ranks: [2, 3],
                 fullTarget: .ranks([4, 6])),
        FactorizedConvCase(format: .tensorTrain, inChannels: 4, outChannels: 6, params: Convolution2D(stride: 2, padding: 1), ranks: [2, 3],
                 modes: ConvChannelModes(input: [2, 2], output: [3, 2]), fullTarget: .relativeError(0)),
        FactorizedConvCase(format: .tensorRing, inChannels: 4, outChannels: 6, ranks: [2, 1, 2, 2, 1],
                 modes: ConvChannelModes(input: [2, 2], output: [2, 3]), fullTarget: .relativeError(0)),
        FactorizedConvCase(format: .hierarchicalTucker, inChannels: 4, outChannels: 6, params: Convolution2D(stride: 2, padding: 1),
                 ranks: [2, 2, 3, 2], modes: ConvChannelModes(input: [2, 2], output: [3, 2]), fullTarget: .relativeError(0)),
        // BTD-ALS recovers a kernel that is exactly block-term (N_bR_k ≤ J_k in every mode, d = 3) from its algebraic start.
        FactorizedConvCase(format: .blockTerm, inChannels: 4, outChannels: 4, ranks: [2, 1, 2], modes: ConvChannelModes(input: [2, 2], output: [2, 2]),
                 blocks: 2, fullTarget: .ranks([2, 1, 2]), kernelInFormat: true),
        FactorizedConvCase(format: .gkpd, inChannels: 4, outChannels: 6, params: Convolution2D(stride: 2, padding: 1), ranks: [2],
                 modes: ConvChannelModes(input: [2, 2], output: [3, 2], kernelHeight: [3, 1], kernelWidth: [1, 3]),
                 fullTarget: .ranks([12])),
        // STR-ALS recovers a kernel that is exactly STR at the same ranks (the spatial link R_a = 3 is ordinary).
        FactorizedConvCase(format: .semiTensorRing, inChannels: 4, outChannels: 8, params: Convolution2D(stride: 2, padding: 1),
                 ranks: [2, 4, 3, 2, 2], modes: ConvChannelModes(input: [2, 2], output: [2, 4]), fullTarget: .ranks([2, 4, 3, 2, 2]),
                 kernelInFormat: true),
    ]

    /// A pre-set layer (raw variance rule, no calibration) with a random bias.
    func layer(seed: UInt64) throws -> FactorizedConv2D<Double> {
        var generator = SeededGenerator(seed: seed)
        let layer = try FactorizedConv2D<Double>(format: format, inChannels: inChannels, outChannels: outChannels,
                                                 kernelHeight: kernelHeight, kernelWidth: kernelWidth, params: params,
                                                 ranks: ranks, channelModes: modes, blocks: blocks, stpFactor: stpFactor, calibrated: false,
                                                 generator: &generator)
        layer.bias!.value = Tensor.randomNormal([outChannels], seed: seed &+ 99)
        return layer
    }
}

/// The dense conv of the layer's reconstructed kernel with its bias and geometry.
func denseReference(_ layer: FactorizedConv2D<Double>, _ x: Tensor<Double>) -> Tensor<Double> {
    conv2dForward(x, weight: layer.reconstructWeight(), bias: layer.bias?.value, params: layer.params)
}
