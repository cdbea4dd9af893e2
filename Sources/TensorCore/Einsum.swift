// Einstein summation over NumPy-style specifications, executed as a sequence of pairwise contractions, each one
// a (batched) BLAS GEMM between permuted operands. The contraction order comes from `EinsumPath.swift`
// (exhaustive dynamic programming for up to 8 operands, greedy beyond: METHODS §0.3, Rule C4), and its cost is
// counted exactly by Rule C1, so the same engine runs every factorized layer and prices it.
//
// Semantics (NumPy's `einsum`, without ellipsis):
// * "bi,ij->bj": each operand's dimensions are named by one letter each (a–z, A–Z); a letter shared by
//   operands is one index, and every occurrence must have the same size.
// * Letters missing from the output are summed over; the output lists its letters in the order given.
// * Without "->" the output is implicit: the letters that occur exactly once in the whole left side, in
//   increasing ASCII order (upper case before lower case), as NumPy.
// * A letter repeated inside one operand takes a diagonal: "ii->i" is the diagonal, "ii->" the trace.
// * A letter that occurs in one operand only and not in the output is summed out of that operand before any
//   pairwise contraction ("ij,jk->i" first sums k out of the second operand).

import Foundation

/// A parsed and validated einsum specification together with the operand shapes it applies to.
///
/// Parsing follows NumPy's `einsum` (see the notes at the top of `Einsum.swift`); ellipsis (`...`) is not
/// supported. Build one once and reuse it (and its `optimalPath`) when the same contraction runs repeatedly,
/// as a factorized layer does. Invalid specifications and shape mismatches are programmer errors and stop in a
/// `precondition` whose message names the specification and the shapes.
public struct EinsumExpression: Sendable, Equatable, CustomStringConvertible {
    /// The index letters of each operand, in dimension order (a letter may repeat: a diagonal).
    public let inputs: [[Character]]
    /// The index letters of the result, in dimension order (explicit, or NumPy's implicit output).
    public let output: [Character]
    /// The shape of each operand.
    public let shapes: [[Int]]
    /// The size of every index letter.
    public let sizes: [Character: Int]

    /// Parses `spec` ("ij,jk->ik", or "ij,jk" for the implicit output) for operands of the given shapes.
    ///
    /// - Precondition: the number of operand terms equals `shapes.count`, every term has one letter per
    ///   dimension of its operand, every occurrence of a letter has the same size, output letters are distinct
    ///   and each occurs in some operand.
    public init(_ spec: String, shapes: [[Int]]) {
        let cleaned = spec.filter { !$0.isWhitespace }
        let shapeText = shapes.map { "\($0)" }.joined(separator: ", ")
        let context = "einsum \"\(spec)\" with shapes \(shapeText)"
        precondition(!cleaned.contains("."), "\(context): ellipsis (...) is not supported; name every dimension")
        let sides = cleaned.components(separatedBy: "->")
        precondition(sides.count <= 2, "\(context): more than one \"->\"")
        let terms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
        precondition(!shapes.isEmpty, "\(context): einsum needs at least one operand")
        precondition(terms.count == shapes.count,
                     "\(context): the specification names \(terms.count) operand(s) but \(shapes.count) were given")
        var sizes: [Character: Int] = [:]
        var firstSeen: [Character: Int] = [:]
        for (operand, term) in terms.enumerated() {
            precondition(term.count == shapes[operand].count,
                         "\(context): operand \(operand) is labelled \"\(String(term))\" (\(term.count) indices) but has shape \(shapes[operand])")
            for (axis, letter) in term.enumerated() {
                precondition(letter.isASCII && letter.isLetter,
                             "\(context): \"\(letter)\" is not an index letter (use a–z, A–Z)")
                let size = shapes[operand][axis]
                if let known = sizes[letter] {
                    let other = firstSeen[letter]!
                    precondition(known == size,
                                 "\(context): index \(letter) has size \(known) in operand \(other) (shape \(shapes[other])) but size \(size) in operand \(operand) (shape \(shapes[operand]))")
                } else {
                    sizes[letter] = size
                    firstSeen[letter] = operand
                }
            }
        }
        let output: [Character]
        if sides.count == 2 {
            output = Array(sides[1])
            var seen = Set<Character>()
            for letter in output {
                precondition(letter.isASCII && letter.isLetter,
                             "\(context): \"\(letter)\" in the output is not an index letter (use a–z, A–Z)")
                precondition(seen.insert(letter).inserted, "\(context): output index \(letter) appears twice")
                precondition(sizes[letter] != nil, "\(context): output index \(letter) appears in no operand")
            }
        } else {
            var counts: [Character: Int] = [:]
            for term in terms { for letter in term { counts[letter, default: 0] += 1 } }
            output = counts.filter { $0.value == 1 }.map(\.key).sorted { $0.asciiValue! < $1.asciiValue! }
        }
        self.inputs = terms
        self.output = output
        self.shapes = shapes
        self.sizes = sizes
        self.spec = terms.map { String($0) }.joined(separator: ",") + "->" + String(output)
    }

    /// The expression for `spec` and `shapes`, parsed once per process (`EinsumPlans`).
    public static func parsed(_ spec: String, shapes: [[Int]]) -> EinsumExpression {
        EinsumPlans.shared.memo(.init(kind: .parse, spec: spec, shapes: shapes)) { EinsumExpression(spec, shapes: shapes) }
    }

    /// The explicit, whitespace-free specification ("ij,jk->ik"), implicit outputs written out.
    public let spec: String

    /// The shape of the result.
    public var outputShape: [Int] { output.map { sizes[$0]! } }

    /// The specification followed by the operand shapes.
    public var description: String { "\(spec) on \(shapes.map { "\($0)" }.joined(separator: ", "))" }

    /// Evaluates the expression on `operands` along `path` (by default `optimalPath(strategy: .auto)`).
    ///
    /// Each operand first loses its diagonals and its private summed indices (see `ContractionPath.reductions`);
    /// then every pairwise step runs as at most two permutes plus one GEMM (`Tensor.matmul`, or
    /// `Tensor.batchedMatmul` when the operands share indices that survive the step); a final permute puts the
    /// result in output order. A path computed for another expression with the same operand count (for instance
    /// the same specification at another batch size) may be reused: only its pair positions are read.
    ///
    /// - Precondition: the operand shapes equal `shapes`, and `path` has one valid pair per contraction.
    public func evaluate<Scalar>(_ operands: [Tensor<Scalar>], path: ContractionPath? = nil) -> Tensor<Scalar> {
        precondition(operands.count == shapes.count,
                     "einsum \"\(spec)\": expected \(shapes.count) operand(s), got \(operands.count) with shapes \(operands.map { $0.shape })")
        for (k, operand) in operands.enumerated() {
            precondition(operand.shape == shapes[k],
                         "einsum \"\(spec)\": operand \(k) has shape \(operand.shape), the expression was built for \(shapes[k])")
        }
        let pairs = (path ?? cachedOptimalPath()).pairs
        precondition(pairs.count == operands.count - 1,
                     "einsum \"\(spec)\": a path for \(operands.count) operands needs \(operands.count - 1) pairwise steps, got \(pairs.count)")
        let plan = executionPlan(pairs: pairs)
        // Single-operand reductions (diagonals, private sums).
        var current: [(tensor: Tensor<Scalar>, indices: [Character])] = []
        for (k, operand) in operands.enumerated() {
            current.append(EinsumKernels.reduce(operand, indices: inputs[k], keeping: plan.reductionKeeps[k]))
        }
        for (i, j, pair) in plan.steps {
            let (left, right) = pair.operandsSwapped ? (current[j].tensor, current[i].tensor) : (current[i].tensor, current[j].tensor)
            let result = EinsumKernels.contract(left, right, plan: pair, sizes: sizes)
            for position in [i, j].sorted(by: >) { current.remove(at: position) }
            current.append((result, pair.resultIndices))
        }
        let (tensor, indices) = current[0]
        return EinsumKernels.arrange(tensor, from: indices, to: output, sizes: sizes)
    }

    /// `optimalPath()`, computed once per specification and shapes (`EinsumPlans`).
    public func cachedOptimalPath() -> ContractionPath {
        EinsumPlans.shared.memo(.init(kind: .optimalPath, spec: spec, shapes: shapes)) { optimalPath() }
    }

    /// What `evaluate` does along `pairs`: the indices each operand keeps in its reductions, then each pairwise
    /// step's positions and layout plan (the last one lays its result out in output order when that copies less
    /// than a final permute). Planned once per specification, shapes and pairs (`EinsumPlans`).
    struct ExecutionPlan {
        var reductionKeeps: [Set<Character>]
        var steps: [(Int, Int, PairPlan)]
    }

    func executionPlan(pairs: [(Int, Int)]) -> ExecutionPlan {
        let key = EinsumPlans.Key(kind: .execution, spec: spec, shapes: shapes, extra: pairs.flatMap { [$0.0, $0.1] })
        return EinsumPlans.shared.memo(key) {
            var current: [[Character]] = []
            var keeps: [Set<Character>] = []
            for k in inputs.indices {
                let keep = indicesNeeded(excludingOperand: k)
                keeps.append(keep)
                current.append(EinsumKernels.distinct(inputs[k]).filter { keep.contains($0) })
            }
            var steps: [(Int, Int, PairPlan)] = []
            for (step, (i, j)) in pairs.enumerated() {
                precondition(i != j && current.indices.contains(i) && current.indices.contains(j),
                             "einsum \"\(spec)\": path step (\(i), \(j)) is invalid for \(current.count) remaining operands")
                let plan = planPair(current[i], current[j], keep: neededIndices(current, excluding: i, j),
                                    preferredResult: step == pairs.count - 1 ? output : nil)
                steps.append((i, j, plan))
                for position in [i, j].sorted(by: >) { current.remove(at: position) }
                current.append(plan.resultIndices)
            }
            return ExecutionPlan(reductionKeeps: keeps, steps: steps)
        }
    }

    /// The indices that must survive the reduction of operand `k`: the output's and every other operand's.
    func indicesNeeded(excludingOperand k: Int) -> Set<Character> {
        var keep = Set(output)
        for (other, term) in inputs.enumerated() where other != k { keep.formUnion(term) }
        return keep
    }

    /// The indices needed after operands `i` and `j` of `current` are contracted.
    func neededIndices(_ current: [[Character]], excluding i: Int, _ j: Int) -> Set<Character> {
        var keep = Set(output)
        for (k, term) in current.enumerated() where k != i && k != j { keep.formUnion(term) }
        return keep
    }

    /// How one pairwise contraction is laid out for a GEMM (see `planPair`).
    struct PairPlan {
        /// How an operand reaches its GEMM layout.
        enum Layout: Equatable {
            /// Memory already matches; `transposed` passes the last two groups swapped to BLAS.
            case asIs(transposed: Bool)
            /// Permute with this axis permutation first, into the untransposed layout or, `transposed`, into the one
            /// with the last two groups swapped (whichever keeps longer contiguous runs).
            case permute([Int], transposed: Bool)
        }
        var batch: [Character], contracted: [Character], leftFree: [Character], rightFree: [Character]
        var left: Layout, right: Layout
        /// Whether the GEMM's left operand is the step's second operand (chosen to write the result in a preferred
        /// order without a permute).
        var operandsSwapped = false
        /// Result indices: batch, then left-free, then right-free (the GEMM's output order).
        var resultIndices: [Character] { batch + leftFree + rightFree }
    }

    /// Classifies the indices of a pairwise contraction and chooses the operand layouts.
    ///
    /// Batch indices occur in both operands and survive (`keep`); contracted indices occur in both and do not;
    /// free indices occur in one operand only (they always survive after the initial reductions). The left
    /// operand is arranged as (batch, leftFree, contracted) and the right one as (batch, contracted, rightFree).
    /// An operand whose memory already has the needed order (ignoring size-1 dimensions), or has it with the last
    /// two groups swapped (passed to BLAS as a transpose), is not permuted; any other is permuted into whichever
    /// of the two keeps the longer contiguous run (`permuteCost`: count·(1 + 16/run) for runs of `run` elements;
    /// short runs copy several times slower). The batch and contracted orders are taken from whichever operand
    /// makes the cheaper copies.
    ///
    /// With `preferredResult` (the final output order) the default plan competes with plans whose free indices
    /// follow that order (either operand as the GEMM's left one), by the same weighted copies: operand permutes
    /// plus the final permute to the preferred order (a result already in order costs nothing). A VJP whose
    /// gradient must come out in its operand's layout then usually needs no permute at all, and a weight rebuilt from small
    /// cores, 𝒲[i₁…i_d o₁…o_d], comes out of its last GEMM with whole output-mode blocks in place
    /// ([i₁ i₂ o₁ o₂ | i₃ i₄ o₃ o₄] rather than [i₁ o₁ i₂ o₂ | i₃ o₃ i₄ o₄]: runs of O₃O₄ instead of O₄).
    func planPair(_ a: [Character], _ b: [Character], keep: Set<Character>,
                  preferredResult: [Character]? = nil) -> PairPlan {
        let inB = Set(b), inA = Set(a)
        let shared = a.filter { inB.contains($0) }
        let sharedInB = b.filter { inA.contains($0) }
        func plan(_ left: [Character], _ right: [Character], sharedOrder: [Character], leftFree: [Character],
                  rightFree: [Character], swapped: Bool) -> (PairPlan, Int) {
            let batch = sharedOrder.filter { keep.contains($0) }
            let contracted = sharedOrder.filter { !keep.contains($0) }
            let (leftLayout, leftCopied) = layout(of: left, plain: batch + leftFree + contracted, swapped: batch + contracted + leftFree)
            let (rightLayout, rightCopied) = layout(of: right, plain: batch + contracted + rightFree, swapped: batch + rightFree + contracted)
            let copied = EinsumKernels.saturatingAdd(leftCopied, rightCopied)
            return (PairPlan(batch: batch, contracted: contracted, leftFree: leftFree, rightFree: rightFree,
                             left: leftLayout, right: rightLayout, operandsSwapped: swapped), copied)
        }
        let (leftFree, rightFree) = (a.filter { !inB.contains($0) }, b.filter { !inA.contains($0) })
        let fromA = plan(a, b, sharedOrder: shared, leftFree: leftFree, rightFree: rightFree, swapped: false)
        let fromB = plan(a, b, sharedOrder: sharedInB, leftFree: leftFree, rightFree: rightFree, swapped: false)
        let standard = fromB.1 < fromA.1 ? fromB : fromA
        guard let preferred = preferredResult else { return standard.0 }
        let position = Dictionary(preferred.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        func inPreferredOrder(_ letters: [Character]) -> [Character] {
            letters.sorted { (position[$0] ?? Int.max) < (position[$1] ?? Int.max) }
        }
        func total(_ candidate: (PairPlan, Int)) -> Int {
            EinsumKernels.saturatingAdd(candidate.1, permuteCost(candidate.0.resultIndices, to: preferred))
        }
        var best = (plan: standard.0, cost: total(standard))
        for (left, right, swapped) in [(a, b, false), (b, a, true)] {
            let inLeft = Set(left), inRight = Set(right)
            let sharedOrder = inPreferredOrder(left.filter { inRight.contains($0) && keep.contains($0) })
            for order in [left, right] {
                let contracted = order.filter { inLeft.contains($0) && inRight.contains($0) && !keep.contains($0) }
                let candidate = plan(left, right, sharedOrder: sharedOrder + contracted,
                                     leftFree: inPreferredOrder(left.filter { !inRight.contains($0) }),
                                     rightFree: inPreferredOrder(right.filter { !inLeft.contains($0) }), swapped: swapped)
                let cost = total(candidate)
                if cost < best.cost { best = (candidate.0, cost) }
            }
        }
        return best.plan
    }

    /// Elements copied, weighted by speed, to permute a tensor with (distinct) `indices` into `target` order:
    /// count·(1 + 16/run), run = the elements of the longest common trailing block (size-1 indices ignored); 0 when
    /// the orders agree.
    func permuteCost(_ indices: [Character], to target: [Character]) -> Int {
        let from = indices.filter { sizes[$0]! != 1 }, to = target.filter { sizes[$0]! != 1 }
        guard from != to else { return 0 }
        var run = 1
        for (x, y) in zip(from.reversed(), to.reversed()) {
            guard x == y else { break }
            run = EinsumKernels.saturatingMultiply(run, sizes[x]!)
        }
        let total = count(of: from)
        return EinsumKernels.saturatingAdd(total, EinsumKernels.saturatingMultiply(total / run, 16))
    }

    /// `.asIs` when `indices` already has the order `plain` (or `swapped`) once size-1 dimensions are ignored,
    /// otherwise the permutation to whichever of `plain` and `swapped` is cheaper by `permuteCost` (the one that
    /// keeps the longer trailing run in place), with that cost.
    private func layout(of indices: [Character], plain: [Character], swapped: [Character]) -> (PairPlan.Layout, Int) {
        let (plainCost, swappedCost) = (permuteCost(indices, to: plain), permuteCost(indices, to: swapped))
        if plainCost == 0 { return (.asIs(transposed: false), 0) }
        if swappedCost == 0 { return (.asIs(transposed: true), 0) }
        let transposed = swappedCost < plainCost
        let target = transposed ? swapped : plain
        return (.permute(target.map { indices.firstIndex(of: $0)! }, transposed: transposed), Swift.min(plainCost, swappedCost))
    }

    /// The element count of a tensor with these (distinct) indices, saturating at `Int.max`.
    func count(of indices: some Sequence<Character>) -> Int {
        indices.reduce(1) { EinsumKernels.saturatingMultiply($0, sizes[$1]!) }
    }
}

/// Evaluates an einsum specification (NumPy semantics, see `EinsumExpression`) along the cheapest contraction
/// path (`ContractionStrategy.auto`).
///
/// `einsum("bi,ij->bj", x, w)` is `matmul(x, w)`; `einsum("ii", a)` is the trace; `einsum("bij,bjk->bik", a, b)`
/// is a batched product. Every pairwise step is one (batched) GEMM (METHODS §0.3, Rules C1 and C4).
///
/// - Precondition: the specification matches the operands (see `EinsumExpression.init(_:shapes:)`).
public func einsum<Scalar>(_ spec: String, _ operands: Tensor<Scalar>...) -> Tensor<Scalar> {
    einsum(spec, operands, path: nil)
}

/// Evaluates an einsum specification on an array of operands, along `path` when given (for instance one from
/// `EinsumExpression.optimalPath(strategy:)` or `EinsumExpression.path(pairs:)`), else along the cheapest
/// path found by `ContractionStrategy.auto`.
///
/// - Precondition: the specification matches the operands, and `path` has one valid pair per contraction.
public func einsum<Scalar>(_ spec: String, _ operands: [Tensor<Scalar>], path: ContractionPath? = nil) -> Tensor<Scalar> {
    EinsumExpression.parsed(spec, shapes: operands.map { $0.shape }).evaluate(operands, path: path)
}

/// Parsed expressions, paths and execution plans, kept per specification and shapes for the life of the process: a
/// factorized layer runs the same contractions, and the same gradient contractions, every training step, and
/// parsing and planning them anew took about a third of a small Tucker layer's step. Thread-safe; cleared when it
/// holds `capacity` entries (shapes that keep changing, such as a growing batch, cannot grow it without bound).
public final class EinsumPlans: @unchecked Sendable {
    /// The process-wide cache.
    public static let shared = EinsumPlans()
    /// Entries kept before the cache is cleared.
    public static let capacity = 20_000

    /// What is cached, for which specification and shapes (`extra`: path pairs, an operand position, …).
    public struct Key: Hashable, Sendable {
        public enum Kind: Hashable, Sendable { case parse, optimalPath, execution, gradient, recordedSteps }
        public var kind: Kind
        public var spec: String
        public var shapes: [[Int]]
        public var extra: [Int] = []

        public init(kind: Kind, spec: String, shapes: [[Int]], extra: [Int] = []) {
            self.kind = kind
            self.spec = spec
            self.shapes = shapes
            self.extra = extra
        }
    }

    private let lock = NSLock()
    private var table: [Key: Any] = [:]

    /// The value cached under `key`, made by `make` (outside the lock) on a miss.
    public func memo<T>(_ key: Key, _ make: () -> T) -> T {
        lock.lock()
        let hit = table[key] as? T
        lock.unlock()
        if let hit { return hit }
        let value = make()
        lock.lock()
        if table.count >= Self.capacity { table.removeAll() }
        table[key] = value
        lock.unlock()
        return value
    }
}

/// The data-moving kernels of einsum: diagonals, private sums, pairwise GEMMs and the final permute.
enum EinsumKernels {
    /// `a·b`, saturating at `Int.max` (cost counts of huge hypothetical shapes must not trap).
    static func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : product
    }

    /// `a+b`, saturating at `Int.max`.
    static func saturatingAdd(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }

    /// The distinct letters of `indices` in first-occurrence order.
    static func distinct(_ indices: [Character]) -> [Character] {
        var seen = Set<Character>()
        return indices.filter { seen.insert($0).inserted }
    }

    /// Takes the diagonals of repeated indices, then sums out the indices not in `keep`.
    /// The result's indices are the surviving distinct indices in first-occurrence order.
    static func reduce<Scalar>(_ tensor: Tensor<Scalar>, indices: [Character],
                               keeping keep: Set<Character>) -> (tensor: Tensor<Scalar>, indices: [Character]) {
        let unique = distinct(indices)
        var result = tensor
        if unique.count != indices.count {
            let strides = tensor.strides
            let shape = unique.map { letter in tensor.shape[indices.firstIndex(of: letter)!] }
            let diagonalStrides = unique.map { letter in
                indices.indices.filter { indices[$0] == letter }.reduce(0) { $0 + strides[$1] }
            }
            result = gather(tensor, shape: shape, strides: diagonalStrides)
        }
        let summed = unique.indices.filter { !keep.contains(unique[$0]) }
        if !summed.isEmpty { result = result.sum(axes: summed, keepingDimensions: false) }
        return (result, unique.filter { keep.contains($0) })
    }

    /// Reads `tensor`'s storage with arbitrary element strides into a new row-major tensor of `shape`
    /// (one O(result) pass; used for diagonals).
    static func gather<Scalar>(_ tensor: Tensor<Scalar>, shape: [Int], strides: [Int]) -> Tensor<Scalar> {
        Tensor<Scalar>(shape: shape) { out in
            guard out.count > 0 else { return }
            tensor.withUnsafeBufferPointer { source in
                let src = source.baseAddress!, dst = out.baseAddress!
                let rank = shape.count
                if rank == 0 { dst[0] = src[0]; return }
                let inner = shape[rank - 1], innerStride = strides[rank - 1]
                var index = [Int](repeating: 0, count: rank - 1)
                var base = 0, written = 0
                for _ in 0..<(out.count / inner) {
                    for c in 0..<inner { dst[written + c] = src[base + c * innerStride] }
                    written += inner
                    var k = rank - 2
                    while k >= 0 {
                        index[k] += 1
                        base += strides[k]
                        if index[k] < shape[k] { break }
                        base -= strides[k] * shape[k]
                        index[k] = 0
                        k -= 1
                    }
                }
            }
        }
    }

    /// One pairwise contraction: the planned permutes, then one GEMM (batched when there are batch indices),
    /// or an elementwise product when every batch entry is a 1×1×1 product.
    static func contract<Scalar>(_ a: Tensor<Scalar>, _ b: Tensor<Scalar>, plan: EinsumExpression.PairPlan,
                                 sizes: [Character: Int]) -> Tensor<Scalar> {
        func product(_ indices: [Character]) -> Int { indices.reduce(1) { $0 * sizes[$1]! } }
        let resultShape = plan.resultIndices.map { sizes[$0]! }
        // An empty operand contributes empty sums (zeros) or an empty result.
        if a.scalarCount == 0 || b.scalarCount == 0 { return Tensor.zeros(resultShape) }
        let batch = product(plan.batch), contracted = product(plan.contracted)
        let m = product(plan.leftFree), n = product(plan.rightFree)
        func arranged(_ t: Tensor<Scalar>, _ layout: EinsumExpression.PairPlan.Layout) -> (Tensor<Scalar>, Bool) {
            switch layout {
            case .asIs(let transposed): return (t, transposed)
            case let .permute(permutation, transposed): return (t.permuted(permutation), transposed)
            }
        }
        let (left, transposeA) = arranged(a, plan.left)
        let (right, transposeB) = arranged(b, plan.right)
        if m == 1 && n == 1 && contracted == 1 {
            // Hadamard product over the batch indices: both operands are laid out in batch order.
            return (left.reshaped([batch]) * right.reshaped([batch])).reshaped(resultShape)
        }
        let leftMatrix = transposeA ? [contracted, m] : [m, contracted]
        let rightMatrix = transposeB ? [n, contracted] : [contracted, n]
        if batch == 1 {
            return Tensor.matmul(left.reshaped(leftMatrix), right.reshaped(rightMatrix),
                                 transposeA: transposeA, transposeB: transposeB).reshaped(resultShape)
        }
        return Tensor.batchedMatmul(left.reshaped([batch] + leftMatrix), right.reshaped([batch] + rightMatrix),
                                    transposeA: transposeA, transposeB: transposeB).reshaped(resultShape)
    }

    /// Permutes a tensor whose dimensions carry `indices` into the order `output` (the same letters); a
    /// reshape when only size-1 dimensions move.
    static func arrange<Scalar>(_ tensor: Tensor<Scalar>, from indices: [Character], to output: [Character],
                                sizes: [Character: Int]) -> Tensor<Scalar> {
        let shape = output.map { sizes[$0]! }
        if indices.filter({ sizes[$0]! != 1 }) == output.filter({ sizes[$0]! != 1 }) { return tensor.reshaped(shape) }
        return tensor.permuted(output.map { indices.firstIndex(of: $0)! })
    }
}
