import ArgumentParser
import Compression
import Foundation

/// `lowrank bench …`: benchmarks that print LowRank and its reference side by side, measured in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure LowRank against plain BLAS and the peer libraries, side by side.",
        discussion: """
        Build with `swift build -c release` first: debug builds are 10-50x slower.
        Examples:
          lowrank bench core
          lowrank bench core --json
          lowrank bench layers
        """,
        subcommands: [BenchCore.self, BenchTrain.self, BenchDecompositions.self, BenchLayers.self]
    )
}

struct BenchCore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "GEMM, SVD, permute and einsum throughput next to plain cblas_sgemm, memcpy and numpy."
    )

    @OptionGroup var output: OutputOptions

    @Option(parsing: .unconditional, help: "Timed repetitions per measurement (the median is reported).")
    var repeats = 5

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be ≥ 1, got \(repeats)") }
    }

    func run() throws {
        try runReportingErrors { try CoreBenchmark(repeats: repeats).run(json: output.json) }
    }
}

struct BenchLayers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers",
        abstract: "Factorized layers in every format and execution mode against the dense layer (and TensorLy-Torch)."
    )

    @OptionGroup var output: OutputOptions

    @Option(parsing: .unconditional, help: "Timed repetitions per measurement (the median is reported).")
    var repeats = 10

    @Option(help: "Only this format (short name: tt, tr, stt, …).")
    var format: String?

    @Option(help: "Only this execution mode (auto, factorized or reconstructed).")
    var mode: String?

    @Option(help: "Only the FC layers (fc) or only the conv layers (conv).")
    var layer: String?

    @Option(help: "Python with TensorLy-Torch for the peer rows (default: .venv-peers/bin/python when present).")
    var python: String?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be ≥ 1, got \(repeats)") }
        if let format, FactorizedFormat(name: format) == nil && FactorizedConvFormat(name: format) == nil {
            throw ValidationError("unknown --format '\(format)'; choose one of "
                                  + FactorizedFormat.allCases.map(\.shortName).joined(separator: ", ") + " (or gkpd)")
        }
    }

    func run() throws {
        try runReportingErrors {
            let defaultPython = ".venv-peers/bin/python"
            let peer = python ?? (FileManager.default.isExecutableFile(atPath: defaultPython) ? defaultPython : nil)
            let modes: [String: ExecutionMode] = ["auto": .auto, "factorized": .factorized, "reconstructed": .reconstructed]
            if let mode, modes[mode] == nil { throw ValidationError("--mode must be auto, factorized or reconstructed, got '\(mode)'") }
            if let layer, layer != "fc" && layer != "conv" { throw ValidationError("--layer must be fc or conv, got '\(layer)'") }
            try LayerBenchmark(repeats: repeats, python: peer, fullyConnected: layer != "conv", convolutions: layer != "fc")
                .run(json: output.json, only: format, executionModes: mode.map { [modes[$0]!] } ?? ExecutionMode.allCases)
        }
    }
}

/// Median wall-clock seconds of `repeats` runs of `body`, after one warm-up run.
func medianSeconds(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    times.sort()
    return times[times.count / 2]
}

/// Runs a Python script (given as text) with `python3` and parses the one JSON object it prints last.
/// Returns nil when python3 or a module it imports is missing, with the reason.
func runPythonJSON(_ script: String, arguments: [String] = []) -> (result: [String: Any]?, problem: String?) {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-\(UUID().uuidString).py")
    do { try script.write(to: url, atomically: true, encoding: .utf8) } catch { return (nil, "cannot write temp script: \(error)") }
    defer { try? FileManager.default.removeItem(at: url) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", url.path] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch { return (nil, "python3 not found") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        let message = String(decoding: errData, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "failed"
        return (nil, message)
    }
    guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
          let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        return (nil, "no JSON result from python")
    }
    return (object, nil)
}
