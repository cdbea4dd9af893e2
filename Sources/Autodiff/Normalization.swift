import TensorCore

/// Layer normalization over the last axis with optional affine parameters (Ba, Kiros & Hinton, "Layer
/// Normalization", 2016; not in the survey's reference list).
///
/// For every row x of length D (the last axis): μ = mean(x), σ² = mean((x − μ)²) (biased), r = 1/√(σ² + ε),
/// x̂ = (x − μ)·r, y = γ ⊙ x̂ + β. The fused VJP, with ĝ = g ⊙ γ:
/// ∂/∂x = r·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)), ∂/∂γ = Σ_rows g ⊙ x̂, ∂/∂β = Σ_rows g.
///
/// - Parameters:
///   - x: any shape [..., D] with D > 0.
///   - scale: γ of shape [D], or nil for γ = 1.
///   - offset: β of shape [D], or nil for β = 0.
///   - epsilon: ε > 0 added to the variance.
/// - Precondition: shapes as above.
public func layerNorm<Scalar>(_ x: Variable<Scalar>, scale: Variable<Scalar>? = nil, offset: Variable<Scalar>? = nil,
                              epsilon: Scalar = 1e-5) -> Variable<Scalar> {
    let input = x.value
    precondition(input.rank >= 1 && input.shape.last! > 0, "layerNorm: input of shape \(input.shape) has no last axis to normalize")
    let d = input.shape.last!, rows = input.scalarCount / d
    if let scale { precondition(scale.shape == [d], "layerNorm: scale of shape \(scale.shape) for input \(input.shape) (expected [\(d)])") }
    if let offset { precondition(offset.shape == [d], "layerNorm: offset of shape \(offset.shape) for input \(input.shape) (expected [\(d)])") }
    let gamma = scale?.value, beta = offset?.value
    var inverseStd = [Scalar](repeating: 0, count: rows)
    let normalized = Tensor<Scalar>(shape: input.shape) { out in
        input.withUnsafeBufferPointer { src in
            for r in 0..<rows {
                let row = src.baseAddress! + r * d, dst = out.baseAddress! + r * d
                var mean: Scalar = 0
                for k in 0..<d { mean += row[k] }
                mean /= Scalar(d)
                var variance: Scalar = 0
                for k in 0..<d { let c = row[k] - mean; variance += c * c }
                variance /= Scalar(d)
                let inv = 1 / (variance + epsilon).squareRoot()
                inverseStd[r] = inv
                for k in 0..<d { dst[k] = (row[k] - mean) * inv }
            }
        }
    }
    var output = normalized
    if gamma != nil || beta != nil {
        let gs = gamma?.scalars, bs = beta?.scalars
        output.withUnsafeMutableBufferPointer { out in
            for r in 0..<rows {
                let row = out.baseAddress! + r * d
                for k in 0..<d { row[k] = row[k] * (gs?[k] ?? 1) + (bs?[k] ?? 0) }
            }
        }
    }
    var inputs = [x]
    if let scale { inputs.append(scale) }
    if let offset { inputs.append(offset) }
    let needX = x.isRecorded, needScale = scale?.isRecorded ?? false, needOffset = offset?.isRecorded ?? false
    let hasScale = scale != nil, hasOffset = offset != nil
    return recordOperation(output, inputs: inputs) { g in
        let gs = gamma?.scalars
        var gradX: Tensor<Scalar>? = nil
        if needX {
            gradX = Tensor<Scalar>(shape: input.shape) { out in
                g.withUnsafeBufferPointer { gp in normalized.withUnsafeBufferPointer { xh in
                    for r in 0..<rows {
                        let gRow = gp.baseAddress! + r * d, xRow = xh.baseAddress! + r * d, dst = out.baseAddress! + r * d
                        var meanG: Scalar = 0, meanGX: Scalar = 0
                        for k in 0..<d {
                            let gh = gRow[k] * (gs?[k] ?? 1)
                            dst[k] = gh
                            meanG += gh
                            meanGX += gh * xRow[k]
                        }
                        meanG /= Scalar(d)
                        meanGX /= Scalar(d)
                        let inv = inverseStd[r]
                        for k in 0..<d { dst[k] = inv * (dst[k] - meanG - xRow[k] * meanGX) }
                    }
                } }
            }
        }
        var result: [Tensor<Scalar>?] = [gradX]
        if hasScale {
            result.append(needScale ? (g * normalized).reshaped([rows, d]).sum(axes: [0], keepingDimensions: false) : nil)
        }
        if hasOffset {
            result.append(needOffset ? g.reshaped([rows, d]).sum(axes: [0], keepingDimensions: false) : nil)
        }
        return result
    }
}

/// Batch normalization in training mode over the channels (last axis) of an NHWC or [N, C] input, normalizing
/// with the batch statistics (Ioffe & Szegedy, "Batch Normalization", 2015; not in the survey's reference
/// list): y = γ·(x − μ)/√(σ² + ε) + β, μ and the biased σ² over every axis but the last; with `applyingReLU`,
/// y = max(0, ·) fused into the same pass.
///
/// VJP (through the statistics, `batchNormBackward`): with M values per channel, x̂ the normalized input and
/// ĝ the output gradient (masked by y > 0 under ReLU), ∂β = Σ ĝ, ∂γ = Σ ĝ·x̂,
/// ∂x = γ/(M·√(σ² + ε))·(M·ĝ − ∂β − x̂·∂γ).
///
/// Returns the output and the batch statistics; the caller updates its running mean and variance from
/// `statistics.mean` and `statistics.unbiasedVariance` (PyTorch's convention).
///
/// - Parameters:
///   - scale: γ of shape [C].
///   - offset: β of shape [C].
/// - Precondition: channels-last input with at least two values per channel; γ and β of shape [C].
public func batchNorm<Scalar>(_ input: Variable<Scalar>, scale: Variable<Scalar>, offset: Variable<Scalar>,
                              epsilon: Scalar = 1e-5, applyingReLU: Bool = false,
                              backend: ConvolutionBackend = .oneDNN)
    -> (output: Variable<Scalar>, statistics: BatchNormStatistics<Scalar>) {
    let x = input.value, gamma = scale.value
    let (output, statistics) = batchNormTrainingForward(x, scale: gamma, offset: offset.value, epsilon: epsilon,
                                                        applyingReLU: applyingReLU, backend: backend)
    let needs = [input.isRecorded, scale.isRecorded, offset.isRecorded]
    let result = recordOperation(output, inputs: [input, scale, offset]) { g in
        let grads = batchNormBackward(g, input: x, scale: gamma, statistics: statistics, backend: backend)
        return [needs[0] ? grads.gradInput : nil, needs[1] ? grads.gradScale : nil, needs[2] ? grads.gradOffset : nil]
    }
    return (result, statistics)
}

/// Batch normalization in inference mode with fixed (running) statistics, over the last axis:
/// y = γ·(x − μ_run)/√(σ²_run + ε) + β, optionally followed by ReLU.
///
/// VJP (the statistics are constants): with r = 1/√(σ²_run + ε), x̂ = (x − μ_run)·r and ĝ = g masked by y > 0
/// under ReLU: ∂x = ĝ·γ·r, ∂γ = Σ ĝ·x̂, ∂β = Σ ĝ (sums over every axis but the last).
///
/// - Precondition: channels-last input; γ, β, μ_run and σ²_run of shape [C].
public func batchNormInference<Scalar>(_ input: Variable<Scalar>, scale: Variable<Scalar>, offset: Variable<Scalar>,
                                       runningMean: Tensor<Scalar>, runningVariance: Tensor<Scalar>,
                                       epsilon: Scalar = 1e-5, applyingReLU: Bool = false,
                                       backend: ConvolutionBackend = .oneDNN) -> Variable<Scalar> {
    let x = input.value, gamma = scale.value
    let output = batchNormInferenceForward(x, scale: gamma, offset: offset.value, runningMean: runningMean,
                                           runningVariance: runningVariance, epsilon: epsilon,
                                           applyingReLU: applyingReLU, backend: backend)
    let needs = [input.isRecorded, scale.isRecorded, offset.isRecorded]
    let channels = x.shape.last!, rows = x.scalarCount / Swift.max(channels, 1)
    return recordOperation(output, inputs: [input, scale, offset]) { g in
        let masked = applyingReLU ? reluBackward(g, output: output) : g
        let inverse = runningVariance.map { 1 / ($0 + epsilon).squareRoot() }
        let mean = runningMean.scalars, r = inverse.scalars, gammas = gamma.scalars
        var dx: Tensor<Scalar>? = nil
        if needs[0] {
            let factor = Tensor<Scalar>(shape: [channels], scalars: (0..<channels).map { gammas[$0] * r[$0] })
            dx = masked * factor
        }
        var dScale: Tensor<Scalar>? = nil, dOffset: Tensor<Scalar>? = nil
        if needs[1] || needs[2] {
            var sumG = [Scalar](repeating: 0, count: channels), sumGX = [Scalar](repeating: 0, count: channels)
            masked.withUnsafeBufferPointer { gp in x.withUnsafeBufferPointer { xp in
                for row in 0..<rows {
                    let base = row * channels
                    for c in 0..<channels {
                        sumG[c] += gp[base + c]
                        sumGX[c] += gp[base + c] * (xp[base + c] - mean[c]) * r[c]
                    }
                }
            } }
            if needs[1] { dScale = Tensor(shape: [channels], scalars: sumGX) }
            if needs[2] { dOffset = Tensor(shape: [channels], scalars: sumG) }
        }
        return [dx, dScale, dOffset]
    }
}
