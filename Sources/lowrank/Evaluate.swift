import ArgumentParser
import Autodiff
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank evaluate MODEL`: accuracy and loss of a trained checkpoint on a test split, with its size and cost.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint on the test split: accuracy, loss, parameters, multiply-adds per image.",
        discussion: """
        The model is rebuilt from the checkpoint's architecture record and its weights restored; the data set \
        is the one it was trained on (recorded in the checkpoint) unless --data is given. Multiply-adds are \
        counted analytically per layer (convolutions H'·W'·C_out·C_in/groups·K_h·K_w, linear layers I·O); \
        --layers lists them.

        Examples:
          lowrank evaluate fmnist-cnn.safetensors
          lowrank evaluate resnet20.safetensors --layers --json
        """
    )

    @Argument(help: "The checkpoint (.safetensors written by lowrank train).")
    var checkpoint: String

    @Option(help: "The data set (default: the one recorded in the checkpoint).")
    var data: String?

    @Option(help: "The folder with the data files (default: the recorded one, else /usr/share/datasets/<data set>).")
    var dataDir: String?

    @Option(parsing: .unconditional, help: "Examples per evaluation batch.")
    var batch = 500

    @Flag(help: "List every layer with its output shape, parameters and multiply-adds.")
    var layers = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        if let data, Dataset.Source(rawValue: data) == nil {
            throw ValidationError("unknown data set '\(data)'; choose one of "
                                  + Dataset.Source.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    func run() throws {
        try runReportingErrors { try evaluate() }
    }

    private func evaluate() throws {
        let (model, compressed, saved) = try CompressedModel.load(checkpoint, as: Float.self)
        let architecture = compressed.base
        let notes = saved.trainingState?.notes ?? [:]
        guard let sourceName = data ?? notes["data"], let source = Dataset.Source(rawValue: sourceName) else {
            throw ValidationError("\(checkpoint) does not record its data set; pass --data")
        }
        let test = try Dataset.load(source, directory: dataDir ?? notes["data_dir"], split: .test)
        guard test.imageShape == architecture.inputShape else {
            throw ValidationError("the model takes \(architecture.inputShape) images but \(test.name) has "
                                  + "\(test.imageShape); pass the --data it was trained on")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = Trainer<Float>.evaluate(model, on: test, batchSize: batch)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        guard result.loss.isFinite else {
            throw ValidationError("\(checkpoint): the loss on \(test.name) is \(result.loss): the weights are finite but the outputs "
                                  + "overflow (the run that wrote it diverged); use an earlier checkpoint or retrain with a lower --lr")
        }
        let summaries = model.layerSummaries(prefix: "", inputShape: architecture.inputShape)
        let macs = model.multiplyAdds(forInput: architecture.inputShape)
        let trainable = model.trainableParameterCount, stored = model.parameterCount
        if output.json {
            var object: [String: Any] = [
                "checkpoint": checkpoint, "model": architecture.model, "data": test.name,
                "accuracy": result.accuracy, "loss": result.loss, "correct": result.correct, "count": result.count,
                "parameters": trainable, "stored_scalars": stored, "multiply_adds_per_image": macs,
                "multiply_adds_per_image_at_batch": ModelSurgery.multiplyAddsPerImage(of: model, inputShape: architecture.inputShape, batch: batch),
                "seconds": seconds, "images_per_second": Double(test.count) / seconds,
            ]
            if let epoch = saved.trainingState?.epoch { object["epoch"] = epoch }
            if layers {
                object["layers"] = summaries.map {
                    ["name": $0.name, "layer": $0.description, "output_shape": $0.outputShape,
                     "parameters": $0.trainableParameters, "multiply_adds": $0.multiplyAdds] as [String: Any]
                }
            }
            try printJSON(object)
            return
        }
        print("\(checkpoint): \(architecture.model)"
              + (saved.trainingState.map { " after epoch \($0.epoch)" } ?? "") + " on \(test.name)")
        print(String(format: "accuracy %.2f%% (%d of %d), loss %.4f", 100 * result.accuracy, result.correct,
                     result.count, result.loss))
        print("parameters \(grouped(trainable)) (+ \(grouped(stored - trainable)) batch-norm statistics), "
              + Train.describeMultiplyAdds(model, inputShape: architecture.inputShape, batch: batch))
        print(String(format: "%.2f s, %.0f images/s", seconds, Double(test.count) / seconds))
        guard layers else { return }
        let rows = [["layer", "type", "output", "parameters", "multiply-adds"]]
            + summaries.map { [$0.name, $0.description, "\($0.outputShape)", grouped($0.trainableParameters),
                               grouped($0.multiplyAdds)] }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print((0..<5).map { column in
                let cell = row[column]
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column >= 3 ? pad + cell : cell + pad
            }.joined(separator: "  "))
        }
    }
}
