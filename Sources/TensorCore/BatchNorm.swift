/// What a training-mode batch normalization saves for its backward pass and for the running statistics.
///
/// All tensors have shape [C]. `variance` is the biased batch variance (divided by the number of values per
/// channel, M) used to normalize; `unbiasedVariance` = variance·M/(M − 1) is what running statistics track
/// (PyTorch's convention).
public struct BatchNormStatistics<Scalar: TensorScalar>: Sendable {
    /// Batch mean μ per channel.
    public var mean: Tensor<Scalar>
    /// Biased batch variance σ² per channel (the one the forward pass normalized with).
    public var variance: Tensor<Scalar>
    /// 1/√(σ² + ε) per channel.
    public var inverseStandardDeviation: Tensor<Scalar>
    /// Unbiased batch variance σ²·M/(M − 1), for the running variance.
    public var unbiasedVariance: Tensor<Scalar>
    /// The ε the forward pass used.
    public var epsilon: Scalar
    /// Whether the forward pass applied ReLU to its output (the backward pass then masks the gradient).
    public var appliedReLU: Bool
    /// The offset β of the forward pass (the backward pass recovers a fused ReLU's mask from it, and oneDNN wants
    /// it as an input).
    var offset: Tensor<Scalar>
    /// oneDNN's record of where the fused ReLU clipped (when the forward pass ran on oneDNN with ReLU).
    var reluWorkspace: DNNLBuffer?
}

/// Rows × channels view of a channels-last tensor: every axis but the last is a row.
@inline(__always)
private func rowsAndChannels(_ shape: [Int], _ function: String) -> (rows: Int, channels: Int) {
    precondition(shape.count >= 2, "\(function): input must be channels-last with rank ≥ 2 (NHWC or [N, C]), got shape \(shape)")
    return (shape.dropLast().reduce(1, *), shape.last!)
}

// MARK: - Public entry points

/// Batch normalization in training mode, over the channels (last axis) of an NHWC (or [N, C]) tensor:
/// y = γ·(x − μ)/√(σ² + ε) + β, with μ and the biased σ² taken over every axis but the last [Ioffe & Szegedy 2015];
/// with `applyingReLU`, y = max(0, ·) fused into the same pass.
///
/// Returns the output and the statistics the backward pass and the running averages need. Needs at least two
/// values per channel. `Float` runs on oneDNN unless `backend` is `.reference`.
public func batchNormTrainingForward<Scalar: TensorScalar>(
    _ input: Tensor<Scalar>, scale: Tensor<Scalar>, offset: Tensor<Scalar>, epsilon: Scalar = 1e-5,
    applyingReLU: Bool = false, backend: ConvolutionBackend = .oneDNN
) -> (output: Tensor<Scalar>, statistics: BatchNormStatistics<Scalar>) {
    let (rows, channels) = rowsAndChannels(input.shape, "batchNormTrainingForward")
    precondition(scale.shape == [channels] && offset.shape == [channels],
                 "batchNormTrainingForward: scale \(scale.shape) and offset \(offset.shape) must be [\(channels)] for input \(input.shape)")
    precondition(rows >= 2, "batchNormTrainingForward: needs more than one value per channel, input shape \(input.shape)")
    precondition(epsilon >= 0, "batchNormTrainingForward: epsilon must be ≥ 0, got \(epsilon)")
    if backend.runsOnOneDNN(Scalar.self) && channels > 0 {
        var mean = Tensor<Scalar>(repeating: 0, shape: [channels])
        var variance = Tensor<Scalar>(repeating: 0, shape: [channels])
        var result: DNNLBuffer?? = nil
        let y = Tensor<Scalar>(shape: input.shape) { out in
            result = input.withUnsafeBufferPointer { x in scale.withUnsafeBufferPointer { g in offset.withUnsafeBufferPointer { b in
                mean.withUnsafeMutableBufferPointer { m in variance.withUnsafeMutableBufferPointer { v in
                    DNNLBatchNorm.forwardTraining(rows: rows, channels: channels, epsilon: Float(epsilon), relu: applyingReLU,
                                                  input: mutableRaw(x), scale: mutableRaw(g), shift: mutableRaw(b),
                                                  output: UnsafeMutableRawPointer(out.baseAddress!),
                                                  mean: UnsafeMutableRawPointer(m.baseAddress!),
                                                  variance: UnsafeMutableRawPointer(v.baseAddress!))
                } }
            } } }
        }
        if case let .some(workspace) = result {
            var stats = ReferenceBatchNorm.statistics(mean: mean, variance: variance, rows: rows, epsilon: epsilon,
                                                      appliedReLU: applyingReLU, offset: offset)
            stats.reluWorkspace = workspace
            return (y, stats)
        }
    }
    return ReferenceBatchNorm.trainingForward(input, scale: scale, offset: offset, epsilon: epsilon,
                                              applyingReLU: applyingReLU)
}

/// Batch normalization in inference mode with given (running) statistics:
/// y = γ·(x − μ_run)/√(σ²_run + ε) + β over the last axis, optionally followed by ReLU.
public func batchNormInferenceForward<Scalar: TensorScalar>(
    _ input: Tensor<Scalar>, scale: Tensor<Scalar>, offset: Tensor<Scalar>, runningMean: Tensor<Scalar>,
    runningVariance: Tensor<Scalar>, epsilon: Scalar = 1e-5, applyingReLU: Bool = false,
    backend: ConvolutionBackend = .oneDNN
) -> Tensor<Scalar> {
    let (rows, channels) = rowsAndChannels(input.shape, "batchNormInferenceForward")
    precondition([scale.shape, offset.shape, runningMean.shape, runningVariance.shape].allSatisfy { $0 == [channels] },
                 "batchNormInferenceForward: scale \(scale.shape), offset \(offset.shape), running mean \(runningMean.shape) and variance \(runningVariance.shape) must all be [\(channels)] for input \(input.shape)")
    if backend.runsOnOneDNN(Scalar.self) && rows > 0 && channels > 0 {
        var ok = false
        let y = Tensor<Scalar>(shape: input.shape) { out in
            ok = input.withUnsafeBufferPointer { x in scale.withUnsafeBufferPointer { g in offset.withUnsafeBufferPointer { b in
                runningMean.withUnsafeBufferPointer { m in runningVariance.withUnsafeBufferPointer { v in
                    DNNLBatchNorm.forwardInference(rows: rows, channels: channels, epsilon: Float(epsilon), relu: applyingReLU,
                                                   input: mutableRaw(x), scale: mutableRaw(g), shift: mutableRaw(b),
                                                   mean: mutableRaw(m), variance: mutableRaw(v),
                                                   output: UnsafeMutableRawPointer(out.baseAddress!))
                } }
            } } }
        }
        if ok { return y }
    }
    return ReferenceBatchNorm.inferenceForward(input, scale: scale, offset: offset, mean: runningMean,
                                               variance: runningVariance, epsilon: epsilon, applyingReLU: applyingReLU)
}

/// Backward pass of training-mode batch normalization through the batch statistics, with x̂ = (x − μ)·σ̂⁻¹,
/// σ̂ = √(σ² + ε), M values per channel and dy masked by y > 0 when the forward pass fused ReLU:
///
///     dβ = Σ dy,   dγ = Σ dy·x̂,   dx = (γ/(M·σ̂))·(M·dy − dβ − x̂·dγ)
///
/// `input` and `scale` are those of the forward pass, `statistics` its result.
public func batchNormBackward<Scalar: TensorScalar>(
    _ gradOutput: Tensor<Scalar>, input: Tensor<Scalar>, scale: Tensor<Scalar>,
    statistics: BatchNormStatistics<Scalar>, backend: ConvolutionBackend = .oneDNN
) -> (gradInput: Tensor<Scalar>, gradScale: Tensor<Scalar>, gradOffset: Tensor<Scalar>) {
    let (rows, channels) = rowsAndChannels(input.shape, "batchNormBackward")
    precondition(gradOutput.shape == input.shape,
                 "batchNormBackward: gradOutput \(gradOutput.shape) must have the input's shape \(input.shape)")
    precondition(scale.shape == [channels] && statistics.mean.shape == [channels],
                 "batchNormBackward: scale \(scale.shape) and statistics \(statistics.mean.shape) must be [\(channels)] for input \(input.shape)")
    if backend.runsOnOneDNN(Scalar.self) && channels > 0 {
        // A ReLU fused on oneDNN left its mask in the workspace; one fused on the reference path is applied here.
        let dyMasked = statistics.appliedReLU && statistics.reluWorkspace == nil
            ? ReferenceBatchNorm.reluMasked(gradOutput, input: input, scale: scale, statistics: statistics)
            : gradOutput
        var dScale = Tensor<Scalar>(repeating: 0, shape: [channels])
        var dOffset = Tensor<Scalar>(repeating: 0, shape: [channels])
        var ok = false
        let dx = Tensor<Scalar>(shape: input.shape) { out in
            ok = dyMasked.withUnsafeBufferPointer { dy in input.withUnsafeBufferPointer { x in
                scale.withUnsafeBufferPointer { g in statistics.mean.withUnsafeBufferPointer { m in
                    statistics.variance.withUnsafeBufferPointer { v in statistics.offset.withUnsafeBufferPointer { b in
                        dScale.withUnsafeMutableBufferPointer { dg in dOffset.withUnsafeMutableBufferPointer { db in
                            DNNLBatchNorm.backward(rows: rows, channels: channels, epsilon: Float(statistics.epsilon),
                                                   reluWorkspace: statistics.reluWorkspace,
                                                   gradOutput: mutableRaw(dy), input: mutableRaw(x), scale: mutableRaw(g),
                                                   shift: mutableRaw(b), mean: mutableRaw(m), variance: mutableRaw(v),
                                                   gradInput: UnsafeMutableRawPointer(out.baseAddress!),
                                                   gradScale: UnsafeMutableRawPointer(dg.baseAddress!),
                                                   gradShift: UnsafeMutableRawPointer(db.baseAddress!))
                        } }
                    } }
                } }
            } }
        }
        if ok { return (dx, dScale, dOffset) }
    }
    return ReferenceBatchNorm.backward(gradOutput, input: input, scale: scale, statistics: statistics)
}

/// Gradient of ReLU given its output: dx = dy where y > 0, else 0 (one pass, no comparison against the input).
public func reluBackward<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, output: Tensor<Scalar>) -> Tensor<Scalar> {
    precondition(gradOutput.shape == output.shape,
                 "reluBackward: gradOutput \(gradOutput.shape) and output \(output.shape) differ")
    return Tensor(shape: output.shape) { dx in
        gradOutput.withUnsafeBufferPointer { dy in output.withUnsafeBufferPointer { y in
            // Both loads happen unconditionally so the loop compiles to vector selects, not branches.
            for i in 0..<dx.count {
                let g = dy[i], v = y[i]
                dx[i] = v > 0 ? g : 0
            }
        } }
    }
}

// MARK: - Reference loops

/// Plain loops over rows × channels (channels innermost, so they vectorize across channels): the `Double` path
/// and the reference the oneDNN path is tested against. Sums run in blocks of rows whose partial sums are added in
/// `Double`, so Float statistics stay accurate over large batches.
enum ReferenceBatchNorm {
    private static let block = 256

    static func statistics<Scalar: TensorScalar>(mean: Tensor<Scalar>, variance: Tensor<Scalar>, rows: Int,
                                                 epsilon: Scalar, appliedReLU: Bool,
                                                 offset: Tensor<Scalar>) -> BatchNormStatistics<Scalar> {
        let inverse = variance.map { 1 / ($0 + epsilon).squareRoot() }
        let unbiased = variance * (Scalar(rows) / Scalar(rows - 1))
        return BatchNormStatistics(mean: mean, variance: variance, inverseStandardDeviation: inverse,
                                   unbiasedVariance: unbiased, epsilon: epsilon, appliedReLU: appliedReLU,
                                   offset: offset)
    }

    /// Σ_rows f(row pointer) per channel, accumulated in blocks of rows and then in Double.
    private static func columnSums<Scalar: TensorScalar>(
        rows: Int, channels c: Int, _ accumulate: (_ row: Int, _ s1: UnsafeMutablePointer<Scalar>, _ s2: UnsafeMutablePointer<Scalar>) -> Void
    ) -> (s1: [Double], s2: [Double]) {
        var total1 = [Double](repeating: 0, count: c), total2 = [Double](repeating: 0, count: c)
        let p1 = UnsafeMutablePointer<Scalar>.allocate(capacity: c), p2 = UnsafeMutablePointer<Scalar>.allocate(capacity: c)
        defer { p1.deallocate(); p2.deallocate() }
        for start in stride(from: 0, to: rows, by: block) {
            p1.initialize(repeating: 0, count: c)
            p2.initialize(repeating: 0, count: c)
            for r in start..<Swift.min(start + block, rows) { accumulate(r, p1, p2) }
            for k in 0..<c { total1[k] += Double(p1[k]); total2[k] += Double(p2[k]) }
        }
        return (total1, total2)
    }

    static func trainingForward<Scalar: TensorScalar>(_ input: Tensor<Scalar>, scale: Tensor<Scalar>, offset: Tensor<Scalar>,
                                                      epsilon: Scalar, applyingReLU: Bool)
        -> (output: Tensor<Scalar>, statistics: BatchNormStatistics<Scalar>) {
        let (rows, c) = (input.shape.dropLast().reduce(1, *), input.shape.last!)
        // One pass for both moments, shifted by the first row to avoid cancellation: with d = x − x₀,
        // μ = x₀ + Σd/M and σ² = Σd²/M − (Σd/M)².
        let shift = input.withUnsafeBufferPointer { Array($0.prefix(c)) }
        let sums: (s1: [Double], s2: [Double]) = input.withUnsafeBufferPointer { x in
            shift.withUnsafeBufferPointer { k in
                columnSums(rows: rows, channels: c) { r, s1, s2 in
                    let src = x.baseAddress! + r * c
                    for j in 0..<c {
                        let d = src[j] - k[j]
                        s1[j] += d
                        s2[j] += d * d
                    }
                }
            }
        }
        let m = Double(rows)
        let meanD = (0..<c).map { Double(shift[$0]) + sums.s1[$0] / m }
        let varianceD = (0..<c).map { Swift.max(sums.s2[$0] / m - (sums.s1[$0] / m) * (sums.s1[$0] / m), 0) }
        let mean = Tensor<Scalar>(shape: [c], scalars: meanD.map { Scalar($0) })
        let variance = Tensor<Scalar>(shape: [c], scalars: varianceD.map { Scalar($0) })
        let stats = statistics(mean: mean, variance: variance, rows: rows, epsilon: epsilon, appliedReLU: applyingReLU,
                               offset: offset)
        let output = normalize(input, scale: scale, offset: offset, meanD: meanD, varianceD: varianceD,
                               epsilon: epsilon, applyingReLU: applyingReLU)
        return (output, stats)
    }

    static func inferenceForward<Scalar: TensorScalar>(_ input: Tensor<Scalar>, scale: Tensor<Scalar>, offset: Tensor<Scalar>,
                                                       mean: Tensor<Scalar>, variance: Tensor<Scalar>, epsilon: Scalar,
                                                       applyingReLU: Bool) -> Tensor<Scalar> {
        normalize(input, scale: scale, offset: offset, meanD: mean.scalars.map { Double($0) },
                  varianceD: variance.scalars.map { Double($0) }, epsilon: epsilon, applyingReLU: applyingReLU)
    }

    /// y = (x − μ)·a + β per channel with a = γ/√(σ² + ε) (then ReLU if asked); subtracting μ first keeps the
    /// result accurate when |μ| ≫ σ.
    private static func normalize<Scalar: TensorScalar>(_ input: Tensor<Scalar>, scale: Tensor<Scalar>, offset: Tensor<Scalar>,
                                                        meanD: [Double], varianceD: [Double], epsilon: Scalar,
                                                        applyingReLU: Bool) -> Tensor<Scalar> {
        let (rows, c) = (input.shape.dropLast().reduce(1, *), input.shape.last!)
        let gamma = scale.scalars, beta = offset.scalars
        let a = (0..<c).map { Scalar(Double(gamma[$0]) / (varianceD[$0] + Double(epsilon)).squareRoot()) }
        let mu = meanD.map { Scalar($0) }
        return Tensor(shape: input.shape) { out in
            input.withUnsafeBufferPointer { x in a.withUnsafeBufferPointer { a in
                mu.withUnsafeBufferPointer { mu in beta.withUnsafeBufferPointer { b in
                    for r in 0..<rows {
                        let src = x.baseAddress! + r * c, dst = out.baseAddress! + r * c
                        if applyingReLU {
                            for j in 0..<c { dst[j] = Swift.max((src[j] - mu[j]) * a[j] + b[j], 0) }
                        } else {
                            for j in 0..<c { dst[j] = (src[j] - mu[j]) * a[j] + b[j] }
                        }
                    }
                } }
            } }
        }
    }

    /// dy with zeros where the fused ReLU clipped the output (γ·x̂ + β ≤ 0).
    static func reluMasked<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, input: Tensor<Scalar>, scale: Tensor<Scalar>,
                                                 statistics: BatchNormStatistics<Scalar>) -> Tensor<Scalar> {
        let c = input.shape.last!
        let beta = statistics.offset.scalars
        let mu = statistics.mean.scalars, inv = statistics.inverseStandardDeviation.scalars, gamma = scale.scalars
        let a = (0..<c).map { gamma[$0] * inv[$0] }
        return Tensor(shape: input.shape) { out in
            gradOutput.withUnsafeBufferPointer { dy in input.withUnsafeBufferPointer { x in
                a.withUnsafeBufferPointer { a in mu.withUnsafeBufferPointer { mu in beta.withUnsafeBufferPointer { b in
                    for r in 0..<(out.count / Swift.max(c, 1)) {
                        let o = r * c
                        for j in 0..<c {
                            let g = dy[o + j], y = (x[o + j] - mu[j]) * a[j] + b[j]
                            out[o + j] = y > 0 ? g : 0
                        }
                    }
                } } }
            } }
        }
    }

    static func backward<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, input: Tensor<Scalar>, scale: Tensor<Scalar>,
                                               statistics: BatchNormStatistics<Scalar>)
        -> (gradInput: Tensor<Scalar>, gradScale: Tensor<Scalar>, gradOffset: Tensor<Scalar>) {
        let (rows, c) = (input.shape.dropLast().reduce(1, *), input.shape.last!)
        let dy = statistics.appliedReLU
            ? reluMasked(gradOutput, input: input, scale: scale, statistics: statistics) : gradOutput
        let mu = statistics.mean.scalars, inv = statistics.inverseStandardDeviation.scalars
        // Σdy and Σdy·(x − μ) per channel; dγ = σ̂⁻¹·Σdy·(x − μ).
        let sums: (s1: [Double], s2: [Double]) = dy.withUnsafeBufferPointer { g in input.withUnsafeBufferPointer { x in
            mu.withUnsafeBufferPointer { mu in
                columnSums(rows: rows, channels: c) { r, s1, s2 in
                    let o = r * c
                    for j in 0..<c {
                        s1[j] += g[o + j]
                        s2[j] += g[o + j] * (x[o + j] - mu[j])
                    }
                }
            }
        } }
        let gamma = scale.scalars
        let m = Double(rows)
        let dOffset = sums.s1
        let dScale = (0..<c).map { sums.s2[$0] * Double(inv[$0]) }
        // dx = k·dy + c1·(x − μ) + c0 with k = γσ̂⁻¹, c1 = −k·dγ·σ̂⁻¹/M, c0 = −k·dβ/M.
        let k = (0..<c).map { Double(gamma[$0]) * Double(inv[$0]) }
        let c1 = (0..<c).map { -k[$0] * dScale[$0] * Double(inv[$0]) / m }
        let c0 = (0..<c).map { -k[$0] * dOffset[$0] / m }
        let kS = k.map { Scalar($0) }, c1S = c1.map { Scalar($0) }, c0S = c0.map { Scalar($0) }
        let dx = Tensor<Scalar>(shape: input.shape) { out in
            dy.withUnsafeBufferPointer { g in input.withUnsafeBufferPointer { x in mu.withUnsafeBufferPointer { mu in
                kS.withUnsafeBufferPointer { kp in c1S.withUnsafeBufferPointer { c1p in c0S.withUnsafeBufferPointer { c0p in
                    for r in 0..<rows {
                        let o = r * c
                        for j in 0..<c { out[o + j] = kp[j] * g[o + j] + c1p[j] * (x[o + j] - mu[j]) + c0p[j] }
                    }
                } } }
            } } }
        }
        return (dx, Tensor(shape: [c], scalars: dScale.map { Scalar($0) }),
                Tensor(shape: [c], scalars: dOffset.map { Scalar($0) }))
    }
}
