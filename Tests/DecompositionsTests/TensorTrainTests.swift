import Testing
import TensorCore
import Decompositions

@Suite("Tensor train (TT-SVD, TT-rounding)")
struct TensorTrainTests {
    @Test("exact recovery of random trains at known ranks, Double ≤ 1e-10 and Float ≤ 1e-4; ε → 0 finds the ranks")
    func exactRecovery() throws {
        for seed in UInt64(0)..<4 {
            let truth: TensorTrain<Double> = FactorFixtures.train([3, 4, 5, 4], ranks: [2, 3, 2], seed: seed)
            let x = truth.reconstruct()
            let tt = try TensorTrain.decompose(x, target: .ranks([2, 3, 2]))
            #expect(tt.ranks == [1, 2, 3, 2, 1])
            #expect(tt.relativeError(to: x) <= 1e-10)
            let byTolerance = try TensorTrain.decompose(x, target: .relativeError(1e-12))
            #expect(byTolerance.ranks == [1, 2, 3, 2, 1])
            #expect(byTolerance.relativeError(to: x) <= 1e-10)
            let xf: Tensor<Float> = x.converted()
            #expect(try TensorTrain.decompose(xf, target: .ranks([1, 2, 3, 2, 1])).relativeError(to: xf) <= 1e-4)
        }
    }

    @Test("TT-SVD honours ε over several tolerances and random tensors")
    func toleranceGuarantee() throws {
        for seed in UInt64(0)..<4 {
            let shape = [[4, 5, 3, 4], [3, 3, 3, 3, 3], [6, 7, 5]][Int(seed) % 3]
            let x = Tensor<Double>.randomNormal(shape, seed: 100 + seed)
            for eps in [0.8, 0.5, 0.3, 0.1, 0.02] {
                let tt = try TensorTrain.decompose(x, target: .relativeError(eps))
                #expect(Double(tt.relativeError(to: x)) <= eps * (1 + 1e-12))
            }
            let xf: Tensor<Float> = x.converted()
            let tf = try TensorTrain.decompose(xf, target: .relativeError(0.3))
            #expect(tf.relativeError(to: xf) <= 0.3 * (1 + 1e-5))
        }
    }

    @Test("maxRank caps every rank; the clamp rule R_k ≤ min(∏_{j≤k}J_j, ∏_{j>k}J_j, R_{k−1}J_k, J_{k+1}R_{k+1})")
    func capsAndClamps() throws {
        let x = Tensor<Double>.randomNormal([3, 4, 5, 3], seed: 3)
        let capped = try TensorTrain.decompose(x, target: .relativeError(0), maxRank: 4)
        #expect(capped.ranks.allSatisfy { $0 <= 4 })
        let big = try TensorTrain.decompose(x, target: .ranks([100]))
        #expect(big.ranks == [1, 3, 12, 3, 1])
        #expect(big.relativeError(to: x) <= 1e-12)
        let small = try TensorTrain.decompose(Tensor<Double>.randomNormal([2, 3, 4], seed: 4), target: .ranks([100]))
        #expect(small.ranks == [1, 2, 4, 1])
    }

    @Test("TT-rounding recovers the minimal ranks of an inflated train and honours ε")
    func rounding() throws {
        for seed in UInt64(0)..<3 {
            let truth: TensorTrain<Double> = FactorFixtures.train([4, 3, 5, 4], ranks: [2, 3, 2], seed: 10 + seed)
            // Inflate each bond: G_k ← G_k·M_k, G_{k+1} ← M_k⁺·G_{k+1} with M_k of size r×(r+3), M_kM_k⁺ = I.
            var g = SeededGenerator(seed: 20 + seed)
            var cores = truth.cores
            for k in 0..<(cores.count - 1) {
                let r = cores[k].shape[2]
                let m = Tensor<Double>.randomNormal([r, r + 3], generator: &g)
                let mPlus = try m.pseudoInverse()
                let left = cores[k], right = cores[k + 1]
                cores[k] = Tensor.matmul(left.reshaped([-1, r]), m).reshaped([left.shape[0], left.shape[1], r + 3])
                cores[k + 1] = Tensor.matmul(mPlus, right.reshaped([r, -1])).reshaped([r + 3, right.shape[1], right.shape[2]])
            }
            let inflated = TensorTrain(cores: cores)
            #expect(inflated.ranks == [1, 5, 6, 5, 1])
            let x = truth.reconstruct()
            #expect(inflated.relativeError(to: x) <= 1e-10)
            let rounded = try inflated.rounded(.relativeError(1e-12))
            #expect(rounded.ranks == [1, 2, 3, 2, 1])
            #expect(rounded.relativeError(to: x) <= 1e-10)
            for eps in [0.5, 0.2, 0.05] {
                let r = try truth.rounded(.relativeError(eps))
                #expect(Double(r.reconstruct().relativeError(to: x)) <= eps * (1 + 1e-12))
            }
            let capped = try inflated.rounded(.ranks([2]))
            #expect(capped.ranks == [1, 2, 2, 2, 1])
        }
    }

    @Test("edges: order 1 and 2, size-1 modes, rank 1, zero tensor")
    func edges() throws {
        let v = Tensor<Double>.randomNormal([7], seed: 1)
        let tv = try TensorTrain.decompose(v, target: .relativeError(0.1))
        #expect(tv.ranks == [1, 1] && tv.relativeError(to: v) <= 1e-15)
        let m: Tensor<Double> = FactorFixtures.train([6, 5], ranks: [2], seed: 2).reconstruct()
        #expect(try TensorTrain.decompose(m, target: .ranks([2])).relativeError(to: m) <= 1e-10)
        let thin: Tensor<Double> = FactorFixtures.train([1, 4, 1, 5], ranks: [1, 3, 3], seed: 3).reconstruct()
        let tt = try TensorTrain.decompose(thin, target: .relativeError(1e-12))
        #expect(tt.ranks == [1, 1, 3, 3, 1] && tt.relativeError(to: thin) <= 1e-10)
        let one: Tensor<Float> = FactorFixtures.train([3, 4, 5], ranks: [1, 1], seed: 4).reconstruct()
        #expect(try TensorTrain.decompose(one, target: .ranks([1])).relativeError(to: one) <= 1e-4)
        let zero = Tensor<Float>.zeros([3, 2, 4])
        for target: RankTarget<Float> in [.ranks([2]), .relativeError(0.1), .compressionRatio(2)] {
            let z = try TensorTrain.decompose(zero, target: target)
            #expect(z.reconstruct() == zero)
            #expect(z.cores.allSatisfy { $0.isFinite })
            #expect(try z.rounded(.relativeError(0.1)).reconstruct() == zero)
        }
    }

    @Test("a compression ratio keeps parameters ≤ ∏J/c; bad input throws errors that name the fix")
    func targetsAndErrors() throws {
        let x = Tensor<Double>.randomNormal([4, 5, 4, 5], seed: 5)
        for c in [2.0, 5.0, 20.0] {
            let tt = try TensorTrain.decompose(x, target: .compressionRatio(c))
            #expect(Double(tt.parameterCount) * c <= 400 * (1 + 1e-12))
        }
        var bad = x
        bad[0, 0, 0, 1] = -.infinity
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(bad, target: .ranks([2])) }) {
            if case .nonFiniteInput = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(x, target: .ranks([0])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(x, target: .ranks([2, 2])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(x, target: .ranks([2, 2, 2, 2, 2])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(x, target: .relativeError(-0.5)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try TensorTrain.decompose(x, target: .ranks([2]), maxRank: 0) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
    }
}
