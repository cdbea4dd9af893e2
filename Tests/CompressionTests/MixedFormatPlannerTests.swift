import Compression
import NeuralNetworks
import Testing
import TensorCore

/// Mixed-format rank allocation: Tucker-2 and TT candidates priced from spectra, and budget plans that choose
/// the format per layer.
@Suite struct MixedFormatPlannerTests {
    static let formats: [CompressionFormat] = [.svd, .tucker, .tensorTrain]

    static func fashionCNN() throws -> Sequential<Float> {
        try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self).0
            as! Sequential<Float>
    }

    /// `exact` plus i.i.d. noise of 5% of its RMS.
    static func noisy(_ exact: Tensor<Float>, generator: inout SeededGenerator) -> Tensor<Float> {
        let rms = (exact.squaredNorm() / Float(exact.scalarCount)).squareRoot()
        return exact + Tensor.randomNormal(exact.shape, standardDeviation: 0.05 * rms, generator: &generator)
    }

    /// Input [8, 8, 24] → "0": conv 3×3 24 → 40 (pad 1), a Tucker-2 kernel of ranks [6, 10] plus noise → "1": flatten
    /// → "2": FC 2560 → 96, a TT-matrix of ranks [4, 6] plus noise. No biases: core parameters = layer parameters.
    static func structuredModel() throws -> Sequential<Float> {
        var generator = SeededGenerator(seed: 3)
        let tucker = try FactorizedConv2D<Float>(format: .tucker2, inChannels: 24, outChannels: 40, kernelHeight: 3,
                                                 kernelWidth: 3, ranks: [6, 10], bias: false, generator: &generator)
        let d = LayerCompressor.modeCount(for: .tensorTrain)
        let train = try FactorizedLinear<Float>(inputModes: balancedFactorization(of: 2560, into: d),
                                                outputModes: balancedFactorization(of: 96, into: d), format: .tensorTrain,
                                                ranks: [4, 6], bias: false, generator: &generator)
        let kernel = noisy(tucker.reconstructWeight(), generator: &generator)
        let weight = noisy(train.reconstructWeight(), generator: &generator)
        return Sequential<Float>(Conv2D<Float>(weight: kernel, params: Convolution2D(padding: 1)), Flatten<Float>(),
                                 Linear<Float>(weight: weight))
    }

    static let structuredInput = [8, 8, 24]

    /// The named eligible layer of the structured model and its candidates in every plannable format.
    static func structuredLayer(_ name: String) throws -> (Sequential<Float>, CompressibleLayer<Float>, LayerCandidates) {
        let model = try structuredModel()
        let candidates = try ModelRankPlanner.candidates(of: model, inputShape: structuredInput, formats: formats,
                                                         keepFirstAndLast: false)
        let layer = try #require(ModelSurgery.compressibleLayers(of: model, inputShape: structuredInput).first { $0.name == name })
        return (model, layer, try #require(candidates.first { $0.name == name }))
    }

    /// Five candidates of `format` spread over its list (first, quarters, last).
    static func spread(_ layer: LayerCandidates, _ format: CompressionFormat) -> [RankCandidate] {
        let list = layer.candidates.filter { $0.format == format.shortName }
        guard !list.isEmpty else { return [] }
        return [0, 1, 2, 3, 4].map { list[(list.count - 1) * $0 / 4] }
    }

    static func relativeError(_ approximation: Tensor<Float>, _ weight: Tensor<Float>) -> Double {
        Double(((approximation - weight).squaredNorm() / weight.squaredNorm()).squareRoot())
    }

    /// Converts `layer` by `LayerCompressor` at each candidate's ranks in `format` and checks the result against the
    /// candidate: the same ranks, exactly its parameters (and its MACs where `rebuild` returns them), and a weight
    /// error within its predicted bound. `rebuild` gives the replacement's dense weight and factorized MACs.
    static func expectCandidatesPriceTheConversion(_ candidates: [RankCandidate], of layer: CompressibleLayer<Float>,
                                                   format: CompressionFormat, weight: Tensor<Float>,
                                                   rebuild: (any Layer<Float>) throws -> (weight: Tensor<Float>, macs: Int?)) throws {
        for candidate in candidates {
            guard case let .replaced(replacement, record) = try LayerCompressor.compress(
                layer.layer, name: layer.name, inputShape: layer.inputShape, format: format, target: .ranks(candidate.ranks)) else {
                Issue.record("\(format.shortName) at \(candidate.ranks) was kept dense")
                continue
            }
            let (rebuilt, macs) = try rebuild(replacement)
            #expect(record.ranks == candidate.ranks)
            #expect(replacement.trainableParameterCount == candidate.parameters)
            if let macs { #expect(macs == candidate.macs) }
            let actual = relativeError(rebuilt, weight)
            #expect(actual <= candidate.relativeError + 1e-4,
                    "\(format.shortName) \(candidate.ranks): error \(actual) above the bound \(candidate.relativeError)")
        }
    }

    /// Tucker-2 on a conv: converted by `LayerCompressor` at a candidate's ranks, the layer has those ranks, exactly
    /// the candidate's parameters and factorized MACs, and a kernel error within the predicted HOSVD bound; at the
    /// ranks the kernel was built with the bound is near the noise level.
    @Test func tuckerCandidatesPriceTheConvertedConvolution() throws {
        let (_, layer, candidates) = try Self.structuredLayer("0")
        let kernel = try #require(layer.layer as? Conv2D<Float>).weight.value
        let tucker = Self.spread(candidates, .tucker) + candidates.candidates.filter { $0.format == "tucker" && $0.ranks == [6, 10] }
        #expect(tucker.count == 6)
        #expect(try #require(tucker.last).relativeError < 0.15)
        try Self.expectCandidatesPriceTheConversion(tucker, of: layer, format: .tucker, weight: kernel) { replacement in
            let conv = try #require(replacement as? FactorizedConv2D<Float>)
            return (conv.reconstructWeight(), conv.cost(forInput: layer.inputShape, mode: .factorized).total)
        }
    }

    /// TT on an FC layer: converted at a candidate's ranks, the layer has those ranks, exactly the candidate's
    /// parameters, and a weight error within the predicted TT-SVD bound (near the noise level at the built ranks).
    @Test func tensorTrainCandidatesPriceTheConvertedLinearLayer() throws {
        let (_, layer, candidates) = try Self.structuredLayer("2")
        let weight = try #require(layer.layer as? Linear<Float>).weight.value
        let train = Self.spread(candidates, .tensorTrain) + candidates.candidates.filter { $0.format == "tt" && $0.ranks == [4, 6] }
        #expect(train.count == 6)
        #expect(try #require(train.last).relativeError < 0.15)
        try Self.expectCandidatesPriceTheConversion(train, of: layer, format: .tensorTrain, weight: weight) { replacement in
            (try #require(replacement as? FactorizedLinear<Float>).reconstructWeight(), nil)
        }
    }

    /// The SVD candidates' errors are exact (Eckart–Young), on the conv and on the FC layer.
    @Test(arguments: ["0", "2"])
    func svdCandidatesPredictTheErrorExactly(name: String) throws {
        let (_, layer, candidates) = try Self.structuredLayer(name)
        let weight = (layer.layer as? Linear<Float>)?.weight.value ?? (layer.layer as! Conv2D<Float>).weight.value
        for candidate in Self.spread(candidates, .svd) {
            guard case let .replaced(replacement, _) = try LayerCompressor.compress(
                layer.layer, name: layer.name, inputShape: layer.inputShape, format: .svd, target: .ranks(candidate.ranks)) else {
                Issue.record("SVD at \(candidate.ranks) was kept dense")
                continue
            }
            let reconstruction = try #require((replacement as? FactorizedLinear<Float>)?.reconstructWeight()
                                              ?? (replacement as? FactorizedConv2D<Float>)?.reconstructWeight())
            #expect(replacement.trainableParameterCount == candidate.parameters)
            let actual = Self.relativeError(reconstruction, weight)
            #expect(abs(actual - candidate.relativeError) <= 1e-3, "SVD \(candidate.ranks): error \(actual), predicted \(candidate.relativeError)")
        }
    }

    /// With a budget 10% above the built Tucker-2 and TT cores (1,084 + 2,160 parameters), where no SVD of the same
    /// error fits (the conv's SVD form has rank 10: 2,560 parameters; the FC layer's costs 2,656 per rank), the mixed
    /// plan picks Tucker-2 for the conv and TT for the FC layer, and predicts a far smaller summed error than the
    /// SVD-only plan.
    @Test func aMixedPlanPicksTheFormatEachLayerWasBuiltIn() throws {
        let model = try Self.structuredModel()
        let exactCores = (24 * 6 + 9 * 6 * 10 + 10 * 40) + FCCostFormulas.tensorTrain(
            inputModes: balancedFactorization(of: 2560, into: 3), outputModes: balancedFactorization(of: 96, into: 3),
            ranks: [1, 4, 6, 1]).parameters
        let budget = exactCores * 11 / 10
        let mixed = try ModelRankPlanner.plan(model, inputShape: Self.structuredInput, rule: .budget(budget, .parameters),
                                              formats: Self.formats, keepFirstAndLast: false)
        let svd = try ModelRankPlanner.plan(model, inputShape: Self.structuredInput, rule: .budget(budget, .parameters),
                                            keepFirstAndLast: false)
        #expect(mixed.ranks["0"]?.format == .tucker)
        #expect(mixed.ranks["2"]?.format == .tensorTrain)
        #expect(mixed.report.parameters <= budget)
        #expect(mixed.report.summedRelativeError < 0.5 * svd.report.summedRelativeError)
        #expect(mixed.report.layers.map(\.format) == ["tucker", "tt"])
    }

    /// On fmnist-cnn a mixed plan never exceeds a parameter or MAC budget, and its summed predicted error is at
    /// most the SVD-only plan's under the same budget (its candidates are a superset).
    @Test(arguments: zip([300_000, 150_000, 8_000_000], [CostMeasure.parameters, .parameters, .macs]))
    func aMixedPlanMeetsTheBudgetAndBeatsSVDAlone(budget: Int, measure: CostMeasure) throws {
        let model = try Self.fashionCNN()
        let mixed = try ModelRankPlanner.plan(model, inputShape: [28, 28, 1], rule: .budget(budget, measure), formats: Self.formats)
        let svd = try ModelRankPlanner.plan(model, inputShape: [28, 28, 1], rule: .budget(budget, measure))
        let modelCost = measure == .parameters ? model.parameterCount : model.multiplyAdds(forInput: [28, 28, 1])
        let (fixed, planned) = measure == .parameters
            ? (modelCost - mixed.report.denseParameters, mixed.report.parameters)
            : (modelCost - mixed.report.denseMACs, mixed.report.macs)
        #expect(fixed + planned <= budget)
        #expect(mixed.report.summedRelativeError <= svd.report.summedRelativeError + 1e-12)
        #expect(mixed.report.layers.map(\.name) == ["3", "7", "10", "15"])
        #expect(mixed.report.method.hasSuffix("over svd, tucker, tt"))
    }

    /// The pipeline converts every layer to the format and ranks of the mixed plan, and the converted model has
    /// exactly the planned parameter count, within the budget (the structured model, where the plan mixes formats,
    /// and fmnist-cnn).
    @Test(arguments: [false, true])
    func thePipelineConvertsToThePlannedFormats(fashion: Bool) throws {
        let model = fashion ? try Self.fashionCNN() : try Self.structuredModel()
        let input = fashion ? [28, 28, 1] : Self.structuredInput
        let budget = fashion ? 150_000 : 8_000
        var settings = CompressionSettings(format: .svd, target: .ratio(1))
        settings.rankRule = .budget(budget, .parameters)
        settings.planFormats = Self.formats
        settings.keepFirstAndLast = fashion
        let plan = try ModelRankPlanner.plan(model, inputShape: input, rule: .budget(budget, .parameters),
                                             formats: Self.formats, keepFirstAndLast: fashion)
        let expected = model.parameterCount - plan.report.denseParameters + plan.report.parameters
        let (reports, records) = try CompressionPipeline.convert(model, inputShape: input, settings: settings)
        #expect(settings.formatName == "auto")
        #expect(records.count == plan.ranks.count)
        for report in reports where report.format != nil {
            let choice = try #require(plan.ranks[report.name])
            #expect(report.format == choice.format.shortName)
            #expect(report.ranks == choice.ranks)
        }
        #expect(reports.filter { $0.format != nil }.map(\.name).sorted() == plan.ranks.keys.sorted())
        #expect(model.parameterCount == expected)
        #expect(model.parameterCount <= budget)
    }

    /// Bad requests name the problem: a format the planner cannot price, a per-layer rule with several formats, and
    /// a pipeline whose single plan format is not its format.
    @Test func unsupportedRequestsAreRefused() throws {
        let model = try Self.structuredModel()
        #expect {
            _ = try ModelRankPlanner.plan(model, inputShape: Self.structuredInput, rule: .budget(8_000, .parameters),
                                          formats: [.svd, .cp], keepFirstAndLast: false)
        } throws: { "\($0)".contains("cp is not one of them") }
        #expect {
            _ = try ModelRankPlanner.plan(model, inputShape: Self.structuredInput, rule: .perLayer(.evbmf),
                                          formats: Self.formats, keepFirstAndLast: false)
        } throws: { "\($0)".contains("svd format alone") }
        var settings = CompressionSettings(format: .tucker, target: .ratio(1))
        settings.rankRule = .budget(8_000, .parameters)
        #expect {
            _ = try CompressionPipeline.convert(model, inputShape: Self.structuredInput, settings: settings)
        } throws: { "\($0)".contains("plan formats") }
    }

    /// `--format auto --ratio R`: everything not compressed plus the eligible dense weights divided by R.
    @Test func aRatioBecomesAParameterBudget() throws {
        let model = try Self.fashionCNN()
        let eligible = 32 * 32 * 9 + 64 * 32 * 9 + 64 * 64 * 9 + 3136 * 256
        #expect(try ModelRankPlanner.parameterBudget(model, inputShape: [28, 28, 1], ratio: 1) == model.parameterCount)
        #expect(try ModelRankPlanner.parameterBudget(model, inputShape: [28, 28, 1], ratio: 4)
                == model.parameterCount - eligible + eligible / 4)
        #expect(throws: CompressionError.self) { try ModelRankPlanner.parameterBudget(model, inputShape: [28, 28, 1], ratio: 0.5) }
    }
}
