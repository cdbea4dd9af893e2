import Testing
import TensorCore
import Decompositions

@Suite("Tucker (HOSVD, HOOI, partial Tucker)")
struct TuckerTests {
    @Test("exact recovery at known multilinear ranks, Double ≤ 1e-10 and Float ≤ 1e-4 (Gram and SVD subspace routes)")
    func exactRecovery() throws {
        // [5, 12, 13]: wide unfoldings (Gram route); [20, 3, 3]: mode 0 is tall (SVD route).
        for (shape, ranks) in [([5, 12, 13], [2, 3, 4]), ([20, 3, 3], [3, 2, 2]), ([4, 5, 3, 6], [2, 3, 2, 3])] {
            for seed in UInt64(0)..<3 {
                let x: Tensor<Double> = FactorFixtures.tuckerTensor(shape, ranks: ranks, seed: seed)
                let h = try TuckerDecomposition.hosvd(x, target: .ranks(ranks))
                #expect(h.ranks == ranks)
                #expect(h.relativeError(to: x) <= 1e-10)
                let (o, report) = try TuckerDecomposition.hooi(x, target: .ranks(ranks))
                #expect(o.relativeError(to: x) <= 1e-10)
                #expect(report.converged)
                for f in o.factors { #expect(FactorFixtures.orthonormalityDefect(f) <= 1e-12) }
                let xf: Tensor<Float> = x.converted()
                #expect(try TuckerDecomposition.hosvd(xf, target: .ranks(ranks)).relativeError(to: xf) <= 1e-4)
                #expect(try TuckerDecomposition.hooi(xf, target: .ranks(ranks)).decomposition.relativeError(to: xf) <= 1e-4)
            }
        }
    }

    @Test("HOSVD error: max_k tail_k² ≤ ‖𝒳 − 𝒳̂‖² ≤ Σ_k tail_k², with equality for matrices")
    func hosvdBound() throws {
        for seed in UInt64(0)..<4 {
            let x = Tensor<Double>.randomNormal([6, 7, 5], seed: 40 + seed)
            let sigma = try (0..<3).map { try x.unfolded(mode: $0).singularValues().scalars }
            for ranks in [[1, 1, 1], [2, 3, 4], [5, 2, 3], [6, 7, 4]] {
                let h = try TuckerDecomposition.hosvd(x, target: .ranks(ranks))
                let error2 = FactorFixtures.squaredError(h.reconstruct(), x)
                let tails = (0..<3).map { k in
                    let t = FactorFixtures.tail(sigma[k], from: ranks[k])
                    return t * t
                }
                let scale = Double(x.squaredNorm())
                #expect(error2 <= tails.reduce(0, +) + 1e-12 * scale)
                #expect(error2 >= tails.max()! - 1e-12 * scale)
            }
        }
        let m = Tensor<Double>.randomNormal([9, 7], seed: 50)
        let sigma = try m.singularValues().scalars
        for r in 1...7 {
            let h = try TuckerDecomposition.hosvd(m, target: .ranks([r]))
            let tail = FactorFixtures.tail(sigma, from: r)
            #expect(Swift.abs(FactorFixtures.squaredError(h.reconstruct(), m) - tail * tail) <= 1e-12 * Double(m.squaredNorm()))
        }
    }

    @Test("ε: truncated HOSVD honours ‖𝒳 − 𝒳̂‖ ≤ ε‖𝒳‖ with minimal per-mode ranks, and HOOI keeps it")
    func tolerance() throws {
        for seed in UInt64(0)..<3 {
            let x = FactorFixtures.noisy(FactorFixtures.tuckerTensor([6, 8, 7], ranks: [3, 3, 3], seed: 60 + seed, as: Double.self),
                                         level: 0.05, seed: 70 + seed)
            let norm = Double(x.frobeniusNorm())
            for eps in [0.5, 0.2, 0.06, 0.01, 1e-3] {
                let h = try TuckerDecomposition.hosvd(x, target: .relativeError(eps))
                #expect(Double(h.relativeError(to: x)) <= eps * (1 + 1e-12))
                let delta = eps * norm / 3.0.squareRoot()
                for k in 0..<3 where h.ranks[k] > 1 {
                    let sigma = try x.unfolded(mode: k).singularValues().scalars
                    #expect(FactorFixtures.tail(sigma, from: h.ranks[k] - 1) > delta)
                }
                let (o, _) = try TuckerDecomposition.hooi(x, target: .relativeError(eps))
                #expect(Double(o.relativeError(to: x)) <= eps * (1 + 1e-12))
            }
        }
    }

    @Test("HOOI never does worse than its start (HOSVD or sequentially truncated HOSVD); the fit history is non-decreasing")
    func hooiImproves() throws {
        for seed in UInt64(0)..<3 {
            let x = FactorFixtures.noisy(FactorFixtures.tuckerTensor([8, 9, 7], ranks: [3, 4, 3], seed: 80 + seed, as: Double.self),
                                         level: 0.3, seed: 90 + seed)
            let h = try TuckerDecomposition.hosvd(x, target: .ranks([2, 2, 2]))
            for sequential in [false, true] {
                let (o, report) = try TuckerDecomposition.hooi(x, target: .ranks([2, 2, 2]), sequentialStart: sequential)
                if !sequential { #expect(o.relativeError(to: x) <= h.relativeError(to: x) + 1e-12) }
                // fitHistory[0] is the start; every sweep can only raise ‖𝒢‖.
                for (a, b) in zip(report.fitHistory, report.fitHistory.dropFirst()) { #expect(b >= a - 1e-12) }
                #expect(Swift.abs(report.fitHistory.last! - (1 - Double(o.relativeError(to: x)))) <= 1e-8)
                for f in o.factors { #expect(FactorFixtures.orthonormalityDefect(f) <= 1e-12) }
            }
        }
    }

    @Test("Tucker-2 of a conv kernel on modes 0 and 1 recovers a Tucker-2 kernel")
    func tucker2() throws {
        var g = SeededGenerator(seed: 5)
        let core = Tensor<Double>.randomNormal([3, 2, 3, 3], generator: &g)
        let kernel = core.modeProduct(Tensor.randomNormal([8, 3], generator: &g), mode: 0)
            .modeProduct(Tensor.randomNormal([6, 2], generator: &g), mode: 1)
        let (t, _) = try TuckerDecomposition.hooi(kernel, target: .ranks([3, 2]), modes: [0, 1])
        #expect(t.modes == [0, 1] && t.ranks == [3, 2, 3, 3] && t.shape == [8, 6, 3, 3])
        #expect(t.relativeError(to: kernel) <= 1e-10)
        #expect(t.parameterCount == 8 * 3 + 6 * 2 + 3 * 2 * 9)
        let kf: Tensor<Float> = kernel.converted()
        #expect(try TuckerDecomposition.hosvd(kf, target: .ranks([3, 2]), modes: [1, 0]).relativeError(to: kf) <= 1e-4)
    }

    @Test("clamping R_k ≤ J_k and R_k ≤ ∏_{j≠k}R_j; size-1 modes; order 2; zero tensor")
    func edges() throws {
        let x = Tensor<Double>.randomNormal([3, 4, 5], seed: 7)
        let full = try TuckerDecomposition.hosvd(x, target: .ranks([10]))
        #expect(full.ranks == [3, 4, 5])
        #expect(full.relativeError(to: x) <= 1e-12)
        let y = Tensor<Double>.randomNormal([6, 6, 6], seed: 8)
        #expect(try TuckerDecomposition.hosvd(y, target: .ranks([5, 1, 1])).ranks == [1, 1, 1])
        #expect(try TuckerDecomposition.hosvd(y, target: .ranks([5, 2, 2])).ranks == [4, 2, 2])
        let thin: Tensor<Double> = FactorFixtures.tuckerTensor([1, 6, 5], ranks: [1, 2, 2], seed: 9)
        #expect(try TuckerDecomposition.hooi(thin, target: .ranks([1, 2, 2])).decomposition.relativeError(to: thin) <= 1e-10)
        let zero = Tensor<Float>.zeros([3, 4, 2])
        for target: RankTarget<Float> in [.ranks([2]), .relativeError(0.1)] {
            let (z, report) = try TuckerDecomposition.hooi(zero, target: target)
            #expect(z.reconstruct() == zero)
            #expect(z.core.isFinite && z.factors.allSatisfy { $0.isFinite })
            #expect(report.fitHistory.allSatisfy { $0.isFinite })
        }
    }

    @Test("a compression ratio keeps parameters ≤ ∏J/c; bad input throws errors that name the fix")
    func targetsAndErrors() throws {
        let x = Tensor<Double>.randomNormal([10, 9, 8], seed: 11)
        for c in [2.0, 10.0, 20.0] {
            let h = try TuckerDecomposition.hosvd(x, target: .compressionRatio(c))
            #expect(Double(h.parameterCount) * c <= 720 * (1 + 1e-12))
        }
        var bad = x
        bad[1, 1, 1] = .nan
        #expect(FactorFixtures.throwsDecomposition({ _ = try TuckerDecomposition.hosvd(bad, target: .ranks([2])) }) {
            if case .nonFiniteInput = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TuckerDecomposition.hooi(x, target: .ranks([2, 0, 2])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TuckerDecomposition.hooi(x, target: .ranks([2, 2])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TuckerDecomposition.hosvd(x, target: .relativeError(-1)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TuckerDecomposition.hosvd(x, target: .ranks([2]), modes: [0, 3]) }) {
            if case .shapeMismatch = $0 { return true } else { return false }
        })
    }
}

extension FactorFixtures {
    /// ‖a − b‖_F² in Double.
    static func squaredError<S: TensorScalar>(_ a: Tensor<S>, _ b: Tensor<S>) -> Double {
        zip(a.scalars, b.scalars).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
    }
}
