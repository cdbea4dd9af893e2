/// Errors of the data layer: files that are missing, unreadable or malformed.
///
/// Every case names the file, says what was expected and what to do. `description` is one line, ready for
/// the command-line tool to print as is (house plan, convention 3).
///
/// ```swift
/// do { _ = try Dataset.fashionMNIST(split: .test) }
/// catch let error as DataError { print("error: \(error)") }
/// ```
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A data file does not exist.
    ///
    /// - `path`: the file looked for; `expected`: what it should hold; `remedy`: how to get it.
    case missingFile(path: String, expected: String, remedy: String)
    /// A data file exists but cannot be read (permissions, a folder in its place, an I/O error).
    case unreadableFile(path: String, reason: String)
    /// A data file was read but its contents are not what the format requires (bad magic number, truncated,
    /// gzip error, label out of range).
    case corruptFile(path: String, problem: String)
    /// Two files that belong together (images and labels) disagree on the number of examples.
    case mismatchedFiles(images: String, imageCount: Int, labels: String, labelCount: Int)

    /// The one-line message for a user: the file, what was wrong and what to do.
    public var description: String {
        switch self {
        case let .missingFile(path, expected, remedy):
            return "\(path): file not found (expected \(expected)); \(remedy)"
        case let .unreadableFile(path, reason):
            return "\(path): cannot read the data file (\(reason)); check the path and the file's permissions"
        case let .corruptFile(path, problem):
            return "\(path): corrupt data file: \(problem)"
        case let .mismatchedFiles(images, imageCount, labels, labelCount):
            return "\(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels; "
                + "the two files must come from the same split of the same data set (re-install or re-download them)"
        }
    }

    /// The file the error is about (the images file for `mismatchedFiles`).
    public var path: String {
        switch self {
        case let .missingFile(path, _, _), let .unreadableFile(path, _), let .corruptFile(path, _):
            return path
        case let .mismatchedFiles(images, _, _, _):
            return images
        }
    }
}
