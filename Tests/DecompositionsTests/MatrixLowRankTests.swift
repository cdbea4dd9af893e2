import Testing
import TensorCore
import Decompositions

/// Seeded builders of tensors with known low-rank structure, shared by the SVD, CP, Tucker, TT and TR suites.
enum FactorFixtures {
    /// A J_1×…×J_d tensor Σ_r a_r^{(1)}∘…∘a_r^{(d)} from Gaussian factors.
    static func cpTensor<S: TensorScalar>(_ shape: [Int], rank: Int, seed: UInt64, as: S.Type = S.self) -> (tensor: Tensor<S>, factors: [Tensor<S>]) {
        var g = SeededGenerator(seed: seed)
        let factors = shape.map { Tensor<S>.randomNormal([$0, rank], generator: &g) }
        let cp = CPDecomposition(weights: Tensor<S>.ones([rank]), factors: factors)
        return (cp.reconstruct(), factors)
    }

    /// A tensor from a Gaussian core and Gaussian (not orthonormal) factors of the given multilinear ranks.
    static func tuckerTensor<S: TensorScalar>(_ shape: [Int], ranks: [Int], seed: UInt64, as: S.Type = S.self) -> Tensor<S> {
        var g = SeededGenerator(seed: seed)
        var t = Tensor<S>.randomNormal(ranks, generator: &g)
        for (k, j) in shape.enumerated() {
            t = t.modeProduct(Tensor<S>.randomNormal([j, ranks[k]], generator: &g), mode: k)
        }
        return t
    }

    /// Random TT cores of the given inner ranks.
    static func train<S: TensorScalar>(_ shape: [Int], ranks inner: [Int], seed: UInt64, as: S.Type = S.self) -> TensorTrain<S> {
        var g = SeededGenerator(seed: seed)
        let r = [1] + inner + [1]
        return TensorTrain(cores: shape.indices.map { Tensor<S>.randomNormal([r[$0], shape[$0], r[$0 + 1]], generator: &g) })
    }

    /// Random TR cores of the given ranks R_1..R_d.
    static func ring<S: TensorScalar>(_ shape: [Int], ranks: [Int], seed: UInt64, as: S.Type = S.self) -> TensorRing<S> {
        var g = SeededGenerator(seed: seed)
        let d = shape.count
        return TensorRing(cores: shape.indices.map { Tensor<S>.randomNormal([ranks[$0], shape[$0], ranks[($0 + 1) % d]], generator: &g) })
    }

    /// `tensor` plus Gaussian noise of relative Frobenius norm `level`.
    static func noisy<S: TensorScalar>(_ tensor: Tensor<S>, level: Double, seed: UInt64) -> Tensor<S> {
        let noise = Tensor<S>.randomNormal(tensor.shape, seed: seed)
        return tensor + noise * S(level * Double(tensor.frobeniusNorm()) / Double(noise.frobeniusNorm()))
    }

    /// (Σ_{i>r} σ_i²)^{1/2} for non-increasing values.
    static func tail<S: TensorScalar>(_ values: [S], from r: Int) -> Double {
        values.dropFirst(r).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// max |QᵀQ − I|.
    static func orthonormalityDefect<S: TensorScalar>(_ q: Tensor<S>) -> Double {
        let gram = Tensor.matmul(q, q, transposeA: true)
        return Double(gram.maxAbsoluteDifference(to: Tensor<S>.identity(q.shape[1])))
    }

    /// True when the thrown error is a `DecompositionError` matching `check`, and its message is non-trivial.
    static func throwsDecomposition(_ body: () throws -> Void, _ check: (DecompositionError) -> Bool) -> Bool {
        do {
            try body()
            return false
        } catch let error as DecompositionError {
            return check(error) && error.description.count > 20
        } catch {
            return false
        }
    }
}

@Suite("MatrixLowRank (truncated SVD)")
struct MatrixLowRankTests {
    @Test("exact recovery of rank-R matrices, Double ≤ 1e-10 and Float ≤ 1e-4, exact and randomized SVD")
    func exactRecovery() throws {
        for seed in UInt64(0)..<4 {
            let (i, o, r) = (20 + Int(seed), 15, 3 + Int(seed))
            let w: Tensor<Double> = FactorFixtures.cpTensor([i, o], rank: r, seed: seed).tensor
            let exact = try MatrixLowRank.decompose(w, target: .ranks([r]), method: .exact)
            #expect(exact.rank == r)
            #expect(exact.relativeError(to: w) <= 1e-10)
            let randomized = try MatrixLowRank.decompose(w, target: .ranks([r]), method: .randomized(seed: seed))
            #expect(randomized.relativeError(to: w) <= 1e-10)
            let wf: Tensor<Float> = w.converted()
            let f = try MatrixLowRank.decompose(wf, target: .ranks([r]))
            #expect(f.relativeError(to: wf) <= 1e-4)
        }
    }

    @Test("the truncation error equals (Σ_{i>R} σ_i²)^{1/2} (Eckart–Young)")
    func errorEqualsTail() throws {
        for seed in UInt64(0)..<5 {
            let w = Tensor<Double>.randomNormal([12, 9], seed: 100 + seed)
            let sigma = try w.singularValues().scalars
            for r in [1, 3, 5, 9] {
                let svd = try MatrixLowRank.decompose(w, target: .ranks([r]))
                let error = Double((svd.reconstruct() - w).frobeniusNorm())
                #expect(Swift.abs(error - FactorFixtures.tail(sigma, from: r)) <= 1e-10 * Double(w.frobeniusNorm()))
                #expect(FactorFixtures.orthonormalityDefect(svd.u) <= 1e-12)
                #expect(FactorFixtures.orthonormalityDefect(svd.v) <= 1e-12)
            }
        }
    }

    @Test("ε picks the smallest rank whose tail is ≤ ε‖W‖_F")
    func tolerance() throws {
        let w = Tensor<Double>.randomNormal([16, 10], seed: 7)
        let sigma = try w.singularValues().scalars
        let norm = Double(w.frobeniusNorm())
        for eps in [0.9, 0.5, 0.2, 0.05, 0.0] {
            let svd = try MatrixLowRank.decompose(w, target: .relativeError(eps))
            #expect(Double(svd.relativeError(to: w)) <= eps + 1e-12)
            if svd.rank > 1 { #expect(FactorFixtures.tail(sigma, from: svd.rank - 1) > eps * norm) }
        }
    }

    @Test("a compression ratio gives the largest rank with R(I+O+1) ≤ IO/c")
    func ratio() throws {
        let w = Tensor<Float>.randomNormal([30, 20], seed: 3)
        for c in [1.0, 2.0, 5.0, 10.0] {
            let svd = try MatrixLowRank.decompose(w, target: .compressionRatio(c))
            #expect(svd.compressionRatio >= c * (1 - 1e-12))
            #expect(Double((svd.rank + 1) * 51) > 600 / c || svd.rank == 20)
        }
        #expect(FactorFixtures.throwsDecomposition({ _ = try MatrixLowRank.decompose(w, target: .compressionRatio(1000)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
    }

    @Test("balanced split: A·Bᵀ equals the reconstruction and ‖a_r‖² = ‖b_r‖² = σ_r")
    func balanced() throws {
        let w = Tensor<Double>.randomNormal([8, 11], seed: 5)
        let svd = try MatrixLowRank.decompose(w, target: .ranks([4]))
        let (a, b) = svd.balancedFactors()
        #expect(Tensor.matmul(a, b, transposeB: true).maxAbsoluteDifference(to: svd.reconstruct()) <= 1e-12)
        let na = a.squared().sum(squeezingAxes: 0).scalars, nb = b.squared().sum(squeezingAxes: 0).scalars
        for r in 0..<4 {
            #expect(Swift.abs(na[r] - svd.weights.scalars[r]) <= 1e-12)
            #expect(Swift.abs(nb[r] - svd.weights.scalars[r]) <= 1e-12)
        }
    }

    @Test("edge cases: rank above min(I,O) is clamped, 1×n matrices, zero matrix")
    func edges() throws {
        let w = Tensor<Double>.randomNormal([4, 6], seed: 9)
        let full = try MatrixLowRank.decompose(w, target: .ranks([10]))
        #expect(full.rank == 4)
        #expect(full.relativeError(to: w) <= 1e-12)
        let row = Tensor<Double>.randomNormal([1, 7], seed: 10)
        #expect(try MatrixLowRank.decompose(row, target: .ranks([3])).relativeError(to: row) <= 1e-12)
        let zero = Tensor<Float>.zeros([5, 4])
        for target: RankTarget<Float> in [.ranks([2]), .relativeError(0.1)] {
            let z = try MatrixLowRank.decompose(zero, target: target)
            #expect(z.reconstruct() == zero)
            #expect(z.weights.isFinite && z.u.isFinite && z.v.isFinite)
        }
    }

    @Test("bad input throws errors that name the fix")
    func badInput() {
        var w = Tensor<Double>.randomNormal([4, 4], seed: 1)
        w[1, 2] = .nan
        #expect(FactorFixtures.throwsDecomposition({ _ = try MatrixLowRank.decompose(w, target: .ranks([2])) }) {
            if case .nonFiniteInput = $0 { return true } else { return false }
        })
        let good = Tensor<Double>.randomNormal([4, 4], seed: 2)
        #expect(FactorFixtures.throwsDecomposition({ _ = try MatrixLowRank.decompose(good, target: .ranks([0])) }) {
            if case .invalidRanks = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try MatrixLowRank.decompose(good, target: .relativeError(-0.1)) }) {
            if case .invalidTarget = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({ _ = try MatrixLowRank.decompose(good.reshaped([2, 2, 4]), target: .ranks([1])) }) {
            if case .shapeMismatch = $0 { return true } else { return false }
        })
        #expect(FactorFixtures.throwsDecomposition({
            _ = try MatrixLowRank.decompose(good, target: .relativeError(0.1), method: .randomized())
        }) { if case .unsupportedTarget = $0 { return true } else { return false } })
    }
}
