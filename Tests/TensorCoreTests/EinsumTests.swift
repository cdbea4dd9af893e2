import Testing
@testable import TensorCore

/// Naive einsum by nested summation over every index assignment, written independently of the library: the
/// reference value and, per output element, Σ|terms| (the magnitude that bounds the rounding error of any
/// summation order: |fl(Σ) − Σ| ≤ γ_N Σ|terms|, with N the number of terms, far below 1e-12 here).
private func naiveEinsum(_ spec: String, _ operands: [Tensor<Double>]) -> (value: Tensor<Double>, magnitude: Tensor<Double>) {
    let parts = spec.components(separatedBy: "->")
    let terms = parts[0].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
    var sizes: [Character: Int] = [:]
    for (term, operand) in zip(terms, operands) {
        for (letter, size) in zip(term, operand.shape) { sizes[letter] = size }
    }
    let output: [Character]
    if parts.count == 2 {
        output = Array(parts[1])
    } else {
        var counts: [Character: Int] = [:]
        for term in terms { for letter in term { counts[letter, default: 0] += 1 } }
        output = counts.filter { $0.value == 1 }.map(\.key).sorted { $0.asciiValue! < $1.asciiValue! }
    }
    let letters = Array(sizes.keys)
    let outShape = output.map { sizes[$0]! }
    var value = [Double](repeating: 0, count: outShape.reduce(1, *))
    var magnitude = value
    let total = letters.reduce(1) { $0 * sizes[$1]! }
    var assignment = [Character: Int]()
    for linear in 0..<total {
        var rest = linear
        for letter in letters {
            assignment[letter] = rest % sizes[letter]!
            rest /= sizes[letter]!
        }
        var product = 1.0
        for (term, operand) in zip(terms, operands) { product *= operand[indices: term.map { assignment[$0]! }] }
        var position = 0
        for letter in output { position = position * sizes[letter]! + assignment[letter]! }
        value[position] += product
        magnitude[position] += Swift.abs(product)
    }
    return (Tensor(shape: outShape, scalars: value), Tensor(shape: outShape, scalars: magnitude))
}

/// |got − reference| ≤ 1e-12 · Σ|terms| elementwise (a relative bound on each sum), and equal shapes.
private func matchesReference(_ got: Tensor<Double>, _ reference: (value: Tensor<Double>, magnitude: Tensor<Double>)) -> Bool {
    guard got.shape == reference.value.shape else { return false }
    let g = got.scalars, r = reference.value.scalars, m = reference.magnitude.scalars
    return g.indices.allSatisfy { Swift.abs(g[$0] - r[$0]) <= 1e-12 * m[$0] }
}

/// Random operands for `spec` with the given index sizes.
private func randomOperands(_ spec: String, sizes: [Character: Int], generator: inout SeededGenerator) -> [Tensor<Double>] {
    let left = spec.components(separatedBy: "->")[0]
    return left.split(separator: ",", omittingEmptySubsequences: false).map { term in
        Tensor<Double>.randomNormal(term.map { sizes[$0]! }, generator: &generator)
    }
}

/// A random specification: 1–5 operands of rank 0–3 over up to 5 letters (repeats give diagonals), sizes 0–4
/// (0 rarely), explicit output (a random subset in random order) or implicit output.
private func randomSpec(generator g: inout SeededGenerator) -> (spec: String, sizes: [Character: Int]) {
    let pool = Array("abcdeXY")
    let letterCount = 1 + g.nextInt(below: 5)
    let letters = g.permutation(pool.count).prefix(letterCount).map { pool[$0] }
    var sizes: [Character: Int] = [:]
    for letter in letters { sizes[letter] = g.nextInt(below: 12) == 0 ? 0 : 1 + g.nextInt(below: 4) }
    let operandCount = 1 + g.nextInt(below: 5)
    var terms: [[Character]] = []
    for _ in 0..<operandCount {
        let rank = g.nextInt(below: 4)
        terms.append((0..<rank).map { _ in letters[g.nextInt(below: letters.count)] })
    }
    let used = Array(Set(terms.joined())).sorted()
    let left = terms.map { String($0) }.joined(separator: ",")
    if g.nextInt(below: 4) == 0 { return (left, sizes) }
    let chosen = used.filter { _ in g.nextInt(below: 2) == 0 }
    let output = g.permutation(chosen.count).map { chosen[$0] }
    return (left + "->" + String(output), sizes)
}

/// Every sequence of unordered pairs (opt_einsum positions) that contracts `count` operands to one.
private func allPairSequences(_ count: Int) -> [[(Int, Int)]] {
    guard count > 1 else { return [[]] }
    var result: [[(Int, Int)]] = []
    for i in 0..<count {
        for j in (i + 1)..<count {
            for rest in allPairSequences(count - 1) { result.append([(i, j)] + rest) }
        }
    }
    return result
}

@Suite("EinsumTests")
struct EinsumTests {
    /// Hand-picked specifications covering every feature; sizes include 1 and 0.
    static let coverage: [(spec: String, sizes: [Character: Int])] = [
        ("bi,ij->bj", ["b": 3, "i": 4, "j": 5]),                         // matmul
        ("ij->ji", ["i": 3, "j": 4]),                                     // transpose
        ("ij->i", ["i": 3, "j": 4]),                                      // private sum
        ("ii->i", ["i": 4]),                                              // diagonal
        ("ii->", ["i": 4]),                                               // trace
        ("ii", ["i": 3]),                                                 // implicit trace
        ("ij,jk", ["i": 2, "j": 3, "k": 4]),                              // implicit matmul -> ik
        ("ba,ca", ["a": 3, "b": 2, "c": 4]),                              // implicit, alphabetical -> bc
        ("Ab,bC", ["A": 2, "b": 3, "C": 2]),                              // upper-case letters
        ("i,j->ij", ["i": 3, "j": 4]),                                    // outer product
        ("a,b,c->cab", ["a": 2, "b": 3, "c": 2]),                         // triple outer product
        ("i,i->", ["i": 5]),                                              // dot
        ("bij,bjk->bik", ["b": 3, "i": 2, "j": 4, "k": 3]),               // batched matmul
        ("bij,bjk->kbi", ["b": 2, "i": 3, "j": 2, "k": 4]),               // batched, permuted output
        ("bhqd,bhkd->bhqk", ["b": 2, "h": 2, "q": 3, "k": 4, "d": 3]),    // attention scores
        ("ij,ij->ij", ["i": 3, "j": 4]),                                  // Hadamard
        ("ij,ij->", ["i": 3, "j": 4]),                                    // Frobenius inner product
        ("ij,jk->i", ["i": 2, "j": 3, "k": 4]),                           // k summed out of one operand first
        ("iij,jk->ik", ["i": 3, "j": 2, "k": 3]),                         // diagonal inside a contraction
        ("jii->ij", ["i": 3, "j": 2]),                                    // diagonal with reordering
        ("ijk,jl,km->ilm", ["i": 2, "j": 3, "k": 2, "l": 3, "m": 2]),     // three operands
        ("nijk,iap,pjbq,qkc->nabc", ["n": 2, "i": 2, "j": 3, "k": 2, "a": 2, "b": 2, "c": 3, "p": 2, "q": 3]),
        ("ab,bc,cd,de,ef->af", ["a": 2, "b": 3, "c": 4, "d": 2, "e": 3, "f": 2]), // five-operand chain
        ("i,->i", ["i": 3]),                                              // scalar operand
        ("->", [:]),                                                      // scalar only
        ("ij,jk->ik", ["i": 1, "j": 4, "k": 1]),                          // size-1 dimensions
        ("ij,jk->ik", ["i": 3, "j": 0, "k": 2]),                          // empty contraction: zeros
        ("ij,jk->ik", ["i": 0, "j": 3, "k": 2]),                          // empty result
        ("bij,bjk->bik", ["b": 0, "i": 2, "j": 2, "k": 2]),               // empty batch
        ("ij->", ["i": 0, "j": 3]),                                       // empty sum
    ]

    @Test func coverageSpecsMatchNaiveSummation() {
        var generator = SeededGenerator(seed: 11)
        for (spec, sizes) in Self.coverage {
            let operands = randomOperands(spec, sizes: sizes, generator: &generator)
            let got = einsum(spec, operands)
            #expect(matchesReference(got, naiveEinsum(spec, operands)), "einsum \(spec) differs from the naive sum")
        }
    }

    @Test func randomSpecsMatchNaiveSummation() {
        var generator = SeededGenerator(seed: 2024)
        for _ in 0..<60 {
            let (spec, sizes) = randomSpec(generator: &generator)
            let operands = randomOperands(spec, sizes: sizes, generator: &generator)
            let got = einsum(spec, operands)
            #expect(matchesReference(got, naiveEinsum(spec, operands)), "einsum \(spec) with sizes \(sizes) differs")
        }
    }

    @Test func implicitOutputFollowsNumPy() {
        #expect(EinsumExpression("ij,jk", shapes: [[2, 3], [3, 4]]).output == ["i", "k"])
        #expect(EinsumExpression("ba,ca", shapes: [[2, 3], [4, 3]]).output == ["b", "c"])
        #expect(EinsumExpression("aB,Ba", shapes: [[2, 3], [3, 2]]).output == [])
        #expect(EinsumExpression("zA", shapes: [[2, 3]]).output == ["A", "z"])   // ASCII: upper case first
        #expect(EinsumExpression("ii", shapes: [[3, 3]]).output == [])
        #expect(EinsumExpression(" i j , j k -> k i ", shapes: [[2, 3], [3, 4]]).spec == "ij,jk->ki")
    }

    @Test func exhaustiveAndGreedyPathsGiveTheSameValues() {
        var generator = SeededGenerator(seed: 77)
        var compared = 0
        while compared < 15 {
            let (spec, sizes) = randomSpec(generator: &generator)
            let operands = randomOperands(spec, sizes: sizes, generator: &generator)
            guard operands.count >= 3 else { continue }
            let expression = EinsumExpression(spec, shapes: operands.map(\.shape))
            let reference = naiveEinsum(spec, operands)
            let exhaustive = expression.evaluate(operands, path: expression.optimalPath(strategy: .exhaustive))
            let greedy = expression.evaluate(operands, path: expression.optimalPath(strategy: .greedy))
            #expect(matchesReference(exhaustive, reference), "exhaustive path of \(spec)")
            #expect(matchesReference(greedy, reference), "greedy path of \(spec)")
            compared += 1
        }
    }

    @Test func matrixChainCostIsHandCounted() {
        // A 10×30, B 30×5, C 5×60.
        // (AB)C: AB costs 10·30·5 = 1500 and makes 10×5 = 50 elements; (AB)C costs 10·5·60 = 3000 → 4500 MACs,
        //        largest tensor created = the 10×60 output = 600.
        // A(BC): BC costs 30·5·60 = 9000 and makes 30×60 = 1800; A(BC) costs 10·30·60 = 18000 → 27000 MACs,
        //        largest tensor created = 1800.
        let expression = EinsumExpression("ij,jk,kl->il", shapes: [[10, 30], [30, 5], [5, 60]])
        let optimal = expression.optimalPath(strategy: .exhaustive)
        #expect(optimal.multiplyAdds == 4500)
        #expect(optimal.largestIntermediate == 600)
        #expect(optimal.steps.map(\.multiplyAdds) == [1500, 3000])
        #expect(optimal.steps.map(\.resultSize) == [50, 600])
        #expect(optimal.steps[0].resultIndices == ["i", "k"])
        let leftFirst = expression.path(pairs: [(0, 1), (0, 1)])
        #expect(leftFirst.cost == ContractionCost(multiplyAdds: 4500, largestIntermediate: 600))
        let rightFirst = expression.path(pairs: [(1, 2), (0, 1)])
        #expect(rightFirst.cost == ContractionCost(multiplyAdds: 27000, largestIntermediate: 1800))
        #expect(expression.cost(of: rightFirst) == rightFirst.cost)
        #expect(expression.multiplyAdds() == 4500)
        #expect(expression.multiplyAdds(path: rightFirst) == 27000)
        #expect(expression.optimalPath(strategy: .greedy).multiplyAdds == 4500)
        #expect(optimal.description.contains("4,500"))
        // Both orders compute the same product.
        var generator = SeededGenerator(seed: 5)
        let operands = expression.shapes.map { Tensor<Double>.randomNormal($0, generator: &generator) }
        let reference = naiveEinsum("ij,jk,kl->il", operands)
        #expect(matchesReference(expression.evaluate(operands, path: leftFirst), reference))
        #expect(matchesReference(expression.evaluate(operands, path: rightFirst), reference))
    }

    @Test func tensorTrainLayerCostMatchesMethodsFormula() {
        // TT-matrix layer (METHODS §1.6) with d = 3: x[n,i1,i2,i3], G1[i1,o1,r1], G2[r1,i2,o2,r2], G3[r2,i3,o3];
        // letters n; i j k = i1 i2 i3; a b c = o1 o2 o3; p q = r1 r2.
        // B = 2, I = (3, 4, 2), O = (2, 3, 4), R = (R0, R1, R2, R3) = (1, 3, 2, 1).
        // "Absorb cores 1..d": B·Σ_k R_{k−1}R_k(∏_{j≤k}O_j)(∏_{j≥k}I_j)
        //   k=1: 1·3·2·(3·4·2)    = 144
        //   k=2: 3·2·(2·3)·(4·2)  = 288
        //   k=3: 2·1·(2·3·4)·2    = 96      → B·528 = 1056 MACs.
        // Intermediates: x·G1 → [n,j,k,a,p] = 2·4·2·2·3 = 96; ·G2 → [n,k,a,b,q] = 48; ·G3 → [n,a,b,c] = 48.
        // Reverse order "absorb cores d..1": B·Σ_k R_{k−1}R_k(∏_{j≥k}O_j)(∏_{j≤k}I_j)
        //   k=3: 2·1·4·(3·4·2) = 192;  k=2: 3·2·(3·4)·(3·4) = 864;  k=1: 1·3·(2·3·4)·3 = 216  → B·1272 = 2544.
        let batch = 2, inputs = [3, 4, 2], outputs = [2, 3, 4], ranks = [1, 3, 2, 1]
        let spec = "nijk,iap,pjbq,qkc->nabc"
        let shapes = [[batch] + inputs, [inputs[0], outputs[0], ranks[1]],
                      [ranks[1], inputs[1], outputs[1], ranks[2]], [ranks[2], inputs[2], outputs[2]]]
        let expression = EinsumExpression(spec, shapes: shapes)
        // The formula, evaluated from the sizes (an independent check of the hand count above).
        var forward = 0, reverse = 0
        for k in 0..<3 {
            let r = ranks[k] * ranks[k + 1]
            forward += r * outputs[...k].reduce(1, *) * inputs[k...].reduce(1, *)
            reverse += r * outputs[k...].reduce(1, *) * inputs[...k].reduce(1, *)
        }
        #expect(batch * forward == 1056)
        #expect(batch * reverse == 2544)

        let absorbForward = expression.path(sequence: [0, 1, 2, 3])
        // Positions after each step (the running result is appended and stays the left operand):
        // [x,G1,G2,G3] -(0,1)-> [G2,G3,xG1] -(2,0)-> [G3,xG1G2] -(1,0)-> [y].
        #expect(absorbForward.pairs.map { [$0.0, $0.1] } == [[0, 1], [2, 0], [1, 0]])
        #expect(expression.path(pairs: [(0, 1), (2, 0), (1, 0)]) == absorbForward)
        #expect(expression.cost(of: absorbForward) == ContractionCost(multiplyAdds: 1056, largestIntermediate: 96))
        #expect(absorbForward.steps.map(\.multiplyAdds) == [2 * 144, 2 * 288, 2 * 96])
        #expect(expression.cost(of: expression.path(sequence: [0, 3, 2, 1])).multiplyAdds == 2544)
        let optimal = expression.optimalPath()
        #expect(optimal.multiplyAdds <= 1056)
        #expect(optimal.multiplyAdds <= expression.optimalPath(strategy: .greedy).multiplyAdds)

        var generator = SeededGenerator(seed: 3)
        let operands = shapes.map { Tensor<Double>.randomNormal($0, generator: &generator) }
        let reference = naiveEinsum(spec, operands)
        #expect(matchesReference(expression.evaluate(operands, path: optimal), reference))
        #expect(matchesReference(expression.evaluate(operands, path: absorbForward), reference))
        // The same contraction in Float agrees with Double to single precision.
        let single = einsum(spec, operands.map { $0.converted(to: Float.self) }).converted(to: Double.self)
        #expect(single.relativeError(to: reference.value) < 1e-5)
    }

    @Test func pathCostIsReusableAtAnotherBatchSize() {
        // A path found at batch 1 keeps its pairs; its cost at batch 8 is 8× for this batch-linear chain:
        // x[b,i]·U[i,r]·V[r,o] with i = 6, r = 2, o = 5 costs b·i·r + b·r·o = b·(12 + 10).
        let small = EinsumExpression("bi,ir,ro->bo", shapes: [[1, 6], [6, 2], [2, 5]])
        let large = EinsumExpression("bi,ir,ro->bo", shapes: [[8, 6], [6, 2], [2, 5]])
        let path = small.optimalPath()
        #expect(path.multiplyAdds == 22)
        #expect(large.cost(of: path).multiplyAdds == 8 * 22)
        #expect(large.multiplyAdds(path: path) == 8 * 22)
    }

    @Test func singleOperandReductionsAreCountedAsAdditions() {
        // Summing S elements into T costs S − T additions; a diagonal is a gather and costs nothing.
        #expect(EinsumExpression("ij->i", shapes: [[3, 4]]).optimalPath().multiplyAdds == 12 - 3)
        #expect(EinsumExpression("ij->", shapes: [[3, 4]]).optimalPath().multiplyAdds == 12 - 1)
        #expect(EinsumExpression("ii->", shapes: [[4, 4]]).optimalPath().multiplyAdds == 4 - 1)
        #expect(EinsumExpression("ii->i", shapes: [[4, 4]]).optimalPath().multiplyAdds == 0)
        #expect(EinsumExpression("ij->ji", shapes: [[3, 4]]).optimalPath().multiplyAdds == 0)
        #expect(EinsumExpression("ij->i", shapes: [[3, 0]]).optimalPath().multiplyAdds == 0)
        // "ij,jk->i" with i=2, j=3, k=4: k is summed out of B first (12 − 3 = 9 additions, a 3-vector),
        // then "ij,j->i" costs 2·3 = 6 MACs; the largest created tensor is that 3-vector.
        let path = EinsumExpression("ij,jk->i", shapes: [[2, 3], [3, 4]]).optimalPath()
        #expect(path.reductions.count == 1)
        #expect(path.reductions[0].positions == [1])
        #expect(path.reductions[0].resultIndices == ["j"])
        #expect(path.reductions[0].multiplyAdds == 9)
        #expect(path.steps.map(\.multiplyAdds) == [6])
        #expect(path.cost == ContractionCost(multiplyAdds: 15, largestIntermediate: 3))
    }

    @Test func dynamicProgrammingIsOptimalAndNeverWorseThanGreedy() {
        var generator = SeededGenerator(seed: 99)
        let pool = Array("abcdefgh")
        for trial in 0..<24 {
            let operandCount = 3 + trial % 3                       // 3, 4, 5 operands
            var sizes: [Character: Int] = [:]
            for letter in pool { sizes[letter] = 1 + generator.nextInt(below: 6) }
            var terms: [[Character]] = []
            for _ in 0..<operandCount {
                let rank = 1 + generator.nextInt(below: 3)
                terms.append(generator.permutation(pool.count).prefix(rank).map { pool[$0] })
            }
            let used = Array(Set(terms.joined())).sorted()
            let output = used.filter { _ in generator.nextInt(below: 3) == 0 }
            let spec = terms.map { String($0) }.joined(separator: ",") + "->" + String(output)
            let expression = EinsumExpression(spec, shapes: terms.map { $0.map { sizes[$0]! } })
            let exhaustive = expression.optimalPath(strategy: .exhaustive)
            let greedy = expression.optimalPath(strategy: .greedy)
            let all = allPairSequences(operandCount).map { expression.path(pairs: $0) }
            let best = all.map(\.multiplyAdds).min()!
            let bestPeak = all.filter { $0.multiplyAdds == best }.map(\.largestIntermediate).min()!
            #expect(exhaustive.multiplyAdds == best, "\(spec): DP \(exhaustive.multiplyAdds), brute force \(best)")
            #expect(exhaustive.largestIntermediate == bestPeak, "\(spec): tie-break on the largest intermediate")
            #expect(exhaustive.multiplyAdds <= greedy.multiplyAdds, "\(spec): DP worse than greedy")
            #expect(expression.optimalPath(strategy: .auto) == exhaustive)
            // The same search by estimated time finds the brute-force minimum of the estimate.
            let fastest = expression.optimalPath(strategy: .fastest)
            let quickest = all.map(\.estimatedCost).min()!
            #expect(abs(fastest.estimatedCost - quickest) <= 1e-9 * quickest,
                    "\(spec): DP by time \(fastest.estimatedCost), brute force \(quickest)")
        }
    }

    /// A Tucker-like chain at batch 256 (four 4×4 mode factors on each side of a 256×256 core): the fewest
    /// multiply-adds come from mode-by-mode products with 4-wide GEMMs; by the time model, factor merges that
    /// give wider GEMMs win, and the chosen path evaluates to the same tensor.
    @Test func fastestPathPrefersWideProductsAndEvaluatesTheSame() {
        let spec = "abcde,bj,ck,dl,em,jklmnopq,fn,go,hp,iq->afghi"
        let shapes = [[256, 4, 4, 4, 4]] + Array(repeating: [4, 4], count: 4) + [[4, 4, 4, 4, 4, 4, 4, 4]]
            + Array(repeating: [4, 4], count: 4)
        let expression = EinsumExpression(spec, shapes: shapes)
        let fewest = expression.optimalPath(strategy: .exhaustive)
        let fastest = expression.optimalPath(strategy: .fastest)
        #expect(fastest.estimatedCost < fewest.estimatedCost)
        #expect(fastest.multiplyAdds >= fewest.multiplyAdds)
        #expect(ContractionTimeModel.cost(batch: 1, m: 65_536, k: 4, n: 4, elements: 2 * 262_144)
                > ContractionTimeModel.cost(batch: 1, m: 256, k: 256, n: 256, elements: 3 * 65_536))
        var generator = SeededGenerator(seed: 4)
        let operands = shapes.map { Tensor<Double>.randomNormal($0, generator: &generator) }
        let reference = expression.evaluate(operands, path: fewest)
        #expect(expression.evaluate(operands, path: fastest).relativeError(to: reference) < 1e-12)
    }

    /// "acfd,fce->ade" contracts c and f out of the middle of acfd, the left operand, so it must be permuted. Its
    /// GEMM layouts are the plain [a d | c f], which moves single elements, and the transposed [c f | a d] (c and f
    /// in either order), which keeps d (32-element runs) in place: the transposed one is chosen and passed to BLAS as
    /// a transpose. The value matches the naive sum.
    @Test func operandPermuteKeepsTheLongerContiguousRun() {
        let spec = "acfd,fce->ade"
        let shapes = [[16, 32, 4, 32], [4, 32, 8]]
        let expression = EinsumExpression(spec, shapes: shapes)
        let plan = expression.planPair(Array("acfd"), Array("fce"), keep: Set("ade"))
        #expect(!plan.operandsSwapped)
        guard case let .permute(permutation, transposed) = plan.left else {
            Issue.record("acfd needs a permute, got \(plan.left)")
            return
        }
        let target: [Character] = permutation.map { Array("acfd")[$0] }
        #expect(transposed && Set(target.prefix(2)) == Set("cf") && Array(target.suffix(2)) == Array("ad"),
                "\(target), transposed \(transposed)")
        var generator = SeededGenerator(seed: 12)
        let operands = shapes.map { Tensor<Double>.randomNormal($0, generator: &generator) }
        #expect(matchesReference(expression.evaluate(operands), naiveEinsum(spec, operands)))
    }

    /// The fastest-path search charges a last step that cannot write the output in order (`finalPermuteEstimate`):
    /// for the Tucker layer of `lowrank bench layers` (1024 = 4·8·8·4 features, ranks 4, batch 256) and for KPD
    /// (32·32, rank 4) the chosen path's last GEMM writes the output order, and the value is unchanged.
    @Test func fastestPathWritesTheOutputInOrder() {
        let cases: [(String, [[Int]])] = [
            ("abcde,bj,ck,dl,em,jklmnopq,fn,go,hp,iq->afghi",
             [[256, 4, 8, 8, 4], [4, 4], [8, 4], [8, 4], [4, 4], Array(repeating: 4, count: 8), [4, 4], [8, 4], [8, 4], [4, 4]]),
            ("abc,fbd,fce->ade", [[256, 32, 32], [4, 32, 32], [4, 32, 32]]),
        ]
        for (spec, shapes) in cases {
            let expression = EinsumExpression(spec, shapes: shapes)
            let fastest = expression.optimalPath(strategy: .fastest)
            #expect(fastest.steps.last?.resultIndices == expression.output, "\(spec): \(fastest)")
            var generator = SeededGenerator(seed: 5)
            let operands = shapes.map { Tensor<Double>.randomNormal($0, generator: &generator) }
            let reference = expression.evaluate(operands, path: expression.optimalPath(strategy: .exhaustive))
            #expect(expression.evaluate(operands, path: fastest).relativeError(to: reference) < 1e-12)
        }
        // The Tucker path the search took before this term: its last step (aopfi, gohp) interleaves the operands'
        // indices in afghi, a permute of the whole output.
        let tucker = EinsumExpression(cases[0].0, shapes: cases[0].1)
        #expect(tucker.finalPermuteEstimate(Set("aopfi"), Set("gohp")) > 0)
        #expect(tucker.finalPermuteEstimate(Set("apqfg"), Set("hpiq")) == 0)
    }

    @Test func greedySearchRunsBeyondEightOperands() {
        // A chain of 10 matrices: .auto switches to greedy; the value matches repeated matmul.
        let letters = Array("abcdefghijk")
        var generator = SeededGenerator(seed: 8)
        let dims = (0..<11).map { _ in 1 + generator.nextInt(below: 5) }
        let operands = (0..<10).map { Tensor<Double>.randomNormal([dims[$0], dims[$0 + 1]], generator: &generator) }
        let spec = (0..<10).map { String([letters[$0], letters[$0 + 1]]) }.joined(separator: ",") + "->ak"
        let expression = EinsumExpression(spec, shapes: operands.map(\.shape))
        let auto = expression.optimalPath()
        #expect(auto == expression.optimalPath(strategy: .greedy))
        #expect(auto.steps.count == 9)
        var product = operands[0]
        for m in operands.dropFirst() { product = matmul(product, m) }
        let got = expression.evaluate(operands, path: auto)
        #expect(got.shape == [dims[0], dims[10]])
        #expect(got.relativeError(to: product) < 1e-12)
        #expect(expression.optimalPath(strategy: .exhaustive).multiplyAdds <= auto.multiplyAdds)
    }

    @Test func mismatchedSizesStopWithAPrecondition() async {
        await #expect(processExitsWith: .failure) {
            _ = einsum("ij,jk->ik", Tensor<Double>.zeros([2, 3]), Tensor<Double>.zeros([4, 5]))
        }
        await #expect(processExitsWith: .failure) {
            _ = einsum("ij,jk->ik", Tensor<Double>.zeros([2, 3]))
        }
        await #expect(processExitsWith: .failure) {
            _ = einsum("ij->ix", Tensor<Double>.zeros([2, 3]))
        }
    }
}
