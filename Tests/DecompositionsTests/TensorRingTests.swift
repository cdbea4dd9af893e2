import Testing
import TensorCore
import Decompositions

@Suite("Tensor ring (TR-SVD, TR-ALS, rank-adaptive)")
struct TensorRingTests {
    @Test("reconstruction follows the definition 𝒳(j) = Tr(G_1[j_1]⋯G_d[j_d])")
    func definition() {
        let ring: TensorRing<Double> = FactorFixtures.ring([2, 3, 2], ranks: [2, 3, 2], seed: 1)
        let x = ring.reconstruct()
        func slice(_ k: Int, _ j: Int) -> Tensor<Double> {
            let c = ring.cores[k]
            return c.slice(axis: 1, start: j, count: 1).reshaped([c.shape[0], c.shape[2]])
        }
        for a in 0..<2 { for b in 0..<3 { for c in 0..<2 {
            let product = Tensor.matmul(Tensor.matmul(slice(0, a), slice(1, b)), slice(2, c))
            let trace = (0..<product.shape[0]).reduce(0.0) { $0 + product[$1, $1] }
            #expect(Swift.abs(x[a, b, c] - trace) <= 1e-12)
        } } }
    }

    @Test("cyclic-shift invariance: shifting the cores shifts the modes of the tensor")
    func cyclicShift() {
        let ring: TensorRing<Double> = FactorFixtures.ring([3, 4, 2, 5], ranks: [2, 3, 2, 4], seed: 2)
        let x = ring.reconstruct()
        for s in 0..<4 {
            let permutation = (0..<4).map { ($0 + s) % 4 }
            #expect(ring.shifted(by: s).reconstruct().maxAbsoluteDifference(to: x.permuted(permutation)) <= 1e-12)
        }
        #expect(ring.shifted(by: -1).reconstruct().maxAbsoluteDifference(to: x.permuted([3, 0, 1, 2])) <= 1e-12)
    }

    @Test("TR-SVD honours ε: exactly low-rank rings recovered to ≤ 1e-10, random tensors within ε")
    func svdTolerance() throws {
        for seed in UInt64(0)..<4 {
            let x = FactorFixtures.ring([4, 5, 3, 4], ranks: [2, 3, 2, 2], seed: 10 + seed, as: Double.self).reconstruct()
            let ring = try TensorRing.svd(x, target: .relativeError(1e-13))
            #expect(ring.relativeError(to: x) <= 1e-10)
            let xf: Tensor<Float> = x.converted()
            #expect(try TensorRing.svd(xf, target: .relativeError(1e-5)).relativeError(to: xf) <= 1e-4)
            let random = Tensor<Double>.randomNormal([4, 3, 5, 3], seed: 20 + seed)
            for eps in [0.7, 0.4, 0.1] {
                #expect(Double(try TensorRing.svd(random, target: .relativeError(eps)).relativeError(to: random)) <= eps * (1 + 1e-12))
            }
        }
    }

    @Test("TR-SVD at fixed ranks recovers rings with R_1 = 1 (where the split is exact); the rank pair is R_1·R_2")
    func svdFixedRanks() throws {
        let x = FactorFixtures.ring([4, 5, 3, 4], ranks: [1, 3, 2, 2], seed: 30, as: Double.self).reconstruct()
        let ring = try TensorRing.svd(x, target: .ranks([1, 3, 2, 2]))
        #expect(ring.ranks == [1, 3, 2, 2])
        #expect(ring.relativeError(to: x) <= 1e-10)
        let y = Tensor<Double>.randomNormal([4, 5, 3, 4], seed: 31)
        #expect(try TensorRing.svd(y, target: .ranks([2, 2, 2, 2])).ranks == [2, 2, 2, 2])
    }

    @Test("TR-ALS exact recovery at known ranks, Double ≤ 1e-10: at least 9 of 10 seeds (observed 10/10)")
    func alsExactRecoveryDouble() throws {
        // Observed: 10/10 seeds here, and 40/40 on another 40 seeds (a single random start, restarts: 1, succeeds on
        // 27/40: the default probes four starts).
        var successes = 0
        for seed in UInt64(0)..<10 {
            let x = FactorFixtures.ring([5, 4, 6, 4], ranks: [2, 3, 2, 3], seed: 40 + seed, as: Double.self).reconstruct()
            let (ring, report) = try TensorRing.als(x, target: .ranks([2, 3, 2, 3]),
                                                    options: TRALSOptions(seed: seed, maxIterations: 1000, tolerance: 1e-15))
            #expect(report.fitHistory.allSatisfy { $0.isFinite })
            if ring.relativeError(to: x) <= 1e-10 { successes += 1 }
        }
        #expect(successes >= 9)
    }

    @Test("TR-ALS exact recovery, Float ≤ 1e-4: at least 9 of 10 seeds (observed 10/10)")
    func alsExactRecoveryFloat() throws {
        // Observed: 10/10 seeds here, and 40/40 on another 40 seeds.
        var successes = 0
        for seed in UInt64(0)..<10 {
            let x = FactorFixtures.ring([5, 4, 6, 4], ranks: [2, 3, 2, 3], seed: 60 + seed, as: Float.self).reconstruct()
            let (ring, _) = try TensorRing.als(x, target: .ranks([2, 3, 2, 3]),
                                               options: TRALSOptions(seed: seed, maxIterations: 1000, tolerance: 0))
            if ring.relativeError(to: x) <= 1e-4 { successes += 1 }
        }
        #expect(successes >= 9)
    }

    @Test("TR-ALS on a noisy ring (TensorLy-style ranks list) reaches the noise level: error ≤ 2 × 1% noise")
    func alsNoisy() throws {
        let clean = FactorFixtures.ring([6, 6, 6, 6], ranks: [2, 3, 3, 3], seed: 70, as: Float.self).reconstruct()
        let x = FactorFixtures.noisy(clean, level: 0.01, seed: 71)
        let (ring, report) = try TensorRing.decompose(x, target: .ranks([2, 3, 3, 3, 2]))
        #expect(ring.ranks == [2, 3, 3, 3])
        #expect(ring.relativeError(to: x) <= 0.02)
        #expect(report.converged)
    }

    @Test("rank-adaptive TR reaches ε on an exactly low-rank ring and verifies it")
    func adaptive() throws {
        let x = FactorFixtures.ring([4, 5, 4, 5], ranks: [2, 2, 3, 2], seed: 80, as: Double.self).reconstruct()
        let (ring, report) = try TensorRing.adaptive(x, tolerance: 1e-6, maxRank: 4)
        #expect(report.converged)
        #expect(ring.relativeError(to: x) <= 1e-6)
        #expect(ring.ranks.allSatisfy { $0 <= 4 })
        let noise = Tensor<Double>.randomNormal([3, 3, 3], seed: 81)
        let (_, capped) = try TensorRing.adaptive(noise, tolerance: 1e-8, maxRank: 1)
        #expect(!capped.converged && !capped.warnings.isEmpty)
    }

    @Test("TR-ALS's fit from the normal equations (‖X‖² − 2⟨G, M⟩ + ⟨GΓ, G⟩) equals the explicit residual of the returned ring")
    func cheapFitMatchesResidual() throws {
        // A Gaussian tensor is far from any low-rank ring, so the residual stays well above the rounding level and
        // every sweep's fit comes from the identity, not from the direct measurement.
        let x = Tensor<Double>.randomNormal([5, 6, 4, 5], seed: 95)
        let start = FactorFixtures.ring([5, 6, 4, 5], ranks: [2, 3, 2, 3], seed: 96, as: Double.self)
        for sweeps in 1...4 {
            let options = TRALSOptions<Double>(initialization: .given(start), maxIterations: sweeps, lineSearch: false)
            let (ring, report) = try TensorRing.als(x, target: .ranks([2, 3, 2, 3]), options: options)
            let cheap = 1 - (report.fitHistory.max() ?? 0)  // the returned ring is the best iterate
            #expect(cheap > 0.1)
            #expect(Swift.abs(cheap - ring.relativeError(to: x)) <= 1e-10, "after \(sweeps) sweeps")
        }
    }

    @Test("too few sweeps: converged == false with one fit per sweep and no NaN")
    func notConverged() throws {
        let x = FactorFixtures.noisy(FactorFixtures.ring([5, 4, 5], ranks: [2, 3, 2], seed: 90, as: Double.self).reconstruct(),
                                     level: 0.1, seed: 91)
        let (ring, report) = try TensorRing.als(x, target: .ranks([2, 3, 2]), options: TRALSOptions(maxIterations: 2))
        #expect(!report.converged && report.iterations == 2 && report.fitHistory.count == 2)
        #expect(ring.cores.allSatisfy { $0.isFinite })
        #expect(report.fitHistory.allSatisfy { $0.isFinite })
    }

    @Test("edges: order 2, size-1 modes, ranks clamped by R_{k+1} ≤ R_kJ_k and R_k ≤ J_kR_{k+1}, zero tensor")
    func edges() throws {
        let m = FactorFixtures.ring([6, 5], ranks: [2, 2], seed: 100, as: Double.self).reconstruct()
        let (rm, _) = try TensorRing.als(m, target: .ranks([2]), options: TRALSOptions(maxIterations: 1000, tolerance: 1e-15))
        #expect(rm.relativeError(to: m) <= 1e-10)
        #expect(try TensorRing.svd(m, target: .relativeError(1e-13)).relativeError(to: m) <= 1e-10)
        let thin = FactorFixtures.ring([1, 4, 5], ranks: [2, 2, 2], seed: 101, as: Double.self).reconstruct()
        #expect(try TensorRing.svd(thin, target: .relativeError(1e-13)).relativeError(to: thin) <= 1e-10)
        let y = Tensor<Double>.randomNormal([2, 3, 2], seed: 102)
        let (clamped, _) = try TensorRing.als(y, target: .ranks([1, 9, 9]), options: TRALSOptions(maxIterations: 5))
        #expect(clamped.ranks == [1, 2, 2])
        let zero = Tensor<Float>.zeros([3, 2, 4])
        let (z, report) = try TensorRing.als(zero, target: .ranks([2]))
        #expect(z.reconstruct() == zero && report.converged)
        #expect(try TensorRing.svd(zero, target: .relativeError(0.1)).reconstruct() == zero)
    }

    @Test("targets and bad input: ratio bound, ε to ALS unsupported, NaN, rank 0, ring ranks that do not close")
    func targetsAndErrors() throws {
        let x = Tensor<Double>.randomNormal([4, 5, 4], seed: 110)
        let (r, _) = try TensorRing.als(x, target: .compressionRatio(3), options: TRALSOptions(maxIterations: 3))
        #expect(Double(r.parameterCount) * 3 <= 80 * (1 + 1e-12))
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.als(x, target: .relativeError(0.1)) }) {
            if case .unsupportedTarget = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.als(x, target: .ranks([2, 0, 2])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.svd(x, target: .ranks([2, 3, 2, 3])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.svd(x, target: .relativeError(-0.1)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.als(x, target: .ranks([2]), options: TRALSOptions(ridge: -1)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
        var bad = x
        bad[1, 2, 3] = .nan
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.decompose(bad, target: .ranks([2])) }) {
            if case .nonFiniteInput = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorRing.svd(Tensor<Double>.ones([4]), target: .ranks([1])) }) {
            if case .shapeMismatch = $0 { return true } else { return false }
        })
    }
}

