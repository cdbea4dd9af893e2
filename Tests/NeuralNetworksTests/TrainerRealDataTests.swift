import Autodiff
import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// Whether the Debian package `dataset-fashion-mnist` is installed (`make` installs it).
private let fashionMNISTInstalled = FileManager.default.fileExists(
    atPath: Dataset.fashionMNISTDirectory + "/train-images-idx3-ubyte.gz")

/// Whether this is an optimized build: these runs take seconds in release and minutes in debug.
#if DEBUG
private let optimizedBuild = false
#else
private let optimizedBuild = true
#endif

/// Short runs on real Fashion-MNIST: the whole pipeline (IDX reader, loader, layers on oneDNN, optimizer) learns.
@Suite(.enabled(if: fashionMNISTInstalled, "needs the Debian package dataset-fashion-mnist"),
       .enabled(if: optimizedBuild, "runs in release builds (make test); minutes in debug"))
struct TrainerRealDataTests {
    @Test func fashionCNNLearnsFromTwoThousandImages() throws {
        let train = try Dataset.fashionMNIST(split: .train).subset(first: 2_000)
        let test = try Dataset.fashionMNIST(split: .test).subset(first: 1_000)  // images the model never sees
        let (model, architecture) = try ModelRegistry.make(named: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10,
                                                           seed: 0, as: Float.self)
        var configuration = TrainingConfiguration(epochs: 1)
        configuration.batchSize = 64
        configuration.progress = .silent
        configuration.architecture = architecture.json
        let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
        let summary = try trainer.fit(training: train, test: test)
        let accuracy = try #require(summary.epochs.first?.test?.accuracy)
        // Ten balanced classes: chance is 10%. 32 steps of the peer's recipe already classify most images.
        #expect(accuracy > 0.6, "test accuracy after 2,000 images: \(accuracy)")
    }

    @Test func resNet20LossFalls() throws {
        let train = try Dataset.fashionMNIST(split: .test).subset(first: 256)
        let (model, _) = try ModelRegistry.make(named: "resnet20", inputShape: [28, 28, 1], classes: 10, seed: 0,
                                                as: Float.self)
        var configuration = TrainingConfiguration(epochs: 3)
        configuration.batchSize = 32
        configuration.schedule = .constant(0.05)
        configuration.progress = .silent
        let summary = try Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
            .fit(training: train)
        let losses = summary.epochs.map(\.trainLoss)
        // The loss starts near ln 10 ≈ 2.30 (uniform guessing over ten classes) and falls epoch after epoch.
        #expect(losses[1] < losses[0] && losses[2] < losses[1], "training losses \(losses)")
        #expect(losses[2] < 0.75 * Foundation.log(10.0), "training losses \(losses)")
    }
}
