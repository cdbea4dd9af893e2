import Autodiff
import Compression
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// A random orthogonal n×n matrix (Q of a Gaussian matrix's QR).
private func orthogonal(_ n: Int, seed: UInt64) throws -> Tensor<Double> {
    try Tensor<Double>.randomNormal([n, n], seed: seed).qr().q
}

/// Q1·diag(σ)·Q2ᵀ with given singular values (m = n = σ.count).
private func matrix(singularValues sigma: [Double], seed: UInt64) throws -> Tensor<Double> {
    let n = sigma.count
    return Tensor.matmul(Tensor.matmul(try orthogonal(n, seed: seed), Tensor.diagonal(Tensor(sigma))),
                         try orthogonal(n, seed: seed &+ 1), transposeB: true)
}

/// ½‖X − Y‖_F² + τ‖X‖_*, the function SVT_τ(Y) minimizes.
private func proximalObjective(_ x: Tensor<Double>, _ y: Tensor<Double>, _ tau: Double) throws -> Double {
    0.5 * (x - y).squaredNorm() + tau * (try x.singularValues().sum())
}

/// A small MLP `[N, 1, 1, 8]` → 3 classes with three Linear layers (the first one is not a slot).
private func mlp(seed: UInt64) -> Sequential<Double> {
    var generator = SeededGenerator(seed: seed)
    return Sequential<Double>([Flatten<Double>(),
                               Linear<Double>(inputFeatures: 8, outputFeatures: 16, generator: &generator), ReLU<Double>(),
                               Linear<Double>(inputFeatures: 16, outputFeatures: 12, generator: &generator), ReLU<Double>(),
                               Linear<Double>(inputFeatures: 12, outputFeatures: 3, generator: &generator)])
}

/// Three Gaussian clusters in ℝ⁸.
private func clusters(count: Int, seed: UInt64) -> Dataset {
    let centers = Tensor<Float>.randomNormal([3, 8], standardDeviation: 2, seed: seed)
    let noise = Tensor<Float>.randomNormal([count, 8], seed: seed &+ 1)
    let labels = (0..<count).map { $0 % 3 }
    var images = noise.scalars
    for (row, label) in labels.enumerated() {
        for k in 0..<8 { images[row * 8 + k] += centers[label, k] }
    }
    return Dataset(images: Tensor(shape: [count, 1, 1, 8], scalars: images), labels: labels, classCount: 3)
}

@Suite struct SingularValueThresholdingTests {
    @Test func diagonal() throws {
        let y = Tensor<Double>.diagonal(Tensor([5, 3, 1, 0.5]))
        let (x, rank) = try singularValueThresholding(y, threshold: 1)
        #expect(rank == 2)
        #expect(x.maxAbsoluteDifference(to: Tensor.diagonal(Tensor([4, 2, 0, 0]))) < 1e-12)
    }

    @Test func rotated() throws {
        let sigma = [4.0, 2.5, 1.2, 0.7, 0.1]
        let y = try matrix(singularValues: sigma, seed: 7)
        let (x, rank) = try singularValueThresholding(y, threshold: 1)
        let expected = try matrix(singularValues: sigma.map { max($0 - 1, 0) }, seed: 7)
        #expect(rank == 3)
        #expect(x.maxAbsoluteDifference(to: expected) < 1e-12)
        // It is the proximal point: no random perturbation does better on ½‖X − Y‖² + τ‖X‖_*.
        let best = try proximalObjective(x, y, 1)
        for seed in 0..<10 as Range<UInt64> {
            let other = x + Tensor<Double>.randomNormal([5, 5], standardDeviation: 0.05, seed: 100 + seed)
            #expect(try proximalObjective(other, y, 1) > best)
        }
    }

    /// The objective's proximal step is SVT with threshold η·λ, on a Linear weight and a convolution kernel
    /// (O×(C·KH·KW) view).
    @Test func proximalStepOfObjective() throws {
        var generator = SeededGenerator(seed: 1)
        let conv = Conv2D<Double>(inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, generator: &generator)
        let model = Sequential<Double>([Conv2D<Double>(inChannels: 1, outChannels: 2, kernelSize: 1, generator: &generator),
                                        conv, Flatten<Double>(),
                                        Linear<Double>(inputFeatures: 5, outputFeatures: 5, generator: &generator)])
        let slots = LayerSlot<Double>.find(in: model)
        #expect(slots.map(\.name) == ["1", "3"])
        let weight = try matrix(singularValues: [3, 2, 1, 0.5, 0.2], seed: 3)
        slots[1].setWeightMatrix(weight)
        let kernel = conv.weight.value.reshaped([4, 18])
        let objective = try NuclearNormProximal(slots: slots, strength: 2, interval: 1)
        objective.afterStep(step: 0, learningRate: 0.4)   // τ = 0.8
        #expect(slots[1].weightMatrix!.maxAbsoluteDifference(to: try singularValueThresholding(weight, threshold: 0.8).matrix) < 1e-12)
        #expect(conv.weight.value.reshaped([4, 18]).maxAbsoluteDifference(to: try singularValueThresholding(kernel, threshold: 0.8).matrix) < 1e-12)
        #expect(objective.ranks[1] == 3)
        #expect(throws: CompressionError.self) { try NuclearNormProximal(slots: slots, strength: -1) }
    }

    @Test func nuclearNormGradient() throws {
        let a = Tensor<Double>.randomNormal([4, 3], seed: 9)
        let result = checkGradients(at: [a]) { v in try! nuclearNorm(v[0]) }
        #expect(result.maxRelativeError < 1e-7)
        #expect(abs(try nuclearNorm(Variable(constant: a)).value.scalar - a.singularValues().sum()) < 1e-12)
    }
}

@Suite struct SVDLayerTests {
    @Test func svdLinearMatchesLinearAndDifferentiates() throws {
        var generator = SeededGenerator(seed: 2)
        let dense = Linear<Double>(inputFeatures: 5, outputFeatures: 3, generator: &generator)
        let layer = try SVDLinear(converting: dense)
        let x = Tensor<Double>.randomNormal([4, 5], seed: 3)
        #expect(layer(Variable(constant: x), mode: .inference).value
            .maxAbsoluteDifference(to: dense(Variable(constant: x), mode: .inference).value) < 1e-12)
        #expect(layer.orthogonalityPenalty(Variable(constant: x)).value.scalar < 1e-20)
        let result = checkGradients(at: [x, layer.u.value, layer.s.value, layer.vt.value]) { v in
            linear(linear(v[0], weight: v[1]) * v[2], weight: v[3])
        }
        #expect(result.maxRelativeError < 1e-7)
    }

    @Test func svdConvMatchesConvAndTruncates() throws {
        var generator = SeededGenerator(seed: 4)
        let conv = Conv2D<Double>(inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1, generator: &generator)
        let layer = try SVDConv2D(converting: conv)
        let x = Variable(constant: Tensor<Double>.randomNormal([2, 7, 7, 3], seed: 5))
        let expected = conv(x, mode: .inference).value
        #expect(layer(x, mode: .inference).value.maxAbsoluteDifference(to: expected) < 1e-12)
        #expect(layer.outputShape(forInput: [7, 7, 3]) == conv.outputShape(forInput: [7, 7, 3]))
        // Truncation at full energy reproduces the convolution as conv K×K → R channels then a per-pixel Linear.
        let model = Sequential<Double>([Linear<Double>(inputFeatures: 3, outputFeatures: 3, generator: &generator), layer])
        let report = try LowRankTruncation.truncate(LayerSlot.find(in: model), selection: .energy(1))
        #expect(report.layers.count == 1 && report.layers[0].rank == 4 && report.layers[0].keptDense)
        #expect(model.layers[1] is Conv2D<Double>)
        #expect(model.layers[1](x, mode: .inference).value.maxAbsoluteDifference(to: expected) < 1e-12)
    }

    /// Dense layers of a known low rank truncate exactly into smaller factorized layers.
    @Test func truncationOfLowRankDenseLayers() throws {
        var generator = SeededGenerator(seed: 6)
        let conv = Conv2D<Double>(inChannels: 4, outChannels: 8, kernelSize: 3, padding: 1, bias: true, generator: &generator)
        let lowRankKernel = Tensor.matmul(Tensor<Double>.randomNormal([8, 2], seed: 1), Tensor<Double>.randomNormal([2, 36], seed: 2))
        conv.weight.value = lowRankKernel.reshaped([8, 4, 3, 3])
        let fc = Linear<Double>(inputFeatures: 10, outputFeatures: 9, generator: &generator)
        fc.weight.value = Tensor.matmul(Tensor<Double>.randomNormal([10, 3], seed: 3), Tensor<Double>.randomNormal([3, 9], seed: 4))
        let model = Sequential<Double>([Conv2D<Double>(inChannels: 1, outChannels: 4, kernelSize: 1, generator: &generator),
                                        conv, Flatten<Double>(), Linear<Double>(inputFeatures: 200, outputFeatures: 10, generator: &generator),
                                        fc])
        let x = Variable(constant: Tensor<Double>.randomNormal([3, 5, 5, 1], seed: 8))
        let before = model(x, mode: .inference).value
        let report = try LowRankTruncation.truncate(LayerSlot.find(in: model), selection: .measure(.l0(tolerance: 0), scale: 1e-9))
        #expect(report.layers.map(\.rank) == [2, 10, 3])
        #expect(report.layers.map(\.keptDense) == [false, true, false])   // 10·(200 + 10) ≥ 200·10
        #expect(model.layers[1] is Sequential<Double>)
        #expect(model.layers[3] is Linear<Double>)
        #expect(model.layers[4] is FactorizedLinear<Double>)
        #expect(model(x, mode: .inference).value.maxAbsoluteDifference(to: before) < 1e-9)
        let expectedRatio = Double(288 + 2000 + 90) / Double(2 * (8 + 36) + 2000 + 3 * 19)
        #expect(abs(report.compressionRatio - expectedRatio) < 1e-12)
    }

    /// Truncating with re-estimated batch-norm statistics changes them; undoing restores layers and statistics.
    @Test func truncationRecalibratesAndUndoRestoresBatchNormStatistics() throws {
        var generator = SeededGenerator(seed: 12)
        let norm = BatchNorm<Double>(channels: 12)
        let model = Sequential<Double>([Flatten<Double>(),
                                        Linear<Double>(inputFeatures: 8, outputFeatures: 16, generator: &generator), ReLU<Double>(),
                                        Linear<Double>(inputFeatures: 16, outputFeatures: 12, generator: &generator), norm,
                                        ReLU<Double>(), Linear<Double>(inputFeatures: 12, outputFeatures: 3, generator: &generator)])
        let data = clusters(count: 64, seed: 13)
        var all = CompressionAwareSettings(method: .nuclear, strength: 0)
        all.keepClassifierDense = false
        #expect(try CompressionAwareTraining(model: model, settings: all).slots.map(\.name) == ["3", "6"])
        let run = try CompressionAwareTraining(model: model, settings: CompressionAwareSettings(method: .nuclear, strength: 0))
        #expect(run.slots.map(\.name) == ["3"])   // neither the first layer nor the classifier
        let trained = (norm.runningMean.value, norm.runningVariance.value)
        let layers = run.slots.map { ObjectIdentifier($0.layer as AnyObject) }
        _ = try run.truncate(selection: .fixed(2), recalibratingOn: data)
        #expect(norm.runningMean.value.maxAbsoluteDifference(to: trained.0) > 1e-3)
        #expect(run.slots.map { ObjectIdentifier($0.layer as AnyObject) } != layers)
        run.undoTruncation()
        #expect(norm.runningMean.value == trained.0 && norm.runningVariance.value == trained.1)
        #expect(run.slots.map { ObjectIdentifier($0.layer as AnyObject) } == layers)
    }

    /// A short SVD training run: U and V stay near-orthonormal (measured), and the regularized measure falls.
    @Test func svdTrainingKeepsOrthogonalityAndSparsifies() throws {
        let data = clusters(count: 240, seed: 1)
        for measure in [SparsityMeasure.effectiveRank, .l1, .hoyer] {
            let model = mlp(seed: 3)
            var settings = CompressionAwareSettings(method: .svdTraining, strength: 0.05)
            settings.measure = measure
            settings.orthogonality = 30
            let run = try CompressionAwareTraining(model: model, settings: settings)
            let objective = try #require(run.objective as? SVDTrainingObjective<Double>)
            func measured() throws -> Double {
                try objective.layers.reduce(0) { $0 + (try measure.value($1.s.value.scalars.map(abs))) }
            }
            let start = try measured()
            var configuration = TrainingConfiguration(epochs: 20)
            configuration.batchSize = 24
            configuration.progress = .silent
            let trainer = Trainer(model: model, optimizer: SGD<Double>(momentum: 0.9), configuration: configuration)
            trainer.objective = run.objective
            try trainer.fit(training: data)
            let end = try measured()
            #expect(measure.higherIsSparser ? end > start : end < start, "\(measure): \(start) → \(end)")
            #expect(objective.orthogonalityError < 0.1, "\(measure): ‖UᵀU − I‖ reached \(objective.orthogonalityError)")
            let accuracy = Trainer.evaluate(model, on: data).accuracy
            #expect(accuracy > 0.8)
            let report = try run.truncate(selection: .energy(0.99))
            #expect(report.layers.count == 1)   // the classifier stays dense
        }
    }
}

@Suite struct CompressionAwareMethodTests {
    @Test func trainedRankPruningSubstitutes() throws {
        let model = mlp(seed: 4)
        let slots = LayerSlot<Double>.find(in: model)
        slots[0].setWeightMatrix(Tensor.concatenate([try matrix(singularValues: [3, 2, 0.1, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01], seed: 2),
                                                     Tensor.zeros([4, 12])], axis: 0))
        let trp = try TrainedRankPruning(slots: slots, strength: 0, energy: 0.95, period: 2)
        trp.afterStep(step: 0, learningRate: 0.1)
        #expect(trp.ranks[0] == 12)   // not a substitution step
        trp.afterStep(step: 1, learningRate: 0.1)
        #expect(trp.ranks[0] == 2)
        #expect(try slots[0].weightMatrix!.singularValues().scalars[2] < 1e-12)
    }

    @Test func lcChoosesRankByCost() throws {
        let model = mlp(seed: 5)
        let slots = LayerSlot<Double>.find(in: model)
        let free = try LCAlgorithm(slots: slots, strength: 0)
        #expect(free.ranks == [12, 3])
        let costly = try LCAlgorithm(slots: slots, strength: 1)
        #expect(costly.ranks == [1, 1])
        costly.finish()
        #expect(try slots[0].weightMatrix!.singularValues().scalars[1] < 1e-12)
    }

    @Test func frankWolfeOracleAndFeasibility() throws {
        let model = mlp(seed: 6)
        let slots = LayerSlot<Double>.find(in: model)
        let fw = try StochasticFrankWolfe(slots: slots, radiusScale: 0.5)
        // The iterate starts outside the ball (ρ < 1) and, as a convex combination with vertices, approaches it:
        // the nuclear norm cannot grow past max(‖W⁽⁰⁾‖_*, τ).
        for step in 0..<30 {
            _ = fw.loss(task: Variable(constant: Tensor(scalar: 0)), logits: Variable(constant: Tensor(scalar: 0)),
                        images: Tensor(scalar: 0), labels: [])
            for slot in slots { slot.denseWeight!.gradient = Tensor.randomNormal(slot.denseWeight!.value.shape, seed: UInt64(step)) }
            fw.afterStep(step: step, learningRate: 0.5)
        }
        for (slot, radius) in zip(slots, fw.radii) {
            #expect(try slot.weightMatrix!.singularValues().sum() < 2 * radius)
        }
        // The vertex of a diagonal gradient is −τ·e_1e_1ᵀ at its largest entry.
        let (vertex, norm) = try fw.linearMinimizationOracle(Tensor.diagonal(Tensor([1.0, 3, 0.5])), radius: 2)
        #expect(vertex.maxAbsoluteDifference(to: Tensor(shape: [3, 3], scalars: [0, 0, 0, 0, -2, 0, 0, 0, 0])) < 1e-9)
        #expect(abs(norm - (10.25).squareRoot()) < 1e-12)
    }
}
