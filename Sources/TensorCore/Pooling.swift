/// Window of a 2-D pooling: kernel size, stride and padding (each side), for NHWC activations.
///
/// Output size per axis: ⌊(in + padLow + padHigh − kernel) / stride⌋ + 1. Padding must be smaller than the kernel so
/// every window overlaps the input.
public struct Pooling2D: Hashable, Sendable, CustomStringConvertible {
    /// Window height.
    public var kernelHeight: Int
    /// Window width.
    public var kernelWidth: Int
    /// Step between windows along the height.
    public var strideHeight: Int
    /// Step between windows along the width.
    public var strideWidth: Int
    /// Padding rows above the input.
    public var paddingTop: Int
    /// Padding rows below the input.
    public var paddingBottom: Int
    /// Padding columns left of the input.
    public var paddingLeft: Int
    /// Padding columns right of the input.
    public var paddingRight: Int

    /// Every field given explicitly; padding may differ on each side.
    public init(kernelHeight: Int, kernelWidth: Int, strideHeight: Int, strideWidth: Int, paddingTop: Int = 0,
                paddingBottom: Int = 0, paddingLeft: Int = 0, paddingRight: Int = 0) {
        precondition(kernelHeight >= 1 && kernelWidth >= 1, "Pooling2D: kernel must be ≥ 1, got \(kernelHeight)x\(kernelWidth)")
        precondition(strideHeight >= 1 && strideWidth >= 1, "Pooling2D: strides must be ≥ 1, got \(strideHeight)x\(strideWidth)")
        precondition(min(paddingTop, paddingBottom, paddingLeft, paddingRight) >= 0
                        && max(paddingTop, paddingBottom) < kernelHeight && max(paddingLeft, paddingRight) < kernelWidth,
                     "Pooling2D: padding \([paddingTop, paddingBottom, paddingLeft, paddingRight]) must be ≥ 0 and smaller than the kernel \(kernelHeight)x\(kernelWidth)")
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingTop = paddingTop
        self.paddingBottom = paddingBottom
        self.paddingLeft = paddingLeft
        self.paddingRight = paddingRight
    }

    /// A square window; the stride defaults to the kernel size (non-overlapping windows), padding is symmetric.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(kernelHeight: kernel, kernelWidth: kernel, strideHeight: stride ?? kernel,
                  strideWidth: stride ?? kernel, paddingTop: padding, paddingBottom: padding, paddingLeft: padding,
                  paddingRight: padding)
    }

    /// Output height and width for an input of `inputHeight`×`inputWidth`.
    public func outputSize(inputHeight: Int, inputWidth: Int) -> (height: Int, width: Int) {
        let h = inputHeight + paddingTop + paddingBottom - kernelHeight
        let w = inputWidth + paddingLeft + paddingRight - kernelWidth
        return (h < 0 ? 0 : h / strideHeight + 1, w < 0 ? 0 : w / strideWidth + 1)
    }

    /// The window in one line, e.g. "kernel 2x2 stride 2x2 padding 0,0,0,0".
    public var description: String {
        "kernel \(kernelHeight)x\(kernelWidth) stride \(strideHeight)x\(strideWidth) "
            + "padding \(paddingTop),\(paddingBottom),\(paddingLeft),\(paddingRight)"
    }
}

/// The reduction a pooling window applies.
enum PoolingKind: Hashable, CustomStringConvertible {
    case max, averageIncludingPadding, averageExcludingPadding
    var description: String {
        switch self {
        case .max: return "max"
        case .averageIncludingPadding: return "avg-include-padding"
        case .averageExcludingPadding: return "avg-exclude-padding"
        }
    }
}

/// Sizes of one pooling, checked once.
struct PoolingGeometry: Hashable {
    let batch, height, width, channels, outHeight, outWidth: Int
    let params: Pooling2D
    let kind: PoolingKind

    init(input: [Int], params: Pooling2D, kind: PoolingKind) {
        precondition(input.count == 4, "pooling: input must be NHWC [batch, height, width, channels], got shape \(input)")
        (batch, height, width, channels) = (input[0], input[1], input[2], input[3])
        let out = params.outputSize(inputHeight: height, inputWidth: width)
        precondition(out.height >= 1 && out.width >= 1, "pooling: window \(params) does not fit the input \(input)")
        (outHeight, outWidth) = out
        self.params = params
        self.kind = kind
    }

    var inputShape: [Int] { [batch, height, width, channels] }
    var outputShape: [Int] { [batch, outHeight, outWidth, channels] }

    /// Valid input rows `h0..<h1` and columns `w0..<w1` of output pixel (i, j).
    @inline(__always)
    func window(_ i: Int, _ j: Int) -> (h0: Int, h1: Int, w0: Int, w1: Int) {
        let hs = i * params.strideHeight - params.paddingTop, ws = j * params.strideWidth - params.paddingLeft
        return (Swift.max(hs, 0), Swift.min(hs + params.kernelHeight, height),
                Swift.max(ws, 0), Swift.min(ws + params.kernelWidth, width))
    }

    /// Divisor of an average window at (i, j).
    @inline(__always)
    func divisor(_ i: Int, _ j: Int) -> Int {
        if kind == .averageIncludingPadding {
            // PyTorch's count_include_pad: the window clipped to the padded input, padding cells included.
            let hs = i * params.strideHeight - params.paddingTop, ws = j * params.strideWidth - params.paddingLeft
            let he = Swift.min(hs + params.kernelHeight, height + params.paddingBottom)
            let we = Swift.min(ws + params.kernelWidth, width + params.paddingRight)
            return (he - hs) * (we - ws)
        }
        let w = window(i, j)
        return (w.h1 - w.h0) * (w.w1 - w.w0)
    }
}

/// Where max pooling recorded each window's maximum, for `maxPool2DBackward`.
///
/// Opaque: oneDNN's workspace when the forward pass ran on oneDNN, or the winning tap of every window on the
/// reference path. It also remembers the input shape and window.
public struct MaxPoolingIndices: @unchecked Sendable {
    enum Record {
        case oneDNN(DNNLBuffer)
        /// The winning tap u·kw + v of every output's window (reference path).
        case windowTaps([Int32])
    }
    let record: Record
    let geometry: PoolingGeometry

    /// The NHWC shape of the pooled input.
    public var inputShape: [Int] { geometry.inputShape }
    /// The pooling window.
    public var params: Pooling2D { geometry.params }
}

// MARK: - Public entry points

/// Max pooling [1] over NHWC windows: y[n,i,j,c] = max over the window at (i, j) of x[n,·,·,c] (padding never wins).
///
/// Returns the output and the argmax record that `maxPool2DBackward` routes gradients through. `Float` runs on
/// oneDNN unless `backend` is `.reference`.
public func maxPool2DForward<Scalar: TensorScalar>(
    _ input: Tensor<Scalar>, params: Pooling2D, backend: ConvolutionBackend = .oneDNN
) -> (output: Tensor<Scalar>, indices: MaxPoolingIndices) {
    let g = PoolingGeometry(input: input.shape, params: params, kind: .max)
    if g.batch > 0 && g.channels > 0 && backend.runsOnOneDNN(Scalar.self) {
        var workspace: DNNLBuffer?? = nil
        let y = Tensor<Scalar>(shape: g.outputShape) { out in
            workspace = input.withUnsafeBufferPointer { x in
                DNNLPooling.forward(g, input: mutableRaw(x), output: UnsafeMutableRawPointer(out.baseAddress!))
            }
        }
        if case let .some(.some(buffer)) = workspace {
            return (y, MaxPoolingIndices(record: .oneDNN(buffer), geometry: g))
        }
    }
    return ReferencePooling.maxForward(input, g)
}

/// Gradient of max pooling: each dy[n,i,j,c] is added to the input position that won window (i, j).
///
/// `gradOutput` must have the forward output's shape; `indices` comes from the forward pass.
public func maxPool2DBackward<Scalar: TensorScalar>(
    _ gradOutput: Tensor<Scalar>, indices: MaxPoolingIndices
) -> Tensor<Scalar> {
    let g = indices.geometry
    precondition(gradOutput.shape == g.outputShape,
                 "maxPool2DBackward: gradOutput \(gradOutput.shape) must be the forward output shape \(g.outputShape)")
    switch indices.record {
    case let .oneDNN(workspace):
        precondition(Scalar.self == Float.self, "maxPool2DBackward: indices from a Float forward pass used with \(Scalar.self)")
        var ok = false
        let dx = Tensor<Scalar>(shape: g.inputShape) { out in
            ok = gradOutput.withUnsafeBufferPointer { dy in
                DNNLPooling.backward(g, gradOutput: mutableRaw(dy), gradInput: UnsafeMutableRawPointer(out.baseAddress!),
                                     workspace: workspace)
            }
        }
        precondition(ok, "maxPool2DBackward: oneDNN failed to run a pooling it ran forward (\(g.params), input \(g.inputShape))")
        return dx
    case let .windowTaps(taps):
        return ReferencePooling.maxBackward(gradOutput, taps: taps, g)
    }
}

/// Average pooling over NHWC windows: y[n,i,j,c] = (1/|window|) Σ_window x[n,·,·,c].
///
/// With `countIncludesPadding` (PyTorch's default) the divisor counts the padding cells inside the window; otherwise
/// only the input cells.
public func avgPool2DForward<Scalar: TensorScalar>(
    _ input: Tensor<Scalar>, params: Pooling2D, countIncludesPadding: Bool = true,
    backend: ConvolutionBackend = .oneDNN
) -> Tensor<Scalar> {
    let g = PoolingGeometry(input: input.shape, params: params,
                            kind: countIncludesPadding ? .averageIncludingPadding : .averageExcludingPadding)
    if g.batch > 0 && g.channels > 0 && backend.runsOnOneDNN(Scalar.self) {
        var result: DNNLBuffer?? = nil
        let y = Tensor<Scalar>(shape: g.outputShape) { out in
            result = input.withUnsafeBufferPointer { x in
                DNNLPooling.forward(g, input: mutableRaw(x), output: UnsafeMutableRawPointer(out.baseAddress!))
            }
        }
        if case .some = result { return y }
    }
    return ReferencePooling.averageForward(input, g)
}

/// Gradient of average pooling: each dy[n,i,j,c]/|window| is added to every input cell of window (i, j).
///
/// `inputShape`, `params` and `countIncludesPadding` must be those of the forward pass.
public func avgPool2DBackward<Scalar: TensorScalar>(
    _ gradOutput: Tensor<Scalar>, inputShape: [Int], params: Pooling2D, countIncludesPadding: Bool = true,
    backend: ConvolutionBackend = .oneDNN
) -> Tensor<Scalar> {
    let g = PoolingGeometry(input: inputShape, params: params,
                            kind: countIncludesPadding ? .averageIncludingPadding : .averageExcludingPadding)
    precondition(gradOutput.shape == g.outputShape,
                 "avgPool2DBackward: gradOutput \(gradOutput.shape) must be the forward output shape \(g.outputShape) for input \(inputShape)")
    if g.batch > 0 && g.channels > 0 && backend.runsOnOneDNN(Scalar.self) {
        var ok = false
        let dx = Tensor<Scalar>(shape: inputShape) { out in
            ok = gradOutput.withUnsafeBufferPointer { dy in
                DNNLPooling.backward(g, gradOutput: mutableRaw(dy), gradInput: UnsafeMutableRawPointer(out.baseAddress!),
                                     workspace: nil)
            }
        }
        if ok { return dx }
    }
    return ReferencePooling.averageBackward(gradOutput, g)
}

/// Global average pooling: NHWC [N, H, W, C] → [N, C], y[n,c] = (1/(H·W)) Σ_{h,w} x[n,h,w,c].
public func globalAvgPool2DForward<Scalar: TensorScalar>(_ input: Tensor<Scalar>) -> Tensor<Scalar> {
    precondition(input.rank == 4 && input.shape[1] * input.shape[2] > 0,
                 "globalAvgPool2DForward: input must be NHWC with a non-empty image, got shape \(input.shape)")
    let (n, pixels, c) = (input.shape[0], input.shape[1] * input.shape[2], input.shape[3])
    let scale = 1 / Scalar(pixels)
    return Tensor(shape: [n, c]) { out in
        input.withUnsafeBufferPointer { x in
            for b in 0..<n {
                let dst = out.baseAddress! + b * c
                dst.initialize(repeating: 0, count: c)
                for p in 0..<pixels {
                    let src = x.baseAddress! + (b * pixels + p) * c
                    for k in 0..<c { dst[k] += src[k] }
                }
                for k in 0..<c { dst[k] *= scale }
            }
        }
    }
}

/// Gradient of global average pooling: dx[n,h,w,c] = dy[n,c]/(H·W) for the NHWC `inputShape`.
public func globalAvgPool2DBackward<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, inputShape: [Int]) -> Tensor<Scalar> {
    precondition(inputShape.count == 4 && gradOutput.shape == [inputShape[0], inputShape[3]],
                 "globalAvgPool2DBackward: gradOutput \(gradOutput.shape) must be [N, C] of the NHWC input \(inputShape)")
    let (n, pixels, c) = (inputShape[0], inputShape[1] * inputShape[2], inputShape[3])
    let scale = 1 / Scalar(pixels)
    return Tensor(shape: inputShape) { out in
        gradOutput.withUnsafeBufferPointer { dy in
            for b in 0..<n {
                let src = dy.baseAddress! + b * c
                for p in 0..<pixels {
                    let dst = out.baseAddress! + (b * pixels + p) * c
                    for k in 0..<c { dst[k] = src[k] * scale }
                }
            }
        }
    }
}

// MARK: - Reference loops

/// Plain NHWC loops (channels innermost, so the compiler vectorizes across channels): the `Double` path and the
/// reference the oneDNN path is tested against.
enum ReferencePooling {
    static func maxForward<Scalar: TensorScalar>(_ input: Tensor<Scalar>,
                                                 _ g: PoolingGeometry) -> (output: Tensor<Scalar>, indices: MaxPoolingIndices) {
        let c = g.channels, kw = g.params.kernelWidth
        // The winner of each window as its tap number u·kw + v inside the window.
        var taps = [Int32](repeating: 0, count: g.outputShape.reduce(1, *))
        let y = Tensor<Scalar>(shape: g.outputShape) { out in
            input.withUnsafeBufferPointer { x in taps.withUnsafeMutableBufferPointer { taps in
                var o = 0
                for n in 0..<g.batch {
                    for i in 0..<g.outHeight {
                        for j in 0..<g.outWidth {
                            let w = g.window(i, j)
                            let hs = i * g.params.strideHeight - g.params.paddingTop
                            let ws = j * g.params.strideWidth - g.params.paddingLeft
                            let best = out.baseAddress! + o, arg = taps.baseAddress! + o
                            var first = true
                            for h in w.h0..<w.h1 {
                                for v in w.w0..<w.w1 {
                                    let src = x.baseAddress! + ((n * g.height + h) * g.width + v) * c
                                    let tap = Int32((h - hs) * kw + (v - ws))
                                    if first {
                                        for k in 0..<c { best[k] = src[k]; arg[k] = tap }
                                        first = false
                                    } else {
                                        // Selects instead of branches, so the loop vectorizes across channels.
                                        for k in 0..<c {
                                            let value = src[k], current = best[k], currentTap = arg[k]
                                            let wins = value > current
                                            best[k] = wins ? value : current
                                            arg[k] = wins ? tap : currentTap
                                        }
                                    }
                                }
                            }
                            o += c
                        }
                    }
                }
            } }
        }
        return (y, MaxPoolingIndices(record: .windowTaps(taps), geometry: g))
    }

    static func maxBackward<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, taps: [Int32],
                                                  _ g: PoolingGeometry) -> Tensor<Scalar> {
        let c = g.channels, kw = g.params.kernelWidth
        // Offset of each tap from its window's origin, in scalars.
        let tapOffsets = (0..<(g.params.kernelHeight * kw)).map { ($0 / kw * g.width + $0 % kw) * c }
        var dx = Tensor<Scalar>(repeating: 0, shape: g.inputShape)
        dx.withUnsafeMutableBufferPointer { out in gradOutput.withUnsafeBufferPointer { dy in
            taps.withUnsafeBufferPointer { taps in tapOffsets.withUnsafeBufferPointer { offsets in
                var o = 0
                for n in 0..<g.batch {
                    for i in 0..<g.outHeight {
                        for j in 0..<g.outWidth {
                            let hs = i * g.params.strideHeight - g.params.paddingTop
                            let ws = j * g.params.strideWidth - g.params.paddingLeft
                            let origin = ((n * g.height + hs) * g.width + ws) * c  // may lie in the padding
                            for k in 0..<c { out[origin + offsets[Int(taps[o + k])] + k] += dy[o + k] }
                            o += c
                        }
                    }
                }
            } }
        } }
        return dx
    }

    static func averageForward<Scalar: TensorScalar>(_ input: Tensor<Scalar>, _ g: PoolingGeometry) -> Tensor<Scalar> {
        let c = g.channels
        return Tensor<Scalar>(shape: g.outputShape) { out in
            input.withUnsafeBufferPointer { x in
                var o = 0
                for n in 0..<g.batch {
                    for i in 0..<g.outHeight {
                        for j in 0..<g.outWidth {
                            let w = g.window(i, j)
                            let dst = out.baseAddress! + o
                            dst.initialize(repeating: 0, count: c)
                            for h in w.h0..<w.h1 {
                                for v in w.w0..<w.w1 {
                                    let src = x.baseAddress! + ((n * g.height + h) * g.width + v) * c
                                    for k in 0..<c { dst[k] += src[k] }
                                }
                            }
                            let scale = 1 / Scalar(g.divisor(i, j))
                            for k in 0..<c { dst[k] *= scale }
                            o += c
                        }
                    }
                }
            }
        }
    }

    static func averageBackward<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, _ g: PoolingGeometry) -> Tensor<Scalar> {
        let c = g.channels
        var dx = Tensor<Scalar>(repeating: 0, shape: g.inputShape)
        dx.withUnsafeMutableBufferPointer { out in gradOutput.withUnsafeBufferPointer { dy in
            var o = 0
            for n in 0..<g.batch {
                for i in 0..<g.outHeight {
                    for j in 0..<g.outWidth {
                        let w = g.window(i, j)
                        let scale = 1 / Scalar(g.divisor(i, j))
                        let src = dy.baseAddress! + o
                        for h in w.h0..<w.h1 {
                            for v in w.w0..<w.w1 {
                                let dst = out.baseAddress! + ((n * g.height + h) * g.width + v) * c
                                for k in 0..<c { dst[k] += src[k] * scale }
                            }
                        }
                        o += c
                    }
                }
            }
        } }
        return dx
    }
}
