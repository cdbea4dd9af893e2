import TensorCore

/// Naive references the fast paths are checked against.
enum Naive {
    /// All multi-indices of a shape in row-major order.
    static func indices(_ shape: [Int]) -> [[Int]] {
        let count = shape.reduce(1, *)
        guard count > 0 else { return [] }
        var result: [[Int]] = []
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            result.append(index)
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return result
    }

    static func matmul(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        let m = a.count, k = b.count, n = b.first?.count ?? 0
        return (0..<m).map { i in (0..<n).map { j in (0..<k).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
    }

    static func rows(_ t: Tensor<Double>) -> [[Double]] {
        precondition(t.rank == 2)
        return (0..<t.shape[0]).map { i in (0..<t.shape[1]).map { j in t[i, j] } }
    }

    static func transpose(_ a: [[Double]], columns: Int) -> [[Double]] {
        (0..<columns).map { j in a.map { $0[j] } }
    }
}

/// Random shapes with dimensions in 0...maxDim (zero allowed when `allowZero`).
func randomShape(rank: Int, maxDim: Int, allowZero: Bool, generator: inout SeededGenerator) -> [Int] {
    (0..<rank).map { _ in allowZero && generator.nextInt(below: 6) == 0 ? 0 : 1 + generator.nextInt(below: maxDim) }
}
