import Autodiff
import Compression
import Foundation
import NeuralNetworks
import TensorCore

/// `lowrank bench layers`: forward + backward of factorized layers against the dense layer they replace, timed
/// side by side in one run (issue 5), next to TensorLy-Torch when its peer script can run.
///
/// FC: a 1024×1024 layer with modes (4, 8, 8, 4) → (4, 8, 8, 4) at batch 256, every format at a few ranks, in
/// every execution mode, the input a constant (as in the peer). Per row: parameters, forward MACs, median time,
/// the achieved GFLOP/s of the exact forward + backward work, the GEMM rate the same contraction steps reach as bare
/// `Tensor.matmul` calls on pre-arranged operands (what `lowrank bench core` measures, on the same data volumes),
/// and the speed-up over the dense layer. With `auto` measured, each layer also gets an "inference auto" row:
/// forward passes without a tape against the dense layer's (forward MACs and GFLOP/s of that pass). Then the conv
/// rows (`convolutionRows`).
struct LayerBenchmark {
    var repeats = 10
    var batch = 256
    /// The Python with TensorLy-Torch, or nil to skip the peer.
    var python: String?
    var peerScript = "../shared/peers/layer_peer.py"
    /// Whether to run the FC rows and the conv rows.
    var fullyConnected = true
    var convolutions = true

    /// One FC configuration.
    struct Configuration {
        var format: FactorizedFormat
        var ranks: [Int]
        var blocks = 1
        var stpFactor = 2
        var label: String { "\(format.shortName) r\(ranks.map(String.init).joined(separator: ","))" + (blocks > 1 ? " ×\(blocks)" : "") }
    }

    /// One measured row.
    struct Row {
        var layer: String
        var mode: String
        var parameters: Int
        var forwardMACs: Int
        /// Forward + backward multiply-adds actually performed.
        var trainingMACs: Int
        var seconds: Double
        /// Seconds of the same steps as bare GEMMs (forward ×, backward estimated as the same shapes).
        var gemmSeconds: Double?
        /// The dense layer's median seconds, timed alternately with this row (the machine is shared: ratios are
        /// taken from paired samples).
        var denseSeconds: Double
        var achievedGFLOPs: Double { 2 * Double(trainingMACs) / seconds / 1e9 }
    }

    static let inputModes = [4, 8, 8, 4]

    /// The FC configurations: every format at a few ranks.
    static let configurations: [Configuration] = [
        Configuration(format: .svd, ranks: [64]), Configuration(format: .svd, ranks: [256]),
        Configuration(format: .cp, ranks: [64]), Configuration(format: .cp, ranks: [256]),
        Configuration(format: .tucker, ranks: [4]), Configuration(format: .tucker, ranks: [2, 4, 4, 2, 2, 4, 4, 2]),
        Configuration(format: .tensorTrain, ranks: [8]), Configuration(format: .tensorTrain, ranks: [16]),
        Configuration(format: .tensorTrain, ranks: [32]),
        Configuration(format: .tensorRing, ranks: [8]), Configuration(format: .tensorRing, ranks: [16]),
        Configuration(format: .hierarchicalTucker, ranks: [8]), Configuration(format: .hierarchicalTucker, ranks: [16]),
        Configuration(format: .blockTerm, ranks: [4], blocks: 2), Configuration(format: .blockTerm, ranks: [8], blocks: 2),
        Configuration(format: .kronecker, ranks: [4]), Configuration(format: .kronecker, ranks: [16]),
        Configuration(format: .semiTensorTrain, ranks: [16]), Configuration(format: .semiTensorTrain, ranks: [32]),
        Configuration(format: .semiTensorRing, ranks: [8]), Configuration(format: .semiTensorRing, ranks: [16]),
    ]

    func run(json: Bool, only: String?, executionModes: [ExecutionMode] = ExecutionMode.allCases) throws {
        let features = Self.inputModes.reduce(1, *)
        var generator = SeededGenerator(seed: 0)
        let x = Tensor<Float>.randomNormal([batch, features], generator: &generator)
        if !json {
            print("LowRank layer benchmark: \(features)→\(features) FC, modes \(Self.inputModes), batch \(batch), forward + backward "
                  + "(inference rows: forward), median of \(repeats), \(LinearAlgebraThreads.count) thread(s)")
        }
        // The peer runs first, while this process is small. Run after the conv rows, when this process keeps
        // gigabytes of freed buffers for reuse (`TensorMemory.keepFreedBuffersForReuse`), the peer, whose factorized
        // CP and Tucker layers ask for 64–110 GB, exited with a failure instead of reporting those rows as errors.
        var peer: [(name: String, parameters: String, milliseconds: String)] = []
        var peerProblem: String?
        if !fullyConnected {
            peerProblem = "its rows are FC layers only"
        } else if let python {
            if !json { print("running TensorLy-Torch (\(peerScript)) …") }
            (peer, peerProblem) = runPeer(python: python)
        } else {
            peerProblem = "no Python with TensorLy-Torch (pass --python)"
        }
        var rows: [Row] = []
        let dense = Linear<Float>(inputFeatures: features, outputFeatures: features, generator: &generator)
        let denseMACs = batch * features * features
        let denseSeconds = medianSeconds(repeats: repeats) { trainStep(dense, x) }
        rows.append(Row(layer: "dense", mode: "dense", parameters: dense.parameterCount, forwardMACs: denseMACs,
                        trainingMACs: 2 * denseMACs, seconds: denseSeconds,
                        gemmSeconds: gemmSeconds([(1, batch, features, features)]) * 2, denseSeconds: denseSeconds))
        for configuration in Self.configurations where fullyConnected && (only.map({ configuration.format.shortName == $0 }) ?? true) {
            let d = configuration.format == .kronecker ? 2 : Self.inputModes.count
            let modes = d == 2 ? [32, 32] : Self.inputModes
            let layer = try FactorizedLinear<Float>(inputModes: modes, outputModes: modes, format: configuration.format,
                                                    ranks: configuration.ranks, blocks: configuration.blocks,
                                                    stpFactor: configuration.stpFactor, generator: &generator)
            for mode in executionModes {
                layer.executionMode = mode
                let (seconds, pairedDense) = pairedMedians { trainStep(layer, x) } dense: { trainStep(dense, x) }
                let resolved = layer.resolvedMode(batch: batch)
                let (forward, training, shapes) = work(layer, mode: resolved)
                rows.append(Row(layer: configuration.label, mode: mode == .auto ? "auto→\(name(resolved))" : name(mode),
                                parameters: layer.parameterCount, forwardMACs: forward, trainingMACs: training,
                                seconds: seconds, gemmSeconds: gemmSeconds(shapes) * Double(training) / Double(forward),
                                denseSeconds: pairedDense))
            }
            if executionModes.contains(.auto) {
                layer.executionMode = .auto
                let resolved = layer.autoMode(input: x, cores: layer.cores.map(\.value), bias: layer.bias?.value, constantCores: true)
                let cost = layer.cost(batch: batch, mode: resolved)
                rows.append(inferenceRow(configuration.label, layer, dense: dense, x: x, resolved: resolved,
                                         forwardMACs: resolved == .reconstructed ? cost.activationSide : cost.total))
            }
        }
        let conv = convolutions ? try convolutionRows(only: only, executionModes: executionModes) : (rows: [], notes: [])
        rows += conv.rows
        if json {
            try printJSON([
                "batch": batch, "features": features, "modes": Self.inputModes, "threads": LinearAlgebraThreads.count,
                "rows": rows.map { row -> [String: Any] in
                    var object: [String: Any] = [
                        "layer": row.layer, "mode": row.mode, "parameters": row.parameters, "forward_macs": row.forwardMACs,
                        "training_macs": row.trainingMACs, "ms": row.seconds * 1e3, "gflops": row.achievedGFLOPs,
                        "dense_ms": row.denseSeconds * 1e3, "speedup_over_dense": row.denseSeconds / row.seconds,
                    ]
                    if let g = row.gemmSeconds { object["gemm_fraction"] = g / row.seconds }
                    return object
                },
                "tensorly_torch": peer.map { ["layer": $0.name, "parameters": $0.parameters, "ms": $0.milliseconds] },
                "tensorly_torch_problem": peerProblem ?? "", "conv_notes": conv.notes,
            ])
            return
        }
        var table = [["layer", "mode", "params", "fwd MACs", "ms", "GFLOP/s", "of GEMM", "dense ms", "vs dense"]]
        for row in rows {
            table.append([row.layer, row.mode, grouped(row.parameters), grouped(row.forwardMACs),
                          String(format: "%.2f", row.seconds * 1e3), String(format: "%.1f", row.achievedGFLOPs),
                          row.gemmSeconds.map { String(format: "%.0f%%", 100 * $0 / row.seconds) } ?? "—",
                          String(format: "%.2f", row.denseSeconds * 1e3), String(format: "%.2f×", row.denseSeconds / row.seconds)])
        }
        printAligned(table)
        for note in conv.notes { print("note: \(note)") }
        if peer.isEmpty {
            print("TensorLy-Torch: skipped (\(peerProblem ?? "no output"))")
        } else {
            print("\nTensorLy-Torch 1024→1024, (4,8,8,4), batch 256, forward + backward (same invocation):")
            let peerDense = peer.first { $0.name == "dense" }.flatMap { Double($0.milliseconds) }
            var peerTable = [["layer", "params", "ms", "vs its dense", "ours / theirs (best mode, same format & params)"]]
            for entry in peer {
                let ms = Double(entry.milliseconds)
                let ratio = peerDense.flatMap { dense in ms.map { String(format: "%.2f×", dense / $0) } } ?? "—"
                peerTable.append([entry.name, entry.parameters, entry.milliseconds, ratio, comparison(entry, rows)])
            }
            printAligned(peerTable)
        }
    }

    /// The peer's TT rows are block-TT at ranks 16 and 32 on the same modes, forward + backward: compare with our
    /// TT at the same rank in its fastest training row (the inference rows time the forward pass alone).
    private func comparison(_ entry: (name: String, parameters: String, milliseconds: String), _ rows: [Row]) -> String {
        guard let theirs = Double(entry.milliseconds), entry.name.hasPrefix("blocktt-r") else { return "" }
        let rank = entry.name.dropFirst("blocktt-r".count).prefix { $0.isNumber }
        let ours = rows.filter { $0.layer == "tt r\(rank)" && !$0.mode.hasPrefix("inference") }.map(\.seconds).min()
        return ours.map { String(format: "%.1f× faster", theirs / ($0 * 1e3)) } ?? ""
    }

    /// One forward + backward pass (parameter gradients; the input is a constant) with the loss Σy.
    private func trainStep(_ layer: some Layer<Float>, _ x: Tensor<Float>) {
        layer.visitParameters(prefix: "") { _, parameter in parameter.gradient = nil }
        let tape = Tape<Float>()
        let y = withGradientTape(tape) { layer(Variable(constant: x), mode: .training) }
        tape.gradients(of: y)
    }

    /// Forward MACs, forward + backward MACs, and the (batch, M, K, N) GEMM shapes of the forward steps of `layer`
    /// in `mode` at this batch. Backward: every pairwise step computes one gradient per operand that needs one
    /// (the input does not), each as many MACs as the step; the reconstructed GEMM needs only ∂W.
    private func work(_ layer: FactorizedLinear<Float>, mode: ExecutionMode) -> (Int, Int, [(Int, Int, Int, Int)]) {
        let network = layer.network
        let features = layer.inputFeatures, outputs = layer.outputFeatures
        let sizes = network.letterSizes.merging([network.batchLetter: batch]) { first, _ in first }
        let gemmShape = { (step: ContractionStep) in self.gemmShape(step, sizes: sizes) }
        switch mode {
        case .factorized:
            let path = layer.forwardPath(batch: batch)
            let inputTerm = [network.batchLetter] + network.inputLetters
            var backward = 0
            for step in path.steps {
                backward += step.multiplyAdds * (step.operandIndices.contains(inputTerm) ? 1 : 2)
            }
            return (path.multiplyAdds, path.multiplyAdds + backward, path.steps.map(gemmShape))
        default:
            let path = layer.weightPath()
            let gemm = batch * features * outputs
            let forward = path.multiplyAdds + gemm
            return (forward, forward + 2 * path.multiplyAdds + gemm, path.steps.map(gemmShape) + [(1, batch, features, outputs)])
        }
    }

    /// An `auto` inference row: forward passes with constant cores (`mode: .inference`, no tape: a rebuilt weight is
    /// kept, `RebuiltWeightCache`, and `auto` decides these passes apart), timed alternately with the dense layer's
    /// forward pass. `forwardMACs` are the MACs such a repeated pass does (the GEMM alone when reconstructed).
    private func inferenceRow(_ label: String, _ layer: some ShapedLayer<Float>, dense: some ShapedLayer<Float>, x: Tensor<Float>,
                              resolved: ExecutionMode, forwardMACs: Int) -> Row {
        let (seconds, pairedDense) = pairedMedians {
            _ = layer(Variable(constant: x), mode: .inference)
        } dense: {
            _ = dense(Variable(constant: x), mode: .inference)
        }
        return Row(layer: label, mode: "inference auto→\(name(resolved))", parameters: layer.parameterCount,
                   forwardMACs: forwardMACs, trainingMACs: forwardMACs, seconds: seconds, gemmSeconds: nil,
                   denseSeconds: pairedDense)
    }

    /// Median seconds of `body` and of `dense`, timed alternately (one untimed run of each first).
    private func pairedMedians(_ body: () -> Void, dense: () -> Void) -> (Double, Double) {
        func seconds(_ f: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            f()
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        body()
        dense()
        var ours: [Double] = [], theirs: [Double] = []
        for _ in 0..<Swift.max(1, repeats) {
            ours.append(seconds(body))
            theirs.append(seconds(dense))
        }
        return (ours.sorted()[ours.count / 2], theirs.sorted()[theirs.count / 2])
    }

    /// (batch, M, K, N) of a pairwise step: the shared letters that survive, the left-only, the contracted and the
    /// right-only letters.
    private func gemmShape(_ step: ContractionStep, sizes: [Character: Int]) -> (Int, Int, Int, Int) {
        let (a, b, r) = (step.operandIndices[0], step.operandIndices[1], Set(step.resultIndices))
        func product(_ letters: [Character]) -> Int { letters.reduce(1) { $0 * sizes[$1]! } }
        return (product(a.filter { b.contains($0) && r.contains($0) }), product(a.filter { !b.contains($0) }),
                product(a.filter { b.contains($0) && !r.contains($0) }), product(b.filter { !a.contains($0) }))
    }

    /// Median seconds of bare GEMMs of the given shapes, run back to back.
    private func gemmSeconds(_ shapes: [(Int, Int, Int, Int)]) -> Double {
        var generator = SeededGenerator(seed: 1)
        let operands = shapes.map { (b, m, k, n) in
            (Tensor<Float>.randomNormal([b, m, k], generator: &generator), Tensor<Float>.randomNormal([b, k, n], generator: &generator))
        }
        return medianSeconds(repeats: repeats) {
            for (a, c) in operands {
                if a.shape[0] == 1 {
                    _ = Tensor.matmul(a.reshaped([a.shape[1], a.shape[2]]), c.reshaped([c.shape[1], c.shape[2]]))
                } else {
                    _ = Tensor.batchedMatmul(a, c)
                }
            }
        }
    }

    /// Conv rows: a 64→64 3×3 conv (padding 1) at 14×14, batch 256, forward + backward (the input a constant), every
    /// conv format at the uniform ranks that give 5× and 10× fewer kernel parameters (`FactorizedConv2D.uniformRanks`;
    /// BTD with 2 blocks), in every execution mode, each timed alternately with the dense `Conv2D`. Training MACs
    /// come from `FactorizedConv2D.trainingMultiplyAdds`; there is no bare-GEMM reference for the conv stages. A
    /// format that cannot reach a ratio gives a note instead of a row.
    private func convolutionRows(only: String?, executionModes: [ExecutionMode]) throws -> (rows: [Row], notes: [String]) {
        let (channels, size) = (64, 14)
        let shape = [size, size, channels]
        var generator = SeededGenerator(seed: 2)
        let x = Tensor<Float>.randomNormal([batch] + shape, generator: &generator)
        let params = Convolution2D(padding: 1)
        let dense = Conv2D<Float>(inChannels: channels, outChannels: channels, kernelHeight: 3, kernelWidth: 3, params: params,
                                  generator: &generator)
        let denseMACs = batch * dense.multiplyAdds(forInput: shape)
        let denseSeconds = medianSeconds(repeats: repeats) { trainStep(dense, x) }
        var rows = [Row(layer: "conv dense", mode: "dense", parameters: dense.parameterCount, forwardMACs: denseMACs,
                        trainingMACs: 2 * denseMACs, seconds: denseSeconds, gemmSeconds: nil, denseSeconds: denseSeconds)]
        var notes: [String] = []
        let formats = FactorizedConvFormat.allCases.filter { format in
            only.map { format.shortName == $0.lowercased() || FactorizedConvFormat(name: $0) == format } ?? true
        }
        for format in formats {
            let blocks = format == .blockTerm ? 2 : 1
            for ratio in [5.0, 10.0] {
                let ranks: [Int]
                do {
                    ranks = try FactorizedConv2D<Float>.uniformRanks(format: format, inChannels: channels, outChannels: channels,
                                                                     kernelHeight: 3, kernelWidth: 3, blocks: blocks,
                                                                     compressionRatio: ratio)
                } catch {
                    notes.append("conv \(format.shortName) at \(Int(ratio))×: \(error)")
                    continue
                }
                let layer = try FactorizedConv2D<Float>(format: format, inChannels: channels, outChannels: channels,
                                                        kernelHeight: 3, kernelWidth: 3, params: params, ranks: ranks,
                                                        blocks: blocks, generator: &generator)
                let label = "conv \(format.shortName) r\(ranks.map(String.init).joined(separator: ","))"
                    + (blocks > 1 ? " ×\(blocks)" : "") + String(format: " (%.1f×)", layer.compressionRatio)
                for mode in executionModes {
                    layer.executionMode = mode
                    let (seconds, pairedDense) = pairedMedians { trainStep(layer, x) } dense: { trainStep(dense, x) }
                    let resolved = layer.resolvedMode(forInput: shape, batch: batch)
                    rows.append(Row(layer: label, mode: mode == .auto ? "auto→\(name(resolved))" : name(mode),
                                    parameters: layer.parameterCount,
                                    forwardMACs: layer.cost(forInput: shape, batch: batch, mode: resolved).total,
                                    trainingMACs: layer.trainingMultiplyAdds(forInput: shape, batch: batch, mode: resolved),
                                    seconds: seconds, gemmSeconds: nil, denseSeconds: pairedDense))
                }
                if executionModes.contains(.auto) {
                    layer.executionMode = .auto
                    let resolved = layer.autoMode(input: x, cores: layer.cores.map(\.value), bias: layer.bias?.value, constantCores: true)
                    let cost = layer.cost(forInput: shape, batch: batch, mode: resolved)
                    rows.append(inferenceRow(label, layer, dense: dense, x: x, resolved: resolved,
                                             forwardMACs: resolved == .reconstructed ? cost.activationSide : cost.total))
                }
            }
        }
        return (rows, notes)
    }

    private func runPeer(python: String) -> ([(name: String, parameters: String, milliseconds: String)], String?) {
        guard FileManager.default.fileExists(atPath: peerScript) else { return ([], "\(peerScript) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peerScript]
        var environment = ProcessInfo.processInfo.environment
        environment["THREADS"] = String(LinearAlgebraThreads.count)
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return ([], "cannot run \(python): \(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "failed"
            return ([], last)
        }
        let entries = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line -> (String, String, String)? in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return fields.count == 3 ? (fields[0], fields[1], fields[2]) : nil
        }
        return (entries.map { (name: $0.0, parameters: $0.1, milliseconds: $0.2) }, nil)
    }

    private func name(_ mode: ExecutionMode) -> String {
        switch mode {
        case .factorized: return "factorized"
        case .reconstructed: return "reconstructed"
        case .auto: return "auto"
        }
    }

    private func printAligned(_ table: [[String]]) {
        let widths = (0..<table[0].count).map { c in table.map { $0.count > c ? $0[c].count : 0 }.max()! }
        for line in table {
            print(line.enumerated().map { c, text in
                c < 2 ? text.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                      : String(repeating: " ", count: Swift.max(0, widths[c] - text.count)) + text
            }.joined(separator: "  "))
        }
    }
}
