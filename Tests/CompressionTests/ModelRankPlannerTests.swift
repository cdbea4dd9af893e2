import Compression
import NeuralNetworks
import Testing
import TensorCore

@Suite struct ModelRankPlannerTests {
    static func model() throws -> Sequential<Float> {
        try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10, seed: 0, as: Float.self).0
            as! Sequential<Float>
    }

    /// A whole-model budget is met (never over) once the untouched parts are counted, and the compressed model built
    /// from the plan has exactly the planned parameter count.
    @Test(arguments: [300_000, 150_000])
    func aParameterBudgetIsMetByThePlanAndByTheCompressedModel(budget: Int) throws {
        let model = try Self.model()
        let plan = try ModelRankPlanner.plan(model, inputShape: [28, 28, 1], rule: .budget(budget, .parameters))
        let fixed = model.parameterCount - plan.report.denseParameters
        #expect(fixed + plan.report.parameters <= budget)
        var settings = CompressionSettings(format: .svd, target: .ratio(1))
        settings.rankRule = .budget(budget, .parameters)
        let (reports, _) = try CompressionPipeline.convert(model, inputShape: [28, 28, 1], settings: settings)
        #expect(model.parameterCount <= budget)
        #expect(reports.filter { $0.format != nil }.map(\.name).sorted() == plan.ranks.keys.sorted())
    }

    /// A budget below rank 1 everywhere is refused with the minimum in the message.
    @Test func aBudgetBelowTheSmallestNetworkNamesTheMinimum() throws {
        let model = try Self.model()
        #expect {
            _ = try ModelRankPlanner.plan(model, inputShape: [28, 28, 1], rule: .budget(5_000, .parameters))
        } throws: { error in
            "\(error)".contains("at least") && "\(error)".contains("network")
        }
    }

    /// Per-layer rules: the energy rule's predicted error is the √(1 − kept energy) bound, and EVBMF on a layer
    /// built as rank 3 plus small noise finds rank 3.
    @Test func perLayerRulesFollowEachSpectrum() throws {
        var generator = SeededGenerator(seed: 7)
        let low = Tensor<Float>.matmul(Tensor.randomNormal([64, 3], generator: &generator),
                                       Tensor.randomNormal([3, 48], generator: &generator))
        let weight = low + Tensor.randomNormal([64, 48], standardDeviation: 0.01, generator: &generator)
        let model = Sequential<Float>(Linear(weight: Tensor.randomNormal([16, 64], generator: &generator)),
                                      Linear(weight: weight), Linear(weight: Tensor.randomNormal([48, 4], generator: &generator)))
        let evbmf = try ModelRankPlanner.plan(model, inputShape: [16], rule: .perLayer(.evbmf))
        #expect(evbmf.ranks == ["1": ModelRankPlan.Choice(format: .svd, ranks: [3])])
        let energy = try ModelRankPlanner.plan(model, inputShape: [16], rule: .perLayer(.energy(0.9)))
        #expect(try #require(energy.report.layers.first).predictedRelativeError <= (1 - 0.9).squareRoot() + 1e-9)
    }
}
