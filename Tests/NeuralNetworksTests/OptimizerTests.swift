import Autodiff
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// Named parameters for an optimizer step.
private typealias Named<Scalar: TensorScalar> = [(name: String, parameter: Parameter<Scalar>)]

/// Seeded gradients for `steps` steps of a parameter with `count` scalars.
private func gradientSequence(steps: Int, count: Int, seed: UInt64) -> [[Double]] {
    var generator = SeededGenerator(seed: seed)
    return (0..<steps).map { _ in (0..<count).map { _ in generator.nextNormal() } }
}

private func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// One SGD configuration checked against the definition.
struct SGDCase: Sendable, CustomTestStringConvertible {
    var momentum: Double
    var nesterov: Bool
    var weightDecay: Double
    var testDescription: String { "μ=\(momentum) nesterov=\(nesterov) λ=\(weightDecay)" }
}

@Suite struct OptimizerTests {
    static let initial: [Double] = [0.5, -1.25, 2.0, 0.0, 3.5]
    /// 19 values: two 8-lane SIMD blocks and a tail of 3, so vectorized kernels run both paths.
    static let long: [Double] = initial + Tensor<Double>.randomNormal([14], seed: 22).scalars

    // MARK: SGD

    @Test(arguments: [
        SGDCase(momentum: 0, nesterov: false, weightDecay: 0),
        SGDCase(momentum: 0, nesterov: false, weightDecay: 0.05),
        SGDCase(momentum: 0.9, nesterov: false, weightDecay: 0),
        SGDCase(momentum: 0.9, nesterov: false, weightDecay: 0.05),
        SGDCase(momentum: 0.8, nesterov: true, weightDecay: 0),
        SGDCase(momentum: 0.8, nesterov: true, weightDecay: 0.05),
    ])
    func sgdMatchesDefinitionOverThreeSteps(_ c: SGDCase) throws {
        let lr = 0.1
        let grads = gradientSequence(steps: 3, count: Self.initial.count, seed: 11)
        let parameter = Parameter(Tensor<Double>(Self.initial))
        let optimizer = SGD<Double>(momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay)

        // Reference, straight from the definition: d = g + λp; b = d at the first step, else μb + d;
        // Nesterov: d + μb, else b; p ← p − η·d.
        var p = Self.initial
        var b = [Double](repeating: 0, count: p.count)
        for t in 0..<3 {
            parameter.gradient = Tensor(grads[t])
            optimizer.step([("w", parameter)], learningRate: lr)
            for i in p.indices {
                var d = grads[t][i] + c.weightDecay * p[i]
                if c.momentum != 0 {
                    b[i] = t == 0 ? d : c.momentum * b[i] + d
                    d = c.nesterov ? d + c.momentum * b[i] : b[i]
                }
                p[i] -= lr * d
            }
            #expect(maxDifference(parameter.value.scalars, p) <= 1e-14, "step \(t + 1)")
        }
        let state = try #require(optimizer.exportState()["w"])
        #expect(state.step == 3)
        if c.momentum != 0 {
            let buffer = try #require(state.slots["momentum_buffer"])
            #expect(maxDifference(buffer.scalars, b) <= 1e-14)
        } else {
            #expect(state.slots.isEmpty)
        }
    }

    @Test func sgdInFloatMatchesTheDoubleDefinition() {
        let lr = 0.05, mu = 0.9, wd = 1e-3
        let grads = gradientSequence(steps: 3, count: 37, seed: 5)
        let start = Tensor<Double>.randomNormal([37], seed: 6)
        let parameter = Parameter(start.converted(to: Float.self))
        let optimizer = SGD<Float>(momentum: mu, nesterov: true, weightDecay: wd)
        var p = start.converted(to: Float.self).scalars.map(Double.init)
        var b = [Double](repeating: 0, count: p.count)
        for t in 0..<3 {
            parameter.gradient = Tensor(grads[t].map(Float.init))
            optimizer.step([("w", parameter)], learningRate: lr)
            for i in p.indices {
                let d = Double(Float(grads[t][i])) + wd * p[i]
                b[i] = t == 0 ? d : mu * b[i] + d
                p[i] -= lr * (d + mu * b[i])
            }
        }
        // A few Float roundings per step on values of order 1.
        #expect(maxDifference(parameter.value.scalars.map(Double.init), p) <= 1e-5)
    }

    // MARK: Adam and AdamW

    /// Adam/AdamW from the paper's definition with bias-corrected moments m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ):
    /// p ← p − η·m̂/(√v̂ + ε); Adam adds λp to g, AdamW multiplies p by 1 − ηλ first.
    private static func adamReference(_ start: [Double], _ grads: [[Double]], lr: Double, beta1: Double,
                                      beta2: Double, epsilon: Double, weightDecay: Double, decoupled: Bool) -> [Double] {
        var p = start
        var m = [Double](repeating: 0, count: p.count), v = m
        for (index, g) in grads.enumerated() {
            let t = Double(index + 1)
            for i in p.indices {
                var gi = g[i]
                if decoupled { p[i] *= 1 - lr * weightDecay } else { gi += weightDecay * p[i] }
                m[i] = beta1 * m[i] + (1 - beta1) * gi
                v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                let mHat = m[i] / (1 - pow(beta1, t)), vHat = v[i] / (1 - pow(beta2, t))
                p[i] -= lr * mHat / (vHat.squareRoot() + epsilon)
            }
        }
        return p
    }

    @Test(arguments: [0.0, 0.1])
    func adamAndAdamWMatchTheirDefinitions(weightDecay: Double) {
        let lr = 0.01, beta1 = 0.8, beta2 = 0.95, epsilon = 1e-6
        let grads = gradientSequence(steps: 3, count: Self.long.count, seed: 21)
        for decoupled in [false, true] {
            let parameter = Parameter(Tensor<Double>(Self.long))
            let optimizer: any Optimizer<Double> = decoupled
                ? AdamW<Double>(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
                : Adam<Double>(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
            for t in 0..<3 {
                parameter.gradient = Tensor(grads[t])
                optimizer.step([("w", parameter)], learningRate: lr)
                let expected = Self.adamReference(Self.long, Array(grads[0...t]), lr: lr, beta1: beta1, beta2: beta2,
                                                  epsilon: epsilon, weightDecay: weightDecay, decoupled: decoupled)
                // The two forms of the bias correction differ in rounding only: a few ulps of |p| < 4 per step.
                #expect(maxDifference(parameter.value.scalars, expected) <= 1e-14, "decoupled \(decoupled), step \(t + 1)")
            }
        }
    }

    @Test func adamAndAdamWDifferExactlyByTheirWeightDecay() {
        let grads = gradientSequence(steps: 3, count: Self.long.count, seed: 3)
        func run(_ optimizer: any Optimizer<Double>) -> [Double] {
            let parameter = Parameter(Tensor<Double>(Self.long))
            for g in grads {
                parameter.gradient = Tensor(g)
                optimizer.step([("w", parameter)], learningRate: 0.01)
            }
            return parameter.value.scalars
        }
        // Without weight decay the rules coincide exactly.
        #expect(run(Adam<Double>(weightDecay: 0)) == run(AdamW<Double>(weightDecay: 0)))
        // With it they differ: Adam's L2 term passes through the moments, AdamW's decay does not.
        let adam = run(Adam<Double>(weightDecay: 0.5)), adamW = run(AdamW<Double>(weightDecay: 0.5))
        #expect(maxDifference(adam, adamW) > 1e-4)
        // AdamW's decay is the factor (1 − ηλ) per step on top of the undecayed Adam trajectory's increments:
        // with zero gradients the moments stay zero and only the decay acts.
        let parameter = Parameter(Tensor<Double>(Self.long))
        let decayOnly = AdamW<Double>(weightDecay: 0.5)
        for _ in 0..<3 {
            parameter.gradient = Tensor<Double>.zeros([Self.long.count])
            decayOnly.step([("w", parameter)], learningRate: 0.01)
        }
        let factor = (1 - 0.01 * 0.5) * (1 - 0.01 * 0.5) * (1 - 0.01 * 0.5)
        #expect(maxDifference(parameter.value.scalars, Self.long.map { $0 * factor }) <= 1e-14)
        // Adam with zero gradients: g' = λp feeds the moments and p moves by about η per step, not by ηλp.
        let coupled = Parameter(Tensor<Double>(Self.long))
        let adamOnly = Adam<Double>(weightDecay: 0.5)
        coupled.gradient = Tensor<Double>.zeros([Self.long.count])
        adamOnly.step([("w", coupled)], learningRate: 0.01)
        // First Adam step: m̂ = g', v̂ = g'², so p moves by η·g'/(|g'| + ε) = η·sign(p) (up to ε).
        let firstStep = Self.long.map { $0 == 0 ? 0 : $0 - 0.01 * ($0 > 0 ? 1 : -1) }
        #expect(maxDifference(coupled.value.scalars, firstStep) <= 1e-8)
    }

    @Test func adamBiasCorrectionCountsEachParametersOwnUpdates() {
        let grads = gradientSequence(steps: 3, count: 4, seed: 9)
        let a = Parameter(Tensor<Double>([1, 2, 3, 4])), b = Parameter(Tensor<Double>([-1, 0.5, 2, -3]))
        let optimizer = Adam<Double>()
        for t in 0..<3 {
            a.gradient = Tensor(grads[t])
            b.gradient = t == 0 ? nil : Tensor(grads[t].reversed())
            optimizer.step([("a", a), ("b", b)], learningRate: 0.01)
        }
        // b saw two updates, so it must equal a fresh optimizer's first two steps.
        let alone = Parameter(Tensor<Double>([-1, 0.5, 2, -3]))
        let fresh = Adam<Double>()
        for t in 1..<3 {
            alone.gradient = Tensor(grads[t].reversed())
            fresh.step([("b", alone)], learningRate: 0.01)
        }
        #expect(b.value == alone.value)
        #expect(optimizer.exportState()["a"]?.step == 3)
        #expect(optimizer.exportState()["b"]?.step == 2)
    }

    // MARK: Frozen, non-trainable and gradient-less parameters

    @Test func frozenNonTrainableAndGradientlessParametersDoNotMove() {
        let trained = Parameter(Tensor<Double>([1, 2]))
        let frozen = Parameter(Tensor<Double>([3, 4]), isFrozen: true)
        let statistic = Parameter(Tensor<Double>([5, 6]), isTrainable: false)
        let unfrozenStatistic = Parameter(Tensor<Double>([9, 9]), isTrainable: false)
        unfrozenStatistic.isFrozen = false  // still not trainable
        let untouched = Parameter(Tensor<Double>([7, 8]))
        let optimizers: [any Optimizer<Double>] = [SGD(momentum: 0.9, weightDecay: 0.1), Adam(weightDecay: 0.1), AdamW()]
        for optimizer in optimizers {
            for parameter in [trained, frozen, statistic, unfrozenStatistic] { parameter.gradient = Tensor([0.5, -0.5]) }
            untouched.gradient = nil
            let before = [trained, frozen, statistic, unfrozenStatistic, untouched].map(\.value)
            optimizer.step([("trained", trained), ("frozen", frozen), ("statistic", statistic),
                            ("unfrozenStatistic", unfrozenStatistic), ("untouched", untouched)], learningRate: 0.1)
            #expect(trained.value != before[0])
            #expect(frozen.value == before[1])
            #expect(statistic.value == before[2])
            #expect(unfrozenStatistic.value == before[3])
            #expect(untouched.value == before[4])
            #expect(Set(optimizer.exportState().keys) == ["trained"])
        }
    }

    @Test func stepAcceptsALayer() {
        let model = NamedParameterModel<Double>.standard(seed: 1)
        for (_, parameter) in model.namedParameters() { parameter.gradient = .ones(parameter.value.shape) }
        let before = model.namedParameters().map(\.parameter.value)
        SGD<Double>().step(model, learningRate: 0.25)
        for ((name, parameter), old) in zip(model.namedParameters(), before) {
            let expected = parameter.isTrainable ? old.scalars.map { $0 - 0.25 } : old.scalars
            #expect(parameter.value.scalars == expected, "\(name)")
        }
    }

    // MARK: State export and import

    @Test(arguments: ["sgd", "adam", "adamw"])
    func importedStateContinuesExactly(name: String) throws {
        let configuration: OptimizerConfiguration
        switch name {
        case "sgd": configuration = SGD<Double>(momentum: 0.9, nesterov: true, weightDecay: 0.01).configuration
        case "adam": configuration = Adam<Double>(weightDecay: 0.01).configuration
        default: configuration = AdamW<Double>().configuration
        }
        let grads = gradientSequence(steps: 3, count: 15, seed: 17)
        let start = Tensor<Double>.randomNormal([3, 5], seed: 18)
        let original = try configuration.makeOptimizer(Double.self)
        #expect(original.configuration == configuration)
        let p = Parameter(start)
        for g in grads.prefix(2) {
            p.gradient = Tensor(shape: [3, 5], scalars: g)
            original.step([("w", p)], learningRate: 0.05)
        }
        let resumed = try configuration.makeOptimizer(Double.self)
        try resumed.importState(original.exportState())
        #expect(resumed.exportState() == original.exportState())
        let q = Parameter(p.value)
        p.gradient = Tensor(shape: [3, 5], scalars: grads[2])
        q.gradient = Tensor(shape: [3, 5], scalars: grads[2])
        original.step([("w", p)], learningRate: 0.05)
        resumed.step([("w", q)], learningRate: 0.05)
        #expect(p.value == q.value)
        #expect(resumed.exportState() == original.exportState())
    }

    @Test func importRejectsStateOfAnotherConfiguration() {
        let adam = Adam<Double>()
        #expect(throws: CheckpointError.self) {
            try adam.importState(["w": ParameterState(step: 1, slots: ["exp_avg": .zeros([2])])])
        }
        #expect(throws: CheckpointError.self) {
            try adam.importState(["w": ParameterState(step: 1, slots: ["exp_avg": .zeros([2]), "exp_avg_sq": .zeros([3])])])
        }
        #expect(throws: CheckpointError.self) {
            try SGD<Double>().importState(["w": ParameterState(step: 1, slots: ["momentum_buffer": .zeros([2])])])
        }
        #expect(throws: CheckpointError.self) {
            try SGD<Double>(momentum: 0.5).importState(["w": ParameterState(step: -1, slots: ["momentum_buffer": .zeros([2])])])
        }
    }

    @Test func configurationsRebuildOptimizersAndRejectBadOnes() throws {
        let configurations = [SGD<Float>(momentum: 0.9, nesterov: true, weightDecay: 5e-4).configuration,
                              Adam<Float>(beta1: 0.85, weightDecay: 0.1).configuration,
                              AdamW<Float>(epsilon: 1e-7, weightDecay: 0.05).configuration]
        for configuration in configurations {
            let data = try JSONEncoder().encode(configuration)
            let decoded = try JSONDecoder().decode(OptimizerConfiguration.self, from: data)
            #expect(try decoded.makeOptimizer(Float.self).configuration == configuration)
        }
        #expect(throws: CheckpointError.self) {
            try OptimizerConfiguration(name: "lion", hyperparameters: [:]).makeOptimizer(Float.self)
        }
        #expect(throws: CheckpointError.self) {
            try OptimizerConfiguration(name: "sgd", hyperparameters: ["betas": 0.9]).makeOptimizer(Float.self)
        }
        #expect(throws: CheckpointError.self) {
            try OptimizerConfiguration(name: "adam", hyperparameters: ["beta1": 1]).makeOptimizer(Float.self)
        }
        #expect(throws: CheckpointError.self) {
            try OptimizerConfiguration(name: "sgd", hyperparameters: ["nesterov": 1, "momentum": 0]).makeOptimizer(Float.self)
        }
    }

    // MARK: Gradient clipping

    @Test func globalNormClippingScalesToTheMaximumExactly() {
        // Gradients (3, 4) and (12): global norm √(9 + 16 + 144) = 13.
        let a = Parameter(Tensor<Double>([1, 1])), b = Parameter(Tensor<Double>([1]))
        a.gradient = Tensor([3, 4])
        b.gradient = Tensor([12])
        let named: Named<Double> = [("a", a), ("b", b)]
        #expect(GradientClipping.globalNorm(named) == 13)
        #expect(GradientClipping.clipByGlobalNorm(named, maxNorm: 6.5) == 13)
        // The factor is 6.5 / 13 = 0.5, exact in binary.
        #expect(a.gradient == Tensor([1.5, 2]))
        #expect(b.gradient == Tensor([6]))
        // Below the maximum nothing changes.
        #expect(GradientClipping.clipByGlobalNorm(named, maxNorm: 100) == 6.5)
        #expect(a.gradient == Tensor([1.5, 2]))
    }

    @Test(arguments: [0.1, 1.0, 3.0])
    func clippedRandomGradientsHaveTheMaximumNormAndKeepTheirDirection(maxNorm: Double) {
        let model = NamedParameterModel<Double>.standard(seed: 4)
        let frozen = model.namedParameters().first { !$0.parameter.isTrainable }!.parameter
        for (index, (_, parameter)) in model.namedParameters().enumerated() {
            parameter.gradient = Tensor.randomNormal(parameter.value.shape, standardDeviation: 2, seed: UInt64(100 + index))
        }
        let before = model.namedParameters().map(\.parameter.gradient!)
        let norm = GradientClipping.clipByGlobalNorm(model, maxNorm: maxNorm)
        let trainable = model.namedParameters().filter(\.parameter.isTrainable)
        let original = zip(model.namedParameters(), before).filter { $0.0.parameter.isTrainable }
            .map { $0.1.squaredNorm() }.reduce(0, +).squareRoot()
        #expect(abs(norm - original) <= 1e-14 * original)
        #expect(norm > maxNorm)  // 18 trainable scalars of standard deviation 2: norm ≈ 2√18 ≈ 8.5
        // Rounding: the factor, each product, and a 15-term sum of squares: well within 16 ulps.
        #expect(abs(GradientClipping.globalNorm(trainable) - maxNorm) <= 16 * Double.ulpOfOne * maxNorm)
        for ((_, parameter), old) in zip(model.namedParameters(), before) where parameter.isTrainable {
            let scaled = old.scalars.map { $0 * maxNorm / norm }
            // Every clipped element is at most maxNorm in magnitude; two roundings apart.
            #expect(maxDifference(parameter.gradient!.scalars, scaled) <= 4 * Double.ulpOfOne * maxNorm)
        }
        // The non-trainable statistic's gradient is neither counted nor scaled.
        #expect(frozen.gradient == before[2])
    }

    @Test func nonFiniteNormLeavesGradientsAlone() {
        let a = Parameter(Tensor<Float>([1, 1]))
        a.gradient = Tensor([.infinity, 1])
        #expect(GradientClipping.clipByGlobalNorm([("a", a)], maxNorm: 1).isInfinite)
        #expect(a.gradient == Tensor([.infinity, 1]))
    }

    @Test func valueClippingClampsEachElement() {
        let a = Parameter(Tensor<Float>([0, 0, 0, 0, 0]))
        a.gradient = Tensor([-3, -0.5, 0.25, 2, .nan])
        GradientClipping.clipByValue([("a", a)], limit: 1)
        let clipped = a.gradient!.scalars
        #expect(Array(clipped.prefix(4)) == [-1, -0.5, 0.25, 1])
        #expect(clipped[4].isNaN)
    }
}

/// A small model: two trainable layers and a non-trainable statistic, generic over the precision.
final class NamedParameterModel<Scalar: TensorScalar>: Layer {
    var items: [(name: String, parameter: Parameter<Scalar>)]

    init(_ items: [(name: String, parameter: Parameter<Scalar>)]) { self.items = items }

    /// `conv.weight` [4, 3], `conv.bias` [3], `bn.running_mean` [3] (not trainable), `fc.weight` [3, 2], seeded.
    /// (12 scalars in `conv.weight` run both the SIMD blocks and the tail of the vectorized kernels.)
    static func standard(seed: UInt64) -> NamedParameterModel {
        var generator = SeededGenerator(seed: seed)
        func random(_ shape: [Int]) -> Tensor<Scalar> { .randomNormal(shape, generator: &generator) }
        return NamedParameterModel([
            ("conv.weight", Parameter(random([4, 3]))),
            ("conv.bias", Parameter(random([3]))),
            ("bn.running_mean", Parameter(random([3]), isTrainable: false)),
            ("fc.weight", Parameter(random([3, 2]))),
        ])
    }

    func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> { input }

    func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        for (name, parameter) in items { visitor(prefix + name, parameter) }
    }
}
