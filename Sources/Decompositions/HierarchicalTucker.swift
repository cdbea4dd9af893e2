import TensorCore

// Hierarchical Tucker (HT) format and the hierarchical SVD of Grasedyck [32] (METHODS §1.5).

/// A binary dimension tree over the modes 0..<d of a tensor (the skeleton of a hierarchical Tucker
/// decomposition [32]).
///
/// Every node stands for the set of modes of the leaves below it; the root holds all modes. The tree is binary
/// by construction (a node has exactly two children). `validate(order:)` checks that every mode appears in
/// exactly one leaf. Nodes may hold non-contiguous modes (for example `((0,2),(1,3))`); the decomposition then
/// works on the matching matricizations directly, with no explicit mode permutation.
public indirect enum DimensionTree: Sendable, Equatable, CustomStringConvertible {
    /// A leaf holding one mode (0-based).
    case leaf(Int)
    /// An interior node with its left and right subtrees.
    case node(DimensionTree, DimensionTree)

    /// The balanced tree of METHODS §1.5: the modes 0..<order split in halves recursively (the left half gets
    /// ⌈n/2⌉ modes), so every node holds a contiguous range. Order 4 gives `((0,1),(2,3))`, order 3 `((0,1),2)`.
    public static func balanced(order: Int) -> DimensionTree {
        precondition(order >= 1, "DimensionTree.balanced: order must be at least 1, got \(order)")
        return balanced(0..<order)
    }

    private static func balanced(_ range: Range<Int>) -> DimensionTree {
        if range.count == 1 { return .leaf(range.lowerBound) }
        let middle = range.lowerBound + (range.count + 1) / 2
        return .node(balanced(range.lowerBound..<middle), balanced(middle..<range.upperBound))
    }

    /// Parses the text form `((0,1),(2,3))`: a leaf is a mode number, a node is two subtrees in parentheses
    /// separated by a comma; spaces are ignored.
    /// - Throws: `DecompositionError.shapeMismatch` when the text is malformed or a node does not have exactly
    ///   two children (the message shows how to split it).
    public init(parsing text: String) throws {
        var parser = DimensionTreeParser(characters: Array(text.filter { !$0.isWhitespace }))
        let tree = try parser.parseTree()
        guard parser.position == parser.characters.count else {
            throw DecompositionError.shapeMismatch(format: "ht", problem:
                "dimension tree \"\(text)\": unexpected text after position \(parser.position); write a tree like ((0,1),(2,3))")
        }
        self = tree
    }

    /// The modes of the leaves from left to right.
    public var modes: [Int] {
        switch self {
        case let .leaf(mode): return [mode]
        case let .node(left, right): return left.modes + right.modes
        }
    }

    /// The text form, e.g. `((0,1),(2,3))`.
    public var description: String {
        switch self {
        case let .leaf(mode): return "\(mode)"
        case let .node(left, right): return "(\(left),\(right))"
        }
    }

    /// Checks that the tree fits a tensor of the given order: at least two modes, every mode 0..<order in
    /// exactly one leaf.
    /// - Throws: `DecompositionError.shapeMismatch` naming the missing, repeated or out-of-range modes.
    public func validate(order: Int) throws {
        guard order >= 2 else {
            throw DecompositionError.shapeMismatch(format: "ht", problem:
                "a hierarchical Tucker decomposition needs a tensor of order ≥ 2, got order \(order); use a matrix or vector format instead")
        }
        let modes = self.modes
        var counts = [Int](repeating: 0, count: order)
        var outOfRange: [Int] = []
        for mode in modes {
            if mode >= 0 && mode < order { counts[mode] += 1 } else { outOfRange.append(mode) }
        }
        let repeated = (0..<order).filter { counts[$0] > 1 }
        let missing = (0..<order).filter { counts[$0] == 0 }
        guard outOfRange.isEmpty && repeated.isEmpty && missing.isEmpty else {
            var problems: [String] = []
            if !outOfRange.isEmpty { problems.append("modes \(outOfRange) are out of range 0..<\(order)") }
            if !repeated.isEmpty { problems.append("modes \(repeated) appear more than once") }
            if !missing.isEmpty { problems.append("modes \(missing) are missing") }
            throw DecompositionError.shapeMismatch(format: "ht", problem:
                "dimension tree \(self) does not match a tensor of order \(order): \(problems.joined(separator: ", ")); "
                + "list every mode 0..<\(order) exactly once, e.g. \(DimensionTree.balanced(order: order))")
        }
    }
}

/// Recursive-descent parser of the text form of a dimension tree.
private struct DimensionTreeParser {
    let characters: [Character]
    var position = 0

    private func error(_ message: String) -> DecompositionError {
        .shapeMismatch(format: "ht", problem: "dimension tree \"\(String(characters))\": \(message)")
    }

    mutating func parseTree() throws -> DimensionTree {
        guard position < characters.count else { throw error("ended early; write a tree like ((0,1),(2,3))") }
        if characters[position] == "(" {
            position += 1
            var children = [try parseTree()]
            while position < characters.count && characters[position] == "," {
                position += 1
                children.append(try parseTree())
            }
            guard position < characters.count && characters[position] == ")" else {
                throw error("missing ')' at position \(position)")
            }
            position += 1
            guard children.count == 2 else {
                let listed = children.map(\.description).joined(separator: ",")
                let suggestion = children.count > 2
                    ? "split it into two, e.g. (\(children[0]),(\(children.dropFirst().map(\.description).joined(separator: ","))))"
                    : "drop the parentheses around \(children[0])"
                throw error("node (\(listed)) has \(children.count) \(children.count == 1 ? "child" : "children"); a dimension tree is binary: \(suggestion)")
            }
            return .node(children[0], children[1])
        }
        let start = position
        while position < characters.count, characters[position].isNumber { position += 1 }
        guard position > start, let mode = Int(String(characters[start..<position])) else {
            throw error("expected a mode number or '(' at position \(start)")
        }
        return .leaf(mode)
    }
}

/// One node of a dimension tree, flattened in post-order (children before parents, root last).
private struct HTNode {
    var modes: [Int]
    var leafMode: Int?
    var left = -1
    var right = -1
}

private func flattenTree(_ tree: DimensionTree) -> [HTNode] {
    var nodes: [HTNode] = []
    @discardableResult
    func visit(_ t: DimensionTree) -> Int {
        switch t {
        case let .leaf(mode):
            nodes.append(HTNode(modes: [mode], leafMode: mode))
        case let .node(l, r):
            let li = visit(l), ri = visit(r)
            nodes.append(HTNode(modes: nodes[li].modes + nodes[ri].modes, leafMode: nil, left: li, right: ri))
        }
        return nodes.count - 1
    }
    visit(tree)
    return nodes
}

/// A tensor in the hierarchical Tucker format [32] (METHODS §1.5).
///
/// For a binary dimension tree T over the modes, every leaf t = {k} holds a basis U_t ∈ ℝ^{J_k×R_t} and every
/// interior node t with children (l, r) holds a transfer tensor 𝓑_t ∈ ℝ^{R_l×R_r×R_t}; the root has R_t = 1.
/// Node bases are defined recursively, U_t = (U_l ⊗ U_r)·mat(𝓑_t) with mat(𝓑_t) ∈ ℝ^{R_lR_r×R_t}, and the
/// tensor is vec(𝒳) = U_root (rows ordered by the tree's leaf order, then permuted back to mode order).
///
/// Layout: `leafBases[k]` is U_{k} (J_k×R_k) for mode k; `transferTensors` are the interior nodes in
/// post-order (children before parents, root last). `ranks` and `nodeModes` list the non-root nodes in
/// post-order. Storage Σ_k J_kR_k + Σ_{interior t} R_lR_rR_t (balanced, uniform: d·JR + (d−2)R³ + R²).
public struct HierarchicalTucker<Scalar: TensorScalar>: TensorDecomposition {
    /// "ht".
    public static var formatName: String { "ht" }
    /// Shape of the full tensor.
    public let shape: [Int]
    /// The dimension tree.
    public let tree: DimensionTree
    /// Leaf bases U_k ∈ ℝ^{J_k×R_k}, indexed by mode.
    public private(set) var leafBases: [Tensor<Scalar>]
    /// Transfer tensors 𝓑_t ∈ ℝ^{R_l×R_r×R_t} of the interior nodes in post-order (root last, R_root = 1).
    public private(set) var transferTensors: [Tensor<Scalar>]

    /// Wraps given factors.
    ///
    /// Preconditions: the tree fits the order of `shape`, `leafBases[k]` is J_k×R_k, and the transfer tensors
    /// (interior nodes in post-order) have shapes R_l×R_r×R_t matching their children, with R_root = 1.
    public init(shape: [Int], tree: DimensionTree, leafBases: [Tensor<Scalar>], transferTensors: [Tensor<Scalar>]) {
        precondition((try? tree.validate(order: shape.count)) != nil,
                     "HierarchicalTucker: tree \(tree) does not match a tensor of shape \(shape)")
        let nodes = flattenTree(tree)
        precondition(leafBases.count == shape.count, "HierarchicalTucker: \(leafBases.count) leaf bases for shape \(shape)")
        precondition(transferTensors.count == shape.count - 1,
                     "HierarchicalTucker: \(transferTensors.count) transfer tensors, a tree over \(shape.count) modes needs \(shape.count - 1)")
        var rank = [Int](repeating: 0, count: nodes.count)
        var interior = 0
        for (i, node) in nodes.enumerated() {
            if let k = node.leafMode {
                precondition(leafBases[k].rank == 2 && leafBases[k].shape[0] == shape[k],
                             "HierarchicalTucker: leaf basis \(k) has shape \(leafBases[k].shape), expected \(shape[k])×R")
                rank[i] = leafBases[k].shape[1]
            } else {
                let b = transferTensors[interior]
                let expectedLast = i == nodes.count - 1 ? 1 : (b.rank == 3 ? b.shape[2] : -1)
                precondition(b.rank == 3 && b.shape[0] == rank[node.left] && b.shape[1] == rank[node.right] && b.shape[2] == expectedLast,
                             "HierarchicalTucker: transfer tensor \(interior) has shape \(b.shape), expected \(rank[node.left])×\(rank[node.right])×R\(i == nodes.count - 1 ? " with R = 1 at the root" : "")")
                rank[i] = b.shape[2]
                interior += 1
            }
        }
        self.shape = shape
        self.tree = tree
        self.leafBases = leafBases
        self.transferTensors = transferTensors
    }

    /// The modes of each non-root node, in post-order (the order of `ranks`).
    public var nodeModes: [[Int]] { flattenTree(tree).dropLast().map(\.modes) }

    /// The ranks R_t of the non-root nodes in post-order (children before parents); the root's rank is 1.
    public var ranks: [Int] {
        var result: [Int] = []
        var interior = 0
        for node in flattenTree(tree).dropLast() {
            if let k = node.leafMode { result.append(leafBases[k].shape[1]) } else {
                result.append(transferTensors[interior].shape[2])
                interior += 1
            }
        }
        return result
    }

    /// Σ_k J_kR_k + Σ_{interior t} R_lR_rR_t.
    public var parameterCount: Int {
        leafBases.reduce(0) { $0 + $1.scalarCount } + transferTensors.reduce(0) { $0 + $1.scalarCount }
    }

    /// Rebuilds the full tensor from the leaves up: U_t = (U_l ⊗ U_r)·mat(𝓑_t), computed as two GEMMs per node
    /// without forming U_l ⊗ U_r.
    public func reconstruct() -> Tensor<Scalar> {
        let nodes = flattenTree(tree)
        var bases = [Tensor<Scalar>?](repeating: nil, count: nodes.count)
        var interior = 0
        for (i, node) in nodes.enumerated() {
            if let k = node.leafMode {
                bases[i] = leafBases[k]
            } else {
                let ul = bases[node.left]!, ur = bases[node.right]!
                let b = transferTensors[interior]
                interior += 1
                let (pl, rl) = (ul.shape[0], ul.shape[1]), (pr, rr) = (ur.shape[0], ur.shape[1]), rt = b.shape[2]
                // T[p_l, (r_r, r_t)] = Σ_{r_l} U_l[p_l, r_l]·𝓑[r_l, r_r, r_t]
                let t = Tensor.matmul(ul, b.reshaped([rl, rr * rt])).reshaped([pl, rr, rt])
                // U_t[(p_l, p_r), r_t] = Σ_{r_r} U_r[p_r, r_r]·T[p_l, r_r, r_t]
                bases[i] = Tensor.batchedMatmul(ur.reshaped([1, pr, rr]), t).reshaped([pl * pr, rt])
                bases[node.left] = nil
                bases[node.right] = nil
            }
        }
        let order = tree.modes
        let full = bases[nodes.count - 1]!.reshaped(order.map { shape[$0] })
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, mode) in order.enumerated() { inverse[mode] = position }
        return full.permuted(inverse)
    }

    /// Hierarchical SVD [32] (leaves-to-root variant, METHODS §1.5).
    ///
    /// 1. Each leaf basis U_k is the leading R_k left singular vectors of the unfolding X_(k); the tensor is
    ///    projected onto all leaves, 𝒞 = 𝒳 ×_1 U_1ᵀ ⋯ ×_d U_dᵀ.
    /// 2. Interior nodes in post-order: matricize the current core with the two children's modes as rows
    ///    (R_lR_r × rest), keep the leading R_t left singular vectors as mat(𝓑_t), and contract them into the core.
    /// 3. The root's transfer tensor is the remaining R_l×R_r core.
    ///
    /// Guarantee [32]: ‖𝒳 − 𝒳̂‖_F ≤ (Σ_t Σ_{i>R_t} σ_{t,i}²)^{1/2} ≤ √(2d−3)·‖𝒳 − 𝒳_best‖_F, summed over the
    /// 2d−3 truncated nodes (the root's two children share their singular values, so only one of them
    /// truncates: the other keeps the rank of its sibling at no extra error). With `.relativeError(ε)` each
    /// node keeps the smallest rank whose discarded tail is at most δ = ε‖𝒳‖_F/√(2d−3), so
    /// ‖𝒳 − 𝒳̂‖_F ≤ ε‖𝒳‖_F.
    ///
    /// Targets: `.ranks` takes 1 value (every non-root node) or 2d−2 values (non-root nodes in post-order,
    /// see `nodeModes`); `.relativeError(ε)` as above; `.compressionRatio(c)` picks the largest uniform rank
    /// whose parameter count is at most (∏J_k)/c (rank 1 when none is). Rank clamping rule: a leaf keeps at most
    /// min(J_k, ∏_{l≠k} J_l), an interior node at most min(R_lR_r, ∏_{k∉t} J_k), the root's two children both
    /// take the smaller of their two ranks, and no node keeps more singular vectors than its matricization has.
    /// - Parameters:
    ///   - tree: the dimension tree; nil means `DimensionTree.balanced(order:)`.
    ///   - maxRank: an optional cap on every rank (with ε, the guarantee holds only where the cap does not bind).
    /// - Throws: `DecompositionError` for NaN/∞ input, an order-1 or empty tensor, a tree that does not match the
    ///   modes, invalid ranks or target; `TensorError` if an SVD fails.
    public static func decompose(_ tensor: Tensor<Scalar>, target: RankTarget<Scalar>, tree: DimensionTree? = nil,
                                 maxRank: Int? = nil) throws -> HierarchicalTucker<Scalar> {
        try validate(tensor, target: target, format: formatName)
        let d = tensor.rank, shape = tensor.shape
        let tree = tree ?? .balanced(order: Swift.max(d, 1))
        try tree.validate(order: d)
        guard shape.allSatisfy({ $0 >= 1 }) else {
            throw DecompositionError.shapeMismatch(format: formatName, problem: "every mode needs size ≥ 1, got shape \(shape)")
        }
        if let cap = maxRank, cap < 1 {
            throw DecompositionError.invalidRanks(format: formatName, problem: "maxRank must be at least 1, got \(cap)")
        }
        let nodes = flattenTree(tree)
        let root = nodes.count - 1
        let cap = maxRank ?? Int.max

        var fixed: [Int]? = nil
        var budget: Scalar = 0
        switch target {
        case let .ranks(requested):
            let expanded = try expandRanks(requested, count: root, format: formatName,
                                           what: "ranks (one per non-root node of the dimension tree, in post-order)")
            fixed = clampHTRanks(expanded.map { Swift.min($0, cap) }, nodes: nodes, shape: shape)
        case let .relativeError(eps):
            budget = eps * eps * tensor.squaredNorm() / Scalar(2 * d - 3)
        case let .compressionRatio(ratio):
            let allowed = Double(tensor.scalarCount) / ratio
            let upper = Swift.min(cap, nodes.dropLast().map { node in
                let inside = node.modes.reduce(1) { $0 * shape[$1] }
                return Swift.min(inside, tensor.scalarCount / inside)
            }.max() ?? 1)
            let r = largestRank(upTo: upper, within: allowed) { r in
                htParameterCount(clampHTRanks([Int](repeating: r, count: root), nodes: nodes, shape: shape), nodes: nodes, shape: shape)
            }
            fixed = clampHTRanks([Int](repeating: r, count: root), nodes: nodes, shape: shape)
        }

        // With ε, the root child processed second keeps its sibling's rank (zero extra error).
        let rootNode = nodes[root]
        let second = nodes[rootNode.right].leafMode == nil || nodes[rootNode.left].leafMode != nil ? rootNode.right : rootNode.left
        let sibling = second == rootNode.right ? rootNode.left : rootNode.right
        var ranks = [Int](repeating: 0, count: root)
        func chooseRank(_ node: Int, _ s: [Scalar]) -> Int {
            if let fixed { return Swift.min(fixed[node], s.count) }
            if node == second { return Swift.min(ranks[sibling], s.count) }
            return Swift.min(htTailRank(s, budget: budget), cap)
        }

        // Leaves (the root child processed second goes last).
        var leafBases = [Tensor<Scalar>](repeating: .zeros([0, 0]), count: d)
        var leafNode = [Int](repeating: 0, count: d)
        let leaves = nodes.indices.filter { nodes[$0].leafMode != nil }
        for i in leaves.filter({ $0 != second }) + leaves.filter({ $0 == second }) {
            let k = nodes[i].leafMode!
            let f = try tensor.unfolded(mode: k).svd()
            ranks[i] = chooseRank(i, f.s.scalars)
            leafBases[k] = f.u.slice(axis: 1, start: 0, count: ranks[i])
            leafNode[k] = i
        }
        var core = tensor.multiModeProduct(leafBases.enumerated().map { (mode: $0.offset, matrix: $0.element) }, transposed: true)
        var frontier = leafNode  // node index of each mode of `core`

        // Interior nodes, leaves to root.
        var transfers: [Tensor<Scalar>] = []
        for (i, node) in nodes.enumerated() where node.leafMode == nil {
            let pl = frontier.firstIndex(of: node.left)!, pr = frontier.firstIndex(of: node.right)!
            let rest = frontier.indices.filter { $0 != pl && $0 != pr }
            let rl = core.shape[pl], rr = core.shape[pr]
            let restShape = rest.map { core.shape[$0] }
            let matrix = core.permuted([pl, pr] + rest).reshaped([rl * rr, restShape.reduce(1, *)])
            if i == root {
                transfers.append(matrix.reshaped([rl, rr, 1]))
                break
            }
            let f = try matrix.svd()
            ranks[i] = chooseRank(i, f.s.scalars)
            let u = f.u.slice(axis: 1, start: 0, count: ranks[i])
            transfers.append(u.reshaped([rl, rr, ranks[i]]))
            core = Tensor.matmul(u, matrix, transposeA: true).reshaped([ranks[i]] + restShape)
            frontier = [i] + rest.map { frontier[$0] }
        }
        return HierarchicalTucker(shape: shape, tree: tree, leafBases: leafBases, transferTensors: transfers)
    }
}

/// Smallest R ≥ 1 whose discarded tail Σ_{i>R} σ_i² is at most `budget`.
private func htTailRank<Scalar: TensorScalar>(_ s: [Scalar], budget: Scalar) -> Int {
    var tail: Scalar = 0
    var r = s.count
    while r > 1 && tail + s[r - 1] * s[r - 1] <= budget {
        tail += s[r - 1] * s[r - 1]
        r -= 1
    }
    return Swift.max(r, 1)
}

/// Applies the documented clamping rule to ranks of the non-root nodes (post-order).
private func clampHTRanks(_ requested: [Int], nodes: [HTNode], shape: [Int]) -> [Int] {
    let total = shape.reduce(1, *)
    var r = requested
    for (i, node) in nodes.dropLast().enumerated() {
        let inside = node.modes.reduce(1) { $0 * shape[$1] }
        var bound = Swift.min(inside, total / inside)
        if node.leafMode == nil { bound = Swift.min(bound, r[node.left] * r[node.right]) }
        r[i] = Swift.min(r[i], bound)
    }
    let root = nodes[nodes.count - 1]
    let shared = Swift.min(r[root.left], r[root.right])
    r[root.left] = shared
    r[root.right] = shared
    return r
}

/// Parameter count of an HT format with the given non-root ranks (post-order).
private func htParameterCount(_ ranks: [Int], nodes: [HTNode], shape: [Int]) -> Int {
    var count = 0
    for (i, node) in nodes.enumerated() {
        if let k = node.leafMode { count += shape[k] * ranks[i] } else {
            count += ranks[node.left] * ranks[node.right] * (i == nodes.count - 1 ? 1 : ranks[i])
        }
    }
    return count
}
