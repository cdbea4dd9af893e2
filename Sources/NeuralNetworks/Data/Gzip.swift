import CZlib

/// Gzip compression and decompression through zlib, the only place LowRank talks to zlib.
///
/// Data sets such as MNIST and Fashion-MNIST ship as `.gz` files (RFC 1952: a 10-byte header starting
/// `1f 8b`, a DEFLATE stream, then the CRC-32 and the length of the uncompressed data). `decompress` inflates
/// such files, including several gzip members written one after another (`cat a.gz b.gz`), and checks each
/// member's CRC-32 and length; bytes that do not start with the gzip magic are returned unchanged, so callers
/// read raw and compressed files alike.
///
/// ```swift
/// let packed = Gzip.compress(bytes)
/// let unpacked = try Gzip.decompress(packed, source: "memory")   // == bytes
/// ```
public enum Gzip {
    /// Whether `bytes` start with the gzip magic number `1f 8b`.
    public static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Inflates gzip data, or returns `bytes` unchanged when they do not start with the gzip magic.
    ///
    /// - Parameters:
    ///   - bytes: The file's contents.
    ///   - source: The file name used in error messages.
    /// - Returns: The uncompressed bytes (all members concatenated).
    /// - Throws: `DataError.corruptFile` naming `source` when the stream is truncated, fails its CRC-32 or length
    ///   check, is not valid DEFLATE data, or is followed by bytes that are neither another gzip member nor
    ///   zero padding.
    public static func decompress(_ bytes: [UInt8], source: String) throws -> [UInt8] {
        guard isCompressed(bytes) else { return bytes }
        // The last four bytes of a gzip member are its uncompressed length modulo 2^32: an exact first guess
        // for single-member files under 4 GiB, so the output buffer is normally allocated once.
        // DEFLATE expands at most about 1032:1, which bounds the guess when the trailer is damaged.
        var sizeHint = 1024
        if bytes.count >= 18 {
            let tail = bytes.count - 4
            let stored = Int(bytes[tail]) | Int(bytes[tail + 1]) << 8 | Int(bytes[tail + 2]) << 16
                | Int(bytes[tail + 3]) << 24
            sizeHint = max(1024, min(stored, bytes.count * 1032))
        }
        var output = [UInt8](repeating: 0, count: sizeHint)
        var produced = 0

        var stream = z_stream()
        // windowBits 15 + 16: a gzip wrapper is required (the magic was checked above).
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError.corruptFile(path: source, problem: "zlib could not start inflating (out of memory?)")
        }
        defer { inflateEnd(&stream) }

        try bytes.withUnsafeBufferPointer { input in
            var consumed = 0
            func feed() {
                let chunk = min(input.count - consumed, Int(UInt32.max))
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
                stream.avail_in = UInt32(chunk)
            }
            feed()
            while true {
                if produced == output.count {
                    output.append(contentsOf: repeatElement(0, count: output.count))
                }
                let room = min(output.count - produced, Int(UInt32.max))
                let before = Int(stream.avail_in)
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(room)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                produced += room - Int(stream.avail_out)
                consumed += before - Int(stream.avail_in)
                switch status {
                case Z_STREAM_END:
                    let rest = input.count - consumed
                    if rest == 0 { return }
                    if rest >= 2 && input[consumed] == 0x1F && input[consumed + 1] == 0x8B {
                        // Another gzip member follows.
                        inflateReset(&stream)
                        feed()
                        continue
                    }
                    if input[consumed...].allSatisfy({ $0 == 0 }) { return }  // zero padding, as gzip(1) allows
                    throw DataError.corruptFile(
                        path: source,
                        problem: "\(rest) unexpected bytes after the end of the gzip data; re-download or re-install the file")
                case Z_OK:
                    if stream.avail_in == 0 && consumed < input.count { feed() }
                    if stream.avail_in == 0 && stream.avail_out > 0 { throw truncated(source, produced) }
                case Z_BUF_ERROR:
                    // No progress possible: either the output is full (grow it above) or the input ran out.
                    if stream.avail_out > 0 {
                        if consumed < input.count { feed(); continue }
                        throw truncated(source, produced)
                    }
                case Z_DATA_ERROR:
                    let detail = stream.msg.map { String(cString: $0) } ?? "invalid compressed data"
                    throw DataError.corruptFile(
                        path: source,
                        problem: "gzip data error (\(detail)) after \(produced) uncompressed bytes; "
                            + "the file is damaged: re-download or re-install it")
                case Z_MEM_ERROR:
                    throw DataError.corruptFile(path: source, problem: "zlib ran out of memory while inflating")
                default:
                    throw DataError.corruptFile(
                        path: source, problem: "zlib inflate failed with status \(status); re-download or re-install the file")
                }
            }
        }
        output.removeLast(output.count - produced)
        return output
    }

    /// Compresses `bytes` into one gzip member (DEFLATE, RFC 1952 header with no name and time 0).
    ///
    /// - Parameters:
    ///   - bytes: The data to compress.
    ///   - level: zlib compression level, 0 (store) through 9 (smallest).
    /// - Returns: The gzip file contents; `decompress` restores `bytes` exactly.
    public static func compress(_ bytes: [UInt8], level: Int = 6) -> [UInt8] {
        precondition((0...9).contains(level), "Gzip.compress: level must be 0...9, got \(level)")
        var stream = z_stream()
        let initStatus = deflateInit2_(&stream, Int32(level), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                       zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(initStatus == Z_OK, "Gzip.compress: deflateInit2 failed with status \(initStatus)")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 32)
        var produced = 0
        bytes.withUnsafeBufferPointer { input in
            var consumed = 0
            while true {
                let chunk = min(input.count - consumed, Int(UInt32.max))
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                stream.avail_in = UInt32(chunk)
                let last = consumed + chunk == input.count
                if produced == output.count { output.append(contentsOf: repeatElement(0, count: output.count)) }
                let room = min(output.count - produced, Int(UInt32.max))
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(room)
                    return deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH)
                }
                produced += room - Int(stream.avail_out)
                consumed += chunk - Int(stream.avail_in)
                if status == Z_STREAM_END { return }
                precondition(status == Z_OK || status == Z_BUF_ERROR, "Gzip.compress: deflate failed with status \(status)")
            }
        }
        output.removeLast(output.count - produced)
        return output
    }
}

private func truncated(_ source: String, _ produced: Int) -> DataError {
    .corruptFile(path: source,
                 problem: "the gzip data ends early (truncated after \(produced) uncompressed bytes); "
                     + "the download or copy was incomplete: re-download or re-install the file")
}
