/// Rank selection (METHODS §3): analytic estimates (VBMF [56], as used for Tucker-2 by [9]), simple per-matrix
/// rules (energy, fixed rank, compression ratio), budget-aware global allocation in the spirit of BATUDE [55], and a
/// seeded evaluation-bounded search in the spirit of PSTRN [74].
///
/// The global methods work on `LayerCandidates`: per layer, a list of `RankCandidate`s (a format, its ranks, its
/// parameters and MACs, and the predicted relative error). The caller builds the lists (for the SVD form,
/// `LayerCandidates.svd(name:singularValues:inputFeatures:outputFeatures:outputPositions:includeDense:weight:)`
/// does it from the singular values); the allocator and the search choose one candidate per layer.
public enum RankSelection {}

/// Which cost a global budget counts (METHODS §0.3): stored scalars or multiply-accumulates per input sample.
public enum CostMeasure: String, Sendable, Codable, CaseIterable {
    /// Stored scalars (bias excluded).
    case parameters
    /// Multiply-accumulates per input sample.
    case macs
}

/// One way to hold a layer: a format with its ranks, what it costs, and how far it is from the dense weight.
public struct RankCandidate: Sendable, Codable, Equatable {
    /// The format label, free text ("svd", "tucker2", "dense", …); `RankCandidate.denseFormat` marks a layer kept dense.
    public var format: String
    /// The ranks in the format's own order (empty for a dense layer).
    public var ranks: [Int]
    /// Stored scalars (bias excluded).
    public var parameters: Int
    /// Multiply-accumulates per input sample.
    public var macs: Int
    /// Predicted ‖W − Ŵ‖_F / ‖W‖_F (0 for the dense layer).
    public var relativeError: Double

    /// The label of a layer kept dense.
    public static let denseFormat = "dense"

    /// A candidate with the given format, ranks, costs and predicted relative error.
    public init(format: String, ranks: [Int], parameters: Int, macs: Int, relativeError: Double) {
        self.format = format
        self.ranks = ranks
        self.parameters = parameters
        self.macs = macs
        self.relativeError = relativeError
    }

    /// The layer kept dense: its dense costs and error 0.
    public static func dense(parameters: Int, macs: Int) -> RankCandidate {
        RankCandidate(format: denseFormat, ranks: [], parameters: parameters, macs: macs, relativeError: 0)
    }

    /// The cost that `measure` counts.
    public func cost(_ measure: CostMeasure) -> Int {
        switch measure {
        case .parameters: return parameters
        case .macs: return macs
        }
    }
}

/// The choices of one layer for a global rank selection.
public struct LayerCandidates: Sendable, Codable, Equatable {
    /// The layer's name (as in parameter names and reports).
    public var name: String
    /// Parameters of the dense layer (for ratios in reports).
    public var denseParameters: Int
    /// MACs per sample of the dense layer (for ratios in reports).
    public var denseMACs: Int
    /// The candidates; the dense one is among them only when keeping the layer dense is allowed.
    public var candidates: [RankCandidate]
    /// The weight of this layer's relative error in the summed objective Σ_l w_l·e_l (≥ 0; default 1).
    public var weight: Double

    /// Candidates of a layer.
    public init(name: String, denseParameters: Int, denseMACs: Int, candidates: [RankCandidate], weight: Double = 1) {
        self.name = name
        self.denseParameters = denseParameters
        self.denseMACs = denseMACs
        self.candidates = candidates
        self.weight = weight
    }

    /// The SVD-form candidates of a matrix W ∈ ℝ^{I×O} (METHODS §1.1) from its singular values, in O(n):
    /// rank R = 1…min(I, O) with error(R) = (Σ_{i>R} σ_i²)^{1/2} / ‖W‖_F (Eckart–Young) and cost R·(I+O)
    /// parameters, R·(I+O)·P MACs, plus the dense layer (I·O parameters, I·O·P MACs, error 0) when `includeDense`.
    ///
    /// - Parameters:
    ///   - singularValues: all min(I, O) singular values, non-increasing.
    ///   - outputPositions: P, the output positions per sample: 1 for a fully connected layer, H'·W' for a conv
    ///     layer in the matrix form [C_in·K_h·K_w, C_out] (a K_h×K_w conv to R channels, then a 1×1 conv).
    ///   - weight: the layer's weight in the summed error.
    public static func svd(name: String, singularValues: [Double], inputFeatures: Int, outputFeatures: Int,
                           outputPositions: Int = 1, includeDense: Bool = true, weight: Double = 1) -> LayerCandidates {
        let n = Swift.min(inputFeatures, outputFeatures)
        precondition(singularValues.count == n,
                     "LayerCandidates.svd(\(name)): \(singularValues.count) singular values for a \(inputFeatures)×\(outputFeatures) matrix (need \(n))")
        var tails = [Double](repeating: 0, count: n + 1)  // tails[R] = Σ_{i>R} σ_i² (1-based i)
        for i in stride(from: n - 1, through: 0, by: -1) { tails[i] = tails[i + 1] + singularValues[i] * singularValues[i] }
        let total = tails[0]
        var candidates: [RankCandidate] = []
        candidates.reserveCapacity(n + 1)
        for r in stride(from: 1, through: n, by: 1) {
            let parameters = r * (inputFeatures + outputFeatures)
            candidates.append(RankCandidate(format: FactorizedFormat.svd.rawValue, ranks: [r], parameters: parameters,
                                            macs: parameters * outputPositions,
                                            relativeError: total > 0 ? (Swift.max(tails[r], 0) / total).squareRoot() : 0))
        }
        let dense = inputFeatures * outputFeatures
        if includeDense { candidates.append(.dense(parameters: dense, macs: dense * outputPositions)) }
        return LayerCandidates(name: name, denseParameters: dense, denseMACs: dense * outputPositions,
                               candidates: candidates, weight: weight)
    }
}

extension RankSelection {
    /// Checks candidate lists for the global methods and returns the cheapest network's cost.
    /// - Throws: `CompressionError.invalidRanks` naming the layer for an empty list, a negative cost, a negative or
    ///   non-finite error or weight; with layer "network" when `budget` is below the cheapest network.
    static func validate(_ layers: [LayerCandidates], budget: Int, measure: CostMeasure) throws -> Int {
        guard !layers.isEmpty else {
            throw CompressionError.invalidRanks(layer: "network", problem: "no layers to select ranks for; pass at least one layer's candidates")
        }
        var minimum = 0
        for layer in layers {
            guard !layer.candidates.isEmpty else {
                throw CompressionError.invalidRanks(layer: layer.name, problem: "no rank candidates; add at least one (e.g. the dense layer)")
            }
            guard layer.weight.isFinite, layer.weight >= 0 else {
                throw CompressionError.invalidRanks(layer: layer.name, problem: "error weight \(layer.weight) must be a finite number ≥ 0")
            }
            for candidate in layer.candidates {
                guard candidate.cost(measure) >= 0 else {
                    throw CompressionError.invalidRanks(layer: layer.name, problem: "candidate \(candidate.format) \(candidate.ranks) has negative \(measure.rawValue) \(candidate.cost(measure))")
                }
                guard candidate.relativeError.isFinite, candidate.relativeError >= 0 else {
                    throw CompressionError.invalidRanks(layer: layer.name, problem: "candidate \(candidate.format) \(candidate.ranks) has relative error \(candidate.relativeError); it must be finite and ≥ 0")
                }
            }
            minimum += layer.candidates.map { $0.cost(measure) }.min()!
        }
        guard budget >= minimum else {
            throw CompressionError.invalidRanks(layer: "network", problem: "the budget of \(budget) \(measure.rawValue) is below the cheapest network (\(minimum) \(measure.rawValue), every layer at its cheapest candidate); raise the budget to at least \(minimum) or add cheaper candidates")
        }
        return minimum
    }
}
