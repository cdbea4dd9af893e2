import TensorCore

// Shape operations: each moves or selects scalars without arithmetic, so each VJP moves the gradient back.

extension Variable {
    /// The same scalars with another shape of the same size (one dimension may be -1): ∂/∂x = g reshaped back.
    ///
    /// - Precondition: the new shape holds as many scalars as the old one.
    public func reshaped(_ newShape: [Int]) -> Variable {
        let old = shape
        return recordOperation(value.reshaped(newShape), inputs: [self]) { g in [g.reshaped(old)] }
    }

    /// Flattens every dimension from `axis` on into one (`[B, C, H, W]` → `[B, C·H·W]` for axis 1).
    public func flattened(from axis: Int = 1) -> Variable {
        precondition(axis >= 0 && axis <= shape.count, "flattened(from:): axis \(axis) out of range for shape \(shape)")
        return reshaped(Array(shape[..<axis]) + [shape[axis...].reduce(1, *)])
    }

    /// Reorders the dimensions (result dimension k is input dimension `permutation[k]`): ∂/∂x = g permuted by
    /// the inverse permutation.
    ///
    /// - Precondition: `permutation` is a permutation of the axes.
    public func permuted(_ permutation: [Int]) -> Variable {
        let output = value.permuted(permutation)
        var inverse = [Int](repeating: 0, count: permutation.count)
        for (k, axis) in permutation.enumerated() { inverse[axis] = k }
        return recordOperation(output, inputs: [self]) { g in [g.permuted(inverse)] }
    }

    /// The matrix transpose of a 2-D variable.
    public var transposed: Variable {
        precondition(shape.count == 2, "transposed: expected a matrix, got shape \(shape)")
        return permuted([1, 0])
    }

    /// Removes size-1 dimensions (all, or the given axes): ∂/∂x = g reshaped back.
    public func squeezed(axes: [Int]? = nil) -> Variable {
        let old = shape
        return recordOperation(value.squeezed(axes: axes), inputs: [self]) { g in [g.reshaped(old)] }
    }

    /// Inserts a size-1 dimension at `axis` (0...rank): ∂/∂x = g reshaped back.
    public func expandingShape(at axis: Int) -> Variable {
        let old = shape
        return recordOperation(value.expandingShape(at: axis), inputs: [self]) { g in [g.reshaped(old)] }
    }

    /// Repeats the value along broadcast axes to `shape` (NumPy rules): ∂/∂x = Σ_broadcast g.
    ///
    /// - Precondition: the variable's shape broadcasts to `shape`.
    public func broadcasted(to newShape: [Int]) -> Variable {
        let old = shape
        return recordOperation(broadcast(value, to: newShape), inputs: [self]) { g in [reduceToShape(g, old)] }
    }

    /// The elements `[start, start+count)` along `axis`: ∂/∂x is g placed in that range, zero elsewhere.
    ///
    /// - Precondition: the range lies inside the axis.
    public func slice(axis: Int, start: Int, count: Int) -> Variable {
        let output = value.slice(axis: axis, start: start, count: count)
        let old = shape
        let axis = value.normalizeAxis(axis)
        return recordOperation(output, inputs: [self]) { g in
            [embed(g, into: old, axis: axis, offset: start)]
        }
    }

    /// The elements of `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Variable {
        slice(axis: axis, start: range.lowerBound, count: range.count)
    }

    /// Joins variables along an existing axis (all other dimensions equal): each input's gradient is its slice
    /// of g.
    ///
    /// - Precondition: `variables` is not empty; shapes agree outside `axis`.
    public static func concatenate(_ variables: [Variable], axis: Int) -> Variable {
        precondition(!variables.isEmpty, "concatenate: no variables given")
        let values = variables.map { $0.value }
        let output = Tensor.concatenate(values, axis: axis)
        let axis = values[0].normalizeAxis(axis)
        let sizes = values.map { $0.shape[axis] }
        let needed = variables.map { $0.isRecorded }
        return recordOperation(output, inputs: variables) { g in
            var start = 0
            return sizes.indices.map { k in
                defer { start += sizes[k] }
                return needed[k] ? g.slice(axis: axis, start: start, count: sizes[k]) : nil
            }
        }
    }

    /// Stacks equally shaped variables along a new axis.
    public static func stack(_ variables: [Variable], axis: Int = 0) -> Variable {
        precondition(!variables.isEmpty, "stack: no variables given")
        return concatenate(variables.map { $0.expandingShape(at: axis) }, axis: axis)
    }
}

/// Joins variables along an existing axis (`Variable.concatenate`).
public func concatenate<Scalar>(_ variables: [Variable<Scalar>], axis: Int) -> Variable<Scalar> {
    Variable.concatenate(variables, axis: axis)
}

/// A zero tensor of `shape` with `part` copied in at `offset` along `axis` (the adjoint of `slice`).
func embed<Scalar>(_ part: Tensor<Scalar>, into shape: [Int], axis: Int, offset: Int) -> Tensor<Scalar> {
    let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
    let full = shape[axis], count = part.shape[axis]
    var result = Tensor<Scalar>.zeros(shape)
    let block = count * inner
    guard block > 0 else { return result }
    result.withUnsafeMutableBufferPointer { out in
        part.withUnsafeBufferPointer { src in
            for o in 0..<outer {
                (out.baseAddress! + (o * full + offset) * inner).update(from: src.baseAddress! + o * block, count: block)
            }
        }
    }
    return result
}
