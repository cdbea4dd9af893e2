#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading whole data files, with the errors of `DataError`.
enum DataFile {
    /// Whether a regular file exists at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    /// Joins a folder and a file name with one slash.
    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The bytes of the file at `path`, gunzipped when they start with the gzip magic.
    ///
    /// - Parameters:
    ///   - expected: What the file should hold, for the missing-file message.
    ///   - remedy: How to get the file, for the missing-file message.
    /// - Throws: `DataError.missingFile` when nothing is at `path`, `.unreadableFile` when it cannot be read,
    ///   `.corruptFile` when gzip data is damaged.
    static func contents(of path: String, expected: String, remedy: String) throws -> [UInt8] {
        let raw = try rawContents(of: path, expected: expected, remedy: remedy)
        return try Gzip.decompress(raw, source: path)
    }

    /// The bytes of the file at `path`, as stored.
    static func rawContents(of path: String, expected: String, remedy: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw DataError.missingFile(path: path, expected: expected, remedy: remedy)
            }
            throw DataError.unreadableFile(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw DataError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw DataError.unreadableFile(path: path, reason: "it is not a regular file; expected \(expected)")
        }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < size {
                let got = read(descriptor, buffer.baseAddress! + done, size - done)
                if got < 0 {
                    if errno == EINTR { continue }
                    throw DataError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
                }
                if got == 0 { break }  // the file shrank while being read
                done += got
            }
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }
}
