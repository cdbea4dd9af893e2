import ArgumentParser
import Foundation
import TensorCore

/// The `lowrank` tool. Conventions every command follows: `--help` with examples, `--json` prints one
/// machine-readable JSON object on stdout, human output otherwise, and errors are one line on stderr with a
/// non-zero exit code.
@main
struct LowRankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lowrank",
        abstract: "Make deep networks small and fast with low-rank methods.",
        discussion: """
        Examples:
          lowrank info weights.safetensors
          lowrank bench core
          lowrank compress fmnist-cnn.safetensors --format tt --ratio 5 --out small.safetensors
          lowrank demo
        """,
        subcommands: [Demo.self, Compress.self, Convert.self, Rank.self, Train.self, Evaluate.self, Cost.self, Measure.self,
                      Experiment.self, Decompose.self, Reconstruct.self, Bench.self, Info.self]
    )

    /// Entry point: make sure OpenBLAS runs the kernels this CPU supports, then parse and run.
    static func main() {
        BLASKernels.relaunchWithBestKernelsIfNeeded()
        TensorMemory.keepFreedBuffersForReuse()
        main(nil)
    }
}

/// Options shared by commands that can answer in JSON.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object on stdout instead of human-readable text.")
    var json = false
}

/// Runs a command body and turns any thrown error into one line on stderr and exit code 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("lowrank: error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Prints a dictionary as a single JSON object with sorted keys.
func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}
