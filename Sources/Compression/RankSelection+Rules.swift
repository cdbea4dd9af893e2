import TensorCore

/// A per-matrix rank rule for the SVD form W ≈ A·B of W ∈ ℝ^{I×O} (METHODS §3, first rows of the table).
public enum MatrixRankRule: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Exactly R (≥ 1), clamped to min(I, O).
    case fixed(Int)
    /// The smallest R with Σ_{i≤R} σ_i² ≥ e·Σ σ_i², 0 < e ≤ 1 (`TruncationRule.energy`).
    case energy(Double)
    /// The largest R whose SVD form meets a target compression ratio c = I·O / (R·(I+O)):
    /// R = ⌊I·O / (c·(I+O))⌋.
    case compressionRatio(Double)
    /// The EVBMF estimate of [56] (noise variance estimated), raised to at least 1.
    case evbmf
    /// The rank a sparsity measure of the spectrum selects with knob θ (`SparsityMeasure.selectedRank`, e.g.
    /// ⌈erank⌉ [97]; `.l0(tolerance: 0)` with θ = ε drops the singular values below ε·σ_max).
    case measure(SparsityMeasure, scale: Double)

    public var description: String {
        switch self {
        case let .fixed(r): return "rank \(r)"
        case let .energy(e): return "energy \(e)"
        case let .compressionRatio(c): return "ratio \(c)"
        case .evbmf: return "EVBMF"
        case let .measure(measure, scale): return "\(measure.name) × \(scale)"
        }
    }

    /// The rank this rule keeps for an `inputFeatures`×`outputFeatures` matrix with the given singular values
    /// (non-increasing; all min(I, O) of them, or fewer for a spectrum already truncated, the rest taken as 0).
    /// - Throws: `CompressionError.invalidRanks` naming `layer` for a rank < 1, e outside (0, 1], a ratio the
    ///   matrix cannot reach (it says the largest one, I·O/(I+O)), or a non-finite singular value.
    public func rank(singularValues: [Double], inputFeatures: Int, outputFeatures: Int, layer: String) throws -> Int {
        let n = Swift.min(inputFeatures, outputFeatures)
        precondition(singularValues.count <= n,
                     "MatrixRankRule.rank(\(layer)): \(singularValues.count) singular values for a \(inputFeatures)×\(outputFeatures) matrix (at most \(n))")
        let singularValues = singularValues + [Double](repeating: 0, count: n - singularValues.count)
        guard singularValues.allSatisfy({ $0.isFinite }) else {
            throw CompressionError.invalidRanks(layer: layer, problem: "singular values must be finite; check the weight for NaN or ∞")
        }
        switch self {
        case let .fixed(r):
            guard r >= 1 else { throw CompressionError.invalidRanks(layer: layer, problem: "rank \(r) must be at least 1") }
            return Swift.min(r, n)
        case let .energy(e):
            guard e > 0, e <= 1 else {
                throw CompressionError.invalidRanks(layer: layer, problem: "energy fraction \(e) must be in (0, 1], e.g. 0.9")
            }
            return try TruncationRule<Double>.energy(e).rank(for: singularValues)
        case let .compressionRatio(c):
            let largest = Double(inputFeatures * outputFeatures) / Double(inputFeatures + outputFeatures)
            guard c.isFinite, c > 0 else {
                throw CompressionError.invalidRanks(layer: layer, problem: "compression ratio \(c) must be a finite number > 0")
            }
            let dense = Double(inputFeatures * outputFeatures), perRank = Double(inputFeatures + outputFeatures)
            var r = Int((dense / (c * perRank)).rounded(.down))
            if dense >= c * Double(r + 1) * perRank { r += 1 }  // a quotient rounded just below an integer
            guard r >= 1 else {
                throw CompressionError.invalidRanks(layer: layer, problem: "compression ratio \(c) needs a rank below 1 for a \(inputFeatures)×\(outputFeatures) matrix; the largest ratio of its SVD form is \(largest) (rank 1)")
            }
            return Swift.min(r, n)
        case .evbmf:
            return Swift.max(try RankSelection.evbmf(singularValues: singularValues, rows: inputFeatures,
                                                      columns: outputFeatures, layer: layer).rank, 1)
        case let .measure(measure, scale):
            return Swift.min(try measure.selectedRank(singularValues, scale: scale), n)
        }
    }
}
