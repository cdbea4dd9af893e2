import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the trainer shows progress.
public enum ProgressStyle: Sendable, Equatable {
    /// A line rewritten in place when standard error is a terminal; otherwise plain lines every 50 steps.
    case automatic
    /// A line rewritten in place (carriage return), whatever standard error is.
    case inPlace
    /// A plain line every `everySteps` steps, and one per finished epoch.
    case lines(everySteps: Int)
    /// Nothing.
    case silent
}

/// One progress report: where training stands and how fast it goes.
public struct ProgressReport: Sendable, Equatable {
    /// The epoch, from 1.
    public var epoch: Int
    /// The number of epochs the run trains to.
    public var epochs: Int
    /// Steps done in this epoch.
    public var step: Int
    /// Steps in this epoch.
    public var stepsPerEpoch: Int
    /// Mean training loss over the epoch so far.
    public var loss: Double
    /// Training accuracy over the epoch so far, in [0, 1].
    public var accuracy: Double
    /// Training images per second over the epoch so far.
    public var imagesPerSecond: Double
    /// Estimated seconds until the run ends (remaining training steps at the current speed).
    public var etaSeconds: Double

    /// `epoch 1/5  step 120/469  loss 0.4123  acc 85.21%  1043 img/s  ETA 2m13s`.
    public var line: String {
        String(format: "epoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %@",
               epoch, epochs, step, stepsPerEpoch, loss, 100 * accuracy, imagesPerSecond,
               formatDuration(etaSeconds))
    }
}

/// `2m13s`, `1h05m`, `42s`.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite && seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// Writes progress to standard error: in place on a terminal (throttled to 10 updates a second), plain lines
/// otherwise, so logs stay readable and `--json` output on standard output stays clean.
final class ProgressPrinter {
    private let inPlace: Bool
    private let lineInterval: Int?
    private let silent: Bool
    private var lastUpdate: UInt64 = 0
    private var lastLength = 0

    init(style: ProgressStyle) {
        switch style {
        case .automatic:
            let terminal = isatty(STDERR_FILENO) != 0
            inPlace = terminal
            lineInterval = terminal ? nil : 50
            silent = false
        case .inPlace:
            inPlace = true; lineInterval = nil; silent = false
        case let .lines(every):
            inPlace = false; lineInterval = max(1, every); silent = false
        case .silent:
            inPlace = false; lineInterval = nil; silent = true
        }
    }

    /// A step finished.
    func update(_ report: ProgressReport) {
        guard !silent else { return }
        if inPlace {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now - lastUpdate >= 100_000_000 || report.step == report.stepsPerEpoch else { return }
            lastUpdate = now
            let text = report.line
            let padding = max(0, lastLength - text.count)
            lastLength = text.count
            write("\r" + text + String(repeating: " ", count: padding))
        } else if let every = lineInterval, report.step % every == 0, report.step < report.stepsPerEpoch {
            write(report.line + "\n")
        }
    }

    /// An epoch finished: ends the in-place line and prints `summary` on its own line.
    func finishEpoch(_ summary: String) {
        guard !silent else { return }
        if inPlace {
            let padding = max(0, lastLength - summary.count)
            lastLength = 0
            write("\r" + summary + String(repeating: " ", count: padding) + "\n")
        } else {
            write(summary + "\n")
        }
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
