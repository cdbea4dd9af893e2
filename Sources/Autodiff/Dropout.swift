import TensorCore

extension Variable {
    /// Inverted dropout: in training, each element is kept with probability 1 − p and scaled by 1/(1 − p), or
    /// zeroed with probability p, so E[output] = input; in inference (or with p = 0) the input is returned
    /// unchanged and nothing is recorded or drawn.
    ///
    /// The mask m (entries 0 or 1/(1 − p)) is drawn from `generator`, one uniform draw per element in row-major
    /// order, so a seed fixes it. y = m ⊙ x, and the VJP is ∂/∂x = m ⊙ g. Srivastava et al., "Dropout" (2014;
    /// not in the survey's reference list).
    ///
    /// - Parameters:
    ///   - rate: the drop probability p, in [0, 1).
    ///   - isTraining: false for inference (identity).
    ///   - generator: the source of the mask.
    /// - Precondition: 0 ≤ p < 1.
    public func dropout(rate: Scalar, isTraining: Bool, generator: inout SeededGenerator) -> Variable {
        precondition(rate >= 0 && rate < 1, "dropout: rate \(rate) is not in [0, 1)")
        guard isTraining && rate > 0 else { return self }
        let keep = 1 / (1 - rate)
        let threshold = Double(rate)
        let mask = Tensor<Scalar>(shape: shape) { out in
            for i in 0..<out.count { out[i] = generator.nextUnitDouble() < threshold ? 0 : keep }
        }
        return recordOperation(value * mask, inputs: [self]) { g in [g * mask] }
    }
}
