import Testing
import TensorCore
import Decompositions

/// Random HT tensor over `tree` with uniform rank `rank` (clamped to the leaf size), built through the public init.
private func randomHT(shape: [Int], tree: DimensionTree, rank: Int, seed: UInt64) -> HierarchicalTucker<Double> {
    var g = SeededGenerator(seed: seed)
    var leaves = [Tensor<Double>](repeating: .zeros([0, 0]), count: shape.count)
    func build(_ t: DimensionTree, isRoot: Bool) -> (rank: Int, transfers: [Tensor<Double>]) {
        switch t {
        case let .leaf(k):
            let r = Swift.min(rank, shape[k])
            leaves[k] = Tensor.randomNormal([shape[k], r], generator: &g)
            return (r, [])
        case let .node(l, r):
            let left = build(l, isRoot: false), right = build(r, isRoot: false)
            let rt = isRoot ? 1 : Swift.min(rank, left.rank * right.rank)
            let b = Tensor<Double>.randomNormal([left.rank, right.rank, rt], generator: &g)
            return (rt, left.transfers + right.transfers + [b])
        }
    }
    let transfers = build(tree, isRoot: true).transfers
    return HierarchicalTucker(shape: shape, tree: tree, leafBases: leaves, transferTensors: transfers)
}

/// Independent oracle: U_t = (U_l ⊗ U_r)·mat(𝓑_t) with explicit Kronecker products, then the mode permutation.
private func oracleReconstruct(_ ht: HierarchicalTucker<Double>) -> Tensor<Double> {
    var transfers = ht.transferTensors[...]
    func basis(_ t: DimensionTree) -> Tensor<Double> {
        switch t {
        case let .leaf(k): return ht.leafBases[k]
        case let .node(l, r):
            let ul = basis(l), ur = basis(r)
            let b = transfers.removeFirst()
            return Tensor.matmul(Tensor.kronecker(ul, ur), b.reshaped([b.shape[0] * b.shape[1], b.shape[2]]))
        }
    }
    let u = basis(ht.tree)
    let order = ht.tree.modes
    let permuted = u.reshaped(order.map { ht.shape[$0] })
    // element at natural index i: permuted[i[order[0]], i[order[1]], …]
    return Tensor(shape: ht.shape) { out in
        let strides = Tensor<Double>.strides(for: ht.shape)
        for linear in 0..<out.count {
            var rem = linear
            var index = [Int](repeating: 0, count: ht.shape.count)
            for k in 0..<ht.shape.count { index[k] = rem / strides[k]; rem %= strides[k] }
            out[linear] = permuted[indices: order.map { index[$0] }]
        }
    }
}

/// Singular values of the matricization of `x` with `modes` as rows.
private func matricizationSingularValues(_ x: Tensor<Double>, modes: [Int]) throws -> [Double] {
    let rest = (0..<x.rank).filter { !modes.contains($0) }
    let rows = modes.reduce(1) { $0 * x.shape[$1] }
    return try x.permuted(modes + rest).reshaped([rows, x.scalarCount / rows]).singularValues().scalars
}

private func tail(_ s: [Double], from r: Int) -> Double {
    s.dropFirst(r).reduce(0) { $0 + $1 * $1 }.squareRoot()
}

@Suite("HierarchicalTuckerTests")
struct HierarchicalTuckerTests {
    @Test func balancedTreesAndParsing() throws {
        #expect(DimensionTree.balanced(order: 4).description == "((0,1),(2,3))")
        #expect(DimensionTree.balanced(order: 3).description == "((0,1),2)")
        #expect(DimensionTree.balanced(order: 5).description == "(((0,1),2),(3,4))")
        let parsed = try DimensionTree(parsing: " ((0, 2), (1,3)) ")
        #expect(parsed == .node(.node(.leaf(0), .leaf(2)), .node(.leaf(1), .leaf(3))))
        #expect(parsed.modes == [0, 2, 1, 3])
        try parsed.validate(order: 4)
    }

    @Test func nonBinaryOrMismatchedTreesThrowWithAdvice() throws {
        do {
            _ = try DimensionTree(parsing: "(0,1,2)")
            Issue.record("a ternary node was accepted")
        } catch let DecompositionError.shapeMismatch(_, problem) {
            #expect(problem.contains("binary") && problem.contains("3 children"))
        }
        #expect(throws: DecompositionError.self) { try DimensionTree(parsing: "((0,1),(2,3)") }
        do {
            try DimensionTree.node(.node(.leaf(0), .leaf(1)), .node(.leaf(1), .leaf(3))).validate(order: 4)
            Issue.record("a tree with a repeated mode was accepted")
        } catch let DecompositionError.shapeMismatch(_, problem) {
            #expect(problem.contains("[1] appear more than once") && problem.contains("[2] are missing"))
            #expect(problem.contains("((0,1),(2,3))"))
        }
        let x = Tensor<Double>.randomNormal([2, 3, 2], seed: 1)
        #expect(throws: DecompositionError.self) {
            try HierarchicalTucker.decompose(x, target: .ranks([2]), tree: .balanced(order: 4))
        }
    }

    @Test func reconstructMatchesKroneckerDefinition() {
        let tree = DimensionTree.node(.node(.leaf(0), .leaf(2)), .node(.leaf(3), .node(.leaf(1), .leaf(4))))
        let ht = randomHT(shape: [3, 2, 4, 2, 3], tree: tree, rank: 2, seed: 7)
        #expect(ht.reconstruct().relativeError(to: oracleReconstruct(ht)) <= 1e-13)
        #expect(ht.ranks.count == 2 * 5 - 2)
        #expect(ht.nodeModes == [[0], [2], [0, 2], [3], [1], [4], [1, 4], [3, 1, 4]])
    }

    @Test func exactRecoveryDouble() throws {
        let cases: [(shape: [Int], tree: DimensionTree, rank: Int)] = [
            ([4, 5, 3, 6], .balanced(order: 4), 2),
            ([4, 3, 5], .balanced(order: 3), 3),
            ([3, 4, 3, 4, 3], .balanced(order: 5), 2),
            ([4, 3, 4, 3], .node(.node(.leaf(0), .leaf(2)), .node(.leaf(1), .leaf(3))), 2),
            ([3, 4, 3, 4], .node(.leaf(2), .node(.leaf(0), .node(.leaf(3), .leaf(1)))), 3),
        ]
        for (i, c) in cases.enumerated() {
            let truth = randomHT(shape: c.shape, tree: c.tree, rank: c.rank, seed: UInt64(100 + i))
            let x = truth.reconstruct()
            let byRank = try HierarchicalTucker.decompose(x, target: .ranks([c.rank]), tree: c.tree)
            #expect(byRank.relativeError(to: x) <= 1e-10, "case \(i)")
            #expect(byRank.ranks.allSatisfy { $0 <= c.rank })
            // A tiny tolerance finds the exact ranks.
            let byEps = try HierarchicalTucker.decompose(x, target: .relativeError(1e-9), tree: c.tree)
            #expect(byEps.relativeError(to: x) <= 1e-9, "case \(i)")
            #expect(byEps.parameterCount <= byRank.parameterCount, "case \(i)")
        }
    }

    @Test func exactRecoveryFloat() throws {
        let truth = randomHT(shape: [4, 5, 3, 6], tree: .balanced(order: 4), rank: 2, seed: 3)
        let x = truth.reconstruct().converted(to: Float.self)
        let ht = try HierarchicalTucker.decompose(x, target: .ranks([2]))
        #expect(ht.relativeError(to: x) <= 1e-4)
    }

    @Test func toleranceIsHonouredAndBoundsHold() throws {
        // Low-rank HT signal plus noise: every ε must be met; the error obeys the node-wise bound of [32].
        for (d, shape) in [(3, [5, 6, 4]), (4, [4, 5, 4, 3]), (5, [3, 4, 3, 3, 4])] {
            let signal = randomHT(shape: shape, tree: .balanced(order: d), rank: 2, seed: UInt64(d)).reconstruct()
            let noise = Tensor<Double>.randomNormal(shape, seed: UInt64(50 + d))
            let x = signal + noise * (0.05 * signal.frobeniusNorm() / noise.frobeniusNorm())
            for eps in [0.5, 0.2, 0.1, 0.03, 0.01, 0.0] {
                let ht = try HierarchicalTucker.decompose(x, target: .relativeError(eps))
                let err = ht.relativeError(to: x)
                #expect(err <= eps + 1e-12, "d=\(d) ε=\(eps): error \(err)")
                // Quasi-optimality [32]: error ≤ √(2d−3)·max_t tail_t(𝒳) ≤ √(2d−3)·best.
                var maxTail = 0.0, sumTail = 0.0
                for (modes, r) in zip(ht.nodeModes, ht.ranks) {
                    let t = tail(try matricizationSingularValues(x, modes: modes), from: r)
                    maxTail = Swift.max(maxTail, t)
                    sumTail += t * t
                }
                let absolute = err * x.frobeniusNorm()
                #expect(absolute <= sumTail.squareRoot() * (1 + 1e-10) + 1e-12)
                #expect(absolute <= (Double(2 * d - 3)).squareRoot() * maxTail * (1 + 1e-10) + 1e-12)
            }
            // A loose tolerance must actually compress (so the ε test is not vacuous).
            let loose = try HierarchicalTucker.decompose(x, target: .relativeError(0.2))
            #expect(loose.parameterCount < x.scalarCount)
            #expect(loose.ranks.allSatisfy { $0 <= 3 })
        }
    }

    @Test func orderTwoIsTheTruncatedSVD() throws {
        let x = Tensor<Double>.randomNormal([7, 5], seed: 11)
        let s = try x.singularValues().scalars
        for r in 1...4 {
            let ht = try HierarchicalTucker.decompose(x, target: .ranks([r]))
            let err = ht.relativeError(to: x) * x.frobeniusNorm()
            #expect(Swift.abs(err - tail(s, from: r)) <= 1e-10 * x.frobeniusNorm())
        }
    }

    @Test func parameterCountFormulaBalanced() throws {
        // d = 4, J = 5, R = 3: d·JR + (d−2)R³ + R² (METHODS §1.5).
        let x = Tensor<Double>.randomNormal([5, 5, 5, 5], seed: 4)
        let ht = try HierarchicalTucker.decompose(x, target: .ranks([3]))
        #expect(ht.parameterCount == 4 * 5 * 3 + 2 * 27 + 9)
        #expect(ht.compressionRatio == Double(625) / Double(4 * 5 * 3 + 2 * 27 + 9))
    }

    @Test func compressionRatioTarget() throws {
        let x = Tensor<Double>.randomNormal([6, 6, 6, 6], seed: 5)
        for ratio in [2.0, 5.0, 20.0] {
            let ht = try HierarchicalTucker.decompose(x, target: .compressionRatio(ratio))
            #expect(Double(ht.parameterCount) <= Double(x.scalarCount) / ratio)
            // One more uniform rank would exceed the budget.
            let r = ht.ranks.max()!
            let bigger = try HierarchicalTucker.decompose(x, target: .ranks([r + 1]))
            #expect(Double(bigger.parameterCount) > Double(x.scalarCount) / ratio)
        }
    }

    @Test func edgeCases() throws {
        // Size-1 modes and ranks above the mode sizes: clamped, and with nothing truncated the result is exact.
        let x = Tensor<Double>.randomNormal([1, 4, 1, 3], seed: 6)
        let ht = try HierarchicalTucker.decompose(x, target: .ranks([10]))
        #expect(ht.relativeError(to: x) <= 1e-12)
        #expect(ht.leafBases[0].shape == [1, 1] && ht.leafBases[2].shape == [1, 1])
        for (modes, r) in zip(ht.nodeModes, ht.ranks) {
            let inside = modes.reduce(1) { $0 * x.shape[$1] }
            #expect(r <= Swift.min(inside, x.scalarCount / inside))
        }
        // Rank 1: an outer product is recovered exactly.
        let a = Tensor<Double>.randomNormal([3], seed: 1), b = Tensor<Double>.randomNormal([4], seed: 2)
        let c = Tensor<Double>.randomNormal([2], seed: 3)
        let rankOne = Tensor.outer(Tensor.outer(a, b), c)
        let r1 = try HierarchicalTucker.decompose(rankOne, target: .ranks([1]))
        #expect(r1.relativeError(to: rankOne) <= 1e-12)
        #expect(r1.ranks == [1, 1, 1, 1])
        // Zero tensor: exact zeros, no NaN, for every target.
        let zero = Tensor<Double>.zeros([3, 4, 2])
        for target: RankTarget<Double> in [.ranks([2]), .relativeError(0.1), .compressionRatio(2)] {
            let z = try HierarchicalTucker.decompose(zero, target: target)
            #expect(z.reconstruct().scalars.allSatisfy { $0 == 0 })
        }
        // A rank cap bounds every rank.
        let capped = try HierarchicalTucker.decompose(Tensor<Double>.randomNormal([4, 4, 4, 4], seed: 8),
                                                      target: .relativeError(0), maxRank: 2)
        #expect(capped.ranks.allSatisfy { $0 <= 2 })
    }

    @Test func badInputThrowsActionableErrors() {
        var x = Tensor<Double>.randomNormal([3, 3, 3], seed: 9)
        #expect(throws: DecompositionError.nonFiniteInput(format: "ht")) {
            var y = x
            y.withUnsafeMutableBufferPointer { $0[4] = .nan }
            return try HierarchicalTucker.decompose(y, target: .ranks([2]))
        }
        x.withUnsafeMutableBufferPointer { $0[0] = .infinity }
        #expect(throws: DecompositionError.nonFiniteInput(format: "ht")) { try HierarchicalTucker.decompose(x, target: .ranks([2])) }
        let y = Tensor<Double>.randomNormal([3, 3, 3], seed: 9)
        do {
            _ = try HierarchicalTucker.decompose(y, target: .ranks([0]))
            Issue.record("rank 0 was accepted")
        } catch let error as DecompositionError {
            guard case .invalidRanks = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("at least 1"))
        } catch { Issue.record("unexpected \(error)") }
        do {
            _ = try HierarchicalTucker.decompose(y, target: .relativeError(-0.1))
            Issue.record("negative ε was accepted")
        } catch let error as DecompositionError {
            guard case .invalidTarget = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("≥ 0"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: DecompositionError.self) { try HierarchicalTucker.decompose(y, target: .ranks([2, 2, 2])) }  // needs 1 or 4
        #expect(throws: DecompositionError.self) { try HierarchicalTucker.decompose(Tensor<Double>.randomNormal([5], seed: 1), target: .ranks([1])) }
        #expect(throws: DecompositionError.self) {
            try HierarchicalTucker.decompose(y, target: .ranks([2]), tree: .node(.leaf(0), .node(.leaf(1), .leaf(1))))
        }
    }
}
