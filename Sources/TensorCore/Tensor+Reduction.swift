extension Tensor {
    /// Sum of all scalars, accumulated in 16-wide SIMD lanes.
    public func sum() -> Scalar {
        withUnsafeBufferPointer { Tensor.simdSum($0.baseAddress!, count: $0.count) }
    }

    /// Sum of squares of all scalars (squared Frobenius norm), in SIMD lanes.
    public func squaredNorm() -> Scalar {
        withUnsafeBufferPointer { buffer in
            let p = buffer.baseAddress!, n = buffer.count
            var acc = SIMD16<Scalar>(repeating: 0)
            var i = 0
            while i + 16 <= n {
                let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Scalar>.self)
                acc += v * v
                i += 16
            }
            var total = acc.sum()
            while i < n { total += p[i] * p[i]; i += 1 }
            return total
        }
    }

    /// Frobenius (Euclidean) norm of all scalars.
    public func frobeniusNorm() -> Scalar { squaredNorm().squareRoot() }

    /// Mean of all scalars.
    public func mean() -> Scalar { scalarCount == 0 ? .nan : sum() / Scalar(scalarCount) }

    /// Largest scalar (NaN if any scalar is NaN).
    public func max() -> Scalar {
        precondition(scalarCount > 0, "max: tensor of shape \(shape) is empty")
        return withUnsafeBufferPointer { $0.reduce(-Scalar.infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) } }
    }

    /// Smallest scalar (NaN if any scalar is NaN).
    public func min() -> Scalar {
        precondition(scalarCount > 0, "min: tensor of shape \(shape) is empty")
        return withUnsafeBufferPointer { $0.reduce(Scalar.infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) } }
    }

    @usableFromInline
    static func simdSum(_ p: UnsafePointer<Scalar>, count n: Int) -> Scalar {
        var acc = SIMD16<Scalar>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Scalar>.self)
            i += 16
        }
        var total = acc.sum()
        while i < n { total += p[i]; i += 1 }
        return total
    }

    /// Reduces axes [first, last] (consecutive) viewed as (outer, n, inner) with one specialized loop per kind.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    private func reduce(axes range: ClosedRange<Int>, kind: ReductionKind) -> Tensor {
        let outer = shape[..<range.lowerBound].reduce(1, *)
        let n = shape[range].reduce(1, *)
        let inner = shape[(range.upperBound + 1)...].reduce(1, *)
        var newShape = shape
        for axis in range { newShape[axis] = 1 }
        return Tensor(shape: newShape) { out in
            withUnsafeBufferPointer { src in
                let source = src.baseAddress!, destination = out.baseAddress!
                func run(initial: Scalar, _ combine: (Scalar, Scalar) -> Scalar) {
                    for o in 0..<outer {
                        let dst = destination + o * inner
                        dst.update(repeating: initial, count: inner)
                        for k in 0..<n {
                            let row = source + (o * n + k) * inner
                            for j in 0..<inner { dst[j] = combine(dst[j], row[j]) }
                        }
                    }
                }
                switch kind {
                case .sum:
                    if inner == 1 {
                        for o in 0..<outer { destination[o] = Tensor.simdSum(source + o * n, count: n) }
                    } else {
                        run(initial: 0) { $0 + $1 }
                    }
                case .max: run(initial: -.infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
                case .min: run(initial: .infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
                }
            }
        }
    }

    /// Reduces several axes: runs of consecutive axes are merged and reduced in one pass, innermost run first.
    private func reduce(axes: [Int], keepingDimensions: Bool, kind: ReductionKind) -> Tensor {
        let axes = Set(axes.map { normalizeAxis($0) })
        var runs: [ClosedRange<Int>] = []
        for axis in axes.sorted() {
            if let last = runs.last, last.upperBound + 1 == axis { runs[runs.count - 1] = last.lowerBound...axis }
            else { runs.append(axis...axis) }
        }
        var result = self
        for run in runs.reversed() { result = result.reduce(axes: run, kind: kind) }
        return keepingDimensions ? result : result.reshaped(shape.indices.filter { !axes.contains($0) }.map { shape[$0] })
    }

    private func inner(of axis: Int) -> Int { shape[(axis + 1)...].reduce(1, *) }

    /// Sums along `axes`, keeping them as size-1 dimensions.
    public func sum(alongAxes axes: Int...) -> Tensor { reduce(axes: axes, keepingDimensions: true, kind: .sum) }
    /// Sums along `axes`, removing them.
    public func sum(squeezingAxes axes: Int...) -> Tensor { reduce(axes: axes, keepingDimensions: false, kind: .sum) }
    /// Sums along `axes` given as an array.
    public func sum(axes: [Int], keepingDimensions: Bool) -> Tensor {
        reduce(axes: axes, keepingDimensions: keepingDimensions, kind: .sum)
    }

    /// Means along `axes`.
    public func mean(axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        let count = Set(axes.map { normalizeAxis($0) }).reduce(1) { $0 * shape[$1] }
        return sum(axes: axes, keepingDimensions: keepingDimensions) / Scalar(count)
    }

    /// Maxima along `axes`.
    public func max(axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        reduce(axes: axes, keepingDimensions: keepingDimensions, kind: .max)
    }

    /// Minima along `axes`.
    public func min(axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        reduce(axes: axes, keepingDimensions: keepingDimensions, kind: .min)
    }

    /// Euclidean norms along `axes`.
    public func norm(axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        squared().sum(axes: axes, keepingDimensions: keepingDimensions).sqrt()
    }

    /// Index of the largest entry along `axis` (first one on ties), with that axis removed.
    public func argmax(axis: Int) -> [Int] {
        let axis = normalizeAxis(axis)
        let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = self.inner(of: axis)
        precondition(n > 0, "argmax: axis \(axis) of shape \(shape) is empty")
        var result = [Int](repeating: 0, count: outer * inner)
        withUnsafeBufferPointer { src in
            for o in 0..<outer {
                for j in 0..<inner {
                    var best = src[o * n * inner + j], bestIndex = 0
                    for k in 1..<Swift.max(1, n) {
                        let v = src[(o * n + k) * inner + j]
                        if v > best { best = v; bestIndex = k }
                    }
                    result[o * inner + j] = bestIndex
                }
            }
        }
        return result
    }

    /// ‖self − other‖_F / ‖other‖_F (absolute error when `other` is zero).
    public func relativeError(to other: Tensor) -> Scalar {
        precondition(shape == other.shape, "relativeError: shapes \(shape) and \(other.shape) differ")
        let diff = (self - other).frobeniusNorm()
        let reference = other.frobeniusNorm()
        return reference == 0 ? diff : diff / reference
    }

    /// Largest absolute difference between corresponding scalars.
    public func maxAbsoluteDifference(to other: Tensor) -> Scalar {
        precondition(shape == other.shape, "maxAbsoluteDifference: shapes \(shape) and \(other.shape) differ")
        return zip(scalars, other.scalars).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
    }

    /// True when shapes match and every |a − b| ≤ absoluteTolerance + relativeTolerance·|b| (NumPy's isclose).
    public func isApproximatelyEqual(to other: Tensor, relativeTolerance: Scalar = Scalar.unitRoundoff.squareRoot(),
                                     absoluteTolerance: Scalar = 0) -> Bool {
        guard shape == other.shape else { return false }
        return zip(scalars, other.scalars).allSatisfy { a, b in
            Swift.abs(a - b) <= absoluteTolerance + relativeTolerance * Swift.abs(b)
        }
    }
}

/// The reductions with dedicated specialized loops.
enum ReductionKind: Sendable { case sum, max, min }
