import Dispatch

extension Tensor {
    /// The same scalars viewed with another shape of the same size. One dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        if let inferred = shape.firstIndex(of: -1) {
            precondition(shape.filter { $0 == -1 }.count == 1, "reshaped: only one -1 allowed in \(newShape)")
            let known = shape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && scalarCount % known == 0,
                         "reshaped: cannot infer a dimension of \(newShape) from \(scalarCount) scalars (shape \(self.shape))")
            shape[inferred] = scalarCount / known
        }
        precondition(shape.reduce(1, *) == scalarCount,
                     "reshaped: shape \(newShape) holds \(shape.reduce(1, *)) scalars but tensor \(self.shape) has \(scalarCount)")
        return Tensor(shape: shape, storage: storage)
    }

    /// Removes size-1 dimensions (all of them, or the given axes).
    public func squeezed(axes: [Int]? = nil) -> Tensor {
        let drop = Set((axes ?? shape.indices.filter { shape[$0] == 1 }).map { normalizeAxis($0) })
        for axis in drop {
            precondition(shape[axis] == 1, "squeezed: axis \(axis) of shape \(shape) has size \(shape[axis]), not 1")
        }
        return reshaped(shape.indices.filter { !drop.contains($0) }.map { shape[$0] })
    }

    /// Inserts a size-1 dimension at `axis` (0...rank).
    public func expandingShape(at axis: Int) -> Tensor {
        let position = axis < 0 ? axis + rank + 1 : axis
        precondition(position >= 0 && position <= rank, "expandingShape: axis \(axis) out of range for shape \(shape)")
        var newShape = shape
        newShape.insert(1, at: position)
        return reshaped(newShape)
    }

    /// Maps a possibly negative axis into 0..<rank.
    public func normalizeAxis(_ axis: Int) -> Int {
        let result = axis < 0 ? axis + rank : axis
        precondition(result >= 0 && result < rank, "axis \(axis) out of range for shape \(shape)")
        return result
    }

    /// The matrix transpose of a 2-D tensor.
    public var transposed: Tensor {
        precondition(rank == 2, "transposed: expected a matrix, got shape \(shape)")
        return permuted([1, 0])
    }

    /// Reorders the dimensions: result dimension k is input dimension `permutation[k]`.
    ///
    /// Adjacent dimensions that stay adjacent are merged first. Large `Float` copies go to oneDNN's reorder
    /// (`DNNLPermute`), which runs on the OpenMP team the GEMMs use: from 16 K scalars when the innermost
    /// dimension moves and from 128 K when it stays. Measured at 2 threads, kernel below → reorder:
    /// [256,4,8,8,4] → (0,4,1,3,2) 172 → 43 µs, [32,32,32,32] → (0,2,1,3) 241 → 162 µs, but [64,16,32] → (1,0,2)
    /// (32 K scalars in rows of 32) 7.9 → 17.4 µs. Everything else runs as contiguous row copies when the last
    /// dimension stays last, and otherwise as a 2-D transpose in 32×32 tiles between the input's and the
    /// output's innermost dimensions, so both sides stream through cache lines.
    public func permuted(_ permutation: [Int]) -> Tensor {
        precondition(permutation.count == rank && Set(permutation) == Set(0..<rank),
                     "permuted: \(permutation) is not a permutation of the \(rank) axes of shape \(shape)")
        let newShape = permutation.map { shape[$0] }
        if permutation == Array(0..<rank) || scalarCount <= 1 { return reshaped(newShape) }
        // Merge runs of axes that are consecutive in both orders and drop size-1 axes.
        var groups: [[Int]] = []
        for axis in permutation where shape[axis] != 1 {
            if let last = groups.last?.last, last + 1 == axis { groups[groups.count - 1].append(axis) }
            else { groups.append([axis]) }
        }
        let order = groups.map { $0[0] }.sorted()
        let mergedInShape = order.map { first in groups.first { $0[0] == first }!.reduce(1) { $0 * shape[$1] } }
        let mergedPermutation = groups.map { group in order.firstIndex(of: group[0])! }
        return Tensor(shape: newShape) { out in
            withUnsafeBufferPointer { src in
                // Copy bit patterns through a concrete type so the kernel is specialized even when this generic
                // method is called unspecialized from another module.
                let from = UnsafeRawPointer(src.baseAddress!), to = UnsafeMutableRawPointer(out.baseAddress!)
                if MemoryLayout<Scalar>.stride == 4 {
                    let innermostStays = mergedPermutation.last == mergedPermutation.count - 1
                    if scalarCount >= (innermostStays ? 1 << 17 : 1 << 14)
                        && DNNLPermute.permute(shape: mergedInShape, permutation: mergedPermutation, src: from, dst: to) {
                        return
                    }
                    permuteKernel(src: from.assumingMemoryBound(to: UInt32.self), dst: to.assumingMemoryBound(to: UInt32.self),
                                  shape: mergedInShape, permutation: mergedPermutation)
                } else {
                    permuteKernel(src: from.assumingMemoryBound(to: UInt64.self), dst: to.assumingMemoryBound(to: UInt64.self),
                                  shape: mergedInShape, permutation: mergedPermutation)
                }
            }
        }
    }

    /// Copies the elements of `[start, start+count)` along `axis`.
    public func slice(axis: Int, start: Int, count: Int) -> Tensor {
        let axis = normalizeAxis(axis)
        precondition(start >= 0 && count >= 0 && start + count <= shape[axis],
                     "slice: range \(start)..<\(start + count) out of bounds for axis \(axis) of shape \(shape)")
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var newShape = shape
        newShape[axis] = count
        return Tensor(shape: newShape) { out in
            withUnsafeBufferPointer { src in
                let block = count * inner
                for o in 0..<outer where block > 0 {
                    (out.baseAddress! + o * block).update(from: src.baseAddress! + (o * shape[axis] + start) * inner,
                                                         count: block)
                }
            }
        }
    }

    /// Copies the elements of `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        slice(axis: axis, start: range.lowerBound, count: range.count)
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenate: no tensors given")
        let first = tensors[0]
        let axis = first.normalizeAxis(axis)
        for t in tensors {
            precondition(t.rank == first.rank && t.shape.indices.allSatisfy { $0 == axis || t.shape[$0] == first.shape[$0] },
                         "concatenate: shapes \(first.shape) and \(t.shape) differ outside axis \(axis)")
        }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        var newShape = first.shape
        newShape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        let total = newShape[axis] * inner
        return Tensor(shape: newShape) { out in
            var offset = 0
            for t in tensors {
                let block = t.shape[axis] * inner
                t.withUnsafeBufferPointer { src in
                    for o in 0..<outer where block > 0 {
                        (out.baseAddress! + o * total + offset).update(from: src.baseAddress! + o * block, count: block)
                    }
                }
                offset += block
            }
        }
    }

    /// Stacks equally shaped tensors along a new axis.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stack: no tensors given")
        let shape = tensors[0].shape
        for t in tensors { precondition(t.shape == shape, "stack: shapes \(shape) and \(t.shape) differ") }
        return concatenate(tensors.map { $0.expandingShape(at: axis) }, axis: axis)
    }
}

/// Copies `src` (row-major `shape`) into `dst` laid out with axes reordered by `permutation`.
/// `shape` has no size-1 axes and no two axes that stay adjacent (see `permuted`).
///
/// The output is split along its first axis across `LinearAlgebraThreads.count` workers for large tensors.
/// Each worker copies contiguous rows when the innermost axis stays innermost, and otherwise transposes
/// 16×16 tiles between the input-contiguous and the output-contiguous axes.
private func permuteKernel<T: FixedWidthInteger>(src: UnsafePointer<T>, dst: UnsafeMutablePointer<T>, shape: [Int],
                                                 permutation: [Int]) {
    let n = shape.count
    if n == 1 { dst.update(from: src, count: shape[0]); return }
    let inStrides = Tensor<Float>.strides(for: shape)
    let outShape = permutation.map { shape[$0] }
    let outStrides = Tensor<Float>.strides(for: outShape)
    // Strides of the input, listed in output-axis order.
    let gather = permutation.map { inStrides[$0] }
    let total = shape.reduce(1, *)
    let workers = total >= 1 << 18 ? Swift.min(LinearAlgebraThreads.count, outShape[0]) : 1
    let send = (src: UInt(bitPattern: src), dst: UInt(bitPattern: dst))
    let run: @Sendable (Int) -> Void = { worker in
        let lo = outShape[0] * worker / workers, hi = outShape[0] * (worker + 1) / workers
        permuteRange(src: UnsafePointer<T>(bitPattern: send.src)!, dst: UnsafeMutablePointer<T>(bitPattern: send.dst)!,
                     outShape: outShape, outStrides: outStrides, gather: gather, axis0: lo..<hi)
    }
    if workers > 1 { DispatchQueue.concurrentPerform(iterations: workers, execute: run) } else { run(0) }
}

/// The serial part of `permuteKernel` for output-axis-0 indices in `axis0`.
private func permuteRange<T: FixedWidthInteger>(src: UnsafePointer<T>, dst: UnsafeMutablePointer<T>, outShape: [Int],
                                                outStrides: [Int], gather: [Int], axis0: Range<Int>) {
    let n = outShape.count
    // q: the output axis that is contiguous in the input (input stride 1).
    let q = gather.firstIndex(of: 1)!
    if q == n - 1 {
        // The innermost axis stays innermost: contiguous row copies, looping axis n-2 by pointer strides
        // (merging guarantees n ≥ 3 here, so axis 0 is among the outer axes).
        let rowLength = outShape[n - 1]
        let loopCount = outShape[n - 2]
        let loopIn = gather[n - 2], loopOut = outStrides[n - 2]
        if rowLength < 16 {
            // Short rows (a 2–8 wide mode kept innermost): inline copies instead of a memmove call per row, and
            // axis n-3 looped here too when it is not axis 0, so each call of the body copies more than a few rows.
            let third = n >= 4 ? n - 3 : nil
            let outerCount = third.map { outShape[$0] } ?? 1
            let outerIn = third.map { gather[$0] } ?? 0, outerOut = third.map { outStrides[$0] } ?? 0
            forEachOuterOffset(outShape: outShape, outStrides: outStrides, gather: gather,
                               skipping: Set([n - 2, n - 1] + (third.map { [$0] } ?? [])), axis0: axis0) { inBase, outBase in
                for o in 0..<outerCount {
                    var s = src + inBase + o * outerIn, d = dst + outBase + o * outerOut
                    for _ in 0..<loopCount {
                        for t in 0..<rowLength { d[t] = s[t] }
                        s += loopIn
                        d += loopOut
                    }
                }
            }
            return
        }
        forEachOuterOffset(outShape: outShape, outStrides: outStrides, gather: gather,
                           skipping: [n - 2, n - 1], axis0: axis0) { inBase, outBase in
            var s = src + inBase, d = dst + outBase
            for _ in 0..<loopCount {
                d.update(from: s, count: rowLength)
                s += loopIn
                d += loopOut
            }
        }
        return
    }
    // Tiled transpose between output axes q (rows, input-contiguous) and n-1 (columns, output-contiguous).
    let rowsRange = q == 0 ? axis0 : 0..<outShape[q]
    let cols = outShape[n - 1]
    let rowOut = outStrides[q], colIn = gather[n - 1]
    // Two levels: 128×128 blocks keep the pages of one block's rows within the TLB, 16×16 tiles keep
    // both sides' cache lines in L1.
    let tile = 16, block = 128
    forEachOuterOffset(outShape: outShape, outStrides: outStrides, gather: gather, skipping: [q, n - 1],
                       axis0: axis0) { inBase, outBase in
        if cols < tile {
            // A short output-contiguous axis (a factor's 2–8 wide rank moved innermost): one pass per column,
            // reading a whole input row and writing into the same few output cache lines.
            for c in 0..<cols {
                let s = src + inBase + c * colIn, d = dst + outBase + c
                for r in rowsRange { d[r * rowOut] = s[r] }
            }
            return
        }
        for rb in stride(from: rowsRange.lowerBound, to: rowsRange.upperBound, by: block) {
            let rbEnd = Swift.min(rb + block, rowsRange.upperBound)
            for cb in stride(from: 0, to: cols, by: block) {
                let cbEnd = Swift.min(cb + block, cols)
                for r0 in stride(from: rb, to: rbEnd, by: tile) {
                    let r1 = Swift.min(r0 + tile, rbEnd)
                    for c0 in stride(from: cb, to: cbEnd, by: tile) {
                        let c1 = Swift.min(c0 + tile, cbEnd)
                        for r in r0..<r1 {
                            let s = src + inBase + r
                            let d = dst + outBase + r * rowOut
                            for c in c0..<c1 { d[c] = s[c * colIn] }
                        }
                    }
                }
            }
        }
    }
}

/// Calls `body(inputOffset, outputOffset)` for every combination of the output axes not in `skipping`
/// (axis 0 limited to `axis0` unless skipped).
private func forEachOuterOffset(outShape: [Int], outStrides: [Int], gather: [Int], skipping: Set<Int>,
                                axis0: Range<Int>, _ body: (Int, Int) -> Void) {
    let axes = outShape.indices.filter { !skipping.contains($0) }
    let lower = axes.map { $0 == 0 ? axis0.lowerBound : 0 }
    let upper = axes.map { $0 == 0 ? axis0.upperBound : outShape[$0] }
    if lower.indices.contains(where: { lower[$0] >= upper[$0] }) { return }
    var index = lower
    while true {
        var inBase = 0, outBase = 0
        for (k, axis) in axes.enumerated() {
            inBase += index[k] * gather[axis]
            outBase += index[k] * outStrides[axis]
        }
        body(inBase, outBase)
        var k = axes.count - 1
        while k >= 0 {
            index[k] += 1
            if index[k] < upper[k] { break }
            index[k] = lower[k]
            k -= 1
        }
        if k < 0 { return }
    }
}
