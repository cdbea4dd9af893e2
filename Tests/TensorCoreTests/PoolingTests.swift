import Testing
import TensorCore

struct PoolCase: Sendable, CustomStringConvertible {
    let shape: [Int]
    let params: Pooling2D
    var description: String { "x\(shape) \(params)" }
}

let poolCases: [PoolCase] = [
    PoolCase(shape: [2, 6, 6, 3], params: Pooling2D(kernel: 2)),
    PoolCase(shape: [2, 7, 7, 5], params: Pooling2D(kernel: 2)),  // odd size: the last row and column are dropped
    PoolCase(shape: [2, 7, 6, 4], params: Pooling2D(kernel: 3, stride: 2, padding: 1)),  // overlapping windows
    PoolCase(shape: [1, 5, 8, 2], params: Pooling2D(kernelHeight: 2, kernelWidth: 3, strideHeight: 1, strideWidth: 2,
                                                    paddingTop: 1, paddingBottom: 0, paddingLeft: 0, paddingRight: 2)),
    PoolCase(shape: [3, 4, 4, 16], params: Pooling2D(kernel: 4)),
    PoolCase(shape: [2, 9, 9, 8], params: Pooling2D(kernel: 3, stride: 1, padding: 1)),
]

/// Pooling from the definition, in Double: every window clipped to the input; `average` divides by the window's
/// input cells, or by kh·kw when `includePadding`.
func naivePooling(_ x: Tensor<Double>, _ p: Pooling2D, max isMax: Bool, includePadding: Bool) -> Tensor<Double> {
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let out = p.outputSize(inputHeight: h, inputWidth: w)
    var y = Tensor<Double>.zeros([n, out.height, out.width, c])
    for b in 0..<n { for i in 0..<out.height { for j in 0..<out.width { for k in 0..<c {
        var best = -Double.infinity, sum = 0.0, count = 0
        for u in 0..<p.kernelHeight { for v in 0..<p.kernelWidth {
            let hh = i * p.strideHeight - p.paddingTop + u, ww = j * p.strideWidth - p.paddingLeft + v
            guard hh >= 0 && hh < h && ww >= 0 && ww < w else { continue }
            best = max(best, x[b, hh, ww, k])
            sum += x[b, hh, ww, k]
            count += 1
        } }
        y[b, i, j, k] = isMax ? best : sum / Double(includePadding ? p.kernelHeight * p.kernelWidth : count)
    } } } }
    return y
}

@Suite struct PoolingTests {
    @Test(arguments: poolCases)
    func referenceMatchesTheDefinition(_ pc: PoolCase) {
        let x = Tensor<Double>.randomNormal(pc.shape, seed: 1)
        let (y, indices) = maxPool2DForward(x, params: pc.params)
        #expect(y == naivePooling(x, pc.params, max: true, includePadding: false))
        #expect(indices.inputShape == pc.shape && indices.params == pc.params)
        for include in [true, false] {
            let a = avgPool2DForward(x, params: pc.params, countIncludesPadding: include)
            #expect(a.relativeError(to: naivePooling(x, pc.params, max: false, includePadding: include)) < 1e-14)
        }
    }

    @Test(arguments: poolCases)
    func referenceBackwardMatchesFiniteDifferences(_ pc: PoolCase) {
        let x = Tensor<Double>.randomNormal(pc.shape, seed: 2)
        let out = pc.params.outputSize(inputHeight: pc.shape[1], inputWidth: pc.shape[2])
        let r = Tensor<Double>.randomNormal([pc.shape[0], out.height, out.width, pc.shape[3]], seed: 3)
        // Max pooling is linear near a point without ties, so central differences are exact up to rounding.
        let (_, indices) = maxPool2DForward(x, params: pc.params)
        let dxMax = maxPool2DBackward(r, indices: indices)
        #expect(checkGradient(x, gradient: dxMax, samples: 20, seed: 4) {
            Tensor.dot(maxPool2DForward($0, params: pc.params).output, r)
        })
        for include in [true, false] {
            let dx = avgPool2DBackward(r, inputShape: pc.shape, params: pc.params, countIncludesPadding: include)
            #expect(checkGradient(x, gradient: dx, samples: 20, seed: 5) {
                Tensor.dot(avgPool2DForward($0, params: pc.params, countIncludesPadding: include), r)
            })
        }
    }

    @Test(arguments: poolCases)
    func maxBackwardRoutesEveryGradientToOneArgmax(_ pc: PoolCase) {
        let x = Tensor<Double>.randomNormal(pc.shape, seed: 6)
        let (y, indices) = maxPool2DForward(x, params: pc.params)
        let dy = Tensor<Double>.ones(y.shape)
        let dx = maxPool2DBackward(dy, indices: indices)
        // Each output sends exactly its gradient to one input, which holds that output's value.
        #expect(abs(dx.sum() - dy.sum()) < 1e-12)
        let winners = Set(x.scalars.indices.filter { dx.scalars[$0] != 0 }.map { x.scalars[$0] })
        #expect(winners == Set(y.scalars))
    }

    /// oneDNN (Float) against the reference: max pooling exactly (it only selects values), averages within 1e-6.
    @Test(arguments: poolCases)
    func oneDNNMatchesTheReference(_ pc: PoolCase) {
        let x = Tensor<Float>.randomNormal(pc.shape, seed: 7)
        let (y, indices) = maxPool2DForward(x, params: pc.params, backend: .oneDNN)
        let (yRef, indicesRef) = maxPool2DForward(x, params: pc.params, backend: .reference)
        #expect(y == yRef)
        let dy = Tensor<Float>.randomNormal(y.shape, seed: 8)
        #expect(maxPool2DBackward(dy, indices: indices).relativeError(to: maxPool2DBackward(dy, indices: indicesRef)) <= 1e-6)
        for include in [true, false] {
            let a = avgPool2DForward(x, params: pc.params, countIncludesPadding: include, backend: .oneDNN)
            let aRef = avgPool2DForward(x, params: pc.params, countIncludesPadding: include, backend: .reference)
            #expect(a.relativeError(to: aRef) <= 1e-6)
            let da = avgPool2DBackward(dy, inputShape: pc.shape, params: pc.params, countIncludesPadding: include,
                                       backend: .oneDNN)
            let daRef = avgPool2DBackward(dy, inputShape: pc.shape, params: pc.params, countIncludesPadding: include,
                                          backend: .reference)
            #expect(da.relativeError(to: daRef) <= 1e-6)
        }
        // Every pass ran on oneDNN (a pass oneDNN cannot build or run falls back to the
        // reference and is listed as unsupported instead of cached).
        for pass in ["forward", "backward"] {
            for kind in ["max", "avg-include-padding", "avg-exclude-padding"] {
                #expect(OneDNN.cachedPrimitiveDescriptions.contains { $0 == "pooling.\(pass) input \(pc.shape) \(kind) \(pc.params)" })
            }
        }
        #expect(OneDNN.unsupportedOperationDescriptions.isEmpty)
    }

    @Test func globalAveragePoolingAndItsAdjoint() {
        let x = Tensor<Double>.randomNormal([3, 4, 5, 6], seed: 9)
        let y = globalAvgPool2DForward(x)
        #expect(y.shape == [3, 6])
        #expect(y.relativeError(to: x.mean(axes: [1, 2])) < 1e-14)
        let dy = Tensor<Double>.randomNormal([3, 6], seed: 10)
        let dx = globalAvgPool2DBackward(dy, inputShape: x.shape)
        // ⟨gap(x), dy⟩ = ⟨x, gapᵀ(dy)⟩.
        #expect(abs(Tensor.dot(y, dy) - Tensor.dot(x, dx)) < 1e-12)
    }
}
