import TensorCore

// Reductions: sums and means spread the gradient evenly back over the reduced axes; a maximum sends it to the
// position of the maximum.

extension Variable {
    /// The sum of all elements, as a rank-0 variable: ∂/∂x = g everywhere.
    public func sum() -> Variable {
        let old = shape
        return recordOperation(Tensor(scalar: value.sum()), inputs: [self]) { g in [broadcast(g.reshaped([]), to: old)] }
    }

    /// The mean of all elements, as a rank-0 variable: ∂/∂x = g/n everywhere.
    ///
    /// - Precondition: the variable is not empty.
    public func mean() -> Variable {
        precondition(value.scalarCount > 0, "mean: the variable of shape \(shape) is empty")
        let old = shape, n = Scalar(value.scalarCount)
        return recordOperation(Tensor(scalar: value.sum() / n), inputs: [self]) { g in
            [broadcast(g.reshaped([]) / n, to: old)]
        }
    }

    /// Sums along `axes` (negative axes count from the end), keeping them as size-1 dimensions or removing
    /// them: ∂/∂x = g repeated along the summed axes.
    public func sum(axes: [Int], keepingDimensions: Bool = false) -> Variable {
        let old = shape
        let kept = keptShape(axes)
        return recordOperation(sumToShape(axes, keepingDimensions: keepingDimensions), inputs: [self]) { g in
            [broadcast(g.reshaped(kept), to: old)]
        }
    }

    /// Sums along `axes`, keeping them as size-1 dimensions.
    public func sum(alongAxes axes: Int...) -> Variable { sum(axes: axes, keepingDimensions: true) }

    /// Sums along `axes`, removing them.
    public func sum(squeezingAxes axes: Int...) -> Variable { sum(axes: axes, keepingDimensions: false) }

    /// Means along `axes`: ∂/∂x = g/n repeated along the reduced axes, n the number of averaged elements.
    public func mean(axes: [Int], keepingDimensions: Bool = false) -> Variable {
        let old = shape
        let kept = keptShape(axes)
        let n = Scalar(Set(axes.map { value.normalizeAxis($0) }).reduce(1) { $0 * old[$1] })
        return recordOperation(sumToShape(axes, keepingDimensions: keepingDimensions) / n, inputs: [self]) { g in
            [broadcast(g.reshaped(kept) / n, to: old)]
        }
    }

    /// Means along `axes`, keeping them as size-1 dimensions.
    public func mean(alongAxes axes: Int...) -> Variable { mean(axes: axes, keepingDimensions: true) }

    /// Means along `axes`, removing them.
    public func mean(squeezingAxes axes: Int...) -> Variable { mean(axes: axes, keepingDimensions: false) }

    /// The maximum along `axis`: ∂/∂x is g at the position of the maximum (the first one on ties), zero
    /// elsewhere.
    ///
    /// - Precondition: the axis is in range and not empty.
    public func max(axis: Int, keepingDimensions: Bool = false) -> Variable {
        let axis = value.normalizeAxis(axis)
        let old = shape
        let n = old[axis], inner = old[(axis + 1)...].reduce(1, *)
        let arg = value.argmax(axis: axis)
        let output = value.max(axes: [axis], keepingDimensions: keepingDimensions)
        return recordOperation(output, inputs: [self]) { g in
            var result = Tensor<Scalar>.zeros(old)
            result.withUnsafeMutableBufferPointer { out in
                g.withUnsafeBufferPointer { src in
                    for (position, k) in arg.enumerated() {
                        let o = position / inner, j = position % inner
                        out[(o * n + k) * inner + j] = src[position]
                    }
                }
            }
            return [result]
        }
    }

    /// The value summed down to `kept` (the shape with reduced axes as size 1), those axes removed unless
    /// `keepingDimensions` (BLAS row/column sums for the common layouts, see `reduceToShape`).
    private func sumToShape(_ axes: [Int], keepingDimensions: Bool) -> Tensor<Scalar> {
        let reduced = Set(axes.map { value.normalizeAxis($0) })
        let summed = reduceToShape(value, keptShape(axes))
        if keepingDimensions { return summed }
        return summed.reshaped(shape.indices.filter { !reduced.contains($0) }.map { shape[$0] })
    }

    /// The shape after summing `axes` with the dimensions kept as size 1.
    private func keptShape(_ axes: [Int]) -> [Int] {
        var kept = shape
        for axis in axes { kept[value.normalizeAxis(axis)] = 1 }
        return kept
    }
}
