import Autodiff
import Compression
import Decompositions
import NeuralNetworks
import Testing
import TensorCore

/// A small layer configuration of one format for the per-format checks.
struct FormatCase: Sendable, CustomStringConvertible {
    var format: FactorizedFormat
    var inputModes: [Int]
    var outputModes: [Int]
    /// Ranks for pre-set layers (meaning as on `FactorizedFormat`).
    var ranks: [Int]
    var blocks: Int = 1
    /// The STP factor t (STT and STR only).
    var stpFactor: Int = 2
    /// The target that reproduces any weight exactly (full ranks or ε = 0).
    var fullTarget: RankTarget<Double>
    /// Convert a weight drawn in the format at `ranks` (exactly representable) instead of a generic one.
    var weightInFormat = false

    var description: String { "\(format) \(inputModes)→\(outputModes) ranks \(ranks)" }
    var inputFeatures: Int { inputModes.reduce(1, *) }
    var outputFeatures: Int { outputModes.reduce(1, *) }

    /// The standard small cases: I = 6 = 2·3 inputs, O = 6 = 3·2 outputs (d = 2), and a d = 3 case where it applies.
    static func cases(_ format: FactorizedFormat) -> [FormatCase] {
        switch format {
        case .svd:
            return [FormatCase(format: .svd, inputModes: [6], outputModes: [4], ranks: [2], fullTarget: .ranks([4])),
                    FormatCase(format: .svd, inputModes: [2, 3], outputModes: [5, 1], ranks: [3], fullTarget: .ranks([5]))]
        case .cp:
            // d = 2: CP of the 6×6 paired matrix is its SVD, so rank 6 is exact. d = 3: "full rank" is not a
            // finite ALS target, so the d = 3 case converts a weight that is exactly CP of rank 2 (paired 4×6×4,
            // essentially unique by Kruskal's condition), with CP-ALS run to a 1e-15 fit change.
            return [FormatCase(format: .cp, inputModes: [2, 3], outputModes: [3, 2], ranks: [2], fullTarget: .ranks([6])),
                    FormatCase(format: .cp, inputModes: [2, 3, 2], outputModes: [2, 2, 2], ranks: [2], fullTarget: .ranks([2]),
                               weightInFormat: true)]
        case .tucker:
            return [FormatCase(format: .tucker, inputModes: [2, 3], outputModes: [3, 2], ranks: [2, 2, 2, 1], fullTarget: .ranks([2, 3, 3, 2])),
                    FormatCase(format: .tucker, inputModes: [6], outputModes: [4], ranks: [3, 2], fullTarget: .ranks([6, 4]))]
        case .tensorTrain:
            return [FormatCase(format: .tensorTrain, inputModes: [2, 3], outputModes: [3, 2], ranks: [2], fullTarget: .relativeError(0)),
                    FormatCase(format: .tensorTrain, inputModes: [2, 2, 2], outputModes: [2, 1, 3], ranks: [2, 3], fullTarget: .relativeError(0))]
        case .tensorRing:
            return [FormatCase(format: .tensorRing, inputModes: [2, 3], outputModes: [3, 2], ranks: [2, 1], fullTarget: .relativeError(0)),
                    FormatCase(format: .tensorRing, inputModes: [2, 2, 2], outputModes: [2, 1, 3], ranks: [2, 2, 1], fullTarget: .relativeError(0))]
        case .hierarchicalTucker:
            return [FormatCase(format: .hierarchicalTucker, inputModes: [2, 3], outputModes: [3, 2], ranks: [2, 2], fullTarget: .relativeError(0)),
                    FormatCase(format: .hierarchicalTucker, inputModes: [2, 2, 2], outputModes: [2, 1, 3], ranks: [2, 2, 2, 3], fullTarget: .relativeError(0))]
        case .blockTerm:
            return [FormatCase(format: .blockTerm, inputModes: [2, 3], outputModes: [3, 2], ranks: [2, 2], blocks: 2, fullTarget: .ranks([6, 6])),
                    FormatCase(format: .blockTerm, inputModes: [2, 2, 2], outputModes: [2, 1, 3], ranks: [2, 1, 2], blocks: 2, fullTarget: .ranks([4, 2, 6]))]
        case .kronecker:
            return [FormatCase(format: .kronecker, inputModes: [2, 3], outputModes: [3, 2], ranks: [2], fullTarget: .ranks([6])),
                    FormatCase(format: .kronecker, inputModes: [4, 2], outputModes: [1, 5], ranks: [3], fullTarget: .ranks([4]))]
        case .semiTensorTrain:
            // STT/STR-ALS has no ε target and no finite "full rank" for a generic weight (the STP couples a rank
            // sub-index with an output sub-index), so conversion is checked on weights drawn in the format.
            return [FormatCase(format: .semiTensorTrain, inputModes: [2, 3], outputModes: [3, 2], ranks: [2], fullTarget: .ranks([2]),
                               weightInFormat: true),
                    FormatCase(format: .semiTensorTrain, inputModes: [2, 2, 2], outputModes: [2, 2, 4], ranks: [2, 4],
                               fullTarget: .ranks([2, 4]), weightInFormat: true)]
        case .semiTensorRing:
            return [FormatCase(format: .semiTensorRing, inputModes: [2, 3], outputModes: [4, 2], ranks: [2, 2], fullTarget: .ranks([2, 2]),
                               weightInFormat: true),
                    FormatCase(format: .semiTensorRing, inputModes: [2, 2, 2], outputModes: [2, 2, 2], ranks: [2, 4, 2],
                               fullTarget: .ranks([2, 4, 2]), weightInFormat: true)]
        }
    }

    /// A pre-set layer (raw variance rule, no calibration) from `seed`.
    func layer(seed: UInt64, mode: ExecutionMode = .auto) throws -> FactorizedLinear<Double> {
        var generator = SeededGenerator(seed: seed)
        let layer = try FactorizedLinear<Double>(inputModes: inputModes, outputModes: outputModes, format: format, ranks: ranks,
                                                 blocks: blocks, stpFactor: stpFactor, calibrated: false, executionMode: mode,
                                                 generator: &generator)
        layer.bias!.value = Tensor.randomNormal([outputFeatures], seed: seed &+ 99)
        return layer
    }
}

/// ‖a − b‖_F / ‖b‖_F.
func relativeDifference(_ a: Tensor<Double>, _ b: Tensor<Double>) -> Double {
    (a - b).frobeniusNorm() / Swift.max(b.frobeniusNorm(), 1e-300)
}

/// x·W + b row by row, the dense reference.
func denseForward(_ x: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>?) -> Tensor<Double> {
    let y = Tensor.matmul(x, w)
    return b.map { y + $0 } ?? y
}

/// Expects `body` to throw a `CompressionError` whose message contains every fragment (the layer name, the
/// problem, the proposed fix).
func expectError(_ body: () throws -> Void, _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("no error thrown, expected one mentioning \(fragments)", sourceLocation: sourceLocation)
    } catch let error as CompressionError {
        for fragment in fragments {
            #expect(error.description.contains(fragment), "\(error.description) lacks \"\(fragment)\"", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a CompressionError, got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: - The checks every format runs

/// Finite-difference gradient check in Double of the input, every core and the bias, in the factorized and the
/// reconstructed modes (relative error ≤ 1e-6).
func checkFormatGradients(_ format: FactorizedFormat) throws {
    for (c, testCase) in FormatCase.cases(format).enumerated() {
        let layer = try testCase.layer(seed: 11 + UInt64(c))
        let x = Tensor<Double>.randomNormal([3, testCase.inputFeatures], seed: 7)
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
}

/// A dense weight converted at full ranks (or ε = 0) gives the dense layer's output to 1e-10 relative error.
func checkFullRankConversion(_ format: FactorizedFormat) throws {
    for (c, testCase) in FormatCase.cases(format).enumerated() {
        let w = testCase.weightInFormat
            ? try testCase.layer(seed: 100 + UInt64(c)).reconstructWeight()
            : Tensor<Double>.randomNormal([testCase.inputFeatures, testCase.outputFeatures], seed: 100 + UInt64(c))
        let b = Tensor<Double>.randomNormal([testCase.outputFeatures], seed: 200 + UInt64(c))
        let dense = Linear<Double>(weight: w, bias: b)
        let layer = try FactorizedLinear<Double>.converting(dense, format: format, inputModes: testCase.inputModes,
                                                           outputModes: testCase.outputModes, target: testCase.fullTarget,
                                                           blocks: testCase.blocks, stpFactor: testCase.stpFactor,
                                                           cpOptions: CPALSOptions(maxIterations: 5000, tolerance: 1e-15))
        let x = Tensor<Double>.randomNormal([5, testCase.inputFeatures], seed: 300)
        let reference = dense(Variable(constant: x), mode: .inference).value
        for mode in ExecutionMode.allCases {
            layer.executionMode = mode
            let y = layer(Variable(constant: x), mode: .inference).value
            #expect(relativeDifference(y, reference) <= 1e-10, "\(testCase) \(mode): output error \(relativeDifference(y, reference))")
        }
        #expect(relativeDifference(layer.reconstructWeight(), w) <= 1e-10, "\(testCase): weight error")
    }
}

/// The three execution modes apply the same weight (each mode's output on the identity, less the bias, is
/// `reconstructWeight()`), give the same output on a batch (x·W + b) and the same parameter gradients.
func checkExecutionModesAgree(_ format: FactorizedFormat) throws {
    for (c, testCase) in FormatCase.cases(format).enumerated() {
        let layer = try testCase.layer(seed: 40 + UInt64(c))
        let x = Tensor<Double>.randomNormal([4, 2, testCase.inputFeatures], seed: 41)
        let weight = layer.reconstructWeight()
        let identity = Tensor<Double>.identity(testCase.inputFeatures)
        let reference = denseForward(x.reshaped([8, testCase.inputFeatures]), weight, layer.bias!.value)
            .reshaped([4, 2, testCase.outputFeatures])
        let seed = Tensor<Double>.randomNormal([4, 2, testCase.outputFeatures], seed: 42)
        var gradients: [[Tensor<Double>]] = []
        for mode in ExecutionMode.allCases {
            layer.executionMode = mode
            let tape = Tape<Double>()
            let y = layer(tape.variable(x), mode: .training)
            #expect(relativeDifference(y.value, reference) <= 1e-12, "\(testCase) \(mode): output differs from x·W + b")
            for p in layer.cores + [layer.bias!] { p.zeroGradient() }
            tape.gradients(of: y, seed: seed)
            gradients.append((layer.cores + [layer.bias!]).map { $0.gradient! })
            let applied = layer(Variable(constant: identity), mode: .inference).value - layer.bias!.value
            #expect(relativeDifference(applied, weight) <= 1e-12, "\(testCase) \(mode): applies another weight")
        }
        for m in 1..<gradients.count {
            for (k, g) in gradients[m].enumerated() {
                #expect(relativeDifference(g, gradients[0][k]) <= 1e-12, "\(testCase): gradient \(k) differs between modes")
            }
        }
    }
}

/// Along the reference schedule the einsum counter equals B × the closed form (and the parameter count equals
/// the storage formula); the fewest-multiply-adds path is never above it.
func expectCounterMatches(_ layer: FactorizedLinear<Double>, _ formula: ClosedFormCost, batch: Int = 3,
                          sourceLocation: SourceLocation = #_sourceLocation) {
    let expression = layer.network.forwardExpression(batch: batch)
    let scheduled = expression.path(sequence: layer.referenceSchedule).multiplyAdds
    #expect(scheduled == batch * formula.macsPerSample, "\(layer.name): counter \(scheduled) vs \(batch) × \(formula.macsPerSample)",
            sourceLocation: sourceLocation)
    #expect(layer.coreParameterCount == formula.parameters, "\(layer.name): \(layer.coreParameterCount) vs \(formula.parameters) parameters",
            sourceLocation: sourceLocation)
    #expect(expression.optimalPath(strategy: .exhaustive).multiplyAdds <= scheduled, "\(layer.name): the cheapest path costs more than the schedule",
            sourceLocation: sourceLocation)
}

/// A pre-set layer on a grid point (cores drawn, values irrelevant to the counts).
func gridLayer(_ format: FactorizedFormat, _ inputModes: [Int], _ outputModes: [Int], ranks: [Int], blocks: Int = 1,
               stpFactor: Int = 2) throws -> FactorizedLinear<Double> {
    var generator = SeededGenerator(seed: 5)
    return try FactorizedLinear<Double>(inputModes: inputModes, outputModes: outputModes, format: format, ranks: ranks,
                                        blocks: blocks, stpFactor: stpFactor, calibrated: false, generator: &generator)
}

/// Mode grids of 1 to 4 modes with unequal sizes.
let modeGrid: [([Int], [Int])] = [([3], [5]), ([2, 3], [4, 2]), ([3, 2, 2], [2, 1, 3]), ([2, 3, 2, 2], [3, 2, 2, 1])]
