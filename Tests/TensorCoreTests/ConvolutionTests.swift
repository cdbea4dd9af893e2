import Foundation
import Testing
import TensorCore

/// One convolution configuration: NHWC input [n, h, w, c], OIHW weight [o, c/groups, kh, kw].
struct ConvCase: Sendable, CustomStringConvertible {
    let n, h, w, c, o, kh, kw: Int
    let params: Convolution2D
    let bias: Bool
    var inputShape: [Int] { [n, h, w, c] }
    var weightShape: [Int] { [o, c / params.groups, kh, kw] }
    var description: String { "x\(inputShape) w\(weightShape) \(params)\(bias ? " bias" : "")" }
}

let convCases: [ConvCase] = [
    ConvCase(n: 2, h: 6, w: 5, c: 3, o: 4, kh: 3, kw: 3, params: Convolution2D(padding: 1), bias: true),
    ConvCase(n: 2, h: 7, w: 7, c: 4, o: 6, kh: 3, kw: 3, params: Convolution2D(stride: 2, padding: 1), bias: false),
    ConvCase(n: 1, h: 6, w: 7, c: 3, o: 5, kh: 3, kw: 2,
             params: Convolution2D(strideHeight: 1, strideWidth: 2, paddingTop: 0, paddingBottom: 2, paddingLeft: 1,
                                   paddingRight: 0), bias: true),
    ConvCase(n: 1, h: 9, w: 8, c: 3, o: 5, kh: 3, kw: 3, params: Convolution2D(padding: 2, dilation: 2), bias: false),
    ConvCase(n: 2, h: 8, w: 7, c: 2, o: 3, kh: 2, kw: 3,
             params: Convolution2D(stride: (2, 1), padding: (1, 0), dilation: (1, 2)), bias: true),
    ConvCase(n: 2, h: 5, w: 6, c: 4, o: 6, kh: 3, kw: 3, params: Convolution2D(padding: 1, groups: 2), bias: true),
    ConvCase(n: 2, h: 6, w: 6, c: 4, o: 8, kh: 3, kw: 3, params: Convolution2D(stride: 2, padding: 1, groups: 4), bias: false),
    ConvCase(n: 2, h: 5, w: 5, c: 8, o: 8, kh: 3, kw: 3, params: Convolution2D(padding: 1, groups: 8), bias: true),
    ConvCase(n: 3, h: 4, w: 5, c: 5, o: 7, kh: 1, kw: 1, params: Convolution2D(), bias: true),
    ConvCase(n: 2, h: 7, w: 6, c: 6, o: 4, kh: 1, kw: 1, params: Convolution2D(stride: 2), bias: false),
    ConvCase(n: 4, h: 8, w: 8, c: 1, o: 8, kh: 3, kw: 3, params: Convolution2D(padding: 1), bias: false),
    ConvCase(n: 1, h: 5, w: 5, c: 16, o: 16, kh: 5, kw: 5, params: Convolution2D(padding: 2), bias: true),
]

/// Direct 7-loop convolution from the definition, in Double.
func naiveConvolution(_ x: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>?, _ p: Convolution2D) -> Tensor<Double> {
    let (n, h, wd, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let og = o / p.groups
    let out = p.outputSize(inputHeight: h, inputWidth: wd, kernelHeight: kh, kernelWidth: kw)
    let xs = x.scalars, ws = w.scalars, bs = b?.scalars
    var y = [Double](repeating: 0, count: n * out.height * out.width * o)
    for b in 0..<n { for i in 0..<out.height { for j in 0..<out.width { for oc in 0..<o {
        let g = oc / og
        var sum = bs?[oc] ?? 0
        for ci in 0..<cg { for u in 0..<kh { for v in 0..<kw {
            let hh = i * p.strideHeight - p.paddingTop + u * p.dilationHeight
            let ww = j * p.strideWidth - p.paddingLeft + v * p.dilationWidth
            guard hh >= 0 && hh < h && ww >= 0 && ww < wd else { continue }
            sum += ws[((oc * cg + ci) * kh + u) * kw + v] * xs[((b * h + hh) * wd + ww) * c + g * cg + ci]
        } } }
        y[((b * out.height + i) * out.width + j) * o + oc] = sum
    } } } }
    _ = c
    return Tensor(shape: [n, out.height, out.width, o], scalars: y)
}

/// Central-difference check of a gradient at a few random coordinates:
/// |(L(θ + h·e_k) − L(θ − h·e_k))/2h − g_k| ≤ tolerance·max(1, |g_k|).
func checkGradient(_ theta: Tensor<Double>, gradient: Tensor<Double>, samples: Int, seed: UInt64,
                   step: Double = 1e-5, tolerance: Double = 1e-6,
                   loss: (Tensor<Double>) -> Double) -> Bool {
    var generator = SeededGenerator(seed: seed)
    var ok = true
    for _ in 0..<samples {
        let k = generator.nextInt(below: theta.scalarCount)
        var plus = theta, minus = theta
        plus.withUnsafeMutableBufferPointer { $0[k] += step }
        minus.withUnsafeMutableBufferPointer { $0[k] -= step }
        let numeric = (loss(plus) - loss(minus)) / (2 * step)
        let analytic = gradient.scalars[k]
        if abs(numeric - analytic) > tolerance * max(1, abs(analytic)) { ok = false }
    }
    return ok
}

@Suite struct ConvolutionTests {
    @Test func outputSizeFollowsTheFormula() {
        // "Same" padding at stride 1 keeps the size; stride 2 halves an even size.
        let same = Convolution2D(padding: 1).outputSize(inputHeight: 28, inputWidth: 14, kernelHeight: 3, kernelWidth: 3)
        #expect(same.height == 28 && same.width == 14)
        let half = Convolution2D(stride: 2, padding: 1).outputSize(inputHeight: 28, inputWidth: 14, kernelHeight: 3, kernelWidth: 3)
        #expect(half.height == 14 && half.width == 7)
        // A dilated 3-tap kernel spans 2·2 + 1 = 5 pixels: 9 − 5 + 1 = 5 outputs without padding.
        let dilated = Convolution2D(dilation: 2).outputSize(inputHeight: 9, inputWidth: 9, kernelHeight: 3, kernelWidth: 3)
        #expect(dilated.height == 5 && dilated.width == 5)
        #expect(Convolution2D(stride: 2).outputShape(input: [8, 7, 7, 3], weight: [16, 3, 1, 1]) == [8, 4, 4, 16])
        #expect(Convolution2D(padding: 1).multiplyAdds(input: [2, 4, 4, 3], weight: [5, 3, 3, 3]) == 2 * 16 * 5 * 27)
    }

    @Test(arguments: convCases)
    func referenceForwardMatchesTheDefinition(_ cc: ConvCase) {
        let x = Tensor<Double>.randomNormal(cc.inputShape, seed: 1)
        let w = Tensor<Double>.randomNormal(cc.weightShape, seed: 2)
        let b: Tensor<Double>? = cc.bias ? Tensor.randomNormal([cc.o], seed: 3) : nil
        let y = conv2dForward(x, weight: w, bias: b, params: cc.params)
        let expected = naiveConvolution(x, w, b, cc.params)
        #expect(y.shape == expected.shape)
        #expect(y.relativeError(to: expected) < 1e-13)
    }

    /// The convolution is bilinear, so its two backward passes are its adjoints:
    /// ⟨conv(x, w), dy⟩ = ⟨x, backwardData(dy, w)⟩ = ⟨w, backwardWeights(x, dy)⟩, and ⟨1, dy⟩ = Σ db.
    @Test(arguments: convCases)
    func referenceBackwardPassesAreAdjoints(_ cc: ConvCase) {
        let x = Tensor<Double>.randomNormal(cc.inputShape, seed: 4)
        let w = Tensor<Double>.randomNormal(cc.weightShape, seed: 5)
        let y = conv2dForward(x, weight: w, params: cc.params)
        let dy = Tensor<Double>.randomNormal(y.shape, seed: 6)
        let dx = conv2dBackwardData(dy, weight: w, inputShape: cc.inputShape, params: cc.params)
        let (dw, db) = conv2dBackwardWeights(input: x, gradOutput: dy, weightShape: cc.weightShape, params: cc.params)
        // Rounding errors of these sums are bounded by a small multiple of ‖y‖·‖dy‖ (Cauchy–Schwarz).
        let forward = Tensor.dot(y, dy), scale = y.frobeniusNorm() * dy.frobeniusNorm()
        #expect(abs(Tensor.dot(x, dx) - forward) <= 1e-12 * scale)
        #expect(abs(Tensor.dot(w, dw) - forward) <= 1e-12 * scale)
        #expect(db != nil && abs(db!.sum() - dy.sum()) <= 1e-12 * Double(dy.scalarCount) * dy.abs().max())
    }

    @Test(arguments: convCases.prefix(8))
    func referenceBackwardMatchesFiniteDifferences(_ cc: ConvCase) {
        let x = Tensor<Double>.randomNormal(cc.inputShape, seed: 7)
        let w = Tensor<Double>.randomNormal(cc.weightShape, seed: 8)
        let b = Tensor<Double>.randomNormal([cc.o], seed: 9)
        let r = Tensor<Double>.randomNormal(Convolution2D.outputShape(cc), seed: 10)
        // L = ⟨conv(x, w, b), r⟩ has gradients backwardData(r), backwardWeights(x, r).
        let dx = conv2dBackwardData(r, weight: w, inputShape: cc.inputShape, params: cc.params)
        let (dw, db) = conv2dBackwardWeights(input: x, gradOutput: r, weightShape: cc.weightShape, params: cc.params)
        #expect(checkGradient(x, gradient: dx, samples: 12, seed: 11) {
            Tensor.dot(conv2dForward($0, weight: w, bias: b, params: cc.params), r)
        })
        #expect(checkGradient(w, gradient: dw, samples: 12, seed: 12) {
            Tensor.dot(conv2dForward(x, weight: $0, bias: b, params: cc.params), r)
        })
        #expect(checkGradient(b, gradient: db!, samples: 3, seed: 13) {
            Tensor.dot(conv2dForward(x, weight: w, bias: $0, params: cc.params), r)
        })
    }

    /// oneDNN (Float) against the im2col + GEMM reference run in Double: relative error ≤ 1e-4 for the forward pass
    /// and both backward passes.
    @Test(arguments: convCases)
    func oneDNNMatchesTheReference(_ cc: ConvCase) {
        let x = Tensor<Float>.randomNormal(cc.inputShape, seed: 21)
        let w = Tensor<Float>.randomNormal(cc.weightShape, seed: 22)
        let b: Tensor<Float>? = cc.bias ? Tensor.randomNormal([cc.o], seed: 23) : nil
        let (xd, wd) = (x.converted(to: Double.self), w.converted(to: Double.self))

        let y = conv2dForward(x, weight: w, bias: b, params: cc.params, backend: .oneDNN)
        let yRef = conv2dForward(xd, weight: wd, bias: b?.converted(to: Double.self), params: cc.params)
        #expect(y.converted(to: Double.self).relativeError(to: yRef) <= 1e-4)

        let dy = Tensor<Float>.randomNormal(y.shape, seed: 24)
        let dyd = dy.converted(to: Double.self)
        let dx = conv2dBackwardData(dy, weight: w, inputShape: cc.inputShape, params: cc.params, backend: .oneDNN)
        let dxRef = conv2dBackwardData(dyd, weight: wd, inputShape: cc.inputShape, params: cc.params)
        #expect(dx.converted(to: Double.self).relativeError(to: dxRef) <= 1e-4)

        let (dw, db) = conv2dBackwardWeights(input: x, gradOutput: dy, weightShape: cc.weightShape, params: cc.params,
                                             includeBias: cc.bias, backend: .oneDNN)
        let (dwRef, dbRef) = conv2dBackwardWeights(input: xd, gradOutput: dyd, weightShape: cc.weightShape,
                                                   params: cc.params, includeBias: cc.bias)
        #expect(dw.converted(to: Double.self).relativeError(to: dwRef) <= 1e-4)
        #expect((db == nil) == !cc.bias)
        if let db, let dbRef { #expect(db.converted(to: Double.self).relativeError(to: dbRef) <= 1e-4) }

        // All three passes ran on oneDNN (a pass oneDNN cannot build or run falls back to the
        // reference and is listed as unsupported instead of cached).
        for pass in ["forward", "backwardData", "backwardWeights"] {
            #expect(OneDNN.cachedPrimitiveDescriptions.contains {
                $0.hasPrefix("convolution.\(pass) input \(cc.inputShape) weight \(cc.weightShape) \(cc.params)")
            })
        }
        #expect(OneDNN.unsupportedOperationDescriptions.isEmpty)

        // The Float reference mode agrees too.
        let yFloatRef = conv2dForward(x, weight: w, bias: b, params: cc.params, backend: .reference)
        #expect(yFloatRef.converted(to: Double.self).relativeError(to: yRef) <= 1e-5)
    }

    @Test func primitiveCacheIsReusedPerShape() {
        #expect(OneDNN.isAvailable)
        // A shape no other test uses, so parallel tests cannot add entries for it.
        let shape = [3, 11, 13, 5]
        let marker = "input \(shape)"
        let x = Tensor<Float>.randomNormal(shape, seed: 31)
        let w = Tensor<Float>.randomNormal([6, 5, 3, 3], seed: 32)
        let params = Convolution2D(padding: 1)
        let entries = { OneDNN.cachedPrimitiveDescriptions.filter { $0.contains(marker) }.count }
        #expect(entries() == 0)
        let first = conv2dForward(x, weight: w, params: params)
        #expect(entries() == 1)
        let second = conv2dForward(x, weight: w, params: params)
        #expect(entries() == 1)
        #expect(first == second)
        let dy = Tensor<Float>.ones(first.shape)
        _ = conv2dBackwardData(dy, weight: w, inputShape: shape, params: params)
        _ = conv2dBackwardWeights(input: x, gradOutput: dy, weightShape: w.shape, params: params)
        #expect(entries() == 3)
        _ = conv2dBackwardWeights(input: x, gradOutput: dy, weightShape: w.shape, params: params)
        #expect(entries() == 3)
        // A different batch size is a different primitive.
        _ = conv2dForward(Tensor<Float>.zeros([4] + shape.dropFirst()), weight: w, params: params)
        #expect(OneDNN.cachedPrimitiveDescriptions.contains { $0.contains("input [4, 11, 13, 5]") })
        #expect(!OneDNN.version.isEmpty)
    }

    @Test func concurrentCallsAgree() async {
        let x = Tensor<Float>.randomNormal([4, 9, 9, 8], seed: 41)
        let w = Tensor<Float>.randomNormal([8, 8, 3, 3], seed: 42)
        let params = Convolution2D(padding: 1)
        let expected = conv2dForward(x, weight: w, params: params, backend: .reference)
        let results = await withTaskGroup(of: Tensor<Float>.self) { group in
            for _ in 0..<6 { group.addTask { conv2dForward(x, weight: w, params: params) } }
            var all: [Tensor<Float>] = []
            for await y in group { all.append(y) }
            return all
        }
        #expect(results.count == 6)
        for y in results { #expect(y.relativeError(to: expected) <= 1e-5) }
    }

    @Test func emptyBatchGivesEmptyResults() {
        let w = Tensor<Float>.randomNormal([4, 3, 3, 3], seed: 51)
        let y = conv2dForward(Tensor<Float>.zeros([0, 5, 5, 3]), weight: w, params: Convolution2D(padding: 1))
        #expect(y.shape == [0, 5, 5, 4])
        let (dw, db) = conv2dBackwardWeights(input: Tensor<Float>.zeros([0, 5, 5, 3]), gradOutput: y,
                                             weightShape: w.shape, params: Convolution2D(padding: 1))
        #expect(dw == Tensor.zeros(w.shape) && db == Tensor.zeros([4]))
    }

    @Test func layoutReordersRoundTrip() {
        let nchw = Tensor<Double>.randomNormal([2, 3, 4, 5], seed: 61)
        let nhwc = nchw.nhwcFromNCHW()
        #expect(nhwc.shape == [2, 4, 5, 3])
        #expect(nhwc[1, 3, 2, 0] == nchw[1, 0, 3, 2])
        #expect(nhwc.nchwFromNHWC() == nchw)
    }
}

extension Convolution2D {
    /// The NHWC output shape of a test case.
    static func outputShape(_ cc: ConvCase) -> [Int] { cc.params.outputShape(input: cc.inputShape, weight: cc.weightShape) }
}
