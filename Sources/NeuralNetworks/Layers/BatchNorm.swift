import Autodiff
import TensorCore

/// Batch normalization over the channels (last axis) of NHWC activations or `[N, C]` features [Ioffe & Szegedy
/// 2015; not in the survey's reference list], with PyTorch's semantics:
///
/// - training: y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch mean μ_B and biased variance σ²_B over every
///   axis but the last; the running statistics move towards the batch's,
///   r_μ ← (1 − m)·r_μ + m·μ_B and r_σ² ← (1 − m)·r_σ² + m·σ²_B·M/(M − 1) (unbiased, M values per channel);
/// - inference: y = γ·(x − r_μ)/√(r_σ² + ε) + β.
///
/// Parameters: `weight` γ (1 at start), `bias` β (0), and the non-trainable `running_mean` (0) and
/// `running_var` (1), PyTorch's names, saved in checkpoints and skipped by optimizers. `Float` runs on oneDNN.
/// Followed by a `ReLU` inside a `Sequential`, the ReLU is fused into this layer's pass (`forward(_:mode:fusingReLU:)`).
public final class BatchNorm<Scalar: TensorScalar>: ShapedLayer {
    /// γ, shape `[C]`.
    public let weight: Parameter<Scalar>
    /// β, shape `[C]`.
    public let bias: Parameter<Scalar>
    /// r_μ, shape `[C]` (not trainable).
    public let runningMean: Parameter<Scalar>
    /// r_σ², shape `[C]` (not trainable).
    public let runningVariance: Parameter<Scalar>
    /// m, the weight of the newest batch in the running statistics (PyTorch's 0.1).
    public let momentum: Scalar
    /// ε added to the variance.
    public let epsilon: Scalar
    /// nil: the running statistics follow `momentum`. A count n: the next `.training` batch is averaged in as the
    /// (n + 1)-th, r ← r + (b − r)/(n + 1), and n grows (PyTorch's momentum = None), so that after setting it to 0
    /// the statistics become the plain average over the batches that follow (`ModelSurgery.recalibrateBatchNorm`).
    public var averagedBatches: Int?

    /// The number of channels C.
    public var channels: Int { weight.value.shape[0] }

    /// A batch normalization of `channels` channels.
    ///
    /// - Precondition: channels > 0, 0 ≤ momentum ≤ 1, ε > 0.
    public init(channels: Int, momentum: Scalar = 0.1, epsilon: Scalar = 1e-5) {
        precondition(channels > 0, "BatchNorm: channels must be positive, got \(channels)")
        precondition(momentum >= 0 && momentum <= 1 && epsilon > 0,
                     "BatchNorm: momentum \(momentum) must lie in [0, 1] and epsilon \(epsilon) be positive")
        weight = Parameter(Tensor(repeating: 1, shape: [channels]))
        bias = Parameter(Tensor(repeating: 0, shape: [channels]))
        runningMean = Parameter(Tensor(repeating: 0, shape: [channels]), isTrainable: false)
        runningVariance = Parameter(Tensor(repeating: 1, shape: [channels]), isTrainable: false)
        self.momentum = momentum
        self.epsilon = epsilon
    }

    /// Normalizes with batch statistics in `.training` (updating the running statistics) and with the running
    /// statistics in `.inference`.
    ///
    /// - Precondition: the last axis has C entries; in training, more than one value per channel.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        forward(input, mode: mode, fusingReLU: false)
    }

    /// `callAsFunction`, followed by max(·, 0) when `fusingReLU` (one pass forward and backward).
    public func forward(_ input: Variable<Scalar>, mode: ForwardMode, fusingReLU: Bool) -> Variable<Scalar> {
        precondition(input.shape.count >= 2 && input.shape.last == channels,
                     "BatchNorm: input \(input.shape) must be channels-last with \(channels) channels")
        let scale = input.watching(weight), offset = input.watching(bias)
        switch mode {
        case .training:
            let (y, statistics) = batchNorm(input, scale: scale, offset: offset, epsilon: epsilon,
                                            applyingReLU: fusingReLU)
            updateRunningStatistics(statistics)
            return y
        case .inference:
            return batchNormInference(input, scale: scale, offset: offset, runningMean: runningMean.value,
                                      runningVariance: runningVariance.value, epsilon: epsilon, applyingReLU: fusingReLU)
        }
    }

    /// r ← (1 − m)·r + m·batch statistic, in place (m = 1/(n + 1) while averaging n batches).
    private func updateRunningStatistics(_ statistics: BatchNormStatistics<Scalar>) {
        let m = averagedBatches.map { 1 / Scalar($0 + 1) } ?? momentum
        averagedBatches = averagedBatches.map { $0 + 1 }
        func blend(_ parameter: Parameter<Scalar>, _ batch: Tensor<Scalar>) {
            batch.withUnsafeBufferPointer { b in
                parameter.value.withUnsafeMutableBufferPointer { r in
                    for c in 0..<r.count { r[c] = (1 - m) * r[c] + m * b[c] }
                }
            }
        }
        blend(runningMean, statistics.mean)
        blend(runningVariance, statistics.unbiasedVariance)
    }

    /// Yields `weight`, `bias`, `running_mean`, `running_var`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        visitor(prefix + "weight", weight)
        visitor(prefix + "bias", bias)
        visitor(prefix + "running_mean", runningMean)
        visitor(prefix + "running_var", runningVariance)
    }

    /// The input shape.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.last == channels, "BatchNorm: per-sample input \(shape) for \(channels) channels")
        return shape
    }
    /// 0 (element-wise).
    public func multiplyAdds(forInput shape: [Int]) -> Int { 0 }
    public var layerDescription: String { "BatchNorm(\(channels))" }
}
