import Autodiff
import Foundation
import TensorCore

/// A sparsity measure of a vector of singular values σ ∈ ℝ^N_{≥0} (METHODS §4.2): S_1 = Σσ_i,
/// ‖σ‖_2 = (Σσ_i²)^{1/2}, p_i = σ_i/S_1.
///
/// "Rank-like" measures (ℓ0, ℓ1, ℓp, ℓ1/ℓ2, entropy, effective rank, stable rank) are lower for a sparser
/// (more compressible) spectrum; Hoyer and Gini are higher (`higherIsSparser`).
///
/// The all-zero spectrum: ℓ0, ℓ1 and ℓp are 0; the scale-invariant measures (ℓ1/ℓ2, Hoyer, Gini, entropy,
/// effective rank, stable rank) are 0/0 there and `evaluate(_:)` throws `CompressionError.undefinedMeasure`
/// rather than inventing a value. Negative or non-finite entries throw as well.
public enum SparsityMeasure: Sendable, Equatable, Codable, CustomStringConvertible {
    /// ℓ0^ε = #{i: σ_i > ε·σ_max} (relative tolerance ε, derived). Piecewise constant: no gradient.
    case l0(tolerance: Double)
    /// ℓ1 = S_1, the nuclear norm [81, 82].
    case l1
    /// ℓp = (Σσ_i^p)^{1/p}, 0 < p < 1 [88, 89].
    case lp(p: Double)
    /// ℓ1/ℓ2 = S_1/‖σ‖_2 ∈ [1, √N] (DeepHoyer's regularizer).
    case l1OverL2
    /// Hoyer = (√N − S_1/‖σ‖_2)/(√N − 1) ∈ [0, 1] [96] (1 for N = 1).
    case hoyer
    /// Gini = 1 − 2Σ_k (σ_(k)/S_1)(N − k + ½)/N over σ sorted ascending, ∈ [0, 1 − 1/N] [92, 93, 95].
    case gini
    /// Shannon entropy H(p) = −Σ p_i ln p_i (0·ln 0 = 0).
    case entropy
    /// Effective rank exp(H(p)) ∈ [1, rank] [97].
    case effectiveRank
    /// Stable rank ‖σ‖_2²/σ_max² ∈ [1, rank] [80].
    case stableRank

    /// The measures with their default parameters (ℓ0 with ε = 1e-3, ℓp with p = 0.5), in table order.
    public static let all: [SparsityMeasure] = [.l0(tolerance: 1e-3), .l1, .lp(p: 0.5), .l1OverL2, .hoyer, .gini,
                                                .entropy, .effectiveRank, .stableRank]

    /// The command-line name: `l0`, `l1`, `lp`, `l1-l2`, `hoyer`, `gini`, `entropy`, `effective-rank`, `stable-rank`.
    public var name: String {
        switch self {
        case .l0: return "l0"
        case .l1: return "l1"
        case .lp: return "lp"
        case .l1OverL2: return "l1-l2"
        case .hoyer: return "hoyer"
        case .gini: return "gini"
        case .entropy: return "entropy"
        case .effectiveRank: return "effective-rank"
        case .stableRank: return "stable-rank"
        }
    }

    public var description: String {
        switch self {
        case let .l0(tolerance): return "l0(ε=\(tolerance))"
        case let .lp(p): return "lp(p=\(p))"
        default: return name
        }
    }

    /// The measure named `name` (see `name`), with the default parameters of `all`; nil for an unknown name.
    public init?(name: String) {
        guard let measure = SparsityMeasure.all.first(where: { $0.name == name }) else { return nil }
        self = measure
    }

    /// True for Hoyer and Gini (higher means sparser); false for the rank-like measures.
    public var higherIsSparser: Bool { self == .hoyer || self == .gini }

    /// False for ℓ0, which is piecewise constant (its gradient is zero almost everywhere).
    public var isDifferentiable: Bool { if case .l0 = self { return false } else { return true } }

    /// True when the measure is 0/0 on the all-zero spectrum.
    public var isScaleInvariant: Bool {
        switch self {
        case .l1, .lp, .l0: return false
        default: return true
        }
    }

    /// The value of the measure on `sigma`.
    ///
    /// - Throws: `CompressionError.undefinedMeasure` for a negative or non-finite entry, an empty vector, a
    ///   parameter out of range, or a scale-invariant measure of the all-zero spectrum.
    public func value(_ sigma: [Double]) throws -> Double { try evaluate(sigma).value }

    /// The value of the measure on `sigma` and its gradient ∂m/∂σ (METHODS §4.2, derived):
    /// * ℓ1: 1; ℓp: (Σσ^p)^{1/p−1}σ_i^{p−1} (0 where σ_i = 0: zero entries stay at zero);
    /// * ℓ1/ℓ2: 1/‖σ‖_2 − S_1σ_i/‖σ‖_2³; Hoyer: −∂(ℓ1/ℓ2)/(√N − 1);
    /// * Gini: (c_k − N·G)/(N·S_1) at the ascending position k of σ_i, c_k = 2k − N − 1 (ties: one sub-gradient);
    /// * entropy: −(ln p_i + H)/S_1 with p_i clamped to ≥ 1e-12; effective rank: erank·∂H;
    /// * stable rank: 2σ_i/σ_max², plus (2/σ_max)(−srank) on the first maximal entry;
    /// * ℓ0: 0.
    ///
    /// - Throws: as `value(_:)`.
    public func evaluate(_ sigma: [Double]) throws -> (value: Double, gradient: [Double]) {
        let n = sigma.count
        guard n > 0 else { throw CompressionError.undefinedMeasure(measure: name, problem: "the spectrum is empty; pass at least one singular value") }
        if let bad = sigma.first(where: { !($0 >= 0 && $0.isFinite) }) {
            throw CompressionError.undefinedMeasure(measure: name, problem:
                "singular values must be finite and ≥ 0, got \(bad); pass |s| for a signed spectrum")
        }
        let s1 = sigma.reduce(0, +)
        let zeros = [Double](repeating: 0, count: n)
        if s1 == 0 {
            if isScaleInvariant {
                throw CompressionError.undefinedMeasure(measure: name, problem:
                    "all singular values are zero, where \(name) is 0/0; the layer has rank 0 (prune it) or use l1, lp or l0")
            }
            return (0, zeros)
        }
        let sumSquares = sigma.reduce(0) { $0 + $1 * $1 }
        let l2 = sumSquares.squareRoot()
        let rootN = Double(n).squareRoot()
        switch self {
        case let .l0(tolerance):
            guard tolerance >= 0 && tolerance < 1 else {
                throw CompressionError.undefinedMeasure(measure: name, problem: "the tolerance ε must lie in [0, 1), got \(tolerance)")
            }
            let threshold = tolerance * sigma.max()!
            return (Double(sigma.filter { $0 > threshold }.count), zeros)
        case .l1:
            return (s1, [Double](repeating: 1, count: n))
        case let .lp(p):
            guard p > 0 && p < 1 else {
                throw CompressionError.undefinedMeasure(measure: name, problem: "p must lie in (0, 1), got \(p); use l1 for p = 1")
            }
            let sumP = sigma.reduce(0) { $0 + Foundation.pow($1, p) }
            let value = Foundation.pow(sumP, 1 / p)
            let outer = Foundation.pow(sumP, 1 / p - 1)
            return (value, sigma.map { $0 > 0 ? outer * Foundation.pow($0, p - 1) : 0 })
        case .l1OverL2, .hoyer:
            let ratio = s1 / l2
            let gradient = sigma.map { 1 / l2 - s1 * $0 / (l2 * l2 * l2) }
            if self == .l1OverL2 { return (ratio, gradient) }
            if n == 1 { return (1, zeros) }
            return ((rootN - ratio) / (rootN - 1), gradient.map { -$0 / (rootN - 1) })
        case .gini:
            let order = sigma.indices.sorted { sigma[$0] < sigma[$1] }
            var weighted = 0.0
            var weights = zeros
            for (position, index) in order.enumerated() {
                weights[index] = Double(2 * (position + 1) - n - 1)
                weighted += weights[index] * sigma[index]
            }
            let g = weighted / (Double(n) * s1)
            return (g, weights.map { ($0 - Double(n) * g) / (Double(n) * s1) })
        case .entropy, .effectiveRank:
            var h = 0.0
            for value in sigma where value > 0 {
                let p = value / s1
                h -= p * Foundation.log(p)
            }
            let dH = sigma.map { -(Foundation.log(Swift.max($0 / s1, 1e-12)) + h) / s1 }
            if self == .entropy { return (h, dH) }
            let erank = Foundation.exp(h)
            return (erank, dH.map { erank * $0 })
        case .stableRank:
            let top = sigma.indices.max { sigma[$0] < sigma[$1] }!
            let peak = sigma[top]
            let srank = sumSquares / (peak * peak)
            var gradient = sigma.map { 2 * $0 / (peak * peak) }
            gradient[top] -= 2 * srank / peak
            return (srank, gradient)
        }
    }

    /// The measure of a variable vector σ (rank 1) as a differentiable operation whose VJP is `evaluate`'s
    /// gradient times the upstream scalar; computed in Double whatever `Scalar` is.
    ///
    /// - Throws: as `value(_:)`.
    public func callAsFunction<Scalar: TensorScalar>(_ sigma: Variable<Scalar>) throws -> Variable<Scalar> {
        precondition(sigma.value.rank == 1, "SparsityMeasure: expected a vector of singular values, got shape \(sigma.shape)")
        let (value, gradient) = try evaluate(sigma.value.scalars.map { Double($0) })
        let local = Tensor<Scalar>(shape: [gradient.count], scalars: gradient.map { Scalar($0) })
        return recordOperation(Tensor(scalar: Scalar(value)), inputs: [sigma]) { g in [local * g.scalar] }
    }

    /// The rank this measure selects for the non-increasing spectrum `sigma` with the global knob θ (METHODS §4.4,
    /// Mode B), clamped to [1, N] (0 for the all-zero spectrum):
    /// * ℓ0: #{σ_i > θ·σ_1} (θ is the relative tolerance; the measure's own ε is ignored);
    /// * ℓ1 and ℓp: the smallest r with Σ_{i≤r}σ_i^q ≥ θ·Σσ_i^q (q = 1 or p; θ ∈ (0, 1]);
    /// * effective rank, stable rank, (ℓ1/ℓ2)²: ⌈θ·m⌉ (each is a real-valued rank, = r on r equal values);
    /// * Hoyer, Gini, entropy: ⌈θ·(1 − s)·N⌉ with s the score normalized to [0, 1] (Hoyer, G/(1 − 1/N), 1 − H/ln N).
    /// θ = 1 gives "rank = rounded-up measure" (a result within 1e-9 of an integer is that integer).
    ///
    /// - Throws: `CompressionError.undefinedMeasure` for a bad spectrum or θ ≤ 0 (or θ > 1 where θ is a fraction).
    public func selectedRank(_ sigma: [Double], scale theta: Double = 1) throws -> Int {
        let n = sigma.count
        guard theta > 0 && theta.isFinite else {
            throw CompressionError.undefinedMeasure(measure: name, problem: "the rank scale θ must be positive, got \(theta)")
        }
        guard !sigma.isEmpty else {
            throw CompressionError.undefinedMeasure(measure: name, problem: "the spectrum is empty; pass at least one singular value")
        }
        if sigma.allSatisfy({ $0 == 0 }) { return 0 }
        func ceiling(_ x: Double) -> Int { Swift.min(n, Swift.max(1, Int((x - 1e-9).rounded(.up)))) }
        func energyRank(_ q: Double) throws -> Int {
            guard theta <= 1 else {
                throw CompressionError.undefinedMeasure(measure: name, problem: "the kept fraction θ must lie in (0, 1], got \(theta)")
            }
            let powers = try sigma.map { value -> Double in
                guard value >= 0 && value.isFinite else {
                    throw CompressionError.undefinedMeasure(measure: name, problem: "singular values must be finite and ≥ 0, got \(value)")
                }
                return Foundation.pow(value, q)
            }.sorted(by: >)
            let total = powers.reduce(0, +)
            var kept = 0.0
            for (index, power) in powers.enumerated() {
                kept += power
                if kept >= theta * total * (1 - 1e-12) { return index + 1 }
            }
            return n
        }
        switch self {
        case .l0:
            return Swift.max(1, Int(try SparsityMeasure.l0(tolerance: Swift.min(theta, 1 - 1e-15)).value(sigma)))
        case .l1: return try energyRank(1)
        case let .lp(p): _ = try value(sigma); return try energyRank(p)
        case .effectiveRank, .stableRank: return ceiling(theta * (try value(sigma)))
        case .l1OverL2: let ratio = try value(sigma); return ceiling(theta * ratio * ratio)
        case .hoyer: return ceiling(theta * (1 - (try value(sigma))) * Double(n))
        case .gini: return n == 1 ? 1 : ceiling(theta * (1 - (try value(sigma)) / (1 - 1 / Double(n))) * Double(n))
        case .entropy: return n == 1 ? 1 : ceiling(theta * (try value(sigma)) / Foundation.log(Double(n)) * Double(n))
        }
    }
}
