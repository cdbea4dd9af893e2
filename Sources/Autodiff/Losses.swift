import TensorCore

// Losses: each returns a rank-0 variable. Classification losses take logits of shape [B, K] (a batch of B
// rows over K classes) and average over the batch; their forward and backward passes are fused kernels (one
// pass over the logits each way, no intermediate variables on the tape).

/// Softmax cross-entropy from logits with integer labels and optional label smoothing, averaged over the
/// batch.
///
/// With p = softmax(z_b) and the target distribution t = (1 − ε)·onehot(y_b) + ε/K,
/// ℓ = (1/B) Σ_b Σ_k −t_k log p_k = (1/B) Σ_b [logsumexp(z_b) − Σ_k t_k z_{b,k}] (Σ_k t_k = 1).
/// Label smoothing: Szegedy et al., "Rethinking the Inception Architecture" (2016; not in the survey's
/// reference list). The fused VJP is ∂ℓ/∂z_b = g·(p_b − t_b)/B.
///
/// - Parameters:
///   - logits: shape [B, K].
///   - labels: B class indices in 0..<K.
///   - labelSmoothing: ε in [0, 1].
/// - Precondition: shapes and labels as above.
public func crossEntropy<Scalar>(logits: Variable<Scalar>, labels: [Int], labelSmoothing: Scalar = 0) -> Variable<Scalar> {
    let z = logits.value
    precondition(z.rank == 2, "crossEntropy: logits must have shape [batch, classes], got \(z.shape)")
    let batch = z.shape[0], classes = z.shape[1]
    precondition(labels.count == batch, "crossEntropy: \(labels.count) labels for logits of shape \(z.shape)")
    precondition(classes > 0 && batch > 0, "crossEntropy: logits of shape \(z.shape) are empty")
    precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: label smoothing \(labelSmoothing) is not in [0, 1]")
    for (b, label) in labels.enumerated() {
        precondition(label >= 0 && label < classes, "crossEntropy: label \(label) of row \(b) is not in 0..<\(classes) (logits \(z.shape))")
    }
    let onTarget = 1 - labelSmoothing, uniform = labelSmoothing / Scalar(classes)
    // Forward: per row, the softmax probabilities (kept for the backward pass) and the loss.
    var total: Scalar = 0
    let probabilities = Tensor<Scalar>(shape: z.shape) { p in
        z.withUnsafeBufferPointer { src in
            for b in 0..<batch {
                let row = src.baseAddress! + b * classes, out = p.baseAddress! + b * classes
                var m = -Scalar.infinity, rowSum: Scalar = 0
                for k in 0..<classes { m = Swift.max(m, row[k]); rowSum += row[k] }
                var s: Scalar = 0
                for k in 0..<classes {
                    let e = Scalar.exp(row[k] - m)
                    out[k] = e
                    s += e
                }
                let inverse = 1 / s
                for k in 0..<classes { out[k] *= inverse }
                let logSumExp = m + Scalar.log(s)
                total += logSumExp - onTarget * row[labels[b]] - uniform * rowSum
            }
        }
    }
    let loss = Tensor(scalar: total / Scalar(batch))
    return recordOperation(loss, inputs: [logits]) { g in
        let scale = g.scalar / Scalar(batch)
        var grad = probabilities
        grad.withUnsafeMutableBufferPointer { out in
            for b in 0..<batch {
                let row = out.baseAddress! + b * classes
                for k in 0..<classes { row[k] = (row[k] - uniform) * scale }
                row[labels[b]] -= onTarget * scale
            }
        }
        return [grad]
    }
}

/// Mean squared error over all elements, ℓ = (1/N) Σᵢ (pᵢ − tᵢ)² (N = number of elements, PyTorch's
/// `reduction='mean'`): ∂ℓ/∂p = 2g(p − t)/N, ∂ℓ/∂t = −2g(p − t)/N.
///
/// The target may be a recorded variable (for feature matching between two networks both trained) or a
/// constant.
///
/// - Precondition: equal shapes, not empty.
public func meanSquaredError<Scalar>(predictions: Variable<Scalar>, targets: Variable<Scalar>) -> Variable<Scalar> {
    precondition(predictions.shape == targets.shape,
                 "meanSquaredError: predictions \(predictions.shape) and targets \(targets.shape) differ")
    let n = predictions.value.scalarCount
    precondition(n > 0, "meanSquaredError: empty predictions of shape \(predictions.shape)")
    let difference = predictions.value - targets.value
    let loss = Tensor(scalar: difference.squaredNorm() / Scalar(n))
    let (needP, needT) = (predictions.isRecorded, targets.isRecorded)
    return recordOperation(loss, inputs: [predictions, targets]) { g in
        let grad = difference * (2 * g.scalar / Scalar(n))
        return [needP ? grad : nil, needT ? -grad : nil]
    }
}

/// Mean squared error against a constant target (see `meanSquaredError(predictions:targets:)`).
public func meanSquaredError<Scalar>(predictions: Variable<Scalar>, targets: Tensor<Scalar>) -> Variable<Scalar> {
    meanSquaredError(predictions: predictions, targets: Variable(constant: targets))
}

/// Knowledge-distillation loss: the temperature-scaled KL divergence from the teacher's to the student's
/// softened distribution, averaged over the batch [130]:
/// ℓ = T² · (1/B) Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T)) = T²/B · Σ_b Σ_k q_k (log q_k − log p_k),
/// q = softmax(t/T) (teacher), p = softmax(s/T) (student). The T² factor keeps gradient magnitudes comparable
/// across temperatures (Hinton et al., 2015). The teacher is a constant; the VJP for the student is
/// ∂ℓ/∂s_b = g·T·(p_b − q_b)/B.
///
/// - Parameters:
///   - studentLogits: shape [B, K].
///   - teacherLogits: shape [B, K], treated as a constant.
///   - temperature: T > 0.
/// - Precondition: equal 2-D shapes, T > 0.
public func distillationKLDivergence<Scalar>(studentLogits: Variable<Scalar>, teacherLogits: Tensor<Scalar>,
                                             temperature: Scalar = 1) -> Variable<Scalar> {
    let s = studentLogits.value
    precondition(s.rank == 2 && s.shape == teacherLogits.shape,
                 "distillationKLDivergence: student \(s.shape) and teacher \(teacherLogits.shape) logits must both be [batch, classes]")
    precondition(temperature > 0, "distillationKLDivergence: temperature \(temperature) must be positive")
    let batch = s.shape[0], classes = s.shape[1]
    precondition(batch > 0 && classes > 0, "distillationKLDivergence: logits of shape \(s.shape) are empty")
    let logP = softmaxAlongAxis(s / temperature, axis: 1, logarithm: true)
    let logQ = softmaxAlongAxis(teacherLogits / temperature, axis: 1, logarithm: true)
    var total: Scalar = 0
    logP.withUnsafeBufferPointer { lp in logQ.withUnsafeBufferPointer { lq in
        for i in 0..<lp.count {
            let q = Scalar.exp(lq[i])
            if q > 0 { total += q * (lq[i] - lp[i]) }
        }
    } }
    let t2 = temperature * temperature
    let loss = Tensor(scalar: t2 * total / Scalar(batch))
    return recordOperation(loss, inputs: [studentLogits]) { g in
        let scale = g.scalar * temperature / Scalar(batch)
        return [logP.zipMap(logQ) { (Scalar.exp($0) - Scalar.exp($1)) * scale }]
    }
}
