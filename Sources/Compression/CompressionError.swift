/// Errors of the Compression module, each naming the layer and saying what to change.
public enum CompressionError: Error, CustomStringConvertible, Equatable {
    /// Mode factorizations that do not fit the layer (wrong product, different counts, a mode < 1).
    case invalidModes(layer: String, problem: String)
    /// Ranks that cannot be used (wrong count, a rank < 1).
    case invalidRanks(layer: String, problem: String)
    /// A format that does not apply to this layer as configured (KPD with d ≠ 2, TR with d < 2).
    case unsupportedFormat(layer: String, problem: String)
    /// A sparsity measure that is undefined for its input (the all-zero spectrum of a scale-invariant measure, a
    /// negative singular value, a parameter out of range).
    case undefinedMeasure(measure: String, problem: String)
    /// A compression-aware training setting that cannot be used (a negative strength, an energy outside (0, 1]).
    case invalidSetting(layer: String, problem: String)

    /// "layer: problem".
    public var description: String {
        switch self {
        case let .invalidModes(layer, problem), let .invalidRanks(layer, problem),
             let .unsupportedFormat(layer, problem), let .undefinedMeasure(layer, problem),
             let .invalidSetting(layer, problem):
            return "\(layer): \(problem)"
        }
    }
}

/// A factorization of `n` into `count` factors as equal as possible (largest factors first), padded with 1s:
/// the suggestion error messages propose. For example 1024 in 4 factors is [8, 8, 4, 4].
public func balancedFactorization(of n: Int, into count: Int) -> [Int] {
    precondition(n >= 1 && count >= 1, "balancedFactorization: n = \(n) and count = \(count) must be positive")
    var primes: [Int] = []
    var rest = n, p = 2
    while p * p <= rest {
        while rest % p == 0 { primes.append(p); rest /= p }
        p += 1
    }
    if rest > 1 { primes.append(rest) }
    var factors = [Int](repeating: 1, count: count)
    for prime in primes.sorted(by: >) {
        let smallest = factors.indices.min { factors[$0] < factors[$1] }!
        factors[smallest] *= prime
    }
    return factors.sorted(by: >)
}
