import Autodiff
@testable import Compression
import Decompositions
import NeuralNetworks
import Testing
import TensorCore

@Suite struct FactorizedConv2DTests {
    /// Finite-difference check in Double of the input, every core and the bias, in the factorized and the
    /// reconstructed modes (relative error ≤ 1e-6).
    @Test(arguments: FactorizedConvCase.all)
    func gradients(_ testCase: FactorizedConvCase) throws {
        let layer = try testCase.layer(seed: 11)
        let x = Tensor<Double>.randomNormal([1, 5, 4, testCase.inChannels], seed: 7)
        let inputs = [x] + layer.cores.map(\.value) + [layer.bias!.value]
        for mode in [ExecutionMode.factorized, .reconstructed] {
            let result = checkGradients(at: inputs) { v in
                layer.apply(v[0], cores: Array(v[1..<(v.count - 1)]), bias: v[v.count - 1], mode: mode)
            }
            #expect(result.maxRelativeError <= 1e-6, "\(testCase) \(mode): relative errors \(result.relativeErrors)")
            #expect(result.forwardMismatch == 0, "\(testCase) \(mode): the taped forward differs from the constant one")
            for (k, numeric) in result.numeric.enumerated() {
                #expect(numeric.frobeniusNorm() > 1e-6, "\(testCase) \(mode): input \(k) does not influence the output")
            }
        }
    }

    /// The per-format checks cover every format.
    @Test func casesCoverEveryFormat() {
        #expect(Set(FactorizedConvCase.all.map(\.format)) == Set(FactorizedConvFormat.allCases))
        #expect(Set(FactorizedConv2DInitializationTests.presetCases.map(\.format)) == Set(FactorizedConvFormat.allCases))
    }

    /// The factorized forward equals the dense conv of `reconstructWeight()` (same stride, padding, dilation, bias).
    @Test(arguments: FactorizedConvCase.all)
    func forwardMatchesReconstructedKernel(_ testCase: FactorizedConvCase) throws {
        let layer = try testCase.layer(seed: 21)
        let x = Tensor<Double>.randomNormal([2, 7, 6, testCase.inChannels], seed: 22)
        let reference = denseReference(layer, x)
        for mode in ExecutionMode.allCases {
            layer.executionMode = mode
            let y = layer(Variable(constant: x), mode: .inference).value
            #expect(y.shape == reference.shape, "\(testCase) \(mode): shape \(y.shape) vs \(reference.shape)")
            #expect(y.shape == [2] + layer.outputShape(forInput: [7, 6, testCase.inChannels]))
            #expect(relativeDifference(y, reference) <= 1e-10, "\(testCase) \(mode): error \(relativeDifference(y, reference))")
        }
    }

    /// The three execution modes give the same output and the same core and bias gradients (training, on a tape).
    @Test(arguments: FactorizedConvCase.all)
    func executionModesAgree(_ testCase: FactorizedConvCase) throws {
        let layer = try testCase.layer(seed: 23)
        let x = Tensor<Double>.randomNormal([2, 7, 6, testCase.inChannels], seed: 24)
        let parameters = layer.cores + [layer.bias!]
        var outputs: [Tensor<Double>] = [], gradients: [[Tensor<Double>]] = []
        for mode in ExecutionMode.allCases {
            layer.executionMode = mode
            for p in parameters { p.zeroGradient() }
            let tape = Tape<Double>()
            let y = layer(tape.variable(x), mode: .training)
            tape.gradients(of: y, seed: Tensor.randomNormal(y.value.shape, seed: 25))
            outputs.append(y.value)
            gradients.append(parameters.map { $0.gradient! })
        }
        for m in 1..<outputs.count {
            #expect(relativeDifference(outputs[m], outputs[0]) <= 1e-12, "\(testCase): output differs between modes")
            for (k, g) in gradients[m].enumerated() {
                #expect(relativeDifference(g, gradients[0][k]) <= 1e-12, "\(testCase): gradient \(k) differs between modes")
            }
        }
    }

    /// A dense `Conv2D` converted at full ranks (or ε = 0) gives the dense output to 1e-10 relative error, and the
    /// kernel back.
    @Test(arguments: FactorizedConvCase.all)
    func fullRankConversion(_ testCase: FactorizedConvCase) throws {
        let kernel = testCase.kernelInFormat
            ? try testCase.layer(seed: 31).reconstructWeight()
            : Tensor<Double>.randomNormal([testCase.outChannels, testCase.inChannels, testCase.kernelHeight, testCase.kernelWidth], seed: 31)
        let dense = Conv2D<Double>(weight: kernel, bias: Tensor.randomNormal([testCase.outChannels], seed: 32), params: testCase.params)
        let layer = try FactorizedConv2D<Double>.converting(dense, format: testCase.format, target: testCase.fullTarget,
                                                           channelModes: testCase.modes, blocks: testCase.blocks,
                                                           stpFactor: testCase.stpFactor,
                                                           cpOptions: CPALSOptions(maxIterations: 5000, tolerance: 1e-15))
        let x = Tensor<Double>.randomNormal([2, 7, 6, testCase.inChannels], seed: 33)
        let reference = dense(Variable(constant: x), mode: .inference).value
        for mode in ExecutionMode.allCases {
            layer.executionMode = mode
            let y = layer(Variable(constant: x), mode: .inference).value
            #expect(relativeDifference(y, reference) <= 1e-10, "\(testCase) \(mode): output error \(relativeDifference(y, reference))")
        }
        #expect(relativeDifference(layer.reconstructWeight(), kernel) <= 1e-10, "\(testCase): kernel error")
        #expect(layer.params == dense.params && layer.bias?.value == dense.bias?.value)
    }

    /// HT- and BTD-conv 64→64 3×3 at 14×14, batch 256 (`lowrank bench layers`): the factorized channel stage keeps
    /// every intermediate within 2^27 elements (its schedule reached 2.1·10⁹ and ran out of memory) and still
    /// computes the layer: factorized output = reconstructed output.
    @Test func largeBatchChannelStagesStayWithinMemory() throws {
        var generator = SeededGenerator(seed: 41)
        let x = Tensor<Float>.randomNormal([256, 14, 14, 64], seed: 42)
        for (format, blocks) in [(FactorizedConvFormat.hierarchicalTucker, 1), (.blockTerm, 2)] {
            let ranks = try FactorizedConv2D<Float>.uniformRanks(format: format, inChannels: 64, outChannels: 64, kernelHeight: 3,
                                                                 kernelWidth: 3, blocks: blocks, compressionRatio: 5)
            let layer = try FactorizedConv2D<Float>(format: format, inChannels: 64, outChannels: 64, kernelHeight: 3, kernelWidth: 3,
                                                    params: Convolution2D(padding: 1), ranks: ranks, blocks: blocks,
                                                    executionMode: .factorized, generator: &generator)
            let factorized = try #require(layer.modeCosts(forInput: [14, 14, 64], batch: 256, weightsOnChip: false)
                .first { $0.mode == .factorized })
            #expect(factorized.largestIntermediate <= 1 << 27, "\(format): \(factorized.largestIntermediate)")
            let y = layer(Variable(constant: x), mode: .inference).value
            layer.executionMode = .reconstructed
            let reference = layer(Variable(constant: x), mode: .inference).value
            #expect(relativeDifference(y.converted(), reference.converted()) <= 1e-4, "\(format): \(relativeDifference(y.converted(), reference.converted()))")
        }
    }

    /// A truncated conversion is the decomposition's approximation: its kernel error is below 1 and above 0 for a
    /// generic kernel, and the layer keeps the dense geometry.
    @Test func truncatedConversionKeepsGeometry() throws {
        var generator = SeededGenerator(seed: 3)
        let dense = Conv2D<Double>(inChannels: 8, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, generator: &generator)
        for format in [FactorizedConvFormat.svdChannel, .tucker2, .tensorTrain] {
            let layer = try FactorizedConv2D<Double>.converting(dense, format: format, ranks: [2])
            let error = relativeDifference(layer.reconstructWeight(), dense.weight.value)
            #expect(error > 0.01 && error < 1, "\(format): kernel error \(error)")
            #expect(layer.outputShape(forInput: [9, 9, 8]) == dense.outputShape(forInput: [9, 9, 8]))
            #expect(layer.compressionRatio > 1)
        }
    }

    /// STR-conv's kernel is the STR decomposition (spatial link ordinary) of the ring-ordered kernel built from the
    /// same small cores, and each ring core stores the TRN core ÷ t² (the shared pass-through letter is the STP's
    /// Kronecker-with-identity).
    @Test func semiTensorRingKernelEqualsTheDecompositionOfItsCores() throws {
        let (modes, ranks, t) = (ConvChannelModes(input: [2, 4], output: [4, 2]), [2, 4, 3, 2, 4], 2)
        var generator = SeededGenerator(seed: 8)
        let layer = try FactorizedConv2D<Double>(inChannels: 8, outChannels: 8, kernelSize: 3, format: .semiTensorRing, ranks: ranks,
                                                 channelModes: modes, stpFactor: t, generator: &generator)
        let small = layer.cores.enumerated().map { j, core -> Tensor<Double> in
            let v = core.value
            return j == 2 ? v.permuted([1, 2, 3, 0]).reshaped([v.shape[1], 9, v.shape[0]])
                : v.reshaped([v.shape[0], v.shape[1], v.shape[2...].reduce(1, *)])
        }
        let str = SemiTensorRing(cores: small, stpFactor: t, linked: [true, true, false, true, true])
        let ringOrder = layer.reconstructWeight().reshaped([4, 2, 2, 4, 9]).permuted([2, 3, 4, 0, 1])
        #expect(relativeDifference(str.reconstruct(), ringOrder) <= 1e-13)
        #expect(layer.coreParameterCount == str.parameterCount)
        var trGenerator = SeededGenerator(seed: 8)
        let tr = try FactorizedConv2D<Double>(inChannels: 8, outChannels: 8, kernelSize: 3, format: .tensorRing, ranks: ranks,
                                              channelModes: modes, generator: &trGenerator)
        let spatial = 9 * ranks[2] * ranks[3]  // K²·R_a·R_b: the kernel core is not divided by t²
        #expect(layer.coreParameterCount - spatial == (tr.coreParameterCount - spatial) / (t * t))
    }

    /// An ε target checks the wiring at the smallest rank of the format: rank 1 for Tucker-2 on a 1-channel conv
    /// (STR-conv's t applies to STR-conv alone).
    @Test func epsilonTargetOnASingleChannelConv() throws {
        let dense = Conv2D<Double>(weight: Tensor.randomNormal([8, 1, 3, 3], seed: 3), params: Convolution2D(padding: 1))
        let layer = try FactorizedConv2D<Double>.converting(dense, format: .tucker2, target: .relativeError(0.1))
        #expect(layer.ranks[0] == 1)
    }

    /// With t = 1 STR-conv is TRN: the same core shapes, and a converted TR-exact kernel comes back exactly.
    @Test func semiTensorRingWithUnitFactorIsTheTensorRing() throws {
        let modes = ConvChannelModes(input: [2, 2], output: [2, 3])
        let ranks = [2, 1, 2, 2, 1]
        let tr = try FactorizedConvCase(format: .tensorRing, inChannels: 4, outChannels: 6, ranks: ranks, modes: modes,
                                        fullTarget: .ranks(ranks)).layer(seed: 9)
        let kernel = tr.reconstructWeight()
        let dense = Conv2D<Double>(weight: kernel, params: tr.params)
        let str = try FactorizedConv2D<Double>.converting(dense, format: .semiTensorRing, ranks: ranks, channelModes: modes, stpFactor: 1,
                                                          cpOptions: CPALSOptions(maxIterations: 2000, tolerance: 1e-15))
        #expect(str.stpFactor == 1 && str.cores.map(\.value.shape) == tr.cores.map(\.value.shape))
        #expect(relativeDifference(str.reconstructWeight(), kernel) <= 1e-10, "\(relativeDifference(str.reconstructWeight(), kernel))")
    }

    /// Parameters are named cores.0, …, bias, and count the cores plus the bias.
    @Test func parameterNames() throws {
        let layer = try FactorizedConvCase.all[4].layer(seed: 1)
        let names = layer.namedParameters().map(\.name)
        #expect(names == (0..<layer.coreCount).map { "cores.\($0)" } + ["bias"])
        #expect(layer.parameterCount == layer.coreParameterCount + layer.outChannels)
    }
}

@Suite struct FactorizedConv2DCostTests {
    /// Shapes and geometries of the cost grid: (H, W, stride, padding, dilation).
    static let geometries: [(Int, Int, Int, Int, Int)] = [(8, 8, 1, 1, 1), (9, 7, 2, 1, 1), (10, 11, 2, 0, 1), (12, 9, 1, 2, 2)]

    /// A pre-set layer with a K_h×K_w kernel (K×K when `kernelWidth` is nil) and its shape.
    func layer(_ format: FactorizedConvFormat, _ ci: Int, _ co: Int, _ k: Int, kernelWidth: Int? = nil, _ g: (Int, Int, Int, Int, Int),
               ranks: [Int], modes: ConvChannelModes? = nil, blocks: Int = 1) throws -> (FactorizedConv2D<Double>, ConvLayerShape) {
        var generator = SeededGenerator(seed: 5)
        let layer = try FactorizedConv2D<Double>(format: format, inChannels: ci, outChannels: co, kernelHeight: k, kernelWidth: kernelWidth ?? k,
                                                 params: Convolution2D(stride: g.2, padding: g.3, dilation: g.4), ranks: ranks,
                                                 channelModes: modes, blocks: blocks, calibrated: false, executionMode: .factorized,
                                                 generator: &generator)
        return (layer, ConvLayerShape(inChannels: ci, outChannels: co, kernelHeight: k, kernelWidth: kernelWidth ?? k, params: layer.params,
                                      inputHeight: g.0, inputWidth: g.1))
    }

    /// The counter equals the closed form: parameters, activation side and weight side, and the activation side
    /// scales with the batch while the weight side does not.
    func expectMatches(_ layer: FactorizedConv2D<Double>, _ s: ConvLayerShape, _ formula: ConvClosedFormCost,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let input = [s.inputHeight, s.inputWidth, s.inChannels]
        let one = layer.cost(forInput: input, mode: .factorized), three = layer.cost(forInput: input, batch: 3, mode: .factorized)
        let context = "\(layer.layerDescription) on \(input)"
        #expect(layer.coreParameterCount == formula.parameters, "\(context): parameters \(layer.coreParameterCount) vs \(formula.parameters)",
                sourceLocation: sourceLocation)
        #expect(one.activationSide == formula.activationSide, "\(context): activation MACs \(one.activationSide) vs \(formula.activationSide)",
                sourceLocation: sourceLocation)
        #expect(one.weightSide == formula.weightSide, "\(context): weight MACs \(one.weightSide) vs \(formula.weightSide)",
                sourceLocation: sourceLocation)
        #expect(three.activationSide == 3 * one.activationSide && three.weightSide == one.weightSide, sourceLocation: sourceLocation)
        #expect(layer.multiplyAdds(forInput: input) == one.total, sourceLocation: sourceLocation)
    }

    @Test func matrixFormatsMatchClosedForms() throws {
        for g in Self.geometries {
            for (ci, co, kh, kw) in [(3, 5, 3, 3), (8, 4, 1, 1), (6, 6, 5, 5), (4, 6, 3, 1), (5, 4, 1, 3)] {
                for r in [1, 2, 3] {
                    var (l, s) = try layer(.svdChannel, ci, co, kh, kernelWidth: kw, g, ranks: [r])
                    expectMatches(l, s, ConvCostFormulas.svdChannel(s, rank: r))
                    (l, s) = try layer(.svdSpatial, ci, co, kh, kernelWidth: kw, g, ranks: [r])
                    expectMatches(l, s, ConvCostFormulas.svdSpatial(s, rank: r))
                    (l, s) = try layer(.cp, ci, co, kh, kernelWidth: kw, g, ranks: [r])
                    expectMatches(l, s, ConvCostFormulas.cp(s, rank: r))
                    (l, s) = try layer(.tucker2, ci, co, kh, kernelWidth: kw, g, ranks: [r, r + 1])
                    expectMatches(l, s, ConvCostFormulas.tucker2(s, inputRank: r, outputRank: r + 1))
                }
            }
        }
    }

    @Test func tensorizedFormatsMatchClosedForms() throws {
        let modeGrid: [ConvChannelModes] = [ConvChannelModes(input: [6], output: [4]), ConvChannelModes(input: [2, 3], output: [4, 2]),
                                            ConvChannelModes(input: [3, 2, 2], output: [2, 1, 3]),
                                            ConvChannelModes(input: [2, 2, 2, 2], output: [2, 1, 2, 2])]
        for g in Self.geometries {
            for modes in modeGrid {
                let (ci, co, d) = (modes.input.reduce(1, *), modes.output.reduce(1, *), modes.input.count)
                for r in [1, 2, 3] {
                    let tt = (0..<d).map { r + $0 % 2 }
                    var (l, s) = try layer(.tensorTrain, ci, co, 3, g, ranks: tt, modes: modes)
                    expectMatches(l, s, ConvCostFormulas.tensorTrain(s, inputModes: modes.input, outputModes: modes.output, ranks: tt))
                    let ring = (0..<(2 * d + 1)).map { r + $0 % 3 }
                    (l, s) = try layer(.tensorRing, ci, co, 3, g, ranks: ring, modes: modes)
                    expectMatches(l, s, ConvCostFormulas.tensorRing(s, inputModes: modes.input, outputModes: modes.output, ranks: ring))
                    let block = (0...d).map { r + $0 % 2 }
                    (l, s) = try layer(.blockTerm, ci, co, 3, g, ranks: block, modes: modes, blocks: 2)
                    expectMatches(l, s, ConvCostFormulas.blockTerm(s, inputModes: modes.input, outputModes: modes.output, blocks: 2, ranks: block))
                    let ht = (0..<(2 * d)).map { r + $0 % 2 }
                    (l, s) = try layer(.hierarchicalTucker, ci, co, 3, g, ranks: ht, modes: modes)
                    expectMatches(l, s, ConvCostFormulas.hierarchicalTucker(s, inputModes: modes.input, outputModes: modes.output, ranks: ht))
                }
            }
        }
    }

    /// STR-conv on channel modes divisible by t (t = 1 is TRN, checked through `tensorRing` above).
    @Test func semiTensorRingMatchesClosedForm() throws {
        let grid: [(ConvChannelModes, Int)] = [(ConvChannelModes(input: [4], output: [6]), 2),
                                               (ConvChannelModes(input: [2, 4], output: [4, 2]), 2),
                                               (ConvChannelModes(input: [2, 2, 2], output: [2, 4, 2]), 2),
                                               (ConvChannelModes(input: [3, 6], output: [3, 3]), 3)]
        for g in Self.geometries {
            for (modes, t) in grid {
                let (ci, co, d) = (modes.input.reduce(1, *), modes.output.reduce(1, *), modes.input.count)
                for r in [1, 2] {
                    // Linked links take multiples of t; the spatial core's link (index d) any rank.
                    let ranks = (0..<(2 * d + 1)).map { $0 == d ? r + 2 : t * (r + $0 % 2) }
                    var generator = SeededGenerator(seed: 5)
                    let l = try FactorizedConv2D<Double>(inChannels: ci, outChannels: co, kernelSize: 3, stride: g.2, padding: g.3,
                                                         dilation: g.4, format: .semiTensorRing, ranks: ranks, channelModes: modes,
                                                         stpFactor: t, calibrated: false, executionMode: .factorized, generator: &generator)
                    let s = ConvLayerShape(inChannels: ci, outChannels: co, kernelHeight: 3, kernelWidth: 3, params: l.params,
                                           inputHeight: g.0, inputWidth: g.1)
                    expectMatches(l, s, ConvCostFormulas.semiTensorRing(s, inputModes: modes.input, outputModes: modes.output,
                                                                        ranks: ranks, stpFactor: t))
                }
            }
        }
    }

    @Test func gkpdMatchesClosedForm() throws {
        let modeGrid = [ConvChannelModes(input: [2, 3], output: [4, 2], kernelHeight: [3, 1], kernelWidth: [3, 1]),
                        ConvChannelModes(input: [3, 2], output: [2, 4], kernelHeight: [1, 3], kernelWidth: [3, 1]),
                        ConvChannelModes(input: [6, 1], output: [1, 8], kernelHeight: [1, 3], kernelWidth: [1, 3])]
        for g in Self.geometries {
            for modes in modeGrid {
                for r in [1, 2, 3] {
                    let (l, s) = try layer(.gkpd, 6, 8, 3, g, ranks: [r], modes: modes)
                    expectMatches(l, s, ConvCostFormulas.gkpd(s, modes: modes, rank: r))
                }
            }
        }
    }

    /// The reconstructed mode costs the weight path plus the dense conv; `auto` picks the cheaper mode.
    @Test(arguments: FactorizedConvCase.all)
    func executionModeCosts(_ testCase: FactorizedConvCase) throws {
        let layer = try testCase.layer(seed: 3)
        let input = [9, 8, testCase.inChannels]
        let dense = Conv2D<Double>(weight: layer.reconstructWeight(), params: layer.params)
        for batch in [1, 64] {
            let reconstructed = layer.cost(forInput: input, batch: batch, mode: .reconstructed)
            #expect(reconstructed.activationSide == batch * dense.multiplyAdds(forInput: input))
            #expect(reconstructed.weightSide > 0)
            let factorized = layer.cost(forInput: input, batch: batch, mode: .factorized)
            let auto = layer.cost(forInput: input, batch: batch, mode: .auto)
            #expect(auto.total == Swift.min(factorized.total, reconstructed.total))
            #expect(auto.mode == (factorized.total < reconstructed.total ? .factorized : .reconstructed))
        }
    }

    /// Full-rank formats cost more than dense, low ranks less: the closed forms are not vacuous.
    @Test func denseComparison() throws {
        let s = ConvLayerShape(inChannels: 64, outChannels: 64, kernelHeight: 3, kernelWidth: 3, params: Convolution2D(padding: 1),
                               inputHeight: 16, inputWidth: 16)
        let dense = ConvCostFormulas.dense(s)
        #expect(dense.activationSide == 16 * 16 * 9 * 64 * 64)
        #expect(ConvCostFormulas.tucker2(s, inputRank: 16, outputRank: 16).activationSide < dense.activationSide / 4)
        #expect(ConvCostFormulas.svdChannel(s, rank: 64).activationSide > dense.activationSide)
    }

    /// `uniformRanks` returns the largest uniform rank that fits the ratio.
    @Test(arguments: FactorizedConvFormat.allCases)
    func uniformRanksFitTheRatio(_ format: FactorizedConvFormat) throws {
        let modes: ConvChannelModes? = format == .gkpd
            ? ConvChannelModes(input: [4, 4], output: [8, 4], kernelHeight: [3, 1], kernelWidth: [3, 1]) : nil
        let dense = 32 * 16 * 9
        for ratio in [2.0, 5.0, 10.0] {
            let ranks = try FactorizedConv2D<Double>.uniformRanks(format: format, inChannels: 16, outChannels: 32, kernelHeight: 3,
                                                                  kernelWidth: 3, channelModes: modes, blocks: 2, compressionRatio: ratio)
            func parameters(_ r: Int) -> Int? {
                var generator = SeededGenerator(seed: 1)
                return try? FactorizedConv2D<Double>(inChannels: 16, outChannels: 32, kernelSize: 3, format: format, ranks: [r],
                                                     channelModes: modes, blocks: 2, generator: &generator).coreParameterCount
            }
            let fitted = try #require(parameters(ranks[0]))
            #expect(Double(fitted) <= Double(dense) / ratio, "\(format) ratio \(ratio): rank \(ranks)")
            if let next = parameters(ranks[0] + 1) {
                #expect(Double(next) > Double(dense) / ratio, "\(format) ratio \(ratio): rank \(ranks[0] + 1) also fits")
            }
        }
    }
}

@Suite struct FactorizedConv2DInitializationTests {
    /// Output variance on unit-variance input, over the interior pixels (no padding) of a 4×10×10×C_in batch.
    func outputVariance(_ apply: (Variable<Double>) -> Variable<Double>, inChannels: Int, seed: UInt64) -> Double {
        let x = Tensor<Double>.randomNormal([4, 10, 10, inChannels], seed: seed)
        let y = apply(Variable(constant: x)).value
        return Double(y.squaredNorm()) / Double(y.scalarCount)
    }

    /// Every format on 32 → 32 channels; the formats with channel modes at several depths (2 to 6 cores).
    static let presetCases: [PresetCase] = {
        var cases = [PresetCase(.svdChannel, [8]), PresetCase(.svdSpatial, [8]), PresetCase(.cp, [16]), PresetCase(.tucker2, [8, 8]),
                     PresetCase(.gkpd, [4])]
        let depths: [ConvChannelModes] = [ConvChannelModes(input: [32], output: [32]), ConvChannelModes(input: [8, 4], output: [4, 8]),
                                          ConvChannelModes(input: [4, 4, 2], output: [2, 4, 4]),
                                          ConvChannelModes(input: [4, 2, 2, 2], output: [2, 2, 2, 4]),
                                          ConvChannelModes(input: [2, 2, 2, 2, 2], output: [2, 2, 2, 2, 2])]
        for (format, ranks, deepest) in [(FactorizedConvFormat.tensorTrain, [4], 5), (.blockTerm, [3], 4), (.tensorRing, [3], 2),
                                         (.hierarchicalTucker, [4], 2), (.semiTensorRing, [4], 2)] {
            cases += depths[..<deepest].map { PresetCase(format, ranks, $0) }
        }
        return cases
    }()

    struct PresetCase: Sendable, CustomStringConvertible {
        var format: FactorizedConvFormat, ranks: [Int], modes: ConvChannelModes?
        init(_ format: FactorizedConvFormat, _ ranks: [Int], _ modes: ConvChannelModes? = nil) {
            (self.format, self.ranks, self.modes) = (format, ranks, modes)
        }
        var description: String { "\(format) ranks \(ranks) modes \(modes.map { "\($0.input) → \($0.output)" } ?? "default")" }

        func layer(calibrated: Bool, generator: inout SeededGenerator) throws -> FactorizedConv2D<Double> {
            try FactorizedConv2D<Double>(inChannels: 32, outChannels: 32, kernelSize: 3, format: format, ranks: ranks, channelModes: modes,
                                         calibrated: calibrated, generator: &generator)
        }
    }

    /// Calibrated pre-set layers with 2 to 6 cores give the output variance of a dense Kaiming conv (2 for
    /// unit-variance input) within ±20%, averaged over 6 seeds.
    @Test(arguments: presetCases)
    func outputVarianceMatchesKaiming(_ preset: PresetCase) throws {
        let (channels, seeds) = (32, 0..<6)
        var dense = 0.0, factorized = 0.0
        for seed in seeds {
            var generator = SeededGenerator(seed: 100 + UInt64(seed))
            let conv = Conv2D<Double>(inChannels: channels, outChannels: channels, kernelSize: 3, bias: false,
                                      initializer: .kaimingNormal(), generator: &generator)
            dense += outputVariance({ conv($0, mode: .inference) }, inChannels: channels, seed: UInt64(seed)) / Double(seeds.count)
            let layer = try preset.layer(calibrated: true, generator: &generator)
            #expect((2...6).contains(layer.coreCount), "\(preset): \(layer.coreCount) cores")
            factorized += outputVariance({ layer($0, mode: .inference) }, inChannels: channels, seed: UInt64(seed)) / Double(seeds.count)
        }
        #expect(abs(factorized / dense - 1) <= 0.2, "\(preset): variance \(factorized) vs dense Kaiming \(dense)")
    }

    /// The uncalibrated rule gives E[w²] = v = 2/(C_inK²) exactly: the second moment of every kernel entry is the
    /// weight expression evaluated on cores filled with σ² (cross terms of distinct products vanish), which must
    /// equal v entry by entry (a check of every wiring's N_terms); the drawn cores have that σ.
    @Test(arguments: presetCases)
    func rawVarianceRuleIsExactInExpectation(_ preset: PresetCase) throws {
        var generator = SeededGenerator(seed: 7)
        let layer = try preset.layer(calibrated: false, generator: &generator)
        let v = 2.0 / Double(32 * 9)
        let sigma = layer.wiring.presetStandardDeviation(targetVariance: v)
        let secondMoment = layer.wiring.weightExpression.evaluate(layer.wiring.weightViews.map { Tensor<Double>(repeating: sigma * sigma, shape: $0) })
        #expect(abs(secondMoment.max() / v - 1) <= 1e-12 && abs(secondMoment.min() / v - 1) <= 1e-12,
                "\(preset): E[w²] in [\(secondMoment.min()), \(secondMoment.max())], v = \(v)")
        let pooled = layer.cores.reduce(0.0) { $0 + Double($1.value.squaredNorm()) } / Double(layer.coreParameterCount)
        #expect(abs(pooled.squareRoot() / sigma - 1) <= 0.2, "\(preset): pooled core std \(pooled.squareRoot()) vs σ = \(sigma)")
    }
}

@Suite struct FactorizedConv2DErrorTests {
    func preset(_ format: FactorizedConvFormat, ci: Int = 12, co: Int = 8, ranks: [Int], modes: ConvChannelModes? = nil) throws {
        var generator = SeededGenerator(seed: 1)
        _ = try FactorizedConv2D<Double>(inChannels: ci, outChannels: co, kernelSize: 3, format: format, ranks: ranks,
                                         channelModes: modes, name: "conv3", generator: &generator)
    }

    @Test func channelModesThatDoNotMultiply() {
        expectError({ try preset(.tensorTrain, ranks: [2], modes: ConvChannelModes(input: [3, 2], output: [4, 2])) },
                    ["conv3", "C_in = 12", "[4, 3] → [4, 2]"])
        expectError({ try preset(.tensorRing, ranks: [2], modes: ConvChannelModes(input: [12], output: [2, 4])) },
                    ["conv3", "[4, 3] → [4, 2]"])
        for format in [FactorizedConvFormat.hierarchicalTucker, .blockTerm, .semiTensorRing] {
            expectError({ try preset(format, ranks: [2], modes: ConvChannelModes(input: [3, 2], output: [4, 2])) },
                        ["conv3", "C_in = 12", "[4, 3] → [4, 2]"])
        }
    }

    @Test func badRanks() {
        expectError({ try preset(.tucker2, ranks: [0, 2]) }, ["conv3", "≥ 1"])
        expectError({ try preset(.tensorTrain, ranks: [2, 2, 2], modes: ConvChannelModes(input: [4, 3], output: [4, 2])) },
                    ["conv3", "takes 2 rank(s)"])
        expectError({ try preset(.svdChannel, ranks: [9]) }, ["conv3", "use at most [8]"])
        expectError({ try preset(.tucker2, ranks: [13, 2]) }, ["conv3", "use at most [12, 8]"])
        expectError({ try preset(.svdSpatial, ranks: [25]) }, ["conv3", "use at most [24]"])
        expectError({ try preset(.gkpd, ranks: [7]) }, ["conv3", "use at most [6]"])
    }

    @Test func gkpdThatDoesNotDivide() {
        expectError({ try preset(.gkpd, ranks: [2], modes: ConvChannelModes(input: [4, 3], output: [4, 2], kernelHeight: [2, 2],
                                                                           kernelWidth: [3, 1])) },
                    ["conv3", "K_h = 3", "[4, 3] → [4, 2], kernel [3, 1]×[3, 1]"])
        expectError({ try preset(.gkpd, ranks: [2], modes: ConvChannelModes(input: [5, 2], output: [4, 2], kernelHeight: [3, 1],
                                                                           kernelWidth: [3, 1])) },
                    ["conv3", "C_in = 12", "[4, 3] → [4, 2]"])
    }

    /// STR-conv: channel modes and linked ranks must be multiples of t; the messages propose a t or a rank.
    @Test func semiTensorRingThatDoesNotDivide() {
        expectError({ try preset(.semiTensorRing, ranks: [2], modes: ConvChannelModes(input: [4, 3], output: [4, 2])) },
                    ["conv3", "mode 3 of [4, 3] → [4, 2]", "choose t among [1]"])
        expectError({ try preset(.semiTensorRing, ci: 16, ranks: [2, 3, 3, 2, 2], modes: ConvChannelModes(input: [4, 4], output: [4, 2])) },
                    ["conv3", "rank 1 (3)", "use 2 or 4"])
        expectError({ _ = try FactorizedConv2D<Double>.uniformRanks(format: .semiTensorRing, inChannels: 12, outChannels: 8,
                                                                    kernelHeight: 3, kernelWidth: 3, stpFactor: 5, compressionRatio: 4,
                                                                    name: "conv4") },
                    ["conv4", "t = 5"])
    }

    @Test func groupedConvolutionAndImpossibleRatio() throws {
        var generator = SeededGenerator(seed: 2)
        let grouped = Conv2D<Double>(inChannels: 4, outChannels: 4, kernelSize: 3, groups: 2, generator: &generator)
        expectError({ _ = try FactorizedConv2D<Double>.converting(grouped, format: .tucker2, ranks: [2], name: "block1.conv") },
                    ["block1.conv", "groups 2"])
        expectError({ _ = try FactorizedConv2D<Double>.uniformRanks(format: .svdChannel, inChannels: 2, outChannels: 2, kernelHeight: 1,
                                                                    kernelWidth: 1, compressionRatio: 10, name: "head") },
                    ["head", "rank 1 gives 1.00"])
    }
}
