import Autodiff
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// A fresh checkpoint path in the temporary folder, removed when `body` ends.
private func withCheckpointPath<R>(_ body: (String) throws -> R) throws -> R {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("lowrank-trainer-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Three classes of 8×8 grey images: class k has a bright 3×3 square in the k-th of three positions, plus
/// Gaussian noise of standard deviation 0.3, so a small network learns it in a few epochs.
func squaresDataset(count: Int, seed: UInt64) -> Dataset {
    var generator = SeededGenerator(seed: seed)
    var labels: [Int] = []
    let images = Tensor<Float>(shape: [count, 8, 8, 1]) { out in
        for n in 0..<count {
            let label = n % 3
            labels.append(label)
            for p in 0..<64 { out[n * 64 + p] = Float(0.3 * generator.nextNormal()) }
            let tops: [Int] = [0, 2, 5], lefts: [Int] = [0, 4, 1]
            let corner: Int = n * 64 + tops[label] * 8 + lefts[label]
            for dy in 0..<3 {
                for dx in 0..<3 { out[corner + dy * 8 + dx] += 1.5 }
            }
        }
    }
    return Dataset(name: "squares", images: images, labels: labels, classCount: 3)
}

/// conv3×3(1→4)–BN–ReLU–maxpool 2–flatten–linear(64→3), initialized from `seed`.
func tinyModel(seed: UInt64) -> Sequential<Float> {
    var generator = SeededGenerator(seed: seed)
    return Sequential<Float>(
        Conv2D<Float>(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1, bias: false, generator: &generator),
        BatchNorm<Float>(channels: 4), ReLU<Float>(), MaxPool2D<Float>(kernelSize: 2), Flatten<Float>(),
        Linear<Float>(inputFeatures: 64, outputFeatures: 3, generator: &generator))
}

private func tinyConfiguration(epochs: Int) -> TrainingConfiguration {
    var configuration = TrainingConfiguration(epochs: epochs)
    configuration.batchSize = 16
    configuration.schedule = .constant(0.05)
    configuration.seed = 5
    configuration.progress = .silent
    configuration.prefetch = 1
    return configuration
}

/// Every parameter's scalars, by name.
private func snapshot<L: Layer>(_ model: L) -> [String: [L.Scalar]] {
    Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.value.scalars) })
}

/// A layer that records its scale only through its input's tape (not `Variable.watching`): y = x·s.
private final class TapeReadingScale: Layer {
    let scale = Parameter(Tensor<Float>([1.5]))
    func callAsFunction(_ input: Variable<Float>, mode: ForwardMode) -> Variable<Float> {
        let s = input.tape?.watch(scale) ?? Variable(constant: scale.value)
        return input * s
    }
    func visitParameters(prefix: String, _ visitor: (String, Parameter<Float>) -> Void) { visitor(prefix + "scale", scale) }
}

@Suite struct TrainerTests {
    @Test func constantImagesRecordTheSameGradients() throws {
        // Inside withGradientTape a network fed constant images records every parameter, with the gradients of
        // the network fed images on the tape.
        let data = squaresDataset(count: 16, seed: 20)
        let model = tinyModel(seed: 21)
        func gradients(constant: Bool) -> [String: [Float]] {
            for (_, parameter) in model.namedParameters() { parameter.gradient = nil }
            let tape = Tape<Float>()
            let logits = constant
                ? withGradientTape(tape) { model(Variable(constant: data.images), mode: .training) }
                : model(tape.variable(data.images), mode: .training)
            tape.gradients(of: crossEntropy(logits: logits, labels: data.labels))
            return Dictionary(uniqueKeysWithValues: model.namedParameters().compactMap { item in
                item.parameter.gradient.map { (item.name, $0.scalars) }
            })
        }
        let viaContext = gradients(constant: true), viaInput = gradients(constant: false)
        #expect(viaContext.count == 5 && viaContext == viaInput)
        // Outside withGradientTape, constants record nothing.
        #expect(!model(Variable(constant: data.images), mode: .training).isRecorded)
    }

    @Test func aLayerReadingItsInputsTapeStillTrains() throws {
        // The trainer notices that TapeReadingScale records nothing for constant images and feeds them on the tape.
        let first = TapeReadingScale()
        var generator = SeededGenerator(seed: 22)
        let model = Sequential<Float>(first, Flatten<Float>(),
                                      Linear<Float>(inputFeatures: 64, outputFeatures: 3, generator: &generator))
        let trainer = Trainer(model: model, optimizer: SGD<Float>(), configuration: tinyConfiguration(epochs: 1))
        try trainer.fit(training: squaresDataset(count: 32, seed: 23))
        #expect(first.scale.value.scalar != 1.5)
    }

    @Test func lossFallsOnALearnableProblem() throws {
        let train = squaresDataset(count: 96, seed: 1), test = squaresDataset(count: 48, seed: 2)
        let model = tinyModel(seed: 3)
        let before = Trainer<Float>.evaluate(model, on: test)
        let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: tinyConfiguration(epochs: 6))
        let summary = try trainer.fit(training: train, test: test)
        #expect(summary.epochs.count == 6 && summary.epochs.allSatisfy { $0.steps == 6 })
        #expect(trainer.state.epoch == 6 && trainer.state.step == 36)
        let after = try #require(summary.epochs.last?.test)
        // Chance is 1/3 and the untrained loss about ln 3; the learned model separates the classes.
        #expect(after.loss < before.loss / 2, "test loss \(before.loss) → \(after.loss)")
        #expect(after.accuracy >= 0.9, "test accuracy \(after.accuracy)")
        #expect(summary.epochs.last!.trainLoss < summary.epochs.first!.trainLoss)
    }

    @Test func evaluationCountsArgmaxHits() {
        let data = squaresDataset(count: 30, seed: 4)
        let model = tinyModel(seed: 5)
        let evaluation = Trainer<Float>.evaluate(model, on: data, batchSize: 7)
        let logits = model(Variable(constant: data.images), mode: .inference).value
        let predicted = logits.argmax(axis: 1)
        let correct = zip(predicted, data.labels).filter { $0 == $1 }.count
        #expect(evaluation.correct == correct && evaluation.count == 30)
        #expect(evaluation.accuracy == Double(correct) / 30)
        let loss = Double(crossEntropy(logits: Variable(constant: logits), labels: data.labels).value.scalar)
        #expect(abs(evaluation.loss - loss) < 1e-5)
    }

    @Test func sameSeedGivesIdenticalWeights() throws {
        let train = squaresDataset(count: 40, seed: 6)
        var results: [[String: [Float]]] = []
        var losses: [[Double]] = []
        for _ in 0..<2 {
            let model = tinyModel(seed: 7)
            let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: tinyConfiguration(epochs: 2))
            let summary = try trainer.fit(training: train)
            results.append(snapshot(model))
            losses.append(summary.epochs.map(\.trainLoss))
        }
        #expect(results[0] == results[1])
        #expect(losses[0] == losses[1])
        // A different data seed gives a different run.
        let model = tinyModel(seed: 7)
        var other = tinyConfiguration(epochs: 2)
        other.seed = 6
        try Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: other).fit(training: train)
        #expect(snapshot(model) != results[0])
    }

    @Test(arguments: ["sgd", "adam"])
    func resumingGivesTheWeightsOfAnUninterruptedRun(_ optimizerName: String) throws {
        func optimizer() -> any Optimizer<Float> {
            optimizerName == "sgd" ? SGD<Float>(momentum: 0.9, nesterov: true) : Adam<Float>()
        }
        let train = squaresDataset(count: 40, seed: 8), test = squaresDataset(count: 12, seed: 9)
        var schedule = tinyConfiguration(epochs: 4)
        schedule.schedule = .cosine(initial: 0.05, floor: 0.001, steps: 12)
        let straight = tinyModel(seed: 10)
        let reference = try Trainer(model: straight, optimizer: optimizer(), configuration: schedule)
            .fit(training: train, test: test)
        try withCheckpointPath { path in
            var firstHalf = schedule
            firstHalf.epochs = 2
            firstHalf.checkpointPath = path
            try Trainer(model: tinyModel(seed: 10), optimizer: optimizer(), configuration: firstHalf).fit(training: train)
            // A new process would rebuild the model from scratch (any initialization) and resume.
            let resumed = tinyModel(seed: 99)
            var secondHalf = schedule
            secondHalf.schedule = .constant(1)  // replaced by the checkpoint's schedule
            secondHalf.seed = 1234               // replaced by the checkpoint's seed
            let trainer = Trainer(model: resumed, optimizer: optimizer(), configuration: secondHalf)
            try trainer.resume(from: Checkpoint(contentsOf: path))
            #expect(trainer.state.epoch == 2 && trainer.state.step == 6)
            let summary = try trainer.fit(training: train, test: test)
            #expect(summary.epochs.map(\.epoch) == [3, 4])
            #expect(snapshot(resumed) == snapshot(straight))
            #expect(summary.epochs.map(\.trainLoss) == reference.epochs.suffix(2).map(\.trainLoss))
            #expect(summary.epochs.map(\.test) == reference.epochs.suffix(2).map(\.test))
        }
    }

    @Test func nonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        let clean = squaresDataset(count: 40, seed: 11)
        var images = clean.images
        let poisoned = 17
        images.withUnsafeMutableBufferPointer { $0[poisoned * 64 + 10] = .nan }
        let broken = Dataset(name: "broken", images: images, labels: clean.labels, classCount: 3)
        try withCheckpointPath { path in
            var configuration = tinyConfiguration(epochs: 1)
            configuration.checkpointPath = path
            let model = tinyModel(seed: 12)
            let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
            try trainer.fit(training: clean)
            let good = snapshot(model)
            // Epoch 2 on data with one NaN pixel: the step that meets image 17 must stop the run.
            let longer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: {
                var c = configuration; c.epochs = 2; return c
            }())
            try longer.resume(from: Checkpoint(contentsOf: path))
            let loader = DataLoader(dataset: broken, batchSize: 16, seed: 5)
            let position = try #require(loader.order(epoch: 1).firstIndex(of: poisoned))
            let expectedStep = loader.batchesPerEpoch + position / 16
            let error = #expect(throws: TrainingError.self) { try longer.fit(training: broken) }
            guard case let .nonFiniteLoss(epoch, step, loss, lastCheckpoint) = error else {
                Issue.record("expected a non-finite loss error, got \(String(describing: error))")
                return
            }
            #expect(epoch == 2 && step == expectedStep && loss.isNaN && lastCheckpoint == path)
            #expect(error!.description.contains("step \(expectedStep)"))
            // The failing step changed nothing: the batch-norm statistics are still finite.
            #expect(model.namedParameters().allSatisfy { $0.parameter.value.isFinite })
            // The checkpoint still holds the weights of epoch 1.
            let restored = tinyModel(seed: 13)
            let checkpoint = try Checkpoint.load(into: restored, from: path)
            #expect(checkpoint.trainingState?.epoch == 1)
            #expect(snapshot(restored) == good)
        }
    }
}

/// A NaN test loss after an epoch stops training before that epoch's checkpoint is written.
@Suite struct TrainerTestLossTests {
    @Test func nonFiniteTestLossStopsBeforeTheCheckpoint() throws {
        // Test images at the largest Float overflow the first convolution: the logits, and so the loss, are not finite.
        let clean = squaresDataset(count: 40, seed: 11)
        let huge = clean.images.map { _ in Float.greatestFiniteMagnitude }
        let poisonedTest = Dataset(name: "overflowing", images: huge, labels: clean.labels, classCount: 3)
        try withCheckpointPath { path in
            var configuration = tinyConfiguration(epochs: 1)
            configuration.checkpointPath = path
            let trainer = Trainer(model: tinyModel(seed: 12), optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
            let error = #expect(throws: TrainingError.self) { try trainer.fit(training: clean, test: poisonedTest) }
            guard case let .nonFiniteTestLoss(epoch, loss, lastCheckpoint) = error else {
                Issue.record("expected a non-finite test loss error, got \(String(describing: error))")
                return
            }
            #expect(epoch == 1 && !loss.isFinite && lastCheckpoint == nil)
            #expect(error!.description.contains("after epoch 1") && error!.description.contains("--lr"))
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}

/// Adds λ·‖W‖² of the last linear layer to the loss and counts the steps it is told about.
private final class WeightPenalty: TrainingObjective {
    let weight: Parameter<Float>
    let lambda: Float
    var stepsSeen: [Int] = []
    init(weight: Parameter<Float>, lambda: Float) { self.weight = weight; self.lambda = lambda }
    func loss(task: Variable<Float>, logits: Variable<Float>, images: Tensor<Float>, labels: [Int]) -> Variable<Float> {
        let w = logits.watching(weight)
        return task + (w * w).sum() * lambda
    }
    func afterStep(step: Int, learningRate: Double) { stepsSeen.append(step) }
}

@Suite struct TrainingObjectiveTests {
    /// With plain SGD the penalty's gradient 2λW is added to the task gradient: the step with the objective differs
    /// from the step without it by exactly −lr·2λW, and `afterStep` sees every step in order.
    @Test func penaltyAddsItsGradientAndAfterStepSeesEveryStep() throws {
        let data = squaresDataset(count: 16, seed: 1)
        let plain = tinyModel(seed: 3), penalized = tinyModel(seed: 3)
        let lastPlain = plain.layers[5] as! Linear<Float>, lastPenalized = penalized.layers[5] as! Linear<Float>
        let before = lastPenalized.weight.value
        let lambda: Float = 0.5, rate = 0.1
        let plainTrainer = Trainer(model: plain, optimizer: SGD<Float>(), configuration: tinyConfiguration(epochs: 1))
        let penalizedTrainer = Trainer(model: penalized, optimizer: SGD<Float>(), configuration: tinyConfiguration(epochs: 1))
        let penalty = WeightPenalty(weight: lastPenalized.weight, lambda: lambda)
        penalizedTrainer.objective = penalty
        let (plainLoss, _) = try plainTrainer.step(images: data.images, labels: data.labels, learningRate: rate)
        let (penalizedLoss, _) = try penalizedTrainer.step(images: data.images, labels: data.labels, learningRate: rate)
        #expect(abs(penalizedLoss - plainLoss - Double(lambda * before.squaredNorm())) < 1e-4)
        let expected = lastPlain.weight.value - before * (Float(rate) * 2 * lambda)
        #expect(lastPenalized.weight.value.maxAbsoluteDifference(to: expected) < 1e-5)
        _ = try penalizedTrainer.step(images: data.images, labels: data.labels, learningRate: rate)
        #expect(penalty.stepsSeen == [0, 1])
    }
}
