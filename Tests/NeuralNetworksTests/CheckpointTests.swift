import Autodiff
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// A fresh path in the temporary folder; the file is removed by `body`'s end.
private func withTemporaryPath<R>(_ body: (String) throws -> R) throws -> R {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("lowrank-checkpoint-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A deterministic, nonlinear gradient of the parameters' current values: g = p³ − ½ (the gradient of Σ p⁴/4 − p/2),
/// so the trajectory depends on every bit of the state.
private func setGradients<Scalar: TensorScalar>(_ model: NamedParameterModel<Scalar>) {
    for (_, parameter) in model.namedParameters() {
        parameter.gradient = Tensor(shape: parameter.value.shape, scalars: parameter.value.scalars.map { $0 * $0 * $0 - 0.5 })
    }
}

private let architecture = #"{"model":"test-model","classes":3}"#

@Suite struct CheckpointTests {
    @Test func roundTripRestoresEveryParameterInItsPrecision() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Float>.standard(seed: 1)
            try Checkpoint.save(model, to: path, architecture: architecture)
            let file = try SafeTensorsFile(contentsOf: path)
            #expect(file.entries.map(\.name) == ["bn.running_mean", "conv.bias", "conv.weight", "fc.weight"])
            #expect(file.entries.allSatisfy { $0.dtype == .float32 })
            #expect(file.metadata[Checkpoint.formatKey] == "1")
            #expect(file.metadata[Checkpoint.architectureKey] == architecture)

            let other = NamedParameterModel<Float>.standard(seed: 2)
            other.items[0].parameter.gradient = .ones([4, 3])
            let checkpoint = try Checkpoint.load(into: other, from: path)
            #expect(checkpoint.architecture == architecture)
            #expect(checkpoint.trainingState == nil)
            #expect(!checkpoint.hasOptimizerState)
            for (saved, restored) in zip(model.namedParameters(), other.namedParameters()) {
                #expect(saved.name == restored.name)
                #expect(saved.parameter.value == restored.parameter.value)
                #expect(restored.parameter.gradient == nil)
            }
        }
        try withTemporaryPath { path in
            let model = NamedParameterModel<Double>.standard(seed: 3)
            try Checkpoint.save(model, to: path, architecture: architecture)
            #expect(try SafeTensorsFile(contentsOf: path).entries.allSatisfy { $0.dtype == .float64 })
            let other = NamedParameterModel<Double>.standard(seed: 4)
            try Checkpoint.load(into: other, from: path)
            #expect(zip(model.namedParameters(), other.namedParameters()).allSatisfy { $0.parameter.value == $1.parameter.value })
        }
    }

    @Test func trainingStateRoundTrips() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Float>.standard(seed: 1)
            let optimizer = AdamW<Float>(weightDecay: 0.05)
            let schedule = LearningRateSchedule.linearWarmup(steps: 10, startFactor: 0.1,
                                                             then: .cosine(initial: 0.01, floor: 1e-5, steps: 90))
            let state = TrainingState(epoch: 3, step: 1407, seed: .max, schedule: schedule, notes: ["data": "fashion-mnist"])
            try Checkpoint.save(model, to: path, architecture: architecture, trainingState: state, optimizer: optimizer)
            let checkpoint = try Checkpoint(contentsOf: path)
            var expected = state
            expected.optimizer = optimizer.configuration
            #expect(checkpoint.trainingState == expected)
            #expect(checkpoint.metadata[Checkpoint.dtypeKey] == "float32")
        }
    }

    /// Four steps straight, against two steps, a save, a restore into a fresh model and optimizer rebuilt from the
    /// checkpoint's record, and two more steps: weights and optimizer state must agree bit for bit.
    func resumeIsExact<Scalar: TensorScalar>(_ type: Scalar.Type, _ makeOptimizer: () -> any Optimizer<Scalar>) throws {
        let schedule = LearningRateSchedule.linearWarmup(steps: 2, startFactor: 0.5, then: .stepDecay(initial: 0.05, stepSize: 1, gamma: 0.9))
        let straight = NamedParameterModel<Scalar>.standard(seed: 7)
        let straightOptimizer = makeOptimizer()
        for step in 0..<4 {
            setGradients(straight)
            straightOptimizer.step(straight, learningRate: schedule.learningRate(atStep: step))
        }

        let first = NamedParameterModel<Scalar>.standard(seed: 7)
        let firstOptimizer = makeOptimizer()
        for step in 0..<2 {
            setGradients(first)
            firstOptimizer.step(first, learningRate: schedule.learningRate(atStep: step))
        }
        try withTemporaryPath { path in
            try Checkpoint.save(first, to: path, architecture: architecture,
                                trainingState: TrainingState(epoch: 1, step: 2, seed: 7, schedule: schedule),
                                optimizer: firstOptimizer)
            let checkpoint = try Checkpoint(contentsOf: path)
            #expect(checkpoint.hasOptimizerState)
            let state = try #require(checkpoint.trainingState)
            let resumedOptimizer = try #require(try state.optimizer?.makeOptimizer(Scalar.self))
            let resumed = NamedParameterModel<Scalar>.standard(seed: 99)
            try checkpoint.restore(into: resumed, optimizer: resumedOptimizer)
            #expect(resumedOptimizer.exportState() == firstOptimizer.exportState())
            let savedSchedule = try #require(state.schedule)
            for step in state.step..<(state.step + 2) {
                setGradients(resumed)
                resumedOptimizer.step(resumed, learningRate: savedSchedule.learningRate(atStep: step))
            }
            for (a, b) in zip(straight.namedParameters(), resumed.namedParameters()) {
                #expect(a.parameter.value == b.parameter.value, "\(a.name)")
            }
            #expect(resumedOptimizer.exportState() == straightOptimizer.exportState())
        }
    }

    @Test func resumeWithSGDIsExact() throws {
        try resumeIsExact(Float.self) { SGD(momentum: 0.9, nesterov: true, weightDecay: 1e-3) }
        try resumeIsExact(Double.self) { SGD(momentum: 0.9) }
        try resumeIsExact(Float.self) { SGD() }
    }

    @Test func resumeWithAdamIsExact() throws {
        try resumeIsExact(Float.self) { Adam(weightDecay: 0.01) }
        try resumeIsExact(Double.self) { AdamW(weightDecay: 0.1) }
    }

    @Test func optimizerStateTensorsAreNamedByParameter() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Double>.standard(seed: 1)
            let optimizer = Adam<Double>()
            setGradients(model)
            model.items[3].parameter.gradient = nil  // fc.weight never updated: no state saved for it
            optimizer.step(model, learningRate: 0.1)
            try Checkpoint.save(model, to: path, architecture: architecture,
                                trainingState: TrainingState(epoch: 0, step: 1, seed: 0), optimizer: optimizer)
            let file = try SafeTensorsFile(contentsOf: path)
            let names = file.entries.map(\.name).filter { $0.hasPrefix("optimizer.") }
            #expect(names == ["optimizer.conv.bias.exp_avg", "optimizer.conv.bias.exp_avg_sq", "optimizer.conv.bias.step",
                              "optimizer.conv.weight.exp_avg", "optimizer.conv.weight.exp_avg_sq", "optimizer.conv.weight.step"])
            #expect(try file.integers("optimizer.conv.weight.step") == [1])
            #expect(try file.entry("optimizer.conv.weight.step").dtype == .int64)
            #expect(try file.tensor("optimizer.conv.weight.exp_avg", as: Double.self)
                    == optimizer.exportState()["conv.weight"]!.slots["exp_avg"]!)
        }
    }

    // MARK: Mismatches

    @Test func mismatchesNameTheFirstMismatchedParameterAndChangeNothing() throws {
        try withTemporaryPath { path in
            try Checkpoint.save(NamedParameterModel<Float>.standard(seed: 1), to: path, architecture: architecture)
            let checkpoint = try Checkpoint(contentsOf: path)
            func parameter(_ shape: [Int]) -> Parameter<Float> { Parameter(.zeros(shape)) }

            // A model with two parameters the file lacks: the first in visiting order is named.
            let larger = NamedParameterModel<Float>([("conv.weight", parameter([4, 3])), ("head.weight", parameter([3])),
                                           ("conv.bias", parameter([3])), ("bn.running_mean", parameter([3])),
                                           ("fc.weight", parameter([3, 2])), ("aaa.weight", parameter([1]))])
            #expect(throws: CheckpointError.missingParameter(path: path, name: "head.weight", shape: [3])) {
                try checkpoint.restore(into: larger)
            }
            #expect(larger.items.allSatisfy { $0.parameter.value == .zeros($0.parameter.value.shape) })

            // Two shapes differ: the first in visiting order is named with both shapes.
            let reshaped = NamedParameterModel<Float>([("conv.weight", parameter([4, 3])), ("conv.bias", parameter([3])),
                                             ("fc.weight", parameter([2, 3])), ("bn.running_mean", parameter([4]))])
            let error = #expect(throws: CheckpointError.self) { try checkpoint.restore(into: reshaped) }
            #expect(error == .shapeMismatch(path: path, name: "fc.weight", modelShape: [2, 3], checkpointShape: [3, 2]))
            #expect(error?.parameterName == "fc.weight")
            let message = error.map { String(describing: $0) } ?? ""
            #expect(message.contains(path) && message.contains("fc.weight") && message.contains("[3, 2]")
                    && message.contains("[2, 3]"))
            #expect(reshaped.items.allSatisfy { $0.parameter.value == .zeros($0.parameter.value.shape) })

            // A model lacking two saved parameters: the first by name is named.
            let smaller = NamedParameterModel<Float>([("conv.weight", parameter([4, 3])), ("fc.weight", parameter([3, 2]))])
            #expect(throws: CheckpointError.unexpectedParameter(path: path, name: "bn.running_mean", shape: [3])) {
                try checkpoint.restore(into: smaller)
            }
            #expect(smaller.items.allSatisfy { $0.parameter.value == .zeros($0.parameter.value.shape) })
        }
    }

    /// A parameter holding NaN (a diverged run, a damaged file) is refused by name, and nothing changes.
    @Test func aNonFiniteParameterIsRefused() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Float>.standard(seed: 1)
            let fc = try #require(model.items.first { $0.name == "fc.weight" })
            fc.parameter.value = Tensor(shape: fc.parameter.value.shape, scalars: [.nan] + fc.parameter.value.scalars.dropFirst())
            try Checkpoint.save(model, to: path, architecture: architecture)
            let other = NamedParameterModel<Float>.standard(seed: 2)
            let before = other.namedParameters().map(\.parameter.value)
            let error = #expect(throws: CheckpointError.self) { try Checkpoint.load(into: other, from: path) }
            #expect(error.map { String(describing: $0) }?.contains("'fc.weight' holds NaN") == true)
            #expect(other.namedParameters().map(\.parameter.value) == before)
        }
    }

    @Test func aPlainSafetensorsFileIsNotACheckpoint() throws {
        try withTemporaryPath { path in
            var writer = SafeTensorsWriter(metadata: ["format": "pt"])
            writer.add(name: "conv.weight", tensor: Tensor<Float>.zeros([2, 3]))
            try writer.write(to: path)
            let error = #expect(throws: CheckpointError.notACheckpoint(path: path)) {
                try Checkpoint.load(into: NamedParameterModel<Float>.standard(seed: 1), from: path)
            }
            let message = error.map { String(describing: $0) } ?? ""
            #expect(message.contains(path) && message.contains("not a LowRank checkpoint"))
        }
        try withTemporaryPath { path in
            try Data("not a tensor file at all".utf8).write(to: URL(fileURLWithPath: path))
            #expect(throws: TensorError.self) { try Checkpoint(contentsOf: path) }
        }
        try withTemporaryPath { path in
            var writer = SafeTensorsWriter(metadata: [Checkpoint.formatKey: "7", Checkpoint.architectureKey: "{}"])
            writer.add(name: "w", tensor: Tensor<Float>.zeros([1]))
            try writer.write(to: path)
            #expect(throws: CheckpointError.unsupportedVersion(path: path, version: "7")) { try Checkpoint(contentsOf: path) }
        }
    }

    @Test func resumingWithAnotherOptimizerIsRefused() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Float>.standard(seed: 1)
            let sgd = SGD<Float>(momentum: 0.9)
            setGradients(model)
            sgd.step(model, learningRate: 0.1)
            try Checkpoint.save(model, to: path, architecture: architecture,
                                trainingState: TrainingState(epoch: 0, step: 1, seed: 0), optimizer: sgd)
            let checkpoint = try Checkpoint(contentsOf: path)
            let target = NamedParameterModel<Float>.standard(seed: 5)
            let before = target.namedParameters().map(\.parameter.value)
            let adam = Adam<Float>()
            let error = #expect(throws: CheckpointError.self) { try checkpoint.restore(into: target, optimizer: adam) }
            #expect(String(describing: error!).contains("'sgd'"))
            // SGD without momentum keeps no momentum buffer, so the saved state does not fit it.
            #expect(throws: CheckpointError.self) { try checkpoint.restore(into: target, optimizer: SGD<Float>()) }
            #expect(target.namedParameters().map(\.parameter.value) == before)
            #expect(adam.exportState().isEmpty)
            // Weights alone restore fine.
            try checkpoint.restore(into: target)
            #expect(target.namedParameters().map(\.parameter.value) == model.namedParameters().map(\.parameter.value))
        }
        try withTemporaryPath { path in
            try Checkpoint.save(NamedParameterModel<Float>.standard(seed: 1), to: path, architecture: architecture)
            #expect(throws: CheckpointError.self) {
                try Checkpoint.load(into: NamedParameterModel<Float>.standard(seed: 1), from: path, optimizer: SGD<Float>())
            }
        }
    }

    @Test func aDoubleCheckpointLoadsIntoAFloatModelRounded() throws {
        try withTemporaryPath { path in
            let model = NamedParameterModel<Double>.standard(seed: 8)
            try Checkpoint.save(model, to: path, architecture: architecture)
            let single = NamedParameterModel<Float>.standard(seed: 9)
            try Checkpoint.load(into: single, from: path)
            for (a, b) in zip(model.namedParameters(), single.namedParameters()) {
                #expect(b.parameter.value == a.parameter.value.converted(to: Float.self))
            }
        }
    }
}
