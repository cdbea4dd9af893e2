import Foundation
import TensorCore

/// The result of variational Bayesian matrix factorization of a noisy matrix V = U·Vᵀ + E, E_ij ~ N(0, σ²) [56].
public struct VBMFEstimate: Sendable, Codable, Equatable {
    /// The number of retained components H (may be 0: the matrix is indistinguishable from noise).
    public var rank: Int
    /// The noise variance σ² used (estimated by EVB when it was not given).
    public var noiseVariance: Double
    /// The threshold γ̲ on the singular values: component h is retained iff γ_h > γ̲.
    public var threshold: Double
    /// The shrunk singular values γ̂_1 ≥ … ≥ γ̂_H of the posterior mean (count = `rank`).
    public var shrunkSingularValues: [Double]
}

extension RankSelection {
    /// Empirical VBMF (EVB, the prior variances estimated too), the global analytic solution of [56] (Theorem 13
    /// and its free energy), used per unfolding for Tucker-2 ranks by [9].
    ///
    /// With L ≤ M the sides of V (the matrix is transposed otherwise), α = L/M, and τ̲ the root of
    /// φ(τ) + φ(τ/α) = 0, φ(z) = log(1+z)/z − 1/2 (τ̲ ≈ 2.5129·√α), component h is retained iff
    ///     γ_h > γ̲ = (M·σ²·(1 + τ̲)(1 + α/τ̲))^{1/2},
    /// and then shrunk to γ̂_h = γ_h/2·(1 − (L+M)σ²/γ_h² + ((1 − (L+M)σ²/γ_h²)² − 4LMσ⁴/γ_h⁴)^{1/2}).
    /// When σ² is not given it minimizes the EVB free energy over σ² (up to constants, with x_h = γ_h²/(Mσ²)):
    ///     2F/M = L·log σ² + Σ_h x_h + Σ_{h: x_h > x̲} [log(τ_h + 1) + α·log(τ_h/α + 1) − τ_h],
    /// x̲ = (1+τ̲)(1+α/τ̲), τ_h = ½(x_h − 1 − α + ((x_h − 1 − α)² − 4α)^{1/2}), on the interval of [56]:
    /// [max(γ²_{k+1}/(M·x̲), mean_{h>k} γ_h²/M), Σγ_h²/(LM)], k = ⌈L/(1+α)⌉ − 1 (log-grid search, then
    /// golden-section refinement).
    ///
    /// - Parameters:
    ///   - singularValues: all min(rows, columns) singular values of V, non-increasing.
    ///   - noiseVariance: σ² if known (> 0); nil to estimate it.
    ///   - layer: the name used in error messages.
    /// - Throws: `CompressionError.invalidRanks` for a non-finite or negative singular value or σ² ≤ 0.
    public static func evbmf(singularValues: [Double], rows: Int, columns: Int, noiseVariance: Double? = nil,
                             layer: String = "matrix") throws -> VBMFEstimate {
        let (l, m) = try checkedSides(singularValues, rows: rows, columns: columns, layer: layer)
        let alpha = l / m
        let tau = evbThresholdTau(alpha: alpha)
        let xBar = (1 + tau) * (1 + alpha / tau)
        let squares = singularValues.map { $0 * $0 }
        let sigma2: Double
        if let noiseVariance {
            guard noiseVariance.isFinite, noiseVariance > 0 else {
                throw CompressionError.invalidRanks(layer: layer, problem: "noise variance \(noiseVariance) must be a finite number > 0 (or nil to estimate it)")
            }
            sigma2 = noiseVariance
        } else {
            let total = squares.reduce(0, +)
            guard total > 0 else {
                return VBMFEstimate(rank: 0, noiseVariance: 0, threshold: 0, shrunkSingularValues: [])
            }
            sigma2 = estimateNoiseVariance(squares: squares, l: l, m: m, xBar: xBar, total: total)
        }
        let threshold = (m * sigma2 * xBar).squareRoot()
        let shrunk = singularValues.prefix { $0 > threshold }.map { gamma -> Double in
            let a = 1 - (l + m) * sigma2 / (gamma * gamma)
            let s4 = sigma2 * sigma2 / (gamma * gamma * gamma * gamma)
            return gamma / 2 * (a + Swift.max(a * a - 4 * l * m * s4, 0).squareRoot())
        }
        return VBMFEstimate(rank: shrunk.count, noiseVariance: sigma2, threshold: threshold, shrunkSingularValues: shrunk)
    }

    /// EVBMF of a matrix (see `evbmf(singularValues:rows:columns:noiseVariance:layer:)`), from its singular values.
    /// - Throws: `TensorError.nonFinite` for NaN/∞ entries, `CompressionError` as above.
    public static func evbmf<Scalar: TensorScalar>(_ matrix: Tensor<Scalar>, noiseVariance: Double? = nil,
                                                  layer: String = "matrix") throws -> VBMFEstimate {
        precondition(matrix.rank == 2, "RankSelection.evbmf: expected a matrix, got shape \(matrix.shape)")
        let s = try matrix.singularValues().scalars.map { Double($0) }
        return try evbmf(singularValues: s, rows: matrix.shape[0], columns: matrix.shape[1], noiseVariance: noiseVariance, layer: layer)
    }

    /// Plain VBMF with known noise variance σ² and prior variance product c_a·c_b [56] (Theorem 2 and Eq. 10):
    /// with L ≤ M and κ = (L+M)/2 + σ²/(2c_a²c_b²), component h is retained iff
    ///     γ_h > γ̲ = (σ²·(κ + (κ² − LM)^{1/2}))^{1/2},
    /// and shrunk to γ̂_h = γ_h·(1 − σ²/(2γ_h²)·(L + M + ((M−L)² + 4γ_h²/(c_a²c_b²))^{1/2})) (continuous: 0 at γ̲).
    /// As c_a·c_b → ∞ (flat prior) γ̲ → σ√M, below the noise edge σ(√L + √M): VB then keeps noise, which is why
    /// rank selection uses the empirical variant.
    /// - Throws: `CompressionError.invalidRanks` for a bad singular value, σ² ≤ 0 or c_a·c_b ≤ 0.
    public static func vbmf(singularValues: [Double], rows: Int, columns: Int, noiseVariance sigma2: Double,
                            priorProduct cacb: Double, layer: String = "matrix") throws -> VBMFEstimate {
        let (l, m) = try checkedSides(singularValues, rows: rows, columns: columns, layer: layer)
        guard sigma2.isFinite, sigma2 > 0, cacb.isFinite, cacb > 0 else {
            throw CompressionError.invalidRanks(layer: layer, problem: "VBMF needs a finite noise variance > 0 and prior product c_a·c_b > 0, got σ² = \(sigma2), c_a·c_b = \(cacb)")
        }
        let kappa = (l + m) / 2 + sigma2 / (2 * cacb * cacb)
        let threshold = (sigma2 * (kappa + Swift.max(kappa * kappa - l * m, 0).squareRoot())).squareRoot()
        let shrunk = singularValues.prefix { $0 > threshold }.map { gamma in
            Swift.max(gamma * (1 - sigma2 / (2 * gamma * gamma) * (l + m + ((m - l) * (m - l) + 4 * gamma * gamma / (cacb * cacb)).squareRoot())), 0)
        }
        return VBMFEstimate(rank: shrunk.count, noiseVariance: sigma2, threshold: threshold, shrunkSingularValues: shrunk)
    }

    /// Tucker-2 ranks [R_out, R_in] of a conv kernel 𝒦 ∈ ℝ^{C_out×C_in×K_h×K_w} (OIHW) by EVBMF on its mode-0 and
    /// mode-1 unfoldings, as in [9]; each estimate is raised to at least 1 (a factorized layer needs a rank ≥ 1).
    /// The order matches `TuckerDecomposition` with modes [0, 1] (core R_out×R_in×K_h×K_w).
    /// - Throws: `TensorError.nonFinite` for NaN/∞ weights.
    public static func tucker2RanksByEVBMF<Scalar: TensorScalar>(kernel: Tensor<Scalar>, layer: String = "conv") throws -> [Int] {
        precondition(kernel.rank == 4, "RankSelection.tucker2RanksByEVBMF(\(layer)): expected an OIHW kernel, got shape \(kernel.shape)")
        return try [0, 1].map { mode in
            Swift.max(try evbmf(kernel.unfolded(mode: mode), layer: "\(layer) (mode-\(mode) unfolding)").rank, 1)
        }
    }

    /// (L, M) = (min, max) of the sides as Doubles, after checking the singular values.
    private static func checkedSides(_ singularValues: [Double], rows: Int, columns: Int, layer: String) throws -> (Double, Double) {
        precondition(rows >= 1 && columns >= 1 && singularValues.count == Swift.min(rows, columns),
                     "RankSelection VBMF(\(layer)): \(singularValues.count) singular values for a \(rows)×\(columns) matrix (need \(Swift.min(rows, columns)))")
        guard singularValues.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw CompressionError.invalidRanks(layer: layer, problem: "singular values must be finite and ≥ 0; check the weight for NaN or ∞")
        }
        return (Double(Swift.min(rows, columns)), Double(Swift.max(rows, columns)))
    }

    /// τ̲: the root of φ(τ) + φ(τ/α) = 0, φ(z) = log(1+z)/z − 1/2 (decreasing from 1 to −1), by bisection.
    static func evbThresholdTau(alpha: Double) -> Double {
        func phi(_ z: Double) -> Double { log1p(z) / z - 0.5 }
        func psi(_ t: Double) -> Double { phi(t) + phi(t / alpha) }
        var low = 1e-3 * alpha.squareRoot(), high = 2.5129 * alpha.squareRoot()
        while psi(high) > 0 { low = high; high *= 2 }
        while psi(low) < 0 { high = low; low /= 2 }
        for _ in 0..<200 where high - low > 1e-15 * high {
            let mid = (low + high) / 2
            if psi(mid) > 0 { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// σ² minimizing the EVB free energy on the interval of [56] (see `evbmf`).
    private static func estimateNoiseVariance(squares: [Double], l: Double, m: Double, xBar: Double, total: Double) -> Double {
        let alpha = l / m
        let count = squares.count
        let k = Swift.min(Int((l / (1 + alpha)).rounded(.up)) - 1, count - 1)
        let tailMean = squares[k...].reduce(0, +) / Double(count - k)
        let upper = total / (l * m)
        let lower = Swift.min(Swift.max(squares[k] / (m * xBar), tailMean / m, upper * 1e-15), upper)
        func freeEnergy(_ logSigma2: Double) -> Double {
            let sigma2 = exp(logSigma2)
            var f = l * logSigma2
            for g2 in squares {
                let x = g2 / (m * sigma2)
                f += x
                if x > xBar {
                    let b = x - 1 - alpha
                    let t = 0.5 * (b + Swift.max(b * b - 4 * alpha, 0).squareRoot())
                    f += log1p(t) + alpha * log1p(t / alpha) - t
                }
            }
            return f
        }
        let (a, b) = (log(lower), log(upper))
        guard b - a > 1e-12 else { return upper }
        // The free energy can have several local minima in σ²: scan a log grid, then refine the best bracket.
        let steps = 400
        var best = 0, bestValue = Double.infinity
        for i in 0...steps {
            let value = freeEnergy(a + (b - a) * Double(i) / Double(steps))
            if value < bestValue { bestValue = value; best = i }
        }
        var low = a + (b - a) * Double(Swift.max(best - 1, 0)) / Double(steps)
        var high = a + (b - a) * Double(Swift.min(best + 1, steps)) / Double(steps)
        let ratio = (5.0.squareRoot() - 1) / 2
        var x1 = high - ratio * (high - low), x2 = low + ratio * (high - low)
        var f1 = freeEnergy(x1), f2 = freeEnergy(x2)
        while high - low > 1e-12 * Swift.max(1, abs(low)) {
            if f1 <= f2 {
                high = x2; x2 = x1; f2 = f1
                x1 = high - ratio * (high - low); f1 = freeEnergy(x1)
            } else {
                low = x1; x1 = x2; f1 = f2
                x2 = low + ratio * (high - low); f2 = freeEnergy(x2)
            }
        }
        let refined = (low + high) / 2
        let gridBest = a + (b - a) * Double(best) / Double(steps)
        return exp(freeEnergy(refined) <= bestValue ? refined : gridBest)
    }
}
