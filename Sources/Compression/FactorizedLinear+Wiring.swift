import Decompositions
import TensorCore

// The tensor network of every FC format (METHODS §1): which letters each core carries. Everything else (forward,
// backward, weight, costs) follows from these letters in `FactorizedLayer`.

/// One node of a binary dimension tree in post-order (children before parents, root last).
struct TreeNode {
    var leafMode: Int?
    var left = -1
    var right = -1
}

/// The nodes of `tree` in post-order.
func postOrder(_ tree: DimensionTree) -> [TreeNode] {
    var nodes: [TreeNode] = []
    @discardableResult
    func visit(_ t: DimensionTree) -> Int {
        switch t {
        case let .leaf(mode):
            nodes.append(TreeNode(leafMode: mode))
        case let .node(l, r):
            let li = visit(l), ri = visit(r)
            nodes.append(TreeNode(leafMode: nil, left: li, right: ri))
        }
        return nodes.count - 1
    }
    visit(tree)
    return nodes
}

extension FactorizedLinear {
    /// Checks the mode lists and, for `svd` (which uses I and O whole), merges them into [I] and [O].
    static func normalizedModes(_ format: FactorizedFormat, _ inputModes: [Int], _ outputModes: [Int],
                                layer: String) throws -> ([Int], [Int]) {
        guard !inputModes.isEmpty, inputModes.count == outputModes.count else {
            let d = Swift.max(inputModes.count, outputModes.count, 1)
            throw CompressionError.invalidModes(layer: layer, problem:
                "input modes \(inputModes) and output modes \(outputModes) need the same number of factors; for example \(balancedFactorization(of: inputModes.reduce(1, *), into: d)) and \(balancedFactorization(of: outputModes.reduce(1, *), into: d)) (pad with 1s)")
        }
        guard (inputModes + outputModes).allSatisfy({ $0 >= 1 }) else {
            throw CompressionError.invalidModes(layer: layer, problem: "every mode must be ≥ 1, got \(inputModes) and \(outputModes)")
        }
        if format == .svd { return ([inputModes.reduce(1, *)], [outputModes.reduce(1, *)]) }
        return (inputModes, outputModes)
    }

    /// The number of ranks `format` takes for d modes.
    static func rankCount(_ format: FactorizedFormat, d: Int) -> Int {
        switch format {
        case .svd, .cp, .kronecker: return 1
        case .tucker: return 2 * d
        case .tensorTrain, .semiTensorTrain: return d - 1
        case .tensorRing, .blockTerm, .semiTensorRing: return d
        case .hierarchicalTucker: return 2 * d - 2
        }
    }

    /// The wiring of `format` on the given modes and ranks, with its reference schedule.
    ///
    /// - Throws: `CompressionError` for a rank list of the wrong length, a rank below 1 or above the full rank of an
    ///   SVD, KPD or Tucker weight, cores far larger than the weight (`oversizedFactorsProblem`), or a format that
    ///   needs another number of modes.
    static func network(format: FactorizedFormat, inputModes: [Int], outputModes: [Int], ranks given: [Int], blocks: Int,
                        stpFactor: Int = 1, layer: String) throws -> (TensorNetwork, [Int]) {
        let d = inputModes.count
        switch format {
        case .kronecker where d != 2:
            throw CompressionError.unsupportedFormat(layer: layer, problem:
                "KPD (a sum of Kronecker products A_r ⊗ B_r) needs exactly 2 modes, got \(inputModes) → \(outputModes); use \(balancedFactorization(of: inputModes.reduce(1, *), into: 2)) → \(balancedFactorization(of: outputModes.reduce(1, *), into: 2))")
        case .tensorRing where d < 2, .hierarchicalTucker where d < 2, .cp where d < 2, .semiTensorTrain where d < 2,
             .semiTensorRing where d < 2:
            throw CompressionError.unsupportedFormat(layer: layer, problem:
                "\(format) needs at least 2 modes, got \(inputModes) → \(outputModes); use \(balancedFactorization(of: inputModes.reduce(1, *), into: 2)) → \(balancedFactorization(of: outputModes.reduce(1, *), into: 2))")
        default: break
        }
        let expected = rankCount(format, d: d)
        var ranks = given
        if ranks.count == 1 && expected != 1 { ranks = [Int](repeating: given[0], count: expected) }
        if expected == 0 && ranks.count <= 1 { ranks = [] }
        guard ranks.count == expected else {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "\(format) with \(d) modes takes \(expected) rank(s) (or one for all), got \(given)")
        }
        guard ranks.allSatisfy({ $0 >= 1 }), blocks >= 1 else {
            throw CompressionError.invalidRanks(layer: layer, problem: "ranks and blocks must be ≥ 1, got ranks \(given) and \(blocks) block(s)")
        }
        // The matrix-like formats have a full rank; a factor with more columns than that adds parameters and no
        // expressiveness (as in `FactorizedConv2D`).
        let full = [.svd, .kronecker, .tucker].contains(format)
            ? LayerCompressor.rankCaps(format, inputModes: inputModes, outputModes: outputModes) : ranks
        if zip(ranks, full).contains(where: { $0 > $1 }) {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "ranks \(ranks) exceed the full ranks \(full) of the \(format) weight on \(inputModes) → \(outputModes); use at most \(zip(ranks, full).map { Swift.min($0, $1) }) (full ranks reproduce the weight exactly)")
        }
        var pool = LetterPool()
        let batch = try pool.next(layer)
        let i = try pool.next(d, layer), o = try pool.next(d, layer)
        var outputLetters = o, outputSizes = outputModes
        var letters: [[Character]] = [], shapes: [[Int]] = []
        var schedule: [Int] = []
        switch format {
        case .svd:
            let r = try pool.next(layer)
            letters = [[i[0], r], [o[0], r]]
            shapes = [[inputModes[0], ranks[0]], [outputModes[0], ranks[0]]]
        case .cp:
            let r = try pool.next(layer)
            for k in 0..<d {
                letters.append([i[k], o[k], r])
                shapes.append([inputModes[k], outputModes[k], ranks[0]])
            }
        case .kronecker:
            let r = try pool.next(layer)
            for k in 0..<2 {
                letters.append([r, i[k], o[k]])
                shapes.append([ranks[0], inputModes[k], outputModes[k]])
            }
        case .tucker:
            let r = try pool.next(d, layer), s = try pool.next(d, layer)
            for k in 0..<d {
                letters.append([i[k], r[k]])
                shapes.append([inputModes[k], ranks[k]])
            }
            letters.append(r + s)
            shapes.append(ranks)
            for k in 0..<d {
                letters.append([o[k], s[k]])
                shapes.append([outputModes[k], ranks[d + k]])
            }
        case .tensorTrain:
            let a = try pool.next(d + 1, layer)
            let full = [1] + ranks + [1]
            for k in 0..<d {
                letters.append([a[k], i[k], o[k], a[k + 1]])
                shapes.append([full[k], inputModes[k], outputModes[k], full[k + 1]])
            }
        case .tensorRing:
            let a = try pool.next(d, layer)
            for k in 0..<d {
                letters.append([a[k], i[k], o[k], a[(k + 1) % d]])
                shapes.append([ranks[k], inputModes[k], outputModes[k], ranks[(k + 1) % d]])
            }
        case .hierarchicalTucker:
            let nodes = postOrder(.balanced(order: d))
            let rankLetters = try pool.next(nodes.count, layer)
            var nodeRank = [Int](repeating: 1, count: nodes.count)
            for n in 0..<(nodes.count - 1) { nodeRank[n] = ranks[n] }
            var leafCore = [Int](repeating: -1, count: d)
            var transfer: [[Character]] = [], transferShapes: [[Int]] = [], transferNode: [Int] = []
            for (n, node) in nodes.enumerated() {
                if let k = node.leafMode {
                    leafCore[k] = n
                } else {
                    transfer.append([rankLetters[node.left], rankLetters[node.right], rankLetters[n]])
                    transferShapes.append([nodeRank[node.left], nodeRank[node.right], nodeRank[n]])
                    transferNode.append(n)
                }
            }
            for k in 0..<d {
                letters.append([i[k], o[k], rankLetters[leafCore[k]]])
                shapes.append([inputModes[k], outputModes[k], nodeRank[leafCore[k]]])
            }
            letters += transfer
            shapes += transferShapes
            // Post-order over all nodes: leaf k is core k, interior node number j (in post-order) is core d + j.
            var interior = 0
            for node in nodes {
                if let k = node.leafMode { schedule.append(1 + k) } else { schedule.append(1 + d + interior); interior += 1 }
            }
            schedule.insert(0, at: 0)
        case .blockTerm:
            let n = try pool.next(layer), r = try pool.next(d, layer)
            for k in 0..<d {
                letters.append([n, i[k], o[k], r[k]])
                shapes.append([blocks, inputModes[k], outputModes[k], ranks[k]])
            }
            letters.append([n] + r)
            shapes.append([blocks] + ranks)
        case .semiTensorTrain, .semiTensorRing:
            let ring = format == .semiTensorRing
            let t = stpFactor
            // Bond k sits left of core k (bond d = bond 0 for the ring); R_0 = R_d = 1 for the train.
            let full = ring ? ranks + [ranks[0]] : [1] + ranks + [1]
            let linked = linkedBonds(format, stpFactor: t, modeCount: d)
            try checkSemiTensorProduct(format, t: t, ranks: full, outputModes: outputModes, linked: linked, layer: layer)
            let tk = linked.map { $0 ? t : 1 }
            let bond = try pool.next(d + 1, layer), pass = try pool.next(d + 1, layer)
            // The ring closes on bond 0: core d−1's right bond letters are bond 0's.
            let right = { (k: Int) in ring && k == d - 1 ? 0 : k + 1 }
            outputLetters = []
            outputSizes = []
            for k in 0..<d {
                let r = right(k)
                letters.append([bond[k], i[k], o[k], bond[r], pass[r]])
                shapes.append([full[k] / tk[k], inputModes[k], outputModes[k] / tk[k], full[k + 1] / tk[k + 1], tk[k + 1]])
                outputLetters.append(o[k])
                outputSizes.append(outputModes[k] / tk[k])
                if linked[k] {
                    // The STP's pass-through index: carried by the previous core, it completes output mode k.
                    outputLetters.append(pass[k])
                    outputSizes.append(t)
                }
            }
        }
        if schedule.isEmpty { schedule = Array(0...letters.count) }
        if let problem = oversizedFactorsProblem(shapes: shapes, entries: inputModes.reduce(1, *) * outputModes.reduce(1, *)) {
            throw CompressionError.invalidRanks(layer: layer, problem: "\(format) ranks \(given) on \(inputModes) → \(outputModes): \(problem)")
        }
        let network = TensorNetwork(inputModes: inputModes, outputModes: outputSizes, batchLetter: batch,
                                    inputLetters: i, outputLetters: outputLetters, coreLetters: letters, coreShapes: shapes)
        return (network, schedule)
    }

    /// Which bonds 0…d the semi-tensor product links (bond k sits left of core k): every bond of STR, the inner
    /// bonds 1…d−1 of STT, none when t = 1.
    static func linkedBonds(_ format: FactorizedFormat, stpFactor t: Int, modeCount d: Int) -> [Bool] {
        (0...d).map { k in t > 1 && (format == .semiTensorRing || (k >= 1 && k < d)) }
    }

    /// Throws unless t ≥ 1 divides every linked rank and the output mode of every linked bond (bond k links core
    /// k−1 to core k and completes output mode k), proposing a valid t or rank.
    static func checkSemiTensorProduct(_ format: FactorizedFormat, t: Int, ranks full: [Int], outputModes: [Int],
                                       linked: [Bool], layer: String) throws {
        guard t >= 1 else {
            throw CompressionError.invalidRanks(layer: layer, problem: "the STP factor t must be ≥ 1, got \(t)")
        }
        let d = outputModes.count
        let linkedModes = (0..<d).filter { linked[$0] }.map { outputModes[$0] }
        for k in 0..<d where linked[k] && outputModes[k] % t != 0 {
            let common = linkedModes.reduce(0) { greatestCommonDivisor($0, $1) }
            let choices = (1...Swift.max(common, 1)).filter { common % $0 == 0 }
            throw CompressionError.invalidModes(layer: layer, problem:
                "\(format) puts the STP factor t = \(t) on output mode \(k) of \(outputModes), but \(outputModes[k]) is not a multiple of \(t); choose t among \(choices) or output modes that are multiples of \(t)")
        }
        for k in 0..<d where linked[k] && full[k] % t != 0 {
            let lower = full[k] / t * t
            throw CompressionError.invalidRanks(layer: layer, problem:
                "\(format) rank R_\(k) = \(full[k]) must be a multiple of the STP factor t = \(t); use \(lower >= t ? "\(lower) or \(lower + t)" : "\(t)")")
        }
    }

    /// The ranks (and block count) that given core values imply for `format` with d modes.
    ///
    /// - Throws: `CompressionError.invalidRanks` when the number of cores or their orders do not fit the format.
    static func ranks(of format: FactorizedFormat, cores: [Tensor<Scalar>], modeCount d: Int,
                      layer: String) throws -> (ranks: [Int], blocks: Int, stpFactor: Int) {
        let orders: [Int]
        switch format {
        case .svd: orders = [2, 2]
        case .cp: orders = [Int](repeating: 3, count: d)
        case .kronecker: orders = [3, 3]
        case .tucker: orders = [Int](repeating: 2, count: d) + [2 * d] + [Int](repeating: 2, count: d)
        case .tensorTrain, .tensorRing: orders = [Int](repeating: 4, count: d)
        case .hierarchicalTucker: orders = [Int](repeating: 3, count: d) + [Int](repeating: 3, count: Swift.max(d - 1, 0))
        case .blockTerm: orders = [Int](repeating: 4, count: d) + [d + 1]
        case .semiTensorTrain, .semiTensorRing: orders = [Int](repeating: 5, count: d)
        }
        guard cores.map(\.rank) == orders else {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "\(format) with \(d) modes takes \(orders.count) cores of orders \(orders), got shapes \(cores.map(\.shape))")
        }
        switch format {
        case .svd: return ([cores[0].shape[1]], 1, 1)
        case .cp: return ([cores[0].shape[2]], 1, 1)
        case .kronecker: return ([cores[0].shape[0]], 1, 1)
        case .tucker: return (cores[d].shape, 1, 1)
        case .tensorTrain: return (cores.dropLast().map { $0.shape[3] }, 1, 1)
        case .tensorRing: return (cores.map { $0.shape[0] }, 1, 1)
        case .semiTensorTrain, .semiTensorRing:
            // Core k ends in (R_{k+1}/t_{k+1}, t_{k+1}); core 0's right bond is linked whenever d ≥ 2.
            let t = d >= 2 ? cores[0].shape[4] : 1
            let right = cores.map { $0.shape[3] * $0.shape[4] }
            return (format == .semiTensorTrain ? Array(right.dropLast()) : [right[d - 1]] + right.dropLast(), 1, t)
        case .hierarchicalTucker:
            var ranks: [Int] = []
            var interior = 0
            for node in postOrder(.balanced(order: d)).dropLast() {
                if let k = node.leafMode { ranks.append(cores[k].shape[2]) } else {
                    ranks.append(cores[d + interior].shape[2])
                    interior += 1
                }
            }
            return (ranks, 1, 1)
        case .blockTerm: return ((0..<d).map { cores[$0].shape[3] }, cores[d].shape[0], 1)
        }
    }
}

/// The greatest common divisor (gcd(0, n) = n).
func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int { b == 0 ? a : greatestCommonDivisor(b, a % b) }
