import Autodiff
import NeuralNetworks
import Testing
import TensorCore

// Finite-difference gradient checks of every layer in Double, with respect to the input and to every
// trainable parameter (the bar: relative error ≤ 1e-6).

/// The bar every layer meets.
let layerGradientTolerance = 1e-6

/// Relative errors of a layer's gradients: the input's (through `checkGradients`) and each trainable
/// parameter's, by name. The analytic parameter gradients are those the layer stores during `checkGradients`'
/// taped pass (seeded with the same projection R), the numeric ones fourth-order central differences of
/// s(θ) = ⟨R, layer(x; θ)⟩ with step `step`.
func layerGradientErrors<L: Layer>(_ layer: L, input: Tensor<Double>, mode: ForwardMode, step: Double = 1e-4)
    -> (input: Double, parameters: [String: Double], forwardMismatch: Double) where L.Scalar == Double
{
    let seed: UInt64 = 0x1A7E_C4EC
    let parameters = layer.namedParameters().filter { $0.parameter.isTrainable }
    for (_, parameter) in parameters { parameter.gradient = nil }
    let result = checkGradients(at: [input], step: step, seed: seed) { layer($0[0], mode: mode) }
    let outputShape = layer(Variable(constant: input), mode: mode).shape
    let projection = Tensor<Double>.randomNormal(outputShape, seed: seed)
    func objective() -> Double { Tensor.dot(layer(Variable(constant: input), mode: mode).value, projection) }
    var errors: [String: Double] = [:]
    for (name, parameter) in parameters {
        let analytic = parameter.gradient ?? Tensor.zeros(parameter.value.shape)
        var numeric = Tensor<Double>.zeros(parameter.value.shape)
        for i in 0..<parameter.value.scalarCount {
            let original = parameter.value.withUnsafeBufferPointer { $0[i] }
            func value(_ offset: Double) -> Double {
                parameter.value.withUnsafeMutableBufferPointer { $0[i] = original + offset }
                return objective()
            }
            let d = (-value(2 * step) + 8 * value(step) - 8 * value(-step) + value(-2 * step)) / (12 * step)
            parameter.value.withUnsafeMutableBufferPointer { $0[i] = original }
            numeric.withUnsafeMutableBufferPointer { $0[i] = d }
        }
        let scale = max(numeric.frobeniusNorm(), analytic.frobeniusNorm(), 1e-10)
        errors[name] = (numeric - analytic).frobeniusNorm() / scale
    }
    return (result.maxRelativeError, errors, result.forwardMismatch)
}

/// Expects every gradient of `layer` at `input` within the bar and equal forward values on and off a tape.
func expectLayerGradients<L: Layer>(_ layer: L, input: Tensor<Double>, mode: ForwardMode = .training,
                                    _ label: String, sourceLocation: SourceLocation = #_sourceLocation)
    where L.Scalar == Double
{
    let errors = layerGradientErrors(layer, input: input, mode: mode)
    #expect(errors.input <= layerGradientTolerance, "\(label): input gradient error \(errors.input)",
            sourceLocation: sourceLocation)
    for (name, error) in errors.parameters.sorted(by: { $0.key < $1.key }) {
        #expect(error <= layerGradientTolerance, "\(label): gradient of \(name) has error \(error)",
                sourceLocation: sourceLocation)
    }
    #expect(errors.forwardMismatch == 0, "\(label): the taped forward pass differs", sourceLocation: sourceLocation)
}

/// Standard normal samples.
func gaussian(_ shape: [Int], seed: UInt64) -> Tensor<Double> { Tensor.randomNormal(shape, seed: seed) }

/// The smallest |v| over a tensor: how far pre-activations are from the ReLU kink.
func distanceFromZero(_ values: Tensor<Double>) -> Double { values.scalars.map(abs).min() ?? .infinity }

/// The first seed in 0..<64 whose input keeps `margin` (a function of the input) above `minimum`: finite
/// differences with step h are exact only away from kinks, so checks through ReLU pick such an input (the
/// premise is required, not assumed).
func seedKeepingMargin(minimum: Double, _ margin: (UInt64) -> Double) -> UInt64? {
    (0..<64).first { margin(UInt64($0)) > minimum }
}

@Suite struct LayerGradientTests {
    @Test func linearOnMatricesAndHigherRank() {
        var generator = SeededGenerator(seed: 1)
        let layer = Linear<Double>(inputFeatures: 5, outputFeatures: 3, generator: &generator)
        expectLayerGradients(layer, input: gaussian([4, 5], seed: 2), "linear [4, 5]")
        expectLayerGradients(layer, input: gaussian([2, 3, 5], seed: 3), "linear [2, 3, 5]")
        let noBias = Linear<Double>(inputFeatures: 4, outputFeatures: 6, bias: false, generator: &generator)
        expectLayerGradients(noBias, input: gaussian([3, 4], seed: 4), "linear without bias")
    }

    @Test(arguments: [
        ("3×3 stride 2 padding 1", 4, 6, 3, Convolution2D(stride: 2, padding: 1), true),
        ("3×3 dilation 2 padding 2", 3, 4, 3, Convolution2D(stride: 1, padding: 2, dilation: 2), false),
        ("3×3 groups 2", 4, 6, 3, Convolution2D(stride: 1, padding: 1, groups: 2), true),
        ("3×3 depthwise", 4, 4, 3, Convolution2D(stride: 1, padding: 1, groups: 4), true),
        ("1×1 stride 2", 5, 3, 1, Convolution2D(stride: 2), true),
        ("2×2 asymmetric padding",  3, 2, 2,
         Convolution2D(strideHeight: 1, strideWidth: 2, paddingTop: 1, paddingBottom: 0, paddingLeft: 0,
                       paddingRight: 1, dilationHeight: 1, dilationWidth: 1, groups: 1), false),
    ])
    func convolution(_ label: String, _ inChannels: Int, _ outChannels: Int, _ kernel: Int, _ params: Convolution2D,
                     _ bias: Bool) {
        var generator = SeededGenerator(seed: UInt64(label.count))
        let layer = Conv2D<Double>(inChannels: inChannels, outChannels: outChannels, kernelHeight: kernel,
                                   kernelWidth: kernel, params: params, bias: bias, generator: &generator)
        expectLayerGradients(layer, input: gaussian([2, 5, 6, inChannels], seed: 7), "conv \(label)")
    }

    @Test func batchNormTrainingAndInference() {
        let norm = BatchNorm<Double>(channels: 3)
        norm.weight.value = Tensor([1.5, -0.7, 0.9])
        norm.bias.value = Tensor([0.2, 0.1, -0.3])
        expectLayerGradients(norm, input: gaussian([3, 4, 4, 3], seed: 11), "batch norm NHWC, training")
        expectLayerGradients(norm, input: gaussian([6, 3], seed: 12), "batch norm [N, C], training")
        norm.runningMean.value = Tensor([0.3, -0.2, 0.5])
        norm.runningVariance.value = Tensor([0.8, 1.7, 0.4])
        expectLayerGradients(norm, input: gaussian([2, 3, 3, 3], seed: 13), mode: .inference, "batch norm, inference")
    }

    @Test func fusedBatchNormReLUInsideSequential() throws {
        let norm = BatchNorm<Double>(channels: 4)
        norm.weight.value = Tensor([1.2, 0.8, -1.1, 0.6])
        norm.bias.value = Tensor([0.1, -0.2, 0.3, 0.05])
        let model = Sequential<Double>(norm, ReLU<Double>())
        // Pre-activations γ·x̂ + β must stay clear of 0 by far more than the finite-difference steps.
        let seed = try #require(seedKeepingMargin(minimum: 2e-3) { seed in
            distanceFromZero(norm(Variable(constant: gaussian([2, 3, 3, 4], seed: seed)), mode: .training).value)
        })
        expectLayerGradients(model, input: gaussian([2, 3, 3, 4], seed: seed), "batch norm + ReLU, training")
        norm.runningMean.value = Tensor([0.1, 0.2, -0.1, 0])
        norm.runningVariance.value = Tensor([1.1, 0.9, 1.3, 0.7])
        let inferenceSeed = try #require(seedKeepingMargin(minimum: 2e-3) { seed in
            distanceFromZero(norm(Variable(constant: gaussian([2, 3, 3, 4], seed: seed)), mode: .inference).value)
        })
        expectLayerGradients(model, input: gaussian([2, 3, 3, 4], seed: inferenceSeed), mode: .inference,
                             "batch norm + ReLU, inference")
    }

    @Test func layerNorm() {
        let layer = LayerNorm<Double>(features: 5)
        layer.weight.value = Tensor([1, 0.5, -1, 2, 0.3])
        layer.bias.value = Tensor([0, 0.1, 0.2, -0.1, 0.4])
        expectLayerGradients(layer, input: gaussian([3, 2, 5], seed: 21), "layer norm")
    }

    @Test func pooling() {
        // Distinct values 0.1 apart: every window has a unique maximum far from ties.
        var generator = SeededGenerator(seed: 31)
        let n = 2 * 6 * 6 * 3
        let input = Tensor<Double>(shape: [2, 6, 6, 3],
                                   scalars: generator.permutation(n).map { Double($0) * 0.1 - Double(n) * 0.05 })
        expectLayerGradients(MaxPool2D<Double>(kernelSize: 2), input: input, "max pool 2")
        expectLayerGradients(MaxPool2D<Double>(kernelSize: 3, stride: 2, padding: 1), input: input, "max pool 3/2/1")
        expectLayerGradients(AvgPool2D<Double>(kernelSize: 3, stride: 2, padding: 1), input: input, "avg pool 3/2/1")
        expectLayerGradients(AvgPool2D<Double>(kernelSize: 3, stride: 2, padding: 1, countIncludesPadding: false),
                             input: input, "avg pool excluding padding")
        expectLayerGradients(GlobalAvgPool2D<Double>(), input: input, "global average pool")
        expectLayerGradients(Flatten<Double>(), input: input, "flatten")
    }

    @Test(arguments: [(4, 4, 1), (3, 5, 2)])
    func basicBlock(_ inChannels: Int, _ outChannels: Int, _ stride: Int) throws {
        var generator = SeededGenerator(seed: UInt64(10 * inChannels + stride))
        let block = BasicBlock<Double>(inChannels: inChannels, outChannels: outChannels, stride: stride,
                                       generator: &generator)
        #expect((block.downsample != nil) == (stride != 1 || inChannels != outChannels))
        for norm in [block.bn1, block.bn2] {
            norm.weight.value = Tensor((0..<outChannels).map { 0.8 + 0.1 * Double($0) })
            norm.bias.value = Tensor((0..<outChannels).map { 0.05 * Double($0) - 0.1 })
        }
        // Both ReLUs must see pre-activations clear of zero.
        func margin(_ seed: UInt64) -> Double {
            let x = Variable(constant: gaussian([2, 4, 4, inChannels], seed: seed))
            let first = block.bn1(block.conv1(x, mode: .training), mode: .training)
            let residual = block.bn2(block.conv2(first.relu(), mode: .training), mode: .training)
            let sum = residual.value + (block.downsample?(x, mode: .training) ?? x).value
            return min(distanceFromZero(first.value), distanceFromZero(sum))
        }
        let seed = try #require(seedKeepingMargin(minimum: 2e-3, margin))
        expectLayerGradients(block, input: gaussian([2, 4, 4, inChannels], seed: seed),
                             "basic block \(inChannels)→\(outChannels) stride \(stride)")
    }

    @Test func activations() {
        let input = gaussian([3, 4], seed: 41).map { $0 >= 0 ? $0 + 0.05 : $0 - 0.05 }
        expectLayerGradients(ReLU<Double>(), input: input, "ReLU")
        for function in [Activation<Double>.Function.gelu, .tanh, .sigmoid] {
            expectLayerGradients(Activation<Double>(function), input: input, "\(function)")
        }
    }
}
