import Autodiff
import Compression
import Foundation
import Testing
import TensorCore

/// A seeded positive spectrum with distinct entries in [0.1, 2.1).
private func spectrum(_ n: Int, seed: UInt64) -> [Double] {
    Tensor<Double>.randomUniform([n], low: 0.1, high: 2.1, seed: seed).scalars
}

/// True when the measure says `a` is strictly less sparse than `b` (orientation handled).
private func lessSparse(_ measure: SparsityMeasure, _ a: [Double], than b: [Double]) throws -> Bool {
    let (x, y) = (try measure.value(a), try measure.value(b))
    return measure.higherIsSparser ? x < y - 1e-12 : x > y + 1e-12
}

@Suite struct SparsityMeasureTests {
    @Test func oracles() throws {
        let oneHot = [0.0, 3, 0, 0], flat = [2.0, 2, 2, 2]
        #expect(abs(try SparsityMeasure.gini.value(oneHot) - 0.75) < 1e-12)
        #expect(abs(try SparsityMeasure.gini.value(flat)) < 1e-12)
        #expect(abs(try SparsityMeasure.hoyer.value(oneHot) - 1) < 1e-12)
        #expect(abs(try SparsityMeasure.hoyer.value(flat)) < 1e-12)
        #expect(abs(try SparsityMeasure.effectiveRank.value(oneHot) - 1) < 1e-12)
        #expect(abs(try SparsityMeasure.effectiveRank.value(flat) - 4) < 1e-12)
        #expect(abs(try SparsityMeasure.stableRank.value(flat) - 4) < 1e-12)
        #expect(abs(try SparsityMeasure.stableRank.value(oneHot) - 1) < 1e-12)
        #expect(abs(try SparsityMeasure.entropy.value(flat) - log(4)) < 1e-12)
        #expect(abs(try SparsityMeasure.l1OverL2.value(flat) - 2) < 1e-12)
        #expect(try SparsityMeasure.l1.value([1, 2, 3]) == 6)
        #expect(abs(try SparsityMeasure.lp(p: 0.5).value([1, 4]) - 9) < 1e-12)   // (1 + 2)²
        #expect(try SparsityMeasure.l0(tolerance: 0.1).value([1, 0.5, 0.05, 0]) == 2)
    }

    /// The Gini index equals the mean-absolute-difference form Σ_{i,j}|σ_i − σ_j|/(2N·S_1), an independent formula.
    @Test func giniMatchesPairwiseForm() throws {
        for seed in 0..<5 as Range<UInt64> {
            let s = spectrum(7, seed: seed)
            var differences = 0.0
            for a in s { for b in s { differences += abs(a - b) } }
            let pairwise = differences / (2 * 7 * s.reduce(0, +))
            #expect(abs(try SparsityMeasure.gini.value(s) - pairwise) < 1e-12)
        }
    }

    @Test func effectiveRankBounds() throws {
        for seed in 0..<10 as Range<UInt64> {
            var s = spectrum(6, seed: seed)
            s[5] = 0; s[4] = 0   // rank 4
            let e = try SparsityMeasure.effectiveRank.value(s)
            #expect(e >= 1 && e <= 4)
            #expect(e < 4 - 1e-6)   // strict: the non-zero values are not all equal
        }
        #expect(abs(try SparsityMeasure.effectiveRank.value([5, 0, 0]) - 1) < 1e-12)
        #expect(abs(try SparsityMeasure.effectiveRank.value([3, 3, 3, 0, 0]) - 3) < 1e-12)   // = rank
        #expect(try SparsityMeasure.effectiveRank.selectedRank([3, 3, 3, 0, 0]) == 3)
        #expect(try SparsityMeasure.stableRank.selectedRank([2, 2, 0]) == 2)
    }

    /// D2: the scale-invariant measures do not change under σ → ασ; ℓ1 and ℓp scale by α.
    @Test func scaling() throws {
        let s = spectrum(8, seed: 3)
        for alpha in [0.01, 3.0, 250.0] {
            let scaled = s.map { $0 * alpha }
            for measure in SparsityMeasure.all {
                let (a, b) = (try measure.value(s), try measure.value(scaled))
                if measure.isScaleInvariant {
                    #expect(abs(a - b) <= 1e-10 * max(1, abs(a)), "\(measure) at α = \(alpha)")
                } else if case .l0 = measure {
                    #expect(a == b)
                } else {
                    #expect(abs(alpha * a - b) <= 1e-10 * abs(b), "\(measure) at α = \(alpha)")
                }
            }
        }
    }

    /// D1 Robin Hood: moving mass from a larger entry to a smaller one without swapping them lowers sparsity.
    @Test func robinHood() throws {
        let measures: [SparsityMeasure] = [.gini, .hoyer, .l1OverL2, .entropy, .effectiveRank, .lp(p: 0.5)]
        for seed in 0..<20 as Range<UInt64> {
            var s = spectrum(6, seed: seed)
            let (i, j) = (s.indices.max { s[$0] < s[$1] }!, s.indices.min { s[$0] < s[$1] }!)
            let before = s
            let transfer = (s[i] - s[j]) / 4
            s[i] -= transfer; s[j] += transfer
            for measure in measures { #expect(try lessSparse(measure, s, than: before), "\(measure), seed \(seed)") }
        }
    }

    /// D3 Rising tide: adding α > 0 to every entry lowers sparsity (unless all are equal).
    @Test func risingTide() throws {
        let measures: [SparsityMeasure] = [.gini, .hoyer, .l1OverL2, .entropy, .effectiveRank]
        for seed in 0..<10 as Range<UInt64> {
            let s = spectrum(5, seed: seed)
            for measure in measures {
                #expect(try lessSparse(measure, s.map { $0 + 0.3 }, than: s), "\(measure), seed \(seed)")
            }
        }
        #expect(abs(try SparsityMeasure.gini.value([1, 1, 1].map { $0 + 5 })) < 1e-12)
    }

    /// D4 Cloning for Gini; the effective rank doubles (H(c‖c) = H(c) + ln 2) instead.
    @Test func cloning() throws {
        let s = spectrum(5, seed: 11)
        #expect(abs(try SparsityMeasure.gini.value(s + s) - SparsityMeasure.gini.value(s)) < 1e-12)
        #expect(abs(try SparsityMeasure.effectiveRank.value(s + s) - 2 * SparsityMeasure.effectiveRank.value(s)) < 1e-10)
    }

    /// P1 Bill Gates and P2 Babies for Gini and Hoyer; appending zeros leaves the rank-like measures unchanged.
    @Test func billGatesAndBabies() throws {
        let s = spectrum(5, seed: 5)
        var rich = s
        rich[0] += 100
        for measure in [SparsityMeasure.gini, .hoyer] {
            #expect(try measure.value(rich) > measure.value(s))
            #expect(try measure.value(s + [0, 0]) > measure.value(s))
        }
        for measure in [SparsityMeasure.effectiveRank, .entropy, .l1OverL2, .stableRank, .l1] {
            #expect(abs(try measure.value(s + [0, 0]) - measure.value(s)) < 1e-12, "\(measure)")
        }
    }

    /// The all-zero spectrum: 0 for ℓ0, ℓ1, ℓp; a thrown `undefinedMeasure` for the scale-invariant ones.
    @Test func zeroSpectrum() throws {
        let zero = [0.0, 0, 0]
        for measure in SparsityMeasure.all {
            if measure.isScaleInvariant {
                #expect(throws: CompressionError.self) { try measure.value(zero) }
            } else {
                #expect(try measure.value(zero) == 0)
            }
            #expect(try measure.selectedRank(zero) == 0)
        }
        #expect(throws: CompressionError.self) { try SparsityMeasure.l1.value([1, -1]) }
        #expect(throws: CompressionError.self) { try SparsityMeasure.gini.value([]) }
        #expect(throws: CompressionError.self) { try SparsityMeasure.lp(p: 1.5).value([1, 2]) }
    }

    /// The differentiable form's VJP against finite differences, at distinct positive singular values.
    @Test func gradients() throws {
        let s = Tensor<Double>(spectrum(7, seed: 21))
        for measure in SparsityMeasure.all where measure.isDifferentiable {
            let result = checkGradients(at: [s]) { v in try! measure(v[0]) }
            #expect(result.maxRelativeError < 1e-7, "\(measure): \(result.relativeErrors)")
            #expect(result.forwardMismatch == 0)
        }
    }

    @Test func rankSelection() throws {
        // Three equal values and noise: every rank-like selector at θ = 1 finds about 3.
        let s = [1.0, 1, 1, 1e-3, 1e-4]
        #expect(try SparsityMeasure.effectiveRank.selectedRank(s) == 4)   // erank = 3.0something → ⌈·⌉ = 4
        #expect(try SparsityMeasure.effectiveRank.selectedRank([1, 1, 1, 0, 0]) == 3)
        #expect(try SparsityMeasure.l0(tolerance: 0).selectedRank(s, scale: 0.01) == 3)
        #expect(try SparsityMeasure.l1.selectedRank(s, scale: 0.99) == 3)
        #expect(try MatrixRankRule.energy(0.999).rank(singularValues: s, inputFeatures: 5, outputFeatures: 5, layer: "x") == 3)
        #expect(try MatrixRankRule.measure(.effectiveRank, scale: 1).rank(singularValues: s, inputFeatures: 5, outputFeatures: 8, layer: "x") == 4)
        #expect(throws: CompressionError.self) { try MatrixRankRule.energy(1.5).rank(singularValues: s, inputFeatures: 5, outputFeatures: 5, layer: "x") }
    }

    @Test func names() {
        for measure in SparsityMeasure.all { #expect(SparsityMeasure(name: measure.name) == measure) }
        #expect(SparsityMeasure(name: "nope") == nil)
    }
}
