import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that readers see either the old file or the complete new one, never a partial write.
///
/// The bytes go to a temporary file in the same folder as the destination (`.NAME.tmp-PID-N`), which is
/// flushed to disk and then renamed over the destination; `rename(2)` within one file system is atomic.
/// If anything fails (the folder does not exist, the disk fills up, the body throws, the rename fails),
/// the temporary file is removed and an existing file at the destination is left untouched.
///
/// ```swift
/// try AtomicFile.write(to: "weights.safetensors") { output in
///     try output.write(headerBytes)
///     try output.write(payload)
/// }
/// ```
public enum AtomicFile {
    /// The open temporary file handed to the body of `AtomicFile.write(to:_:)`.
    ///
    /// Valid only while the body runs; do not keep it.
    public struct Output {
        fileprivate let descriptor: Int32
        fileprivate let destination: String

        /// Appends `bytes` to the file.
        ///
        /// - Throws: `TensorError.file` when the system refuses the write (for example, a full disk).
        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < bytes.count {
                let written = systemWrite(descriptor, bytes.baseAddress! + done, bytes.count - done)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw TensorError.file(
                        path: destination,
                        problem: "writing failed (\(systemErrorMessage())); free disk space or choose another folder")
                }
                done += written
            }
        }

        /// Appends `bytes` to the file.
        ///
        /// - Throws: `TensorError.file` when the system refuses the write (for example, a full disk).
        public func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }
    }

    /// Creates or replaces the file at `path` with what `body` writes, atomically.
    ///
    /// - Parameters:
    ///   - path: The destination file. Its folder must exist and be writable.
    ///   - body: Writes the contents through the `Output` it is given.
    /// - Throws: `TensorError.file` when the temporary file cannot be created, written, flushed or renamed;
    ///   any error `body` throws is rethrown. In every failure case no temporary file remains and an existing
    ///   file at `path` is unchanged.
    public static func write(to path: String, _ body: (Output) throws -> Void) throws {
        let (folder, name) = splitPath(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw TensorError.file(path: path, problem: "is not a file name; give a path that ends in a file name")
        }
        let (descriptor, temporaryPath) = try createTemporaryFile(folder: folder, name: name, destination: path)
        var isOpen = true
        do {
            try body(Output(descriptor: descriptor, destination: path))
            guard fsync(descriptor) == 0 else {
                throw TensorError.file(path: path, problem: "flushing to disk failed (\(systemErrorMessage())); "
                                       + "free disk space or choose another folder")
            }
            isOpen = false
            guard close(descriptor) == 0 else {
                throw TensorError.file(path: path, problem: "closing the temporary file failed (\(systemErrorMessage())); "
                                       + "free disk space or choose another folder")
            }
            guard rename(temporaryPath, path) == 0 else {
                throw TensorError.file(path: path, problem: "cannot replace the file (\(systemErrorMessage())); "
                                       + "check that the path is not a folder and that you may write there")
            }
        } catch {
            if isOpen { close(descriptor) }
            unlink(temporaryPath)
            throw error
        }
    }

    /// Checks, before long work, that `write(to: path)` can succeed: `path` names a file (not a folder) in a folder
    /// that exists and may be written.
    ///
    /// - Throws: `TensorError.file` naming the problem and the fix (`.invalidArgument` for an empty path).
    public static func checkDestination(_ path: String) throws {
        guard !path.isEmpty else { throw TensorError.invalidArgument("the output path is empty; give a file name") }
        let (folder, name) = splitPath(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw TensorError.file(path: path, problem: "is not a file name; give a path that ends in a file name")
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw TensorError.file(path: path, problem: "is a folder; give a file name (for example \(path)/model.safetensors)")
        }
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw TensorError.file(path: path, problem: "its folder '\(folder)' does not exist; create it first")
        }
        guard access(folder, W_OK) == 0 else {
            throw TensorError.file(path: path, problem: "its folder '\(folder)' is not writable; choose another folder")
        }
    }

    /// Creates the folder `path` and its parents unless it exists (an output folder for several files).
    ///
    /// - Throws: `TensorError.file` when a file is in the way or the folder cannot be created or written.
    public static func createFolder(_ path: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else {
                throw TensorError.file(path: path, problem: "is a file, not a folder; choose another output folder")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw TensorError.file(path: path, problem: "cannot create this folder (\(error.localizedDescription)); "
                                       + "check that you may write in its parent")
            }
        }
        guard access(path, W_OK) == 0 else {
            throw TensorError.file(path: path, problem: "this folder is not writable; choose another output folder")
        }
    }

    /// Splits a path into its folder ("." when there is none) and its last component.
    private static func splitPath(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    /// Creates a new, empty temporary file next to the destination; never reuses an existing name.
    private static func createTemporaryFile(folder: String, name: String, destination: String) throws
        -> (descriptor: Int32, path: String)
    {
        var stamp = timespec()
        clock_gettime(CLOCK_MONOTONIC, &stamp)
        var suffix = UInt64(stamp.tv_nsec) &+ UInt64(stamp.tv_sec) &* 1_000_000_007
        for _ in 0..<100 {
            let candidate = folder + "/." + name + ".tmp-\(getpid())-\(suffix)"
            let descriptor = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if descriptor >= 0 { return (descriptor, candidate) }
            guard errno == EEXIST else {
                throw TensorError.file(
                    path: destination,
                    problem: "cannot create a temporary file in folder '\(folder)' (\(systemErrorMessage())); "
                        + "check that the folder exists and that you may write there")
            }
            suffix &+= 1
        }
        throw TensorError.file(path: destination,
                               problem: "cannot find a free temporary file name in folder '\(folder)'; "
                                   + "remove stale '.\(name).tmp-*' files there")
    }
}

/// The system's description of the current `errno`.
func systemErrorMessage() -> String { String(cString: strerror(errno)) }

/// `write(2)`; named apart so it does not collide with `Output.write`.
@inline(__always)
private func systemWrite(_ descriptor: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, pointer, count)
    #else
    return Darwin.write(descriptor, pointer, count)
    #endif
}
