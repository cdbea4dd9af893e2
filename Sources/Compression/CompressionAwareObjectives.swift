import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

/// The nuclear norm ‖W‖_* = Σσ_i of a matrix variable as a differentiable operation; its VJP is the
/// sub-gradient g·U_rVᵣᵀ over the r non-zero singular values [83, 84].
///
/// - Throws: `TensorError` when the SVD fails (a NaN or infinite entry).
public func nuclearNorm<Scalar: TensorScalar>(_ matrix: Variable<Scalar>) throws -> Variable<Scalar> {
    precondition(matrix.value.rank == 2, "nuclearNorm: expected a matrix, got shape \(matrix.shape)")
    let svd = try matrix.value.svd()
    let values = svd.s.scalars
    let rank = values.filter { $0 > 0 }.count
    let kept = svd.truncated(to: rank)
    let subgradient = rank == 0 ? Tensor<Scalar>.zeros(matrix.shape) : Tensor.matmul(kept.u, kept.vt)
    return recordOperation(Tensor(scalar: values.reduce(0, +)), inputs: [matrix]) { g in [subgradient * g.scalar] }
}

/// Nuclear-norm regularization with singular value thresholding as the proximal step [81, 82] (METHODS §2.3
/// (1)): min ℒ(W) + λΣ_l‖W_l‖_*, trained by proximal SGD, W_l ← SVT_{ηλT}(W_l) after the optimizer's step on ℒ,
/// every T steps (the threshold accumulates the T steps' shrinkage). The nuclear term is not differentiated:
/// the proximal step handles it exactly, and it drives small singular values to exactly zero.
///
/// A weight whose SVD fails (it became NaN or infinite) is left as it is: the trainer then stops with
/// `TrainingError.nonFiniteLoss` at the next step.
public final class NuclearNormProximal<Scalar: TensorScalar>: TrainingObjective {
    /// The layers regularized.
    public let slots: [LayerSlot<Scalar>]
    /// λ.
    public let strength: Double
    /// T, steps between proximal steps.
    public let interval: Int
    /// The rank of each slot's weight after the last proximal step.
    public private(set) var ranks: [Int]

    /// - Throws: `CompressionError.invalidSetting` for λ < 0 or T < 1.
    public init(slots: [LayerSlot<Scalar>], strength: Double, interval: Int = 1) throws {
        guard strength >= 0 && strength.isFinite else {
            throw CompressionError.invalidSetting(layer: "nuclear", problem: "the strength λ must be a finite number ≥ 0, got \(strength)")
        }
        guard interval >= 1 else {
            throw CompressionError.invalidSetting(layer: "nuclear", problem: "the proximal interval must be ≥ 1 step, got \(interval)")
        }
        self.slots = slots
        self.strength = strength
        self.interval = interval
        self.ranks = slots.map { $0.matrixShape.map { Swift.min($0.rows, $0.columns) } ?? 0 }
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        task
    }

    public func afterStep(step: Int, learningRate: Double) {
        guard (step + 1) % interval == 0 else { return }
        let threshold = Scalar(learningRate * strength * Double(interval))
        for (k, slot) in slots.enumerated() {
            guard let matrix = slot.weightMatrix,
                  let (thresholded, rank) = try? singularValueThresholding(matrix, threshold: threshold) else { continue }
            slot.setWeightMatrix(thresholded)
            ranks[k] = rank
        }
    }
}

/// Trained rank pruning, TRP [83] (METHODS §2.3 (2)): every m steps each weight is replaced by its truncated SVD
/// (rank by energy threshold e) and training continues from the low-rank weights; between substitutions a
/// nuclear-norm term λΣ‖W_l‖_* is minimized by stochastic sub-gradient descent (sub-gradient U_rV_rᵀ [84]).
public final class TrainedRankPruning<Scalar: TensorScalar>: TrainingObjective {
    /// The layers pruned.
    public let slots: [LayerSlot<Scalar>]
    /// λ of the nuclear term (0: substitution only).
    public let strength: Double
    /// e, the energy the substitution keeps.
    public let energy: Double
    /// m, steps between substitutions.
    public let period: Int
    /// The rank of each slot at the last substitution.
    public private(set) var ranks: [Int]

    /// - Throws: `CompressionError.invalidSetting` for λ < 0, e outside (0, 1] or m < 1.
    public init(slots: [LayerSlot<Scalar>], strength: Double, energy: Double = 0.95, period: Int = 20) throws {
        guard strength >= 0 && strength.isFinite else {
            throw CompressionError.invalidSetting(layer: "trp", problem: "the strength λ must be a finite number ≥ 0, got \(strength)")
        }
        guard energy > 0 && energy <= 1 else {
            throw CompressionError.invalidSetting(layer: "trp", problem: "the energy threshold e must lie in (0, 1], got \(energy); try 0.95")
        }
        guard period >= 1 else {
            throw CompressionError.invalidSetting(layer: "trp", problem: "the substitution period m must be ≥ 1 step, got \(period); try 20")
        }
        self.slots = slots
        self.strength = strength
        self.energy = energy
        self.period = period
        self.ranks = slots.map { $0.matrixShape.map { Swift.min($0.rows, $0.columns) } ?? 0 }
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        guard strength > 0 else { return task }
        var total = task
        for slot in slots {
            guard let weight = slot.denseWeight, let shape = slot.matrixShape,
                  let norm = try? nuclearNorm(task.watching(weight).reshaped([shape.rows, shape.columns])) else { continue }
            total = total + norm * Scalar(strength)
        }
        return total
    }

    public func afterStep(step: Int, learningRate: Double) {
        guard (step + 1) % period == 0 else { return }
        for (k, slot) in slots.enumerated() {
            guard let matrix = slot.weightMatrix, let svd = try? matrix.svd(),
                  let rank = try? TruncationRule<Scalar>.energy(Scalar(energy)).rank(for: svd.s.scalars) else { continue }
            slot.setWeightMatrix(svd.truncated(to: rank).reconstruct())
            ranks[k] = rank
        }
    }
}

/// SVD training [85] (METHODS §2.3 (3)): the layers are `SVDLayer`s and the loss is
/// ℒ + λ_o Σ_l (‖U_lᵀU_l − I‖² + ‖V_lᵀV_l − I‖²)/r_l² + λ_s Σ_l ±S(|s_l|)/|S(|s_l⁽⁰⁾|)|,
/// with S a sparsity measure (sign − for measures where higher is sparser, Hoyer and Gini), normalized by its
/// value at the start (derived: every measure starts at 1 in every layer, so one λ_s grid fits all measures).
/// A layer whose s is all zero contributes no sparsity term (it is already rank 0).
public final class SVDTrainingObjective<Scalar: TensorScalar>: TrainingObjective {
    /// The layers trained in SVD form.
    public let layers: [any SVDLayer<Scalar>]
    /// S.
    public let measure: SparsityMeasure
    /// λ_s.
    public let strength: Double
    /// λ_o.
    public let orthogonality: Double
    /// |S(|s_l⁽⁰⁾|)| per layer (1 where it was 0 or undefined).
    public let scales: [Double]

    /// - Throws: `CompressionError.invalidSetting` for λ_s or λ_o < 0 or a measure without a gradient (ℓ0).
    public init(layers: [any SVDLayer<Scalar>], measure: SparsityMeasure, strength: Double, orthogonality: Double = 10) throws {
        guard measure.isDifferentiable else {
            throw CompressionError.invalidSetting(layer: "svd-training", problem:
                "\(measure.name) is piecewise constant and cannot regularize; use effective-rank, l1, hoyer, gini, …")
        }
        guard strength >= 0 && strength.isFinite && orthogonality >= 0 && orthogonality.isFinite else {
            throw CompressionError.invalidSetting(layer: "svd-training", problem:
                "the strengths must be finite numbers ≥ 0, got λ_s = \(strength), λ_o = \(orthogonality)")
        }
        self.layers = layers
        self.measure = measure
        self.strength = strength
        self.orthogonality = orthogonality
        self.scales = layers.map { layer in
            let value = (try? measure.value(layer.s.value.scalars.map { Swift.abs(Double($0)) })) ?? 0
            return value == 0 ? 1 : Swift.abs(value)
        }
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        var total = task
        let sign = measure.higherIsSparser ? -1.0 : 1.0
        for (layer, scale) in zip(layers, scales) {
            let rank = Double(layer.s.value.scalarCount)
            if orthogonality > 0 {
                total = total + layer.orthogonalityPenalty(task) * Scalar(orthogonality / (rank * rank))
            }
            if strength > 0, let term = try? measure(task.watching(layer.s).abs()) {
                total = total + term * Scalar(sign * strength / scale)
            }
        }
        return total
    }

    public func afterStep(step: Int, learningRate: Double) {}

    /// Max over layers of ‖UᵀU − I‖_F and ‖VᵀV − I‖_F combined, (‖UᵀU − I‖² + ‖VᵀV − I‖²)^{1/2}: how far the
    /// factors are from orthonormal.
    public var orthogonalityError: Double {
        layers.map { Double($0.orthogonalityPenalty(Variable(constant: Tensor<Scalar>(scalar: 0))).value.scalar).squareRoot() }
            .max() ?? 0
    }
}

/// The LC algorithm with learned ranks [53] (METHODS §2.3 (4)): min ℒ(W) + λ·C(Θ) s.t. W = Δ(Θ), Θ_l a low-rank
/// matrix, C the storage r(m + n), by an augmented Lagrangian with growing μ.
/// * L-step (the training steps): ℒ(W) + Σ_l (μ/2)‖W_l − Θ_l − λ_l/μ‖²;
/// * C-step (every `lStepLength` steps, exact per layer): Θ_l = the rank-r truncated SVD of W_l − λ_l/μ, with r
///   minimizing λ·r(m + n) + (μ/2)Σ_{i>r}σ_i² over 1 ≤ r ≤ min(m, n); then λ_l ← λ_l − μ(W_l − Θ_l) and μ ← a·μ.
/// `finish()` copies Θ into the weights, after which truncation at `ranks` is exact.
public final class LCAlgorithm<Scalar: TensorScalar>: TrainingObjective {
    /// The layers compressed.
    public let slots: [LayerSlot<Scalar>]
    /// λ, the price of one stored parameter.
    public let strength: Double
    /// μ now.
    public private(set) var mu: Double
    /// a, μ's growth per C-step.
    public let growth: Double
    /// Steps per L-step.
    public let lStepLength: Int
    /// The rank of each Θ_l.
    public private(set) var ranks: [Int]
    private var theta: [Tensor<Scalar>]
    private var multipliers: [Tensor<Scalar>]

    /// Starts with a C-step on the current weights (the direct compression).
    ///
    /// - Throws: `CompressionError.invalidSetting` for λ < 0, μ₀ ≤ 0, a < 1 or an L-step under 1 step;
    ///   `TensorError` when an SVD fails.
    public init(slots: [LayerSlot<Scalar>], strength: Double, mu: Double = 1e-3, growth: Double = 1.1,
                lStepLength: Int = 100) throws {
        guard strength >= 0 && strength.isFinite, mu > 0, growth >= 1, lStepLength >= 1 else {
            throw CompressionError.invalidSetting(layer: "lc", problem:
                "need λ ≥ 0, μ₀ > 0, a ≥ 1 and an L-step of ≥ 1 step; got λ = \(strength), μ₀ = \(mu), a = \(growth), L-step \(lStepLength)")
        }
        self.slots = slots
        self.strength = strength
        self.mu = mu
        self.growth = growth
        self.lStepLength = lStepLength
        let matrices = slots.compactMap(\.weightMatrix)
        self.theta = matrices
        self.multipliers = matrices.map { Tensor.zeros($0.shape) }
        self.ranks = matrices.map { Swift.min($0.shape[0], $0.shape[1]) }
        try compressionStep(updateMultipliers: false)
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        var total = task
        for (k, slot) in slots.enumerated() {
            guard let weight = slot.denseWeight, let shape = slot.matrixShape else { continue }
            let target = theta[k] + multipliers[k] * Scalar(1 / mu)
            let gap = task.watching(weight).reshaped([shape.rows, shape.columns]) - Variable(constant: target)
            total = total + gap.squared().sum() * Scalar(mu / 2)
        }
        return total
    }

    public func afterStep(step: Int, learningRate: Double) {
        if (step + 1) % lStepLength == 0 { try? compressionStep(updateMultipliers: true) }
    }

    /// The C-step (and, after an L-step, the multiplier and μ updates).
    public func compressionStep(updateMultipliers: Bool) throws {
        for (k, slot) in slots.enumerated() {
            guard let w = slot.weightMatrix else { continue }
            let svd = try (w - multipliers[k] * Scalar(1 / mu)).svd()
            let squares = svd.s.scalars.map { Double($0) * Double($0) }
            let perRank = Double(w.shape[0] + w.shape[1])
            var tail = squares.reduce(0, +)
            var best = (cost: Double.infinity, rank: 1)
            for r in 1...squares.count {
                tail -= squares[r - 1]
                let cost = strength * Double(r) * perRank + mu / 2 * Swift.max(tail, 0)
                if cost < best.cost { best = (cost, r) }
            }
            theta[k] = svd.truncated(to: best.rank).reconstruct()
            ranks[k] = best.rank
            if updateMultipliers { multipliers[k] = multipliers[k] - (w - theta[k]) * Scalar(mu) }
        }
        if updateMultipliers { mu *= growth }
    }

    /// Sets every weight to its Θ (exactly rank `ranks[k]`).
    public func finish() {
        for (slot, value) in zip(slots, theta) { slot.setWeightMatrix(value) }
    }
}

/// Stochastic Frank–Wolfe over nuclear-norm balls [87] (METHODS §2.3 (5)): each W_l stays in
/// {‖W‖_* ≤ τ_l}, τ_l = ρ·‖W_l⁽⁰⁾‖_* (ρ = `radiusScale`). After each step: the linear minimization oracle
/// v = −τ·u_1v_1ᵀ (top singular pair of the stochastic gradient G, randomized SVD), then
/// W ← W + η(v − W) with the gradient-rescaled η = min(η_0‖G‖_F/‖W − v‖_F, 1), η_0 the learning rate.
/// This replaces the optimizer's update of these weights (the weights as they were before the step are kept by
/// `loss` and the update restarts from them).
public final class StochasticFrankWolfe<Scalar: TensorScalar>: TrainingObjective {
    /// The constrained layers.
    public let slots: [LayerSlot<Scalar>]
    /// τ_l.
    public let radii: [Double]
    private var before: [Tensor<Scalar>?]
    private var generator = SeededGenerator(seed: 0x46_57)

    /// - Throws: `CompressionError.invalidSetting` for ρ ≤ 0; `TensorError` when an SVD fails.
    public init(slots: [LayerSlot<Scalar>], radiusScale: Double) throws {
        guard radiusScale > 0 && radiusScale.isFinite else {
            throw CompressionError.invalidSetting(layer: "frank-wolfe", problem: "the radius scale ρ must be positive, got \(radiusScale); try 0.5")
        }
        self.slots = slots
        self.radii = try slots.map { slot in
            guard let w = slot.weightMatrix else { return 0 }
            return radiusScale * Double(try w.singularValues().sum())
        }
        self.before = slots.map { _ in nil }
    }

    public func loss(task: Variable<Scalar>, logits: Variable<Scalar>, images: Tensor<Scalar>, labels: [Int]) -> Variable<Scalar> {
        before = slots.map(\.weightMatrix)
        return task
    }

    public func afterStep(step: Int, learningRate: Double) {
        for (k, slot) in slots.enumerated() {
            guard let w = before[k], let shape = slot.matrixShape,
                  let gradient = slot.denseWeight?.gradient?.reshaped([shape.rows, shape.columns]) else { continue }
            guard let (vertex, gradientNorm) = try? linearMinimizationOracle(gradient, radius: radii[k]) else { continue }
            let distance = Double((w - vertex).frobeniusNorm())
            let eta = distance > 0 ? Swift.min(learningRate * gradientNorm / distance, 1) : 0
            slot.setWeightMatrix(w + (vertex - w) * Scalar(eta))
        }
        before = slots.map { _ in nil }
    }

    /// argmin_{‖V‖_* ≤ τ} ⟨G, V⟩ = −τ·u_1v_1ᵀ, and ‖G‖_F.
    public func linearMinimizationOracle(_ gradient: Tensor<Scalar>, radius: Double) throws -> (Tensor<Scalar>, Double) {
        let top = try gradient.randomizedSVD(rank: 1, oversampling: 4, powerIterations: 3, generator: &generator)
        return (Tensor.matmul(top.u, top.vt) * Scalar(-radius), Double(gradient.frobeniusNorm()))
    }
}
