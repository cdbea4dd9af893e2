import Foundation
import Testing
import TensorCore
import Decompositions

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// The definition (A ⊗ I_{s/b})(C ⊗ I_{s/p}) with explicit identities.
private func stpByDefinition(_ a: Tensor<Double>, _ c: Tensor<Double>) -> Tensor<Double> {
    let b = a.shape[1], p = c.shape[0], s = b / gcd(b, p) * p
    return Tensor.matmul(Tensor.kronecker(a, .identity(s / b)), Tensor.kronecker(c, .identity(s / p)))
}

/// Ordinary TT/TR contraction by explicit index loops: 𝒳[j] = Tr(∏_k 𝒞_k[:, j_k, :]).
private func loopRingContraction(_ cores: [Tensor<Double>]) -> Tensor<Double> {
    let shape = cores.map { $0.shape[1] }
    let strides = Tensor<Double>.strides(for: shape)
    return Tensor(shape: shape) { out in
        for linear in 0..<out.count {
            let index = shape.indices.map { (linear / strides[$0]) % shape[$0] }
            var m = Tensor<Double>.identity(cores[0].shape[0])
            for (k, core) in cores.enumerated() {
                m = Tensor.matmul(m, core.slice(axis: 1, start: index[k], count: 1).reshaped([core.shape[0], core.shape[2]]))
            }
            var trace = 0.0
            for a in 0..<m.shape[0] { trace += m[a, a] }
            out[linear] = trace
        }
    }
}

private func randomSTT(shape: [Int], ranks: [Int], t: Int, seed: UInt64) -> SemiTensorTrain<Double> {
    var g = SeededGenerator(seed: seed)
    let full = [1] + ranks + [1]
    let cores = shape.indices.map { k in
        k == 0 ? Tensor<Double>.randomNormal([1, shape[0], full[1]], generator: &g)
               : Tensor<Double>.randomNormal([full[k] / t, shape[k] / t, full[k + 1]], generator: &g)
    }
    return SemiTensorTrain(cores: cores, stpFactor: t)
}

private func randomSTR(shape: [Int], ranks: [Int], t: Int, seed: UInt64) -> SemiTensorRing<Double> {
    var g = SeededGenerator(seed: seed)
    let d = shape.count
    let cores = (0..<d).map { k in
        Tensor<Double>.randomNormal([ranks[k] / t, shape[k] / t, ranks[(k + 1) % d]], generator: &g)
    }
    return SemiTensorRing(cores: cores, stpFactor: t)
}

@Suite("SemiTensorProductTests")
struct SemiTensorProductTests {
    // MARK: The product

    @Test func semiTensorProductFollowsTheLCMRule() {
        // b = p, b = t·p, p = t·b, and coprime b, p.
        let shapes: [([Int], [Int])] = [([3, 4], [4, 5]), ([3, 6], [2, 4]), ([2, 3], [6, 2]), ([2, 4], [6, 3]), ([3, 2], [3, 5])]
        for (i, (sa, sc)) in shapes.enumerated() {
            let a = Tensor<Double>.randomNormal(sa, seed: UInt64(i)), c = Tensor<Double>.randomNormal(sc, seed: UInt64(10 + i))
            let expected = stpByDefinition(a, c)
            let product = a ⋉ c
            #expect(product.shape == expected.shape, "\(sa) ⋉ \(sc)")
            #expect(product.relativeError(to: expected) <= 1e-14, "\(sa) ⋉ \(sc)")
        }
        // The ordinary product when the inner dimensions match.
        let a = Tensor<Double>.randomNormal([3, 4], seed: 1), c = Tensor<Double>.randomNormal([4, 2], seed: 2)
        #expect((a ⋉ c).relativeError(to: Tensor.matmul(a, c)) <= 1e-15)
        // The pass-through formula for b = t·p: (A ⋉ C)[x,(c,j)] = Σ_α A[x,(α,j)]·C[α,c].
        let a2 = Tensor<Double>.randomNormal([2, 6], seed: 3), c2 = Tensor<Double>.randomNormal([3, 2], seed: 4)
        let p = a2 ⋉ c2
        for x in 0..<2 { for col in 0..<2 { for j in 0..<2 {
            let expected = (0..<3).reduce(0.0) { $0 + a2[x, $1 * 2 + j] * c2[$1, col] }
            #expect(Swift.abs(p[x, col * 2 + j] - expected) <= 1e-14)
        } } }
    }

    @Test func semiTensorProductIsAssociative() {
        let shapes: [([Int], [Int], [Int])] = [([2, 4], [2, 3], [6, 2]), ([3, 6], [4, 5], [2, 3]), ([2, 3], [2, 4], [3, 3]), ([4, 2], [4, 6], [4, 1])]
        for (i, (sa, sb, sc)) in shapes.enumerated() {
            var g = SeededGenerator(seed: UInt64(20 + i))
            let a = Tensor<Double>.randomNormal(sa, generator: &g), b = Tensor<Double>.randomNormal(sb, generator: &g)
            let c = Tensor<Double>.randomNormal(sc, generator: &g)
            let left = (a ⋉ b) ⋉ c, right = a ⋉ (b ⋉ c)
            #expect(left.shape == right.shape, "\(sa), \(sb), \(sc)")
            #expect(left.relativeError(to: right) <= 1e-13, "\(sa), \(sb), \(sc)")
        }
    }

    @Test func semiTensorModeProductIsAModeProductWithUKronI() {
        let x = Tensor<Double>.randomNormal([3, 6, 4], seed: 5)
        let u = Tensor<Double>.randomNormal([5, 2], seed: 6)  // t = 3 on mode 1
        let expected = x.modeProduct(Tensor.kronecker(u, .identity(3)), mode: 1)
        let y = x.semiTensorModeProduct(u, mode: 1)
        #expect(y.shape == [3, 15, 4])
        #expect(y.relativeError(to: expected) <= 1e-14)
        // t = 1 is the ordinary mode product.
        let v = Tensor<Double>.randomNormal([2, 4], seed: 7)
        #expect(x.semiTensorModeProduct(v, mode: 2).relativeError(to: x.modeProduct(v, mode: 2)) <= 1e-15)
    }

    // MARK: STTu

    @Test func sttuExactRecoveryEffectiveTuckerAndStorage() throws {
        let shape = [4, 6, 6], t = [2, 3, 2], ranks = [2, 3, 4]
        var g = SeededGenerator(seed: 8)
        let core = Tensor<Double>.randomNormal(ranks, generator: &g)
        let factors = (0..<3).map { Tensor<Double>.randomNormal([shape[$0] / t[$0], ranks[$0] / t[$0]], generator: &g) }
        let truth = SemiTensorTucker(shape: shape, core: core, factors: factors, stpFactors: t)
        let x = truth.reconstruct()
        // Reconstruct = ordinary Tucker with factors U_k ⊗ I_{t_k}.
        let tucker = core.multiModeProduct(truth.effectiveFactors.enumerated().map { (mode: $0.offset, matrix: $0.element) })
        #expect(x.relativeError(to: tucker) <= 1e-14)
        // Storage: ∏R + ΣJ_kR_k/t_k², fewer than Tucker's ∏R + ΣJ_kR_k.
        let tuckerStorage = 24 + (4 * 2 + 6 * 3 + 6 * 4)
        #expect(truth.parameterCount == 24 + (4 * 2 / 4 + 6 * 3 / 9 + 6 * 4 / 4))
        #expect(truth.parameterCount < tuckerStorage)

        let fit = try SemiTensorTucker.decompose(x, stpFactors: t, target: .ranks(ranks))
        #expect(fit.relativeError(to: x) <= 1e-10)
        #expect(fit.ranks == ranks)
        let byEps = try SemiTensorTucker.decompose(x, stpFactors: t, target: .relativeError(1e-10))
        #expect(byEps.relativeError(to: x) <= 1e-10 && byEps.ranks == ranks)
        let xf = x.converted(to: Float.self)
        #expect(try SemiTensorTucker.decompose(xf, stpFactors: t, target: .ranks(ranks)).relativeError(to: xf) <= 1e-4)
    }

    @Test func sttuHonoursToleranceAndRatio() throws {
        // An STTu tensor of ranks (2, 2, 2) plus 5 % noise.
        var g = SeededGenerator(seed: 9)
        let signal = SemiTensorTucker(shape: [6, 4, 6], core: Tensor<Double>.randomNormal([2, 2, 2], generator: &g),
                                      factors: [[3, 1], [2, 1], [3, 1]].map { Tensor<Double>.randomNormal($0, generator: &g) },
                                      stpFactors: [2, 2, 2]).reconstruct()
        let noise = Tensor<Double>.randomNormal([6, 4, 6], generator: &g)
        let x = signal + noise * (0.05 * signal.frobeniusNorm() / noise.frobeniusNorm())
        for eps in [0.6, 0.3, 0.1, 0.0] {
            let f = try SemiTensorTucker.decompose(x, stpFactors: [2], target: .relativeError(eps))
            #expect(f.relativeError(to: x) <= eps + 1e-12)
            #expect(f.ranks.allSatisfy { $0 % 2 == 0 })
        }
        let loose = try SemiTensorTucker.decompose(x, stpFactors: [2], target: .relativeError(0.1))
        #expect(loose.ranks == [2, 2, 2])
        #expect(loose.parameterCount == 8 + 3 + 2 + 3)
        let ratio = try SemiTensorTucker.decompose(x, stpFactors: [2], target: .compressionRatio(3))
        #expect(Double(ratio.parameterCount) <= Double(x.scalarCount) / 3)
        // Clamping: ranks above J_k come back as J_k.
        let full = try SemiTensorTucker.decompose(x, stpFactors: [2], target: .ranks([100]))
        #expect(full.ranks == [6, 4, 6] && full.relativeError(to: x) <= 1e-12)
    }

    // MARK: STT and STR

    @Test func effectiveCoresHaveTheDeltaStructureAndGiveTheOrdinaryTrainAndRing() {
        let stt = randomSTT(shape: [3, 4, 6, 2], ranks: [4, 2, 4], t: 2, seed: 10)
        let eff = stt.effectiveCores
        #expect(eff.map(\.shape) == [[1, 3, 4], [4, 4, 2], [2, 6, 4], [4, 2, 1]])
        // 𝒢^eff[(α,j),(m,j'),r] = δ_{jj'}·𝒢[α,m,r].
        let small = stt.cores[2], e = eff[2]
        for alpha in 0..<1 { for j in 0..<2 { for m in 0..<3 { for jp in 0..<2 { for r in 0..<4 {
            #expect(e[alpha * 2 + j, m * 2 + jp, r] == (j == jp ? small[alpha, m, r] : 0))
        } } } } }
        #expect(stt.reconstruct().relativeError(to: loopRingContraction(eff)) <= 1e-13)
        #expect(stt.ranks == [1, 4, 2, 4, 1])

        let str = randomSTR(shape: [4, 2, 6], ranks: [2, 4, 2], t: 2, seed: 11)
        #expect(str.effectiveCores.map(\.shape) == [[2, 4, 4], [4, 2, 2], [2, 6, 2]])
        #expect(str.reconstruct().relativeError(to: loopRingContraction(str.effectiveCores)) <= 1e-13)
        #expect(str.ranks == [2, 4, 2])
    }

    @Test func stpFormatsStoreFewerParametersThanTTAndTR() {
        // Equal ranks: every STP-linked core stores its TT/TR core size divided by t².
        for t in [2, 3] {
            let shape = [6, 6, 6, 6]
            let stt = randomSTT(shape: shape, ranks: [6, 6, 6], t: t, seed: 12)
            let tt = stt.effectiveCores.map(\.scalarCount)
            #expect(stt.parameterCount == tt[0] + tt.dropFirst().reduce(0) { $0 + $1 / (t * t) })
            #expect(stt.parameterCount < tt.reduce(0, +))
            let str = randomSTR(shape: shape, ranks: [6, 6, 6, 6], t: t, seed: 13)
            let tr = str.effectiveCores.map(\.scalarCount).reduce(0, +)
            #expect(str.parameterCount * t * t == tr)
            #expect(str.compressionRatio == Double(6 * 6 * 6 * 6) / Double(tr / (t * t)))
        }
    }

    @Test func sttExactRecoveryByALSOverTenSeeds() throws {
        var successes = 0
        for seed in 0..<10 {
            let x = randomSTT(shape: [4, 4, 4, 4], ranks: [4, 4, 4], t: 2, seed: UInt64(300 + seed)).reconstruct()
            let (stt, report) = try SemiTensorTrain.decompose(x, stpFactor: 2, target: .ranks([4]), seed: UInt64(seed))
            #expect(report.fitHistory.allSatisfy { $0.isFinite })
            if stt.relativeError(to: x) <= 1e-10 { successes += 1 }
        }
        print("STT-ALS exact recovery rate (4⁴, ranks 4, t = 2): \(successes)/10")
        #expect(successes >= 9)
        let xf = randomSTT(shape: [4, 4, 4], ranks: [4, 4], t: 2, seed: 7).reconstruct().converted(to: Float.self)
        let (sttf, _) = try SemiTensorTrain.decompose(xf, stpFactor: 2, target: .ranks([4]), tolerance: 1e-8)
        #expect(sttf.relativeError(to: xf) <= 1e-4)
    }

    @Test func strExactRecoveryByALSOverTenSeeds() throws {
        var successes = 0
        for seed in 0..<10 {
            let x = randomSTR(shape: [4, 4, 4], ranks: [2, 4, 2], t: 2, seed: UInt64(400 + seed)).reconstruct()
            let (str, report) = try SemiTensorRing.decompose(x, stpFactor: 2, target: .ranks([2, 4, 2]), seed: UInt64(seed))
            #expect(report.fitHistory.allSatisfy { $0.isFinite })
            if str.relativeError(to: x) <= 1e-10 { successes += 1 }
        }
        print("STR-ALS exact recovery rate (4³, ranks (2,4,2), t = 2): \(successes)/10")
        #expect(successes >= 9)
    }

    /// STR with one ordinary link (STR-conv's kernel core): the unlinked core stores R×J×R' whole, mode sizes and
    /// ranks need no factor t there, ALS recovers an exact tensor, and a factor file keeps the links.
    @Test func strWithAnOrdinaryLinkRecoversAndRoundTrips() throws {
        var g = SeededGenerator(seed: 21)
        let linked = [true, false, true]
        // Shape [4, 3, 4]: mode 1 (size 3) and its left rank 3 need no multiple of t = 2.
        let cores = [Tensor<Double>.randomNormal([1, 2, 3], generator: &g), .randomNormal([3, 3, 4], generator: &g),
                     .randomNormal([2, 2, 2], generator: &g)]
        let exact = SemiTensorRing(cores: cores, stpFactor: 2, linked: linked)
        #expect(exact.shape == [4, 3, 4] && exact.ranks == [2, 3, 4])
        #expect(exact.parameterCount == 6 + 36 + 8)
        let x = exact.reconstruct()
        let (str, report) = try SemiTensorRing.decompose(x, stpFactor: 2, linked: linked, target: .ranks([2, 3, 4]),
                                                         maxIterations: 2000, tolerance: 1e-15)
        #expect(str.linked == linked && str.ranks == [2, 3, 4] && report.fitHistory.allSatisfy { $0.isFinite })
        #expect(str.relativeError(to: x) <= 1e-10, "error \(str.relativeError(to: x))")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("str-links-\(UInt32.random(in: 0...UInt32.max)).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FactorFile.save(exact, to: path)
        guard case let .str(loaded) = try FactorFile.load(path, as: Double.self) else { Issue.record("not an STR file"); return }
        #expect(loaded.linked == linked && loaded.reconstruct() == x)
        let bad = try FactorFileFixtures.tampered(path, metadata: ["stp_unlinked": "[1, 3]"])
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(FactorFileFixtures.loadProblem(bad)?.contains("distinct cores 0..<3") == true)
        // Linked modes must still divide: t = 2 on an ordinary-link mode of size 3 is fine, on a linked one it is not.
        #expect(throws: DecompositionError.self) {
            _ = try SemiTensorRing.decompose(x, stpFactor: 2, linked: [false, true, true], target: .ranks([2]))
        }
    }

    /// The returned cores share one Frobenius norm (the scale is spread over them), and the tensor is the same.
    @Test func stpCoresComeBackBalanced() throws {
        let x = randomSTR(shape: [4, 4, 4], ranks: [2, 4, 2], t: 2, seed: 11).reconstruct() * 100
        let (str, _) = try SemiTensorRing.decompose(x, stpFactor: 2, target: .ranks([2, 4, 2]), maxIterations: 3)
        let (stt, _) = try SemiTensorTrain.decompose(x, stpFactor: 2, target: .ranks([4]), maxIterations: 3)
        for norms in [str.cores.map { $0.frobeniusNorm() }, stt.cores.map { $0.frobeniusNorm() }] {
            #expect(norms.allSatisfy { abs($0 / norms[0] - 1) < 1e-12 }, "\(norms)")
        }
        #expect(str.relativeError(to: x) < 1 && stt.relativeError(to: x) < 1)
    }

    @Test func stpEdgeCasesAndRatio() throws {
        // Order 2 with t = 1 is a rank-R matrix factorization: exact for a rank-2 matrix.
        let m = Tensor.matmul(Tensor<Double>.randomNormal([5, 2], seed: 14), Tensor<Double>.randomNormal([2, 6], seed: 15))
        let (stt2, _) = try SemiTensorTrain.decompose(m, stpFactor: 1, target: .ranks([2]))
        #expect(stt2.relativeError(to: m) <= 1e-10)
        // Ranks above the TT bound are clamped to the largest multiple of t below it (at least t).
        let x = Tensor<Double>.randomNormal([2, 4, 2], seed: 16)
        let (clamped, _) = try SemiTensorTrain.decompose(x, stpFactor: 2, target: .ranks([100]), maxIterations: 3)
        #expect(clamped.ranks == [1, 2, 2, 1])
        // Zero tensor: exact zeros, no NaN.
        let (zt, zr) = try SemiTensorTrain.decompose(Tensor<Double>.zeros([4, 4, 4]), stpFactor: 2, target: .ranks([2]))
        #expect(zt.reconstruct().scalars.allSatisfy { $0 == 0 } && zr.fitHistory.allSatisfy { $0.isFinite })
        let (zs, _) = try SemiTensorRing.decompose(Tensor<Double>.zeros([4, 4, 4]), stpFactor: 2, target: .ranks([2]))
        #expect(zs.reconstruct().scalars.allSatisfy { $0 == 0 })
        let zu = try SemiTensorTucker.decompose(Tensor<Double>.zeros([4, 4]), stpFactors: [2], target: .relativeError(0.1))
        #expect(zu.reconstruct().scalars.allSatisfy { $0 == 0 })
        // Compression-ratio target.
        let y = Tensor<Double>.randomNormal([4, 4, 4, 4], seed: 17)
        let (ratio, _) = try SemiTensorRing.decompose(y, stpFactor: 2, target: .compressionRatio(8), maxIterations: 2)
        #expect(Double(ratio.parameterCount) <= 256.0 / 8)
        #expect(ratio.ranks.allSatisfy { $0 % 2 == 0 })
        // The iteration cap returns the best iterate flagged, with its history.
        let (capped, report) = try SemiTensorRing.decompose(y, stpFactor: 2, target: .ranks([2]), maxIterations: 2, tolerance: 0)
        #expect(!report.converged && report.fitHistory.count == 2 && !report.warnings.isEmpty)
        #expect(Swift.abs(1 - Double(capped.relativeError(to: y)) - report.fitHistory.max()!) <= 1e-12)
    }

    @Test func badInputThrowsActionableErrors() {
        let x = Tensor<Double>.randomNormal([4, 6, 4], seed: 18)
        do {
            _ = try SemiTensorTrain.decompose(x, stpFactor: 4, target: .ranks([4]))
            Issue.record("t = 4 with J = 6 was accepted")
        } catch let DecompositionError.shapeMismatch(_, problem) {
            #expect(problem.contains("= 6") && problem.contains("[1, 2, 3, 6]"))
        } catch { Issue.record("unexpected \(error)") }
        do {
            _ = try SemiTensorRing.decompose(x, stpFactor: 2, target: .ranks([3]))
            Issue.record("a rank that is not a multiple of t was accepted")
        } catch let DecompositionError.invalidRanks(_, problem) {
            #expect(problem.contains("use 2 or 4"))
        } catch { Issue.record("unexpected \(error)") }
        do {
            _ = try SemiTensorTrain.decompose(x, stpFactor: 2, target: .relativeError(0.1))
            Issue.record("ε was accepted by STT-ALS")
        } catch let error as DecompositionError {
            guard case .unsupportedTarget = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("SemiTensorTucker"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: DecompositionError.self) { try SemiTensorTucker.decompose(x, stpFactors: [2, 4, 2], target: .ranks([2])) }
        #expect(throws: DecompositionError.self) { try SemiTensorTucker.decompose(x, stpFactors: [2], target: .ranks([3])) }
        #expect(throws: DecompositionError.self) { try SemiTensorTucker.decompose(x, stpFactors: [2], target: .relativeError(-1)) }
        #expect(throws: DecompositionError.self) { try SemiTensorTrain.decompose(x, stpFactor: 2, target: .ranks([0])) }
        var bad = x
        bad.withUnsafeMutableBufferPointer { $0[1] = .nan }
        #expect(throws: DecompositionError.nonFiniteInput(format: "str")) { try SemiTensorRing.decompose(bad, stpFactor: 2, target: .ranks([2])) }
        #expect(throws: DecompositionError.nonFiniteInput(format: "sttu")) { try SemiTensorTucker.decompose(bad, stpFactors: [2], target: .ranks([2])) }
        #expect(throws: DecompositionError.self) { try SemiTensorTrain.decompose(Tensor<Double>.randomNormal([4], seed: 1), stpFactor: 2, target: .ranks([2])) }
    }
}
