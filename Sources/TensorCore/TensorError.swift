/// Errors of the numerical core that depend on data or files rather than on the calling code.
///
/// Every message says what went wrong and what to change.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// An input holds NaN or infinity where the operation needs finite numbers.
    case nonFinite(operation: String)
    /// A LAPACK routine reported failure (`info` is its code).
    case lapackFailure(routine: String, info: Int, hint: String)
    /// A matrix that must be positive definite is not.
    case notPositiveDefinite(minorOrder: Int)
    /// A matrix that must be invertible is singular.
    case singularMatrix(pivot: Int)
    /// A parameter a user chose is out of range.
    case invalidArgument(String)
    /// A file could not be read or written, or its contents are malformed.
    case file(path: String, problem: String)

    public var description: String {
        switch self {
        case let .nonFinite(operation):
            return "\(operation): the input contains NaN or infinity; remove or replace non-finite values first"
        case let .lapackFailure(routine, info, hint):
            return "\(routine) failed (LAPACK info \(info)); \(hint)"
        case let .notPositiveDefinite(order):
            return "Cholesky: the matrix is not positive definite (leading minor of order \(order) is not positive); "
                + "add a small multiple of the identity or use a least-squares solve"
        case let .singularMatrix(pivot):
            return "solve: the matrix is singular (zero pivot at position \(pivot)); use leastSquares or pseudoInverse"
        case let .invalidArgument(message):
            return message
        case let .file(path, problem):
            return "\(path): \(problem)"
        }
    }
}
