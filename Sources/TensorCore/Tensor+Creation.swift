extension Tensor {
    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }
    /// A tensor filled with `value`.
    public static func filled(_ shape: [Int], with value: Scalar) -> Tensor { Tensor(repeating: value, shape: shape) }

    /// The n×n identity matrix (or n×m with ones on the main diagonal).
    public static func identity(_ n: Int, columns: Int? = nil) -> Tensor {
        let m = columns ?? n
        var result = zeros([n, m])
        result.withUnsafeMutableBufferPointer { out in for i in 0..<Swift.min(n, m) { out[i * m + i] = 1 } }
        return result
    }

    /// A square matrix with `diagonal` on its main diagonal.
    public static func diagonal(_ diagonal: Tensor) -> Tensor {
        precondition(diagonal.rank == 1, "Tensor.diagonal: expected a vector, got shape \(diagonal.shape)")
        let n = diagonal.shape[0]
        var result = zeros([n, n])
        let d = diagonal.scalars
        result.withUnsafeMutableBufferPointer { out in for i in 0..<n { out[i * n + i] = d[i] } }
        return result
    }

    /// `count` evenly spaced values from `start` to `end`, both included.
    public static func linspace(from start: Scalar, to end: Scalar, count: Int) -> Tensor {
        precondition(count >= 0, "Tensor.linspace: count must be non-negative, got \(count)")
        let step = count > 1 ? (end - start) / Scalar(count - 1) : 0
        return Tensor([Scalar]((0..<count).map { i in i == count - 1 && count > 1 ? end : start + Scalar(i) * step }))
    }

    /// Values start, start+step, … below `end` (above it for a negative step).
    public static func arange(from start: Scalar = 0, to end: Scalar, step: Scalar = 1) -> Tensor {
        precondition(step != 0, "Tensor.arange: step must be non-zero")
        let count = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor([Scalar]((0..<count).map { start + Scalar($0) * step }))
    }

    /// Independent normal samples with the given mean and standard deviation.
    public static func randomNormal(_ shape: [Int], mean: Scalar = 0, standardDeviation: Scalar = 1,
                                    generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape) { out in
            for i in 0..<out.count { out[i] = mean + standardDeviation * Scalar(generator.nextNormal()) }
        }
    }

    /// Independent normal samples from a fresh generator seeded with `seed`.
    public static func randomNormal(_ shape: [Int], mean: Scalar = 0, standardDeviation: Scalar = 1,
                                    seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return randomNormal(shape, mean: mean, standardDeviation: standardDeviation, generator: &generator)
    }

    /// Independent uniform samples in [low, high).
    public static func randomUniform(_ shape: [Int], low: Scalar = 0, high: Scalar = 1,
                                     generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape) { out in
            for i in 0..<out.count { out[i] = low + (high - low) * Scalar(generator.nextUnitDouble()) }
        }
    }

    /// Independent uniform samples in [low, high) from a fresh generator seeded with `seed`.
    public static func randomUniform(_ shape: [Int], low: Scalar = 0, high: Scalar = 1, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return randomUniform(shape, low: low, high: high, generator: &generator)
    }
}
