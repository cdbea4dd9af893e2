import ArgumentParser
import Foundation
import TensorCore

/// `lowrank info FILE`: what a tensor file holds (safetensors or NumPy .npy), without reading the tensor data.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the tensors (name, dtype, shape, bytes) and metadata of a .safetensors or .npy file.",
        discussion: """
        The format is recognized by the file's first bytes, not by its extension. \
        A .npy file holds one array, listed under the name "array".

        Examples:
          lowrank info model.safetensors
          lowrank info weights.npy --json
        """
    )

    @Argument(help: "The .safetensors or .npy file to describe.")
    var file: String

    @OptionGroup var output: OutputOptions

    /// One listed tensor.
    struct Row {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytes: Int
    }

    func run() throws {
        try runReportingErrors {
            let (format, details, metadata, rows) = try describe(file)
            let totalBytes = rows.reduce(0) { $0 + $1.bytes }
            if output.json {
                var object: [String: Any] = [
                    "path": file,
                    "format": format,
                    "metadata": metadata,
                    "tensors": rows.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape, "bytes": $0.bytes] },
                    "total_bytes": totalBytes,
                ]
                for (key, value) in details { object[key] = value }
                try printJSON(object)
                return
            }
            let extra = details.sorted { $0.key < $1.key }.map { ", \($0.key) \($0.value)" }.joined()
            print("\(file): \(format)\(extra), \(rows.count) tensor\(rows.count == 1 ? "" : "s"), "
                  + "\(Self.humanBytes(totalBytes)) of data")
            if !metadata.isEmpty {
                print("metadata:")
                for key in metadata.keys.sorted() { print("  \(key): \(metadata[key]!)") }
            }
            guard !rows.isEmpty else { return }
            let table = [["name", "dtype", "shape", "bytes"]]
                + rows.map { [$0.name, $0.dtype, "[" + $0.shape.map(String.init).joined(separator: ", ") + "]", "\($0.bytes)"] }
            let widths = (0..<4).map { column in table.map { $0[column].count }.max()! }
            for line in table {
                let padded = (0..<3).map { line[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                print((padded + [String(repeating: " ", count: widths[3] - line[3].count) + line[3]])
                      .joined(separator: "  "))
            }
        }
    }

    /// Opens `path` as whichever format its first bytes announce.
    private func describe(_ path: String) throws
        -> (format: String, details: [String: String], metadata: [String: String], rows: [Row])
    {
        switch try Self.sniff(path) {
        case .npy:
            let array = try NPYFile(contentsOf: path)
            return ("npy", ["version": array.version], [:],
                    [Row(name: "array", dtype: array.dtype, shape: array.shape, bytes: array.byteCount)])
        case .safetensors:
            let tensors = try SafeTensorsFile(contentsOf: path)
            return ("safetensors", [:], tensors.metadata,
                    tensors.entries.map { Row(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount) })
        }
    }

    enum Format { case npy, safetensors }

    /// A .npy file starts with "\x93NUMPY"; a safetensors file with an 8-byte length and then the header's '{'.
    static func sniff(_ path: String) throws -> Format {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw TensorError.file(path: path, problem: "no such file; check the path")
        }
        guard !isFolder.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
            throw TensorError.file(path: path, problem: isFolder.boolValue
                                   ? "is a folder; give the path of a .safetensors or .npy file"
                                   : "cannot open for reading; check the file's permissions")
        }
        defer { try? handle.close() }
        let prefix = [UInt8](try handle.read(upToCount: 9) ?? Data())
        if prefix.starts(with: [0x93] + Array("NUMPY".utf8)) { return .npy }
        if prefix.count == 9, prefix[8] == UInt8(ascii: "{") { return .safetensors }
        throw TensorError.file(path: path, problem: "is neither a safetensors file (an 8-byte header length, then "
                               + "'{') nor a .npy file (starting with \\x93NUMPY); check that this is a tensor file")
    }

    /// `bytes` with a binary unit (B, KiB, MiB, GiB).
    static func humanBytes(_ bytes: Int) -> String {
        var value = Double(bytes)
        for unit in ["B", "KiB", "MiB", "GiB"] {
            if value < 1024 || unit == "GiB" {
                return unit == "B" ? "\(bytes) B" : String(format: "%.1f", value) + " " + unit
            }
            value /= 1024
        }
        return "\(bytes) B"
    }
}
