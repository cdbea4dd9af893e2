import TensorCore

/// Which form of GELU to compute.
public enum GELUApproximation: Sendable {
    /// The exact form x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)) (PyTorch's default `approximate='none'`).
    case none
    /// The tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (Hendrycks & Gimpel, "Gaussian Error
    /// Linear Units", 2016; not in the survey's reference list).
    case tanh
}

extension Variable {
    /// Rectified linear unit, max(x, 0): ∂/∂x = g where x > 0, else 0 (the subgradient 0 at x = 0).
    public func relu() -> Variable {
        let x = value
        return recordOperation(x.relu(), inputs: [self]) { g in [g.zipMap(x) { $1 > 0 ? $0 : 0 }] }
    }

    /// Gaussian error linear unit, x·Φ(x), exact (erf) by default or with the tanh approximation; the VJP is
    /// the exact derivative of the chosen form:
    /// * exact: ∂y/∂x = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π);
    /// * tanh: with u = √(2/π)(x + 0.044715x³), ∂y/∂x = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).
    public func gelu(approximation: GELUApproximation = .none) -> Variable {
        let x = value
        switch approximation {
        case .none:
            let invSqrt2 = 1 / Scalar(2).squareRoot()
            let invSqrt2Pi = 1 / (2 * Scalar.pi).squareRoot()
            let y = x.map { $0 * (1 + Scalar.erf($0 * invSqrt2)) / 2 }
            return recordOperation(y, inputs: [self]) { g in
                [g.zipMap(x) { g, x in
                    let cdf = (1 + Scalar.erf(x * invSqrt2)) / 2
                    return g * (cdf + x * invSqrt2Pi * Scalar.exp(-x * x / 2))
                }]
            }
        case .tanh:
            let c = (2 / Scalar.pi).squareRoot(), a = Scalar(0.044715)
            let y = x.map { x -> Scalar in
                let u: Scalar = c * (x + a * x * x * x)
                return x * (1 + Scalar.tanh(u)) / 2
            }
            return recordOperation(y, inputs: [self]) { g in
                [g.zipMap(x) { g, x in
                    let x2: Scalar = x * x
                    let t: Scalar = Scalar.tanh(c * (x + a * x2 * x))
                    let inner: Scalar = c * (1 + 3 * a * x2)
                    let derivative: Scalar = (1 + t) / 2 + x * (1 - t * t) * inner / 2
                    return g * derivative
                }]
            }
        }
    }

    /// Hyperbolic tangent, y = tanh x: ∂/∂x = g·(1 − y²).
    public func tanh() -> Variable {
        let y = value.tanh()
        return recordOperation(y, inputs: [self]) { g in [g.zipMap(y) { $0 * (1 - $1 * $1) }] }
    }

    /// Logistic sigmoid, y = 1/(1 + e^{−x}) (evaluated without overflow for large |x|): ∂/∂x = g·y(1 − y).
    public func sigmoid() -> Variable {
        let y = value.map { x -> Scalar in
            if x >= 0 { return 1 / (1 + Scalar.exp(-x)) }
            let e = Scalar.exp(x)
            return e / (1 + e)
        }
        return recordOperation(y, inputs: [self]) { g in [g.zipMap(y) { $0 * $1 * (1 - $1) }] }
    }

    /// Softmax along `axis`, yᵢ = e^{xᵢ−m}/Σⱼ e^{xⱼ−m} with m the maximum of the lane (so no overflow):
    /// ∂/∂x = y ⊙ (g − Σ_axis g⊙y).
    public func softmax(axis: Int = -1) -> Variable {
        let axis = value.normalizeAxis(axis)
        let y = softmaxAlongAxis(value, axis: axis, logarithm: false)
        return recordOperation(y, inputs: [self]) { g in [softmaxBackward(g, y, axis: axis)] }
    }

    /// Log-softmax along `axis`, yᵢ = xᵢ − m − log Σⱼ e^{xⱼ−m} (stable for any logits):
    /// ∂/∂x = g − softmax(x) ⊙ Σ_axis g.
    public func logSoftmax(axis: Int = -1) -> Variable {
        let axis = value.normalizeAxis(axis)
        let y = softmaxAlongAxis(value, axis: axis, logarithm: true)
        return recordOperation(y, inputs: [self]) { g in [logSoftmaxBackward(g, y, axis: axis)] }
    }
}

/// Calls `body(base, stride, count)` for every lane along `axis` of a row-major `shape` (a lane is the set of
/// elements that differ only in their index on `axis`: offsets base, base+stride, …).
@inline(__always)
func forEachLane(_ shape: [Int], axis: Int, _ body: (Int, Int, Int) -> Void) {
    let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
    for o in 0..<outer {
        for j in 0..<inner { body(o * n * inner + j, inner, n) }
    }
}

/// Softmax (or log-softmax when `logarithm`) of every lane along `axis`, shifted by the lane maximum.
func softmaxAlongAxis<Scalar>(_ x: Tensor<Scalar>, axis: Int, logarithm: Bool) -> Tensor<Scalar> {
    Tensor(shape: x.shape) { out in
        x.withUnsafeBufferPointer { src in
            forEachLane(x.shape, axis: axis) { base, stride, n in
                guard n > 0 else { return }
                var m = -Scalar.infinity
                for k in 0..<n { m = Swift.max(m, src[base + k * stride]) }
                if !m.isFinite { m = 0 }
                var total: Scalar = 0
                if logarithm {
                    for k in 0..<n { total += Scalar.exp(src[base + k * stride] - m) }
                    let shift = m + Scalar.log(total)
                    for k in 0..<n { out[base + k * stride] = src[base + k * stride] - shift }
                } else {
                    for k in 0..<n {
                        let e = Scalar.exp(src[base + k * stride] - m)
                        out[base + k * stride] = e
                        total += e
                    }
                    let scale = 1 / total
                    for k in 0..<n { out[base + k * stride] *= scale }
                }
            }
        }
    }
}

/// VJP of softmax: y ⊙ (g − Σ_lane g⊙y).
func softmaxBackward<Scalar>(_ g: Tensor<Scalar>, _ y: Tensor<Scalar>, axis: Int) -> Tensor<Scalar> {
    Tensor(shape: y.shape) { out in
        g.withUnsafeBufferPointer { gp in y.withUnsafeBufferPointer { yp in
            forEachLane(y.shape, axis: axis) { base, stride, n in
                var dot: Scalar = 0
                for k in 0..<n { dot += gp[base + k * stride] * yp[base + k * stride] }
                for k in 0..<n {
                    let i = base + k * stride
                    out[i] = yp[i] * (gp[i] - dot)
                }
            }
        } }
    }
}

/// VJP of log-softmax: g − e^y ⊙ Σ_lane g.
func logSoftmaxBackward<Scalar>(_ g: Tensor<Scalar>, _ y: Tensor<Scalar>, axis: Int) -> Tensor<Scalar> {
    Tensor(shape: y.shape) { out in
        g.withUnsafeBufferPointer { gp in y.withUnsafeBufferPointer { yp in
            forEachLane(y.shape, axis: axis) { base, stride, n in
                var total: Scalar = 0
                for k in 0..<n { total += gp[base + k * stride] }
                for k in 0..<n {
                    let i = base + k * stride
                    out[i] = gp[i] - Scalar.exp(yp[i]) * total
                }
            }
        } }
    }
}
