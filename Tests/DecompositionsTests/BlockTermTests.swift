import Testing
import TensorCore
import Decompositions

/// A random BTD tensor: N blocks of multilinear rank `ranks` with normal factors and cores.
private func randomBTD(shape: [Int], blocks: Int, ranks: [Int], seed: UInt64) -> BlockTerm<Double> {
    var g = SeededGenerator(seed: seed)
    let cores = (0..<blocks).map { _ in Tensor<Double>.randomNormal(ranks, generator: &g) }
    let factors = (0..<blocks).map { _ in shape.indices.map { Tensor<Double>.randomNormal([shape[$0], ranks[$0]], generator: &g) } }
    return BlockTerm(shape: shape, cores: cores, factors: factors)
}

/// Independent oracle: vec(𝒢 ×_1 A_1 ⋯ ×_d A_d) = (A_1 ⊗ ⋯ ⊗ A_d)·vec(𝒢) (row-major vec).
private func oracle(_ btd: BlockTerm<Double>) -> Tensor<Double> {
    var sum = Tensor<Double>.zeros([btd.shape.reduce(1, *)])
    for b in 0..<btd.blockCount {
        var k = btd.factors[b][0]
        for a in btd.factors[b].dropFirst() { k = Tensor.kronecker(k, a) }
        sum += Tensor.matvec(k, btd.cores[b].reshaped([-1]))
    }
    return sum.reshaped(btd.shape)
}

/// Largest |cosine| between column `c` of `a` and any column of `b`.
private func bestCongruence(_ a: Tensor<Double>, column c: Int, in b: Tensor<Double>) -> Double {
    let x = a.slice(axis: 1, start: c, count: 1)
    return (0..<b.shape[1]).map { j in
        let y = b.slice(axis: 1, start: j, count: 1)
        return Swift.abs(Tensor.dot(x, y)) / (x.frobeniusNorm() * y.frobeniusNorm())
    }.max()!
}

@Suite("BlockTermTests")
struct BlockTermTests {
    @Test func reconstructMatchesKroneckerDefinition() {
        let btd = randomBTD(shape: [4, 3, 5], blocks: 3, ranks: [2, 1, 3], seed: 1)
        #expect(btd.reconstruct().relativeError(to: oracle(btd)) <= 1e-13)
        #expect(btd.ranks == [3, 2, 1, 3])
        #expect(btd.parameterCount == 3 * (2 * 1 * 3 + 4 * 2 + 3 * 1 + 5 * 3))
    }

    @Test func exactRecoveryOfRandomBTDOverTenSeeds() throws {
        // Success = relative error ≤ 1e-10, over 10 seeds per configuration (tensor and start seeds differ).
        let configurations: [(shape: [Int], blocks: Int, ranks: [Int])] = [
            ([6, 6, 6], 2, [2, 2, 2]), ([7, 6, 7], 2, [3, 2, 3]), ([6, 6, 6], 3, [2, 2, 1]), ([4, 5, 4, 5], 2, [2, 2, 2, 2]),
        ]
        for c in configurations {
            var successes = 0
            for seed in 0..<10 {
                let x = randomBTD(shape: c.shape, blocks: c.blocks, ranks: c.ranks, seed: UInt64(1000 + seed)).reconstruct()
                let (btd, report) = try BlockTerm.decompose(x, blocks: c.blocks, target: .ranks(c.ranks),
                                                            initialization: .algebraic(seed: UInt64(seed)))
                let err = btd.relativeError(to: x)
                #expect(err.isFinite && report.fitHistory.allSatisfy { $0.isFinite })
                if err <= 1e-10 { successes += 1 }
            }
            print("BTD exact recovery rate (\(c.blocks) blocks of rank \(c.ranks), shape \(c.shape)): \(successes)/10")
            #expect(successes >= 9, "BTD-ALS recovered \(successes)/10 for \(c)")
        }
    }

    @Test func noisyTensorReachesTheNoiseLevel() throws {
        // 𝒳 = BTD + noise: the true blocks leave exactly the noise, so a good fit is at most that.
        let signal = randomBTD(shape: [6, 6, 6], blocks: 2, ranks: [2, 2, 2], seed: 77).reconstruct()
        let noise = Tensor<Double>.randomNormal([6, 6, 6], seed: 78)
        let x = signal + noise * (1e-3 * signal.frobeniusNorm() / noise.frobeniusNorm())
        let truthError = signal.relativeError(to: x)
        let (btd, report) = try BlockTerm.decompose(x, blocks: 2, target: .ranks([2]))
        #expect(report.converged)
        #expect(btd.relativeError(to: x) <= truthError * (1 + 1e-6))
    }

    @Test func randomStartStillFitsAndNeverReturnsNaN() throws {
        // Plain ALS from random factors (no algebraic start): the returned iterate is the best seen and finite.
        let x = randomBTD(shape: [5, 5, 5], blocks: 2, ranks: [2, 2, 2], seed: 79).reconstruct()
        let (btd, report) = try BlockTerm.decompose(x, blocks: 2, target: .ranks([2]), initialization: .random(seed: 3),
                                                    maxIterations: 50)
        let fit = 1 - Double(btd.relativeError(to: x))
        #expect(report.fitHistory.allSatisfy { $0.isFinite } && Swift.abs(fit - report.fitHistory.max()!) <= 1e-12)
        #expect(report.fitHistory.last! >= report.fitHistory.first!)
    }

    @Test func singleBlockIsTucker() throws {
        // N = 1: a Tucker tensor of multilinear rank (2, 3, 2) is recovered exactly, in Double and Float.
        let truth = randomBTD(shape: [5, 6, 4], blocks: 1, ranks: [2, 3, 2], seed: 2)
        let x = truth.reconstruct()
        let (btd, report) = try BlockTerm.decompose(x, blocks: 1, target: .ranks([2, 3, 2]))
        #expect(btd.relativeError(to: x) <= 1e-10)
        #expect(report.converged)
        // Its column spaces are those of the true factors.
        for k in 0..<3 {
            let q = btd.factors[0][k]
            let projected = Tensor.matmul(q, Tensor.matmul(q, truth.factors[0][k], transposeA: true))
            #expect(projected.relativeError(to: truth.factors[0][k]) <= 1e-8)
        }
        let xf = x.converted(to: Float.self)
        let (btdf, _) = try BlockTerm.decompose(xf, blocks: 1, target: .ranks([2, 3, 2]), tolerance: 1e-7)
        #expect(btdf.relativeError(to: xf) <= 1e-4)
    }

    @Test func unitBlocksAreCP() throws {
        // Blocks of multilinear rank (1, 1, 1): BTD is CP of rank N. A rank-3 CP tensor is recovered exactly and
        // the factors are the CP factors up to permutation and scaling (CP is essentially unique here).
        var successes = 0
        for seed in 0..<10 {
            var g = SeededGenerator(seed: UInt64(2000 + seed))
            let cp = (0..<3).map { _ in Tensor<Double>.randomNormal([5, 3], generator: &g) }
            let x = (0..<3).map { r in
                Tensor.outer(Tensor.outer(cp[0].slice(axis: 1, start: r, count: 1).reshaped([5]),
                                          cp[1].slice(axis: 1, start: r, count: 1).reshaped([5])),
                             cp[2].slice(axis: 1, start: r, count: 1).reshaped([5]))
            }.reduce(Tensor<Double>.zeros([5, 5, 5]), +)
            let (btd, _) = try BlockTerm.decompose(x, blocks: 3, target: .ranks([1]), initialization: .algebraic(seed: UInt64(seed)))
            guard btd.relativeError(to: x) <= 1e-10 else { continue }
            var matched = true
            for k in 0..<3 {
                let found = Tensor.concatenate((0..<3).map { btd.factors[$0][k] }, axis: 1)
                for r in 0..<3 where bestCongruence(cp[k], column: r, in: found) < 1 - 1e-8 { matched = false }
            }
            if matched { successes += 1 }
        }
        print("BTD with 1×1×1 blocks, CP rank-3 recovery rate: \(successes)/10")
        #expect(successes >= 9)
    }

    @Test func unitBlocksGiveTheCPModelAndTheCPFit() throws {
        // A BTD with 1×1×1 blocks is the CP model λ_b = 𝒢_b, columns a_b^{(k)} = A_b^{(k)}.
        var g = SeededGenerator(seed: 3000)
        let cp = (0..<3).map { _ in Tensor<Double>.randomNormal([5, 3], generator: &g) }
        let signal = CPDecomposition(weights: Tensor([1.0, 1.0, 1.0]), factors: cp).reconstruct()
        let noise = Tensor<Double>.randomNormal([5, 5, 5], generator: &g)
        let x = signal + noise * (1e-2 * signal.frobeniusNorm() / noise.frobeniusNorm())
        let (btd, _) = try BlockTerm.decompose(x, blocks: 3, target: .ranks([1]))
        let asCP = CPDecomposition(weights: Tensor((0..<3).map { btd.cores[$0].scalars[0] }),
                                   factors: (0..<3).map { k in Tensor.concatenate((0..<3).map { btd.factors[$0][k] }, axis: 1) })
        #expect(asCP.reconstruct().relativeError(to: btd.reconstruct()) <= 1e-13)
        // Both ALS runs reach the same least-squares fit on a noisy rank-3 tensor.
        let (cpals, _) = try CPDecomposition.decompose(x, target: .ranks([3]), options: CPALSOptions(tolerance: 1e-14))
        #expect(Swift.abs(btd.relativeError(to: x) - cpals.relativeError(to: x)) <= 1e-6)
    }

    @Test func orderTwoAndEdgeCases() throws {
        // Order 2: two blocks of rank (1, 1) recover a rank-2 matrix.
        let a = Tensor<Double>.randomNormal([6, 2], seed: 3), b = Tensor<Double>.randomNormal([2, 5], seed: 4)
        let m = Tensor.matmul(a, b)
        let (pair, _) = try BlockTerm.decompose(m, blocks: 2, target: .ranks([1]))
        #expect(pair.relativeError(to: m) <= 1e-10)
        // Ranks above the mode sizes are clamped to J_k; one full block is then exact.
        let x = Tensor<Double>.randomNormal([3, 1, 4], seed: 5)
        let (full, _) = try BlockTerm.decompose(x, blocks: 1, target: .ranks([10]))
        #expect(full.blockRanks == [3, 1, 4])
        #expect(full.relativeError(to: x) <= 1e-12)
        // Zero tensor: exact zeros and no NaN.
        let (zero, report) = try BlockTerm.decompose(Tensor<Double>.zeros([3, 4, 2]), blocks: 2, target: .ranks([2]))
        #expect(zero.reconstruct().scalars.allSatisfy { $0 == 0 })
        #expect(report.converged && report.fitHistory.allSatisfy { $0.isFinite })
    }

    @Test func iterationCapReturnsBestIterateFlagged() throws {
        let x = Tensor<Double>.randomNormal([5, 5, 5], seed: 6)
        let (btd, report) = try BlockTerm.decompose(x, blocks: 3, target: .ranks([2]), maxIterations: 3, tolerance: 0)
        #expect(!report.converged)
        #expect(report.iterations == 3 && report.fitHistory.count == 3)
        #expect(!report.warnings.isEmpty)
        let fit = 1 - Double(btd.relativeError(to: x))
        #expect(Swift.abs(fit - report.fitHistory.max()!) <= 1e-12)
        #expect(btd.reconstruct().isFinite)
    }

    @Test func compressionRatioTarget() throws {
        let x = Tensor<Double>.randomNormal([8, 8, 8], seed: 7)
        let (btd, _) = try BlockTerm.decompose(x, blocks: 2, target: .compressionRatio(4), maxIterations: 5)
        #expect(Double(btd.parameterCount) <= 512.0 / 4)
        let r = btd.blockRanks[0] + 1
        #expect(Double(2 * (r * r * r + 3 * 8 * r)) > 512.0 / 4)
    }

    @Test func badInputThrowsActionableErrors() {
        let x = Tensor<Double>.randomNormal([3, 3, 3], seed: 8)
        var bad = x
        bad.withUnsafeMutableBufferPointer { $0[2] = .nan }
        #expect(throws: DecompositionError.nonFiniteInput(format: "btd")) { try BlockTerm.decompose(bad, blocks: 2, target: .ranks([1])) }
        #expect(throws: DecompositionError.self) { try BlockTerm.decompose(x, blocks: 2, target: .ranks([0])) }
        #expect(throws: DecompositionError.self) { try BlockTerm.decompose(x, blocks: 0, target: .ranks([1])) }
        #expect(throws: DecompositionError.self) { try BlockTerm.decompose(x, blocks: 2, target: .ranks([1, 1])) }
        do {
            _ = try BlockTerm.decompose(x, blocks: 2, target: .relativeError(0.1))
            Issue.record("ε was accepted by BTD-ALS")
        } catch let error as DecompositionError {
            guard case .unsupportedTarget = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains(".ranks"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: DecompositionError.self) { try BlockTerm.decompose(x, blocks: 2, target: .relativeError(-1)) }
    }
}
