import TensorCore

/// What a decomposition must reach. Each format documents what its ranks mean.
public enum RankTarget<Scalar: TensorScalar>: Sendable, Equatable {
    /// Explicit ranks (one number applies to every rank of the format; otherwise one per rank).
    case ranks([Int])
    /// A relative Frobenius error ‖𝒳 − 𝒳̂‖_F ≤ ε‖𝒳‖_F, where the algorithm can guarantee one.
    case relativeError(Scalar)
    /// A compression ratio: parameters of the full tensor over parameters of the factors (≥ 1).
    case compressionRatio(Double)
}

/// A tensor held as the factors of one decomposition format.
public protocol TensorDecomposition: Sendable {
    associatedtype Scalar: TensorScalar
    /// Short format name used in files and reports ("cp", "tucker", "tt", …).
    static var formatName: String { get }
    /// Shape of the full tensor.
    var shape: [Int] { get }
    /// The ranks of the format (documented per format).
    var ranks: [Int] { get }
    /// Number of stored scalars in all factors.
    var parameterCount: Int { get }
    /// Rebuilds the full tensor.
    func reconstruct() -> Tensor<Scalar>
}

extension TensorDecomposition {
    /// Parameters of the full tensor over parameters of the factors.
    public var compressionRatio: Double {
        Double(shape.reduce(1, *)) / Double(Swift.max(parameterCount, 1))
    }

    /// ‖𝒳 − reconstruct()‖_F / ‖𝒳‖_F.
    public func relativeError(to tensor: Tensor<Scalar>) -> Scalar {
        reconstruct().relativeError(to: tensor)
    }
}

/// How an iterative algorithm (ALS and friends) ended.
public struct ConvergenceReport: Sendable, Equatable {
    /// Sweeps performed.
    public var iterations: Int
    /// True when the stopping criterion was met before the iteration cap.
    public var converged: Bool
    /// Fit 1 − ‖𝒳 − 𝒳̂‖_F/‖𝒳‖_F after each sweep.
    public var fitHistory: [Double]
    /// Problems noticed on the way (degeneracy, rank deficiency), empty when none.
    public var warnings: [String]

    public init(iterations: Int, converged: Bool, fitHistory: [Double], warnings: [String] = []) {
        self.iterations = iterations
        self.converged = converged
        self.fitHistory = fitHistory
        self.warnings = warnings
    }
}

/// Errors of the decompositions, each saying what to change.
public enum DecompositionError: Error, CustomStringConvertible, Equatable {
    /// The input tensor has NaN or infinity.
    case nonFiniteInput(format: String)
    /// A rank is zero, negative, or the rank list has the wrong length.
    case invalidRanks(format: String, problem: String)
    /// A negative or non-finite tolerance, or a ratio below 1.
    case invalidTarget(format: String, problem: String)
    /// The tensor's order or shape does not suit the format (too few modes, a tree or reshape that does not match).
    case shapeMismatch(format: String, problem: String)
    /// This format cannot honour this kind of target.
    case unsupportedTarget(format: String, problem: String)
    /// The algorithm broke down numerically (diverging, cancelling components).
    case degenerate(format: String, problem: String)

    public var description: String {
        switch self {
        case let .nonFiniteInput(format):
            return "\(format): the tensor contains NaN or infinity; clean the input (replace non-finite values) before decomposing"
        case let .invalidRanks(format, problem), let .invalidTarget(format, problem),
             let .shapeMismatch(format, problem), let .unsupportedTarget(format, problem),
             let .degenerate(format, problem):
            return "\(format): \(problem)"
        }
    }
}

/// Checks shared by every decomposition: finite input, a sensible target.
func validate<Scalar>(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, format: String) throws {
    guard tensor.isFinite else { throw DecompositionError.nonFiniteInput(format: format) }
    switch target {
    case let .ranks(ranks):
        guard !ranks.isEmpty, ranks.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.invalidRanks(format: format, problem: "every rank must be at least 1, got \(ranks)")
        }
    case let .relativeError(eps):
        guard eps >= 0, eps.isFinite else {
            throw DecompositionError.invalidTarget(format: format, problem: "the tolerance ε must be a finite number ≥ 0, got \(eps)")
        }
    case let .compressionRatio(ratio):
        guard ratio >= 1, ratio.isFinite else {
            throw DecompositionError.invalidTarget(format: format, problem: "the compression ratio must be ≥ 1, got \(ratio)")
        }
    }
}

/// Expands a rank list: one number means the same rank everywhere, otherwise the count must match.
func expandRanks(_ ranks: [Int], count: Int, format: String, what: String) throws -> [Int] {
    if ranks.count == 1 { return [Int](repeating: ranks[0], count: count) }
    guard ranks.count == count else {
        throw DecompositionError.invalidRanks(format: format, problem: "expected 1 or \(count) \(what), got \(ranks.count) (\(ranks))")
    }
    return ranks
}

/// Largest value r in 1...upper with cost(r) ≤ budget, for monotone cost (binary search); 1 if none fits.
func largestRank(upTo upper: Int, within budget: Double, cost: (Int) -> Int) -> Int {
    var lo = 1, hi = Swift.max(1, upper)
    if Double(cost(hi)) <= budget { return hi }
    while lo < hi {
        let mid = (lo + hi + 1) / 2
        if Double(cost(mid)) <= budget { lo = mid } else { hi = mid - 1 }
    }
    return lo
}

/// Why factors of these shapes are too large to stand for `entries` scalars, or nil: they may store up to 16× the
/// entries, and never less than 2²⁰ scalars (small tensors and layers may be over-parameterized on purpose). Far
/// above that a rank is almost surely a typo (`--ranks 100000`), and honouring it would allocate gigabytes or
/// overflow the cost counters. Counted without overflow.
public func oversizedFactorsProblem(shapes: [[Int]], entries: Int) -> String? {
    func product(_ a: Int, _ b: Int) -> Int {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : value
    }
    let stored = shapes.reduce(0) { total, shape in
        let (sum, overflow) = total.addingReportingOverflow(shape.reduce(1, product))
        return overflow ? Int.max : sum
    }
    let limit = Swift.max(product(16, entries), 1 << 20)
    guard stored > limit else { return nil }
    return "these ranks store \(stored == Int.max ? "more than \(Int.max)" : "\(stored)") scalars, more than 16× the \(entries) "
        + "they stand for (limit \(limit)); lower the ranks"
}
