import Foundation
import TensorCore

/// The wiring of a factorized layer: a small tensor network of cores contracted with the input (the house plan's
/// "tensor networks are the spine").
///
/// The input x ∈ ℝ^{B×I} is viewed as 𝒳 ∈ ℝ^{B×I_1×⋯×I_d} (row-major, METHODS §0.1) and the output as
/// 𝒴 ∈ ℝ^{B×O_1×⋯×O_d}. Every core carries one index letter per dimension; a letter shared with the input is an
/// input mode, a letter shared with the output an output mode, any other letter a bond (a rank index, summed). A
/// letter of both the input and the output that labels no core is carried through like the batch (STR-conv's
/// pass-through indices, whose δ-coupling spans two stages).
/// Two einsum expressions follow from the letters:
/// * the forward expression "B i₁…i_d, core₁, …, core_F → B o₁…o_d" (activation side, scales with the batch);
/// * the weight expression "core₁, …, core_F → i₁…i_d o₁…o_d", whose result reshaped to I×O is W of
///   y = x·W (METHODS §0.2), computed once per forward pass in the reconstructed mode (weight side, METHODS §0.3
///   Rule C3).
///
/// Both are priced exactly by the einsum engine's counter (Rule C1) along any path (Rule C4).
public struct TensorNetwork: Sendable, Equatable, CustomStringConvertible {
    /// [I_1, …, I_d], the input features factored (I = ∏ I_k).
    public let inputModes: [Int]
    /// [O_1, …, O_d], the output features factored (O = ∏ O_k).
    public let outputModes: [Int]
    /// The batch index letter of the forward expression.
    public let batchLetter: Character
    /// The letter of each input mode.
    public let inputLetters: [Character]
    /// The letter of each output mode.
    public let outputLetters: [Character]
    /// The letters of each core, one per dimension.
    public let coreLetters: [[Character]]
    /// The shape of each core.
    public let coreShapes: [[Int]]

    /// A network from its letters and shapes.
    ///
    /// - Precondition: one letter per mode and per core dimension, equal sizes for equal letters (checked by
    ///   `EinsumExpression`), every input and output letter used by some core or carried (in both), the batch letter
    ///   used nowhere else.
    public init(inputModes: [Int], outputModes: [Int], batchLetter: Character, inputLetters: [Character],
                outputLetters: [Character], coreLetters: [[Character]], coreShapes: [[Int]]) {
        precondition(inputModes.count == inputLetters.count && outputModes.count == outputLetters.count,
                     "TensorNetwork: modes \(inputModes) → \(outputModes) need one letter each, got \(inputLetters) → \(outputLetters)")
        precondition(coreLetters.count == coreShapes.count && !coreShapes.isEmpty,
                     "TensorNetwork: \(coreLetters.count) core labels for \(coreShapes.count) core shapes")
        let used = Set(coreLetters.joined())
        precondition(!used.contains(batchLetter), "TensorNetwork: the batch letter \(batchLetter) also labels a core")
        for letter in inputLetters + outputLetters {
            precondition(used.contains(letter) || inputLetters.contains(letter) && outputLetters.contains(letter),
                         "TensorNetwork: mode letter \(letter) is used by no core and not carried from input to output")
        }
        self.inputModes = inputModes
        self.outputModes = outputModes
        self.batchLetter = batchLetter
        self.inputLetters = inputLetters
        self.outputLetters = outputLetters
        self.coreLetters = coreLetters
        self.coreShapes = coreShapes
        // Validates the labels against the shapes (sizes of shared letters agree).
        _ = weightExpression
    }

    /// I = ∏ I_k.
    public var inputFeatures: Int { inputModes.reduce(1, *) }
    /// O = ∏ O_k.
    public var outputFeatures: Int { outputModes.reduce(1, *) }
    /// The number of cores F.
    public var coreCount: Int { coreShapes.count }
    /// Σ over cores of their sizes (the stored scalars, bias excluded, METHODS §0.3).
    public var parameterCount: Int { coreShapes.reduce(0) { $0 + $1.reduce(1, *) } }

    /// The bond letters: core letters that are neither input nor output modes.
    public var bondLetters: [Character] {
        let modes = Set(inputLetters + outputLetters)
        var seen = Set<Character>()
        return coreLetters.joined().filter { !modes.contains($0) && seen.insert($0).inserted }
    }

    /// The size of every core letter.
    public var letterSizes: [Character: Int] {
        var sizes: [Character: Int] = [:]
        for (letters, shape) in zip(coreLetters, coreShapes) {
            for (letter, size) in zip(letters, shape) { sizes[letter] = size }
        }
        return sizes
    }

    /// N_terms = ∏ sizes of the bond letters: the number of products of one entry per core that add up to one
    /// weight entry (the variance-matching rule of METHODS §2.2).
    public var termCount: Int {
        let sizes = letterSizes
        return bondLetters.reduce(1) { $0 * sizes[$1]! }
    }

    /// The standard deviation σ of i.i.d. zero-mean core entries that gives every weight entry the variance v:
    /// Var(w) = N_terms·σ^{2F} (each weight entry is a sum of N_terms products of one entry from each of the F
    /// cores, and distinct products are uncorrelated), so σ² = (v/N_terms)^{1/F} (METHODS §2.2, derived rule).
    ///
    /// - Precondition: v > 0.
    public func presetStandardDeviation(targetVariance v: Double) -> Double {
        Compression.presetStandardDeviation(targetVariance: v, termCount: termCount, coreCount: coreCount)
    }

    /// "B i…, core, … → B o…" for a batch of `batch` rows (parsed once per process: a layer asks every step).
    ///
    /// - Precondition: batch ≥ 1.
    public func forwardExpression(batch: Int) -> EinsumExpression {
        precondition(batch >= 1, "TensorNetwork.forwardExpression: batch \(batch) must be at least 1")
        let input = String([batchLetter] + inputLetters)
        let spec = ([input] + coreLetters.map { String($0) }).joined(separator: ",")
            + "->" + String([batchLetter] + outputLetters)
        return EinsumExpression.parsed(spec, shapes: [[batch] + inputModes] + coreShapes)
    }

    /// "core, … → i… o…": the weight tensor 𝒲 ∈ ℝ^{I_1×⋯×I_d×O_1×⋯×O_d} (without carried letters, on which the
    /// network is the identity; parsed once per process).
    public var weightExpression: EinsumExpression {
        let used = Set(coreLetters.joined())
        let spec = coreLetters.map { String($0) }.joined(separator: ",") + "->" + String((inputLetters + outputLetters).filter(used.contains))
        return EinsumExpression.parsed(spec, shapes: coreShapes)
    }

    /// The forward expression's spec.
    public var description: String { forwardExpression(batch: 1).spec }

    /// Splits the cost of a forward path into weight-side MACs (steps whose operands carry no batch index: core
    /// merges, METHODS §0.3 Rule C3) and activation-side MACs (all other steps and reductions).
    public func splitCost(of path: ContractionPath) -> (activationSide: Int, weightSide: Int) {
        var activation = 0, weight = 0
        for step in path.reductions { activation += step.multiplyAdds }
        for step in path.steps {
            if step.operandIndices.contains(where: { $0.contains(batchLetter) }) {
                activation += step.multiplyAdds
            } else {
                weight += step.multiplyAdds
            }
        }
        return (activation, weight)
    }
}

/// Hands out distinct einsum index letters (a–z, A–Z).
struct LetterPool {
    private var remaining = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    /// The next unused letter.
    mutating func next(_ context: @autoclosure () -> String) throws -> Character {
        guard !remaining.isEmpty else {
            throw CompressionError.invalidModes(layer: context(), problem:
                "the tensor network needs more than 52 index letters; use fewer modes (d ≤ 8) or a format with fewer cores")
        }
        return remaining.removeFirst()
    }

    /// `count` unused letters.
    mutating func next(_ count: Int, _ context: @autoclosure () -> String) throws -> [Character] {
        try (0..<count).map { _ in try next(context()) }
    }
}

/// σ = (v/N_terms)^{1/(2F)}: i.i.d. zero-mean entries of F cores with this σ give every entry of a weight that sums
/// N_terms products (one entry per core) the variance v (METHODS §2.2, derived rule).
///
/// - Precondition: v > 0.
func presetStandardDeviation(targetVariance v: Double, termCount: Int, coreCount: Int) -> Double {
    precondition(v > 0, "presetStandardDeviation: the target variance \(v) must be positive")
    return Foundation.pow(v / Double(termCount), 1 / (2 * Double(coreCount)))
}
