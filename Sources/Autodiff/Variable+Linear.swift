import TensorCore

// Matrix products and einsum with their VJPs. Every backward pass is again a (batched) BLAS GEMM or an
// einsum, so a factorized layer written as an einsum differentiates at the cost of a few contractions.

/// Matrix product of 2-D variables, C = op(A)·op(B), op transposing when the flag is set.
///
/// VJP: ∂op(A) = G·op(B)ᵀ and ∂op(B) = op(A)ᵀ·G, each one BLAS GEMM with the transposes passed to BLAS
/// (never copied).
///
/// - Precondition: both operands are matrices with matching inner dimensions (as `Tensor.matmul`).
public func matmul<Scalar>(_ a: Variable<Scalar>, _ b: Variable<Scalar>, transposeA: Bool = false,
                           transposeB: Bool = false) -> Variable<Scalar> {
    let (x, y) = (a.value, b.value)
    let (needA, needB) = (a.isRecorded, b.isRecorded)
    return recordOperation(Tensor.matmul(x, y, transposeA: transposeA, transposeB: transposeB), inputs: [a, b]) { g in
        [needA ? matmulGradientA(g, y, transposeA: transposeA, transposeB: transposeB, batched: false) : nil,
         needB ? matmulGradientB(g, x, transposeA: transposeA, transposeB: transposeB, batched: false) : nil]
    }
}

/// ∂ℓ/∂A for C = op(A)·op(B): G·op(B)ᵀ, transposed back when A was transposed.
private func matmulGradientA<Scalar>(_ g: Tensor<Scalar>, _ b: Tensor<Scalar>, transposeA: Bool, transposeB: Bool,
                                     batched: Bool) -> Tensor<Scalar> {
    let product: (Tensor<Scalar>, Tensor<Scalar>, Bool, Bool) -> Tensor<Scalar> = batched
        ? { Tensor.batchedMatmul($0, $1, transposeA: $2, transposeB: $3) }
        : { Tensor.matmul($0, $1, transposeA: $2, transposeB: $3) }
    switch (transposeA, transposeB) {
    case (false, false): return product(g, b, false, true)   // G·Bᵀ
    case (false, true): return product(g, b, false, false)   // G·B
    case (true, false): return product(b, g, false, true)    // (G·Bᵀ)ᵀ = B·Gᵀ
    case (true, true): return product(b, g, true, true)      // (G·B)ᵀ = Bᵀ·Gᵀ
    }
}

/// ∂ℓ/∂B for C = op(A)·op(B): op(A)ᵀ·G, transposed back when B was transposed.
private func matmulGradientB<Scalar>(_ g: Tensor<Scalar>, _ a: Tensor<Scalar>, transposeA: Bool, transposeB: Bool,
                                     batched: Bool) -> Tensor<Scalar> {
    let product: (Tensor<Scalar>, Tensor<Scalar>, Bool, Bool) -> Tensor<Scalar> = batched
        ? { Tensor.batchedMatmul($0, $1, transposeA: $2, transposeB: $3) }
        : { Tensor.matmul($0, $1, transposeA: $2, transposeB: $3) }
    switch (transposeA, transposeB) {
    case (false, false): return product(a, g, true, false)   // Aᵀ·G
    case (true, false): return product(a, g, false, false)   // A·G
    case (false, true): return product(g, a, true, false)    // (Aᵀ·G)ᵀ = Gᵀ·A
    case (true, true): return product(g, a, true, true)      // (A·G)ᵀ = Gᵀ·Aᵀ
    }
}

/// Matrix product over the last two dimensions, batched over the leading ones with broadcasting (as
/// `Tensor.batchedMatmul`).
///
/// VJP: the per-batch gradients of `matmul`, each computed as one batched GEMM, then summed over the batch
/// dimensions an operand was broadcast along (`reduceToShape`). When B is a plain matrix shared by every batch
/// entry and A is not transposed, ∂B is a single GEMM over the flattened batch, Σ_t A_tᵀ·G_t = A_flatᵀ·G_flat.
///
/// - Precondition: both operands have two or more dimensions, matching inner dimensions and broadcastable
///   batch dimensions.
public func batchedMatmul<Scalar>(_ a: Variable<Scalar>, _ b: Variable<Scalar>, transposeA: Bool = false,
                                  transposeB: Bool = false) -> Variable<Scalar> {
    let (x, y) = (a.value, b.value)
    if x.rank == 2 && y.rank == 2 { return matmul(a, b, transposeA: transposeA, transposeB: transposeB) }
    let (needA, needB) = (a.isRecorded, b.isRecorded)
    let output = Tensor.batchedMatmul(x, y, transposeA: transposeA, transposeB: transposeB)
    return recordOperation(output, inputs: [a, b]) { g in
        var gradA: Tensor<Scalar>? = nil, gradB: Tensor<Scalar>? = nil
        if needA {
            gradA = reduceToShape(matmulGradientA(g, y, transposeA: transposeA, transposeB: transposeB, batched: true),
                                  x.shape)
        }
        if needB {
            if y.rank == 2 && !transposeA {
                // Shared weight: flatten the batch of A (…, m, k) and G (…, m, n) into rows.
                let k = x.shape[x.rank - 1], n = g.shape[g.rank - 1]
                let flatA = x.reshaped([-1, k]), flatG = g.reshaped([-1, n])
                gradB = transposeB ? Tensor.matmul(flatG, flatA, transposeA: true) : Tensor.matmul(flatA, flatG, transposeA: true)
            } else {
                gradB = reduceToShape(matmulGradientB(g, x, transposeA: transposeA, transposeB: transposeB, batched: true),
                                      y.shape)
            }
        }
        return [gradA, gradB]
    }
}

/// Einstein summation of variables (NumPy semantics without ellipsis, see `EinsumExpression`), along the
/// cheapest contraction path.
///
/// `einsum("bi,ij->bj", x, w)` is a linear layer; `einsum("bi,aij,bjc->...")`-style chains contract the cores
/// of a factorized layer with its input.
///
/// - Precondition: the specification matches the operands (see `EinsumExpression.init(_:shapes:)`).
public func einsum<Scalar>(_ spec: String, _ operands: Variable<Scalar>...) -> Variable<Scalar> {
    einsum(EinsumExpression.parsed(spec, shapes: operands.map { $0.shape }), operands, path: nil)
}

/// Einstein summation of an array of variables, along `path` when given.
///
/// - Precondition: the specification matches the operands, and `path` has one valid pair per contraction.
public func einsum<Scalar>(_ spec: String, _ operands: [Variable<Scalar>], path: ContractionPath? = nil) -> Variable<Scalar> {
    einsum(EinsumExpression.parsed(spec, shapes: operands.map { $0.shape }), operands, path: path)
}

/// Evaluates a parsed einsum expression on variables (reuse one expression and path for a layer that runs the
/// same contraction every step).
///
/// With three or more operands the contraction is recorded step by step along `path` (by default the cheapest
/// one): each single-operand reduction and each pairwise contraction is its own operation on the tape, so the
/// backward pass is the reverse sweep over the same steps, two pairwise contractions per step (exactly twice the
/// forward multiply-adds, METHODS §0.3 Rule C5), with the intermediates kept from the forward pass. Recomputing
/// the whole chain once per operand would cost about one forward pass per operand instead.
///
/// VJP of one step: the output is multilinear in the operands, so with G = ∂ℓ/∂output (indices `o`) and operand
/// k carrying indices `iₖ`, ∂ℓ/∂Aₖ = einsum("o, i₁, …, (skip k), …, iₙ -> iₖ", G, A₁, …, Aₙ): the same
/// contraction with the roles of the output and operand k swapped. Two index patterns need more than the swap:
/// * an index that occurs only in operand k (summed out of it alone) cannot appear in the swapped output; the
///   gradient does not depend on it and is broadcast along it;
/// * a repeated index in operand k (a diagonal, "ii->i") gives a gradient that is zero off the diagonal; the
///   swapped einsum computes the distinct-index tensor, which is scattered onto the diagonal.
///
/// - Precondition: the operand shapes equal `expression.shapes`; `path` (if any) is valid for it.
public func einsum<Scalar>(_ expression: EinsumExpression, _ operands: [Variable<Scalar>],
                           path: ContractionPath? = nil) -> Variable<Scalar> {
    precondition(operands.map { $0.shape } == expression.shapes,
                 "einsum \"\(expression.spec)\": operand shapes \(operands.map { $0.shape }) differ from the expression's \(expression.shapes)")
    guard operands.count > 2 else { return einsumOperation(expression, operands, path: path) }
    let plan = recordedSteps(expression, pairs: (path ?? expression.cachedOptimalPath()).pairs)
    var current = operands
    for (k, reduction) in plan.reductions { current[k] = einsumOperation(reduction, [operands[k]], path: nil) }
    for (i, j, pair) in plan.steps {
        let result = einsumOperation(pair, [current[i], current[j]], path: nil)
        for position in [i, j].sorted(by: >) { current.remove(at: position) }
        current.append(result)
    }
    return plan.final.map { einsumOperation($0, [current[0]], path: nil) } ?? current[0]
}

/// The operations `einsum(_:_:path:)` records along `pairs`, as expressions of their own: the reductions (operand
/// position, expression), the pairwise steps (positions, expression) and the final permute to output order if one
/// is needed. Each step keeps the GEMM's own result order; the output order is one permute at the end, so its VJP
/// permutes G once rather than once per operand of the last step. Derived once per specification, shapes and pairs
/// (`EinsumPlans`; a path may come from another batch size, so the steps are re-derived for these shapes).
private struct RecordedSteps {
    var reductions: [(Int, EinsumExpression)] = []
    var steps: [(Int, Int, EinsumExpression)] = []
    var final: EinsumExpression?
}

private func recordedSteps(_ expression: EinsumExpression, pairs: [(Int, Int)]) -> RecordedSteps {
    let key = EinsumPlans.Key(kind: .recordedSteps, spec: expression.spec, shapes: expression.shapes,
                              extra: pairs.flatMap { [$0.0, $0.1] })
    return EinsumPlans.shared.memo(key) {
        let path = expression.path(pairs: pairs)
        var plan = RecordedSteps()
        var current = expression.inputs.indices.map { (shape: expression.shapes[$0], indices: expression.inputs[$0]) }
        for step in path.reductions {
            let k = step.positions[0]
            plan.reductions.append((k, EinsumExpression(String(step.operandIndices[0]) + "->" + String(step.resultIndices),
                                                        shapes: [current[k].shape])))
            current[k] = (step.resultIndices.map { expression.sizes[$0]! }, step.resultIndices)
        }
        for step in path.steps {
            let (i, j) = (step.positions[0], step.positions[1])
            let pair = EinsumExpression(String(current[i].indices) + "," + String(current[j].indices) + "->" + String(step.resultIndices),
                                        shapes: [current[i].shape, current[j].shape])
            plan.steps.append((i, j, pair))
            for position in [i, j].sorted(by: >) { current.remove(at: position) }
            current.append((pair.outputShape, step.resultIndices))
        }
        let (shape, indices) = current[0]
        if indices != expression.output {
            plan.final = EinsumExpression(String(indices) + "->" + String(expression.output), shapes: [shape])
        }
        return plan
    }
}

/// One einsum as one operation on the tape (its VJP as documented on `einsum(_:_:path:)`).
private func einsumOperation<Scalar>(_ expression: EinsumExpression, _ operands: [Variable<Scalar>],
                                     path: ContractionPath?) -> Variable<Scalar> {
    let values = operands.map { $0.value }
    let output = expression.evaluate(values, path: path)
    let needed = operands.map { $0.isRecorded }
    return recordOperation(output, inputs: operands) { g in
        (0..<values.count).map { k in
            needed[k] ? einsumOperandGradient(expression, operand: k, outputGradient: g, values: values) : nil
        }
    }
}

/// ∂ℓ/∂(operand k) of an einsum given the output gradient (see `einsum(_:_:path:)` for the construction).
func einsumOperandGradient<Scalar>(_ expression: EinsumExpression, operand k: Int, outputGradient g: Tensor<Scalar>,
                                   values: [Tensor<Scalar>]) -> Tensor<Scalar> {
    let term = expression.inputs[k]
    let key = EinsumPlans.Key(kind: .gradient, spec: expression.spec, shapes: expression.shapes, extra: [k])
    let (swapped, distinct, kept) = EinsumPlans.shared.memo(key) {
        var elsewhere = Set(expression.output)
        for (j, other) in expression.inputs.enumerated() where j != k { elsewhere.formUnion(other) }
        var seen = Set<Character>()
        let distinct = term.filter { seen.insert($0).inserted }
        let kept = distinct.filter { elsewhere.contains($0) }
        var terms = [String(expression.output)]
        var shapes = [expression.outputShape]
        for (j, other) in expression.inputs.enumerated() where j != k {
            terms.append(String(other))
            shapes.append(expression.shapes[j])
        }
        return (EinsumExpression(terms.joined(separator: ",") + "->" + String(kept), shapes: shapes), distinct, kept)
    }
    var operands = [g]
    for j in values.indices where j != k { operands.append(values[j]) }
    var result = swapped.evaluate(operands, path: swapped.cachedOptimalPath())
    let distinctShape = distinct.map { expression.sizes[$0]! }
    if kept.count != distinct.count {
        // Indices private to operand k: the gradient is constant along them.
        let expanded = distinct.map { kept.contains($0) ? expression.sizes[$0]! : 1 }
        result = broadcast(result.reshaped(expanded), to: distinctShape)
    }
    if distinct.count != term.count {
        result = scatterDiagonal(result, distinct: distinct, onto: term, shape: values[k].shape)
    }
    return result
}

/// A tensor of `shape` (dimensions labelled `term`, with repeats) that is zero except where all dimensions
/// with the same label have equal indices; there it holds `source` (dimensions labelled `distinct`).
private func scatterDiagonal<Scalar>(_ source: Tensor<Scalar>, distinct: [Character], onto term: [Character],
                                     shape: [Int]) -> Tensor<Scalar> {
    let strides = Tensor<Scalar>.strides(for: shape)
    let diagonalStrides = distinct.map { letter in
        term.indices.filter { term[$0] == letter }.reduce(0) { $0 + strides[$1] }
    }
    let sourceShape = source.shape
    var result = Tensor<Scalar>.zeros(shape)
    guard source.scalarCount > 0 else { return result }
    result.withUnsafeMutableBufferPointer { out in
        source.withUnsafeBufferPointer { src in
            let rank = sourceShape.count
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            for n in 0..<src.count {
                out[offset] = src[n]
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    offset += diagonalStrides[d]
                    if index[d] < sourceShape[d] { break }
                    offset -= diagonalStrides[d] * sourceShape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
    return result
}
