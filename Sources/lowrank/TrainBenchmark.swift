import ArgumentParser
import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank bench train`: training throughput of fmnist-cnn against the PyTorch peer, per-layer convolution speed
/// against the GEMM ceiling, and where the rest of a step goes.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training images/s of fmnist-cnn (batch 128) beside PyTorch, per-layer conv GFLOP/s, step breakdown.",
        discussion: """
        Trains fmnist-cnn with the peer's recipe (SGD momentum 0.9, lr 0.05, batch 128) on Fashion-MNIST \
        (random images when the data set is not installed) for --steps timed steps after a warm-up, on \
        LOWRANK_THREADS threads (default: all cores). When PyTorch imports (in $LOWRANK_PYTHON, else the \
        package's .venv-peers, else python3 on the PATH), the PyTorch peer \
        ../shared/peers/train_peer.py (found from the package root, or LOWRANK_PEERS_DIR, or --peer-script) \
        trains the same network on as many images in the same invocation, and the ratio is printed; otherwise \
        the ratio is against the PEERS.md reference figure (about 850 images/s on this kind of machine), \
        labelled as such.

        Also: each convolution's forward + both backward passes in GFLOP/s next to the FP32 GEMM ceiling \
        (Tensor.matmul 2048², as `lowrank bench core` measures it), and the share of a training step spent \
        outside convolutions and GEMMs (step time minus the isolated kernel times at the same shapes).

        Examples:
          lowrank bench train
          LOWRANK_THREADS=2 lowrank bench train --steps 200 --json
        """
    )

    @Option(parsing: .unconditional, help: "Timed training steps (after 5 warm-up steps).")
    var steps = 100

    @Option(parsing: .unconditional, help: "Examples per step.")
    var batch = 128

    @Option(parsing: .unconditional, help: "Timed repetitions of each kernel measurement (median reported).")
    var repeats = 5

    @Option(help: "The PyTorch peer script (default: ../shared/peers/train_peer.py from the package root).")
    var peerScript: String?

    @Flag(help: "Do not run the PyTorch peer even when it is installed.")
    var noPeer = false

    @Option(parsing: .unconditional, help: "Batches the data loader prepares ahead on a background thread (0, 1 or 2).")
    var prefetch = 1

    @Flag(help: "Also time each convolution on the im2col + GEMM reference kernels.")
    var compareReference = false

    @OptionGroup var output: OutputOptions

    /// PyTorch 2.15 on this kind of machine (2 threads), from ../shared/peers/PEERS.md: about 850 images/s.
    static let referencePeerImagesPerSecond = 850.0

    func validate() throws {
        guard steps > 0, batch > 1, repeats > 0 else { throw ValidationError("--steps, --batch (> 1) and --repeats must be positive") }
        guard (0...2).contains(prefetch) else { throw ValidationError("--prefetch must be 0, 1 or 2") }
    }

    func run() throws {
        try runReportingErrors { try benchmark() }
    }

    private func log(_ text: String) {
        if !output.json { print(text) }
    }

    private func benchmark() throws {
        let threads = LinearAlgebraThreads.count
        log("LowRank training benchmark: fmnist-cnn, batch \(batch), \(threads) thread(s) (LOWRANK_THREADS), "
            + "oneDNN \(OneDNN.version) (\(OneDNN.instructionSet)), BLAS kernels \(BLASKernels.coreName)")

        // Data: Fashion-MNIST when installed, else seeded random images (throughput does not depend on values).
        let data: Dataset
        var dataName = "fashion-mnist"
        if let loaded = try? Dataset.fashionMNIST(split: .train) {
            data = loaded
        } else {
            let count = batch * 16
            data = Dataset(name: "random", images: .randomNormal([count, 28, 28, 1], seed: 1),
                           labels: (0..<count).map { $0 % 10 }, classCount: 10)
            dataName = "random images (Fashion-MNIST not installed)"
        }

        // 1. Training throughput, the real loop: loader with prefetching, tape, oneDNN kernels, in-place SGD.
        let architecture = ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10)
        let model: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 0)
        var configuration = TrainingConfiguration(epochs: 1)
        configuration.batchSize = batch
        configuration.progress = .silent
        let trainer = Trainer(model: model, optimizer: SGD<Float>(momentum: 0.9), configuration: configuration)
        let loader = DataLoader(dataset: data, batchSize: batch, shuffle: true, dropLast: true, seed: 0, prefetch: prefetch)
        let warmup = 5
        var stepTimes: [Double] = []
        var timedImages = 0
        var epoch = 0
        var total = 0.0
        outer: while true {
            for item in loader.epoch(epoch) {
                let start = DispatchTime.now().uptimeNanoseconds
                try trainer.step(images: item.images, labels: item.labels, learningRate: 0.05)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                if trainer.state.step > warmup {
                    stepTimes.append(seconds)
                    timedImages += item.count
                    total += seconds
                }
                if stepTimes.count == steps { break outer }
            }
            epoch += 1
        }
        let imagesPerSecond = Double(timedImages) / total
        let medianStep = stepTimes.sorted()[stepTimes.count / 2]
        log(String(format: "LowRank: %.0f images/s over %d steps on %@ (median step %.1f ms)",
                   imagesPerSecond, steps, dataName, medianStep * 1e3))

        // Phases of the real step, timed in place: forward (with the tape), loss, reverse pass, update.
        var phases = [[Double]](repeating: [], count: 4)
        if let sequential = model as? Sequential<Float> {
            let optimizer = SGD<Float>(momentum: 0.9)
            let parameters = model.namedParameters()
            for item in loader.epoch(epoch + 1).prefix(max(5, min(steps, 20))) {
                func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
                for (_, parameter) in parameters { parameter.gradient = nil }
                // The taped part in its own function, so the tape is gone before the in-place update.
                func taped() -> (UInt64, UInt64, UInt64, UInt64) {
                    let t0 = now()
                    let tape = Tape<Float>()
                    var layerTimes: [Double] = []
                    let logits = withGradientTape(tape) { () -> Variable<Float> in
                        var x = Variable(constant: item.images)
                        var i = 0
                        let children = sequential.layers
                        while i < children.count {
                            let start = now()
                            if let norm = children[i] as? BatchNorm<Float>, i + 1 < children.count,
                               children[i + 1] is ReLU<Float> {
                                x = norm.forward(x, mode: .training, fusingReLU: true)
                                i += 2
                            } else {
                                x = children[i](x, mode: .training)
                                i += 1
                            }
                            layerTimes.append(Double(now() - start) * 1e-6)
                        }
                        return x
                    }
                    if ProcessInfo.processInfo.environment["LOWRANK_PROFILE_LAYERS"] != nil {
                        print("forward per layer (ms): " + layerTimes.map { String(format: "%.1f", $0) }.joined(separator: " "))
                    }
                    let t1 = now()
                    let loss = crossEntropy(logits: logits, labels: item.labels)
                    let t2 = now()
                    tape.gradients(of: loss)
                    return (t0, t1, t2, now())
                }
                let (t0, t1, t2, t3) = taped()
                optimizer.step(parameters, learningRate: 0.05)
                let t4 = now()
                for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4)].enumerated() { phases[k].append(Double(b - a) * 1e-9) }
            }
        }
        let phaseMedians = phases.map { $0.isEmpty ? 0 : $0.sorted()[$0.count / 2] }
        if !phases[0].isEmpty {
            log(String(format: "phases of a step (median): forward %.1f ms, loss %.2f ms, reverse pass %.1f ms, update %.1f ms",
                       phaseMedians[0] * 1e3, phaseMedians[1] * 1e3, phaseMedians[2] * 1e3, phaseMedians[3] * 1e3))
        }

        // 2. The peer, in the same invocation.
        var peer: (imagesPerSecond: Double, source: String)?
        var peerProblem: String?
        if noPeer {
            peerProblem = "skipped (--no-peer)"
        } else if let script = locatePeerScript() {
            log("running the PyTorch peer (\(script)) on \(max(timedImages, 12_800)) images …")
            switch runPeer(script: script, images: max(timedImages, 12_800), threads: threads) {
            case let .success(rate): peer = (rate, "measured now: PyTorch, train_peer.py")
            case let .failure(problem): peerProblem = problem.message
            }
        } else {
            peerProblem = "train_peer.py not found (set LOWRANK_PEERS_DIR or --peer-script)"
        }
        let reference = peer ?? (Self.referencePeerImagesPerSecond,
                                 "PEERS.md reference figure, not measured here (\(peerProblem ?? "peer unavailable"))")
        let ratio = imagesPerSecond / reference.imagesPerSecond
        log(String(format: "PyTorch: %.0f images/s (%@)", reference.imagesPerSecond, reference.source))
        log(String(format: "ratio LowRank / PyTorch: %.2f× (target ≥ 1.2×)", ratio))

        // 3. Kernels at the training shapes, isolated.
        let ceiling = gemmCeiling()
        let convolutions = model.layerSummaries(prefix: "", inputShape: [28, 28, 1])
            .filter { $0.description.hasPrefix("Conv2D") }
        let convLayers = model.namedParameters().filter { $0.parameter.value.rank == 4 }
        var convRows: [[String: Any]] = []
        var convSeconds = 0.0
        log("")
        log(pad("layer", 7) + pad("input", 19) + pad("weight", 16) + pad("fwd / bwd-data / bwd-weights ms", 33)
            + pad("GFLOP/s", 9) + "of GEMM ceiling")
        for (summary, weightEntry) in zip(convolutions, convLayers) {
            let input = Tensor<Float>.randomNormal([batch] + summary.inputShape, seed: 2)
            let weight = weightEntry.parameter.value
            let params = Convolution2D(stride: 1, padding: 1)
            let outputShape = [batch] + summary.outputShape
            let gradOutput = Tensor<Float>.randomNormal(outputShape, seed: 3)
            let forward = medianSeconds(repeats: repeats) { _ = conv2dForward(input, weight: weight, params: params) }
            let backwardData = medianSeconds(repeats: repeats) {
                _ = conv2dBackwardData(gradOutput, weight: weight, inputShape: input.shape, params: params)
            }
            let backwardWeights = medianSeconds(repeats: repeats) {
                _ = conv2dBackwardWeights(input: input, gradOutput: gradOutput, weightShape: weight.shape,
                                          params: params, includeBias: false)
            }
            let seconds = forward + backwardData + backwardWeights
            // The trainer feeds the images as a constant: the first convolution computes no input gradient.
            convSeconds += summary.inputShape == [28, 28, 1] ? forward + backwardWeights : seconds
            let flops = 3 * 2 * Double(summary.multiplyAdds * batch)
            let rate = flops / seconds / 1e9
            convRows.append(["layer": summary.name, "input_shape": input.shape, "weight_shape": weight.shape,
                             "milliseconds": seconds * 1e3, "forward_milliseconds": forward * 1e3,
                             "backward_data_milliseconds": backwardData * 1e3,
                             "backward_weights_milliseconds": backwardWeights * 1e3, "gflops": rate, "fraction_of_gemm_ceiling": rate / ceiling])
            log(pad(summary.name, 7) + pad("\(input.shape)", 19) + pad("\(weight.shape)", 16)
                + pad(String(format: "%.1f / %.1f / %.1f = %.1f", forward * 1e3, backwardData * 1e3,
                             backwardWeights * 1e3, seconds * 1e3), 33)
                + pad(String(format: "%.0f", rate), 9)
                + String(format: "%.0f%%", 100 * rate / ceiling))
            if compareReference {
                let reference = medianSeconds(repeats: repeats) {
                    _ = conv2dForward(input, weight: weight, params: params, backend: .reference)
                    _ = conv2dBackwardData(gradOutput, weight: weight, inputShape: input.shape, params: params,
                                           backend: .reference)
                    _ = conv2dBackwardWeights(input: input, gradOutput: gradOutput, weightShape: weight.shape,
                                              params: params, includeBias: false, backend: .reference)
                }
                log(String(format: "       im2col + GEMM reference: %.1f ms (%.0f GFLOP/s)", reference * 1e3,
                           3 * 2 * Double(summary.multiplyAdds * batch) / reference / 1e9))
            }
        }
        log(String(format: "GEMM ceiling (Tensor.matmul 2048², FP32): %.0f GFLOP/s", ceiling))

        // GEMMs of the linear layers, forward and both backward products.
        var gemmSeconds = 0.0
        for summary in model.layerSummaries(prefix: "", inputShape: [28, 28, 1]) where summary.description.hasPrefix("Linear") {
            let (i, o) = (summary.inputShape[0], summary.outputShape[0])
            let x = Tensor<Float>.randomNormal([batch, i], seed: 4), w = Tensor<Float>.randomNormal([i, o], seed: 5)
            let g = Tensor<Float>.randomNormal([batch, o], seed: 6)
            gemmSeconds += medianSeconds(repeats: repeats) {
                _ = Tensor.matmul(x, w)
                _ = Tensor.matmul(g, w, transposeB: true)
                _ = Tensor.matmul(x, g, transposeA: true)
            }
        }
        // Batch norm + ReLU and max pooling at the network's shapes, forward and backward, and the SGD update.
        var normSeconds = 0.0, poolSeconds = 0.0
        for summary in convolutions {
            let x = Tensor<Float>.randomNormal([batch] + summary.outputShape, seed: 9)
            let channels = summary.outputShape[2]
            let scale = Tensor<Float>(repeating: 1, shape: [channels]), offset = Tensor<Float>(repeating: 0, shape: [channels])
            normSeconds += medianSeconds(repeats: repeats) {
                let (y, statistics) = batchNormTrainingForward(x, scale: scale, offset: offset, applyingReLU: true)
                _ = batchNormBackward(y, input: x, scale: scale, statistics: statistics)
            }
        }
        for summary in model.layerSummaries(prefix: "", inputShape: [28, 28, 1]) where summary.description.hasPrefix("MaxPool") {
            let x = Tensor<Float>.randomNormal([batch] + summary.inputShape, seed: 10)
            poolSeconds += medianSeconds(repeats: repeats) {
                let (y, indices) = maxPool2DForward(x, params: Pooling2D(kernel: 2))
                _ = maxPool2DBackward(y, indices: indices)
            }
        }
        let sgd = SGD<Float>(momentum: 0.9)
        let parameters = model.namedParameters()
        for (_, parameter) in parameters where parameter.isTrainable { parameter.gradient = parameter.value }
        let optimizerSeconds = medianSeconds(repeats: repeats) { sgd.step(parameters, learningRate: 1e-9) }
        let outside = max(0, 1 - (convSeconds + gemmSeconds) / medianStep)
        let remainder = max(0, medianStep - convSeconds - gemmSeconds - normSeconds - poolSeconds - optimizerSeconds)
        log(String(format: "step %.1f ms = convolutions %.1f + GEMMs %.1f + batch norm/ReLU %.1f + max pool %.1f "
                   + "+ SGD %.1f + rest %.1f (tape, loss, small ops, allocation, data), from isolated kernel times",
                   medianStep * 1e3, convSeconds * 1e3, gemmSeconds * 1e3, normSeconds * 1e3, poolSeconds * 1e3,
                   optimizerSeconds * 1e3, remainder * 1e3))
        log(String(format: "share of the step outside convolutions and GEMMs: %.0f%%", 100 * outside))
        let peak = peakResidentBytes()
        if let peak { log("peak memory: \(Info.humanBytes(peak))") }

        if output.json {
            var object: [String: Any] = [
                "model": "fmnist-cnn", "batch": batch, "threads": threads, "steps": steps, "data": dataName,
                "images_per_second": imagesPerSecond, "median_step_seconds": medianStep,
                "peer_images_per_second": reference.imagesPerSecond, "peer_source": reference.source,
                "peer_measured": peer != nil, "ratio": ratio, "gemm_ceiling_gflops": ceiling,
                "convolutions": convRows, "convolution_seconds_per_step": convSeconds,
                "gemm_seconds_per_step": gemmSeconds, "fraction_outside_convolutions_and_gemms": outside,
                "batch_norm_relu_seconds_per_step": normSeconds, "max_pool_seconds_per_step": poolSeconds,
                "optimizer_seconds_per_step": optimizerSeconds, "remaining_seconds_per_step": remainder,
            ]
            if let peak { object["peak_memory_bytes"] = peak }
            try printJSON(object)
        }
    }

    /// FP32 GEMM GFLOP/s at 2048² (the ceiling `lowrank bench core` reports).
    private func gemmCeiling() -> Double {
        let n = 2048
        let a = Tensor<Float>.randomNormal([n, n], seed: 7), b = Tensor<Float>.randomNormal([n, n], seed: 8)
        let seconds = medianSeconds(repeats: max(1, repeats / 2)) { _ = Tensor.matmul(a, b) }
        return 2 * Double(n * n * n) / seconds / 1e9
    }

    /// The package root (the folder holding Package.swift) above the current folder or the executable.
    private func packageRoot() -> URL? {
        let files = FileManager.default
        let starts = [files.currentDirectoryPath, (CommandLine.arguments[0] as NSString).deletingLastPathComponent,
                      Bundle.main.executablePath.map { ($0 as NSString).deletingLastPathComponent } ?? ""]
        for start in starts where !start.isEmpty {
            var folder = URL(fileURLWithPath: start).standardizedFileURL
            for _ in 0..<8 {
                if files.fileExists(atPath: folder.appendingPathComponent("Package.swift").path) { return folder }
                folder = folder.deletingLastPathComponent()
            }
        }
        return nil
    }

    /// The peer script: --peer-script, else `$LOWRANK_PEERS_DIR/train_peer.py`, else
    /// `<package root>/../shared/peers/train_peer.py`.
    private func locatePeerScript() -> String? {
        let files = FileManager.default
        if let peerScript { return files.fileExists(atPath: peerScript) ? peerScript : nil }
        if let folder = ProcessInfo.processInfo.environment["LOWRANK_PEERS_DIR"] {
            let path = (folder as NSString).appendingPathComponent("train_peer.py")
            if files.fileExists(atPath: path) { return path }
        }
        guard let root = packageRoot() else { return nil }
        let script = root.deletingLastPathComponent().appendingPathComponent("shared/peers/train_peer.py").path
        return files.fileExists(atPath: script) ? script : nil
    }

    /// The Python that runs the peer: `$LOWRANK_PYTHON`, else the peers' virtual environment
    /// `<package root>/.venv-peers/bin/python3` (PEERS.md installs PyTorch there), else `python3` on the PATH.
    private func peerPython() -> [String] {
        if let python = ProcessInfo.processInfo.environment["LOWRANK_PYTHON"] { return [python] }
        if let root = packageRoot() {
            let venv = root.appendingPathComponent(".venv-peers/bin/python3").path
            if FileManager.default.isExecutableFile(atPath: venv) { return [venv] }
        }
        return ["python3"]
    }

    struct PeerProblem: Error { var message: String }

    /// Runs the peer for one epoch of `images` training images and returns its images/s.
    private func runPeer(script: String, images: Int, threads: Int) -> Result<Double, PeerProblem> {
        func python(_ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, output: String)? {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = peerPython() + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch { return nil }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        guard let probe = python(["-c", "import torch"]) else {
            return .failure(PeerProblem(message: "\(peerPython()[0]) not found"))
        }
        guard probe.status == 0 else { return .failure(PeerProblem(message: "PyTorch is not installed (import torch failed)")) }
        guard let run = python([script], environment: ["EPOCHS": "1", "LIMIT": String(min(images, 60_000)),
                                                       "THREADS": String(threads)]), run.status == 0 else {
            return .failure(PeerProblem(message: "the peer script failed"))
        }
        // "epoch 1: 69.9 s, 858 img/s, test acc 88.44%"
        for line in run.output.split(separator: "\n") where line.hasPrefix("epoch") {
            let fields = line.split(separator: ",")
            if fields.count >= 2, let rate = Double(fields[1].trimmingCharacters(in: .whitespaces)
                .split(separator: " ").first ?? "") {
                return .success(rate)
            }
        }
        return .failure(PeerProblem(message: "no 'img/s' figure in the peer's output"))
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
