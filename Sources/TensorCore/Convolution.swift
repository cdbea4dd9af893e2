/// Geometry of a 2-D convolution: stride, zero padding (each side), dilation and groups.
///
/// Activations are NHWC (`[batch, height, width, channels]`) and weights OIHW (`[out, in/groups, kh, kw]`).
/// The output size along each spatial axis is
///
///     out = ⌊(in + padLow + padHigh − dilation·(kernel − 1) − 1) / stride⌋ + 1
///
/// (PyTorch's `Conv2d` convention: a dilation of 1 means a dense kernel).
public struct Convolution2D: Hashable, Sendable, CustomStringConvertible {
    /// Step between output pixels along the height.
    public var strideHeight: Int
    /// Step between output pixels along the width.
    public var strideWidth: Int
    /// Zero rows added above the input.
    public var paddingTop: Int
    /// Zero rows added below the input.
    public var paddingBottom: Int
    /// Zero columns added left of the input.
    public var paddingLeft: Int
    /// Zero columns added right of the input.
    public var paddingRight: Int
    /// Spacing between kernel taps along the height (1 = dense).
    public var dilationHeight: Int
    /// Spacing between kernel taps along the width (1 = dense).
    public var dilationWidth: Int
    /// Number of channel groups: input and output channels split into `groups` independent convolutions
    /// (`groups == channels` is depthwise).
    public var groups: Int

    /// Every field given explicitly; padding may differ on each side.
    public init(strideHeight: Int, strideWidth: Int, paddingTop: Int, paddingBottom: Int, paddingLeft: Int,
                paddingRight: Int, dilationHeight: Int = 1, dilationWidth: Int = 1, groups: Int = 1) {
        precondition(strideHeight >= 1 && strideWidth >= 1, "Convolution2D: strides must be ≥ 1, got \(strideHeight)×\(strideWidth)")
        precondition(min(paddingTop, paddingBottom, paddingLeft, paddingRight) >= 0,
                     "Convolution2D: padding must be ≥ 0, got \([paddingTop, paddingBottom, paddingLeft, paddingRight])")
        precondition(dilationHeight >= 1 && dilationWidth >= 1,
                     "Convolution2D: dilations must be ≥ 1 (1 = dense), got \(dilationHeight)×\(dilationWidth)")
        precondition(groups >= 1, "Convolution2D: groups must be ≥ 1, got \(groups)")
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingTop = paddingTop
        self.paddingBottom = paddingBottom
        self.paddingLeft = paddingLeft
        self.paddingRight = paddingRight
        self.dilationHeight = dilationHeight
        self.dilationWidth = dilationWidth
        self.groups = groups
    }

    /// The same stride, symmetric padding and dilation along both spatial axes.
    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) {
        self.init(strideHeight: stride, strideWidth: stride, paddingTop: padding, paddingBottom: padding,
                  paddingLeft: padding, paddingRight: padding, dilationHeight: dilation, dilationWidth: dilation,
                  groups: groups)
    }

    /// Per-axis stride, symmetric padding and dilation.
    public init(stride: (height: Int, width: Int), padding: (height: Int, width: Int),
                dilation: (height: Int, width: Int) = (1, 1), groups: Int = 1) {
        self.init(strideHeight: stride.height, strideWidth: stride.width, paddingTop: padding.height,
                  paddingBottom: padding.height, paddingLeft: padding.width, paddingRight: padding.width,
                  dilationHeight: dilation.height, dilationWidth: dilation.width, groups: groups)
    }

    /// Output height and width for an input of `inputHeight`×`inputWidth` and a `kernelHeight`×`kernelWidth`
    /// kernel: ⌊(in + pads − dilation·(k − 1) − 1)/stride⌋ + 1 per axis (may be ≤ 0 when the kernel does not fit).
    public func outputSize(inputHeight: Int, inputWidth: Int, kernelHeight: Int,
                           kernelWidth: Int) -> (height: Int, width: Int) {
        let spanH = dilationHeight * (kernelHeight - 1) + 1, spanW = dilationWidth * (kernelWidth - 1) + 1
        let h = inputHeight + paddingTop + paddingBottom - spanH, w = inputWidth + paddingLeft + paddingRight - spanW
        return (h < 0 ? 0 : h / strideHeight + 1, w < 0 ? 0 : w / strideWidth + 1)
    }

    /// The NHWC output shape for an NHWC input shape and an OIHW weight shape.
    public func outputShape(input: [Int], weight: [Int]) -> [Int] {
        ConvolutionGeometry(input: input, weight: weight, params: self).outputShape
    }

    /// Multiply-adds of one forward pass: N·OH·OW·O·(C/groups)·KH·KW (a backward pass costs the same again for the
    /// data and again for the weights).
    public func multiplyAdds(input: [Int], weight: [Int]) -> Int {
        let g = ConvolutionGeometry(input: input, weight: weight, params: self)
        return g.batch * g.outHeight * g.outWidth * g.outChannels * (g.inChannels / groups) * g.kernelHeight * g.kernelWidth
    }

    /// The geometry in one line, e.g. "stride 1x1 padding 1,1,1,1 dilation 1x1 groups 1".
    public var description: String {
        "stride \(strideHeight)x\(strideWidth) padding \(paddingTop),\(paddingBottom),\(paddingLeft),\(paddingRight) "
            + "dilation \(dilationHeight)x\(dilationWidth) groups \(groups)"
    }
}

/// Where `Float` convolutions (and pooling and batch normalization) run. `Double` always runs on the reference
/// implementations.
///
/// - `oneDNN`: oneDNN 2.6 primitives on NHWC activations, cached per shape (the fast path; ~200 GFLOP/s on 3×3
///   convolutions here). If oneDNN cannot run a configuration the call falls back to the reference.
/// - `reference`: im2col + BLAS GEMM, in either precision; the implementation the tests check oneDNN against.
public enum ConvolutionBackend: Hashable, Sendable {
    /// oneDNN primitives for `Float` (the default); `Double` still runs on the reference.
    case oneDNN
    /// The plain implementations (im2col + GEMM, loops) in either precision.
    case reference

    /// The one dispatch decision: oneDNN only for `Float`, when its engine exists and it was asked for.
    @inline(__always)
    func runsOnOneDNN<Scalar: TensorScalar>(_ type: Scalar.Type) -> Bool {
        switch self {
        case .oneDNN: return Scalar.self == Float.self && OneDNN.isAvailable
        case .reference: return false
        }
    }
}

/// Sizes of one convolution, checked once: batch, channels, spatial sizes of input, kernel and output.
struct ConvolutionGeometry: Hashable {
    let batch, height, width, inChannels: Int
    let outChannels, kernelHeight, kernelWidth: Int
    let outHeight, outWidth: Int
    let params: Convolution2D

    init(input: [Int], weight: [Int], params: Convolution2D) {
        precondition(input.count == 4, "conv2d: input must be NHWC [batch, height, width, channels], got shape \(input)")
        precondition(weight.count == 4, "conv2d: weight must be OIHW [out, in/groups, kh, kw], got shape \(weight)")
        let groups = params.groups
        precondition(input[3] % groups == 0 && weight[0] % groups == 0,
                     "conv2d: \(groups) groups must divide input channels (input \(input)) and output channels (weight \(weight))")
        precondition(weight[1] * groups == input[3],
                     "conv2d: weight \(weight) expects \(weight[1] * groups) input channels over \(groups) groups, input \(input) has \(input[3])")
        precondition(weight[2] >= 1 && weight[3] >= 1, "conv2d: empty kernel in weight \(weight)")
        (batch, height, width, inChannels) = (input[0], input[1], input[2], input[3])
        (outChannels, kernelHeight, kernelWidth) = (weight[0], weight[2], weight[3])
        let out = params.outputSize(inputHeight: height, inputWidth: width, kernelHeight: kernelHeight,
                                    kernelWidth: kernelWidth)
        precondition(out.height >= 1 && out.width >= 1,
                     "conv2d: a \(kernelHeight)x\(kernelWidth) kernel (\(params)) does not fit the input \(input)")
        (outHeight, outWidth) = out
        self.params = params
    }

    var inputShape: [Int] { [batch, height, width, inChannels] }
    var weightShape: [Int] { [outChannels, inChannels / params.groups, kernelHeight, kernelWidth] }
    var outputShape: [Int] { [batch, outHeight, outWidth, outChannels] }
}

@inline(__always)
func mutableRaw<Scalar>(_ buffer: UnsafeBufferPointer<Scalar>) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(mutating: buffer.baseAddress!)
}

// MARK: - Public entry points

/// 2-D convolution forward pass [1, 2], NHWC in and out: y[n,i,j,o] = b[o] + Σ_{c,u,v} w[o,c,u,v]·x[n, i·s_h − p_top +
/// u·d_h, j·s_w − p_left + v·d_w, g(o)·C/G + c] (zero outside the input), for `input` [N, H, W, C], `weight`
/// [O, C/groups, KH, KW] and optional `bias` [O].
///
/// `Float` runs on oneDNN unless `backend` is `.reference`; `Double` always runs on im2col + GEMM.
public func conv2dForward<Scalar: TensorScalar>(
    _ input: Tensor<Scalar>, weight: Tensor<Scalar>, bias: Tensor<Scalar>? = nil,
    params: Convolution2D = Convolution2D(), backend: ConvolutionBackend = .oneDNN
) -> Tensor<Scalar> {
    let g = ConvolutionGeometry(input: input.shape, weight: weight.shape, params: params)
    if let bias {
        precondition(bias.shape == [g.outChannels], "conv2dForward: bias \(bias.shape) must be [\(g.outChannels)] for weight \(weight.shape)")
    }
    if g.batch == 0 { return Tensor(repeating: 0, shape: g.outputShape) }
    if backend.runsOnOneDNN(Scalar.self) {
        var ok = false
        let y = Tensor<Scalar>(shape: g.outputShape) { out in
            ok = input.withUnsafeBufferPointer { x in weight.withUnsafeBufferPointer { w in
                withOptionalBuffer(bias) { b in
                    DNNLConvolution.forward(g, input: mutableRaw(x), weight: mutableRaw(w), bias: b.map(mutableRaw),
                                            output: UnsafeMutableRawPointer(out.baseAddress!))
                }
            } }
        }
        if ok { return y }
    }
    return ReferenceConvolution.forward(input, weight: weight, bias: bias, geometry: g)
}

/// Gradient of the convolution with respect to its input (a transposed convolution of `gradOutput`):
/// dx[n,h,w,c] = Σ_{i,j,o,u,v : h = i·s_h − p_top + u·d_h, w = j·s_w − p_left + v·d_w} w[o,c,u,v]·dy[n,i,j,o].
///
/// `inputShape` is the NHWC shape of the forward input (several input sizes give the same output size when the
/// stride exceeds 1); `gradOutput` must have the forward output's shape.
public func conv2dBackwardData<Scalar: TensorScalar>(
    _ gradOutput: Tensor<Scalar>, weight: Tensor<Scalar>, inputShape: [Int],
    params: Convolution2D = Convolution2D(), backend: ConvolutionBackend = .oneDNN
) -> Tensor<Scalar> {
    let g = ConvolutionGeometry(input: inputShape, weight: weight.shape, params: params)
    precondition(gradOutput.shape == g.outputShape,
                 "conv2dBackwardData: gradOutput \(gradOutput.shape) must be the forward output shape \(g.outputShape) for input \(inputShape) and weight \(weight.shape)")
    if g.batch == 0 { return Tensor(repeating: 0, shape: inputShape) }
    if backend.runsOnOneDNN(Scalar.self) {
        var ok = false
        let dx = Tensor<Scalar>(shape: inputShape) { out in
            ok = gradOutput.withUnsafeBufferPointer { dy in weight.withUnsafeBufferPointer { w in
                DNNLConvolution.backwardData(g, gradOutput: mutableRaw(dy), weight: mutableRaw(w),
                                             gradInput: UnsafeMutableRawPointer(out.baseAddress!))
            } }
        }
        if ok { return dx }
    }
    return ReferenceConvolution.backwardData(gradOutput, weight: weight, geometry: g)
}

/// Gradients of the convolution with respect to its weight and bias:
/// dw[o,c,u,v] = Σ_{n,i,j} dy[n,i,j,o]·x[n, i·s_h − p_top + u·d_h, j·s_w − p_left + v·d_w, g(o)·C/G + c] and
/// db[o] = Σ_{n,i,j} dy[n,i,j,o] (nil unless `includeBias`).
///
/// `weightShape` is the OIHW weight shape (the kernel size cannot be recovered from the activations alone).
public func conv2dBackwardWeights<Scalar: TensorScalar>(
    input: Tensor<Scalar>, gradOutput: Tensor<Scalar>, weightShape: [Int],
    params: Convolution2D = Convolution2D(), includeBias: Bool = true, backend: ConvolutionBackend = .oneDNN
) -> (gradWeight: Tensor<Scalar>, gradBias: Tensor<Scalar>?) {
    let g = ConvolutionGeometry(input: input.shape, weight: weightShape, params: params)
    precondition(gradOutput.shape == g.outputShape,
                 "conv2dBackwardWeights: gradOutput \(gradOutput.shape) must be the forward output shape \(g.outputShape) for input \(input.shape) and weight \(weightShape)")
    if g.batch == 0 {
        return (Tensor(repeating: 0, shape: weightShape), includeBias ? Tensor(repeating: 0, shape: [g.outChannels]) : nil)
    }
    if backend.runsOnOneDNN(Scalar.self) {
        var ok = false
        var gradBias: Tensor<Scalar>? = includeBias ? Tensor(shape: [g.outChannels]) { _ in } : nil  // oneDNN writes it
        let dw = Tensor<Scalar>(shape: weightShape) { out in
            ok = input.withUnsafeBufferPointer { x in gradOutput.withUnsafeBufferPointer { dy in
                withOptionalMutableBuffer(&gradBias) { db in
                    DNNLConvolution.backwardWeights(g, input: mutableRaw(x), gradOutput: mutableRaw(dy),
                                                    gradWeight: UnsafeMutableRawPointer(out.baseAddress!),
                                                    gradBias: db.map { UnsafeMutableRawPointer($0.baseAddress!) })
                }
            } }
        }
        if ok { return (dw, gradBias) }
    }
    return ReferenceConvolution.backwardWeights(input, gradOutput: gradOutput, geometry: g, includeBias: includeBias)
}

@inline(__always)
func withOptionalBuffer<Scalar, R>(_ tensor: Tensor<Scalar>?, _ body: (UnsafeBufferPointer<Scalar>?) -> R) -> R {
    if let tensor { return tensor.withUnsafeBufferPointer { body($0) } }
    return body(nil)
}

@inline(__always)
func withOptionalMutableBuffer<Scalar, R>(_ tensor: inout Tensor<Scalar>?,
                                          _ body: (UnsafeMutableBufferPointer<Scalar>?) -> R) -> R {
    guard var t = tensor else { return body(nil) }
    tensor = nil  // keep the storage uniquely referenced so writing does not copy
    let result = t.withUnsafeMutableBufferPointer { body($0) }
    tensor = t
    return result
}

// MARK: - Layout reorders

extension Tensor {
    /// Reorders an NCHW tensor `[N, C, H, W]` into NHWC `[N, H, W, C]` (the layout every convolution kernel here
    /// uses); a copy through the blocked `permuted`.
    public func nhwcFromNCHW() -> Tensor {
        precondition(rank == 4, "nhwcFromNCHW: expected a rank-4 NCHW tensor, got shape \(shape)")
        return permuted([0, 2, 3, 1])
    }

    /// Reorders an NHWC tensor `[N, H, W, C]` into NCHW `[N, C, H, W]`.
    public func nchwFromNHWC() -> Tensor {
        precondition(rank == 4, "nchwFromNHWC: expected a rank-4 NHWC tensor, got shape \(shape)")
        return permuted([0, 3, 1, 2])
    }
}

// MARK: - Reference: im2col + GEMM

/// The plain convolution every fast path is tested against: convolution lowered to a matrix product [160], an
/// im2col matrix (one row per output pixel, one column per (kh, kw, c) tap, channels fastest as in NHWC) times the
/// weight matrix, through BLAS GEMM. Images are processed in chunks so the im2col matrix stays near 16 MB.
enum ReferenceConvolution {
    /// Weights OIHW → [O, KH·KW·C/G] with taps ordered (kh, kw, c), matching the im2col columns.
    private static func weightMatrix<Scalar: TensorScalar>(_ weight: Tensor<Scalar>) -> Tensor<Scalar> {
        weight.permuted([0, 2, 3, 1])
    }

    private static func imagesPerChunk(_ g: ConvolutionGeometry) -> Int {
        let perImage = g.outHeight * g.outWidth * g.kernelHeight * g.kernelWidth * (g.inChannels / g.params.groups)
        return max(1, min(g.batch, (1 << 22) / max(perImage, 1)))
    }

    /// Fills `col` ([images·OH·OW, KH·KW·Cg]) with the taps of channel group `group` for images
    /// `firstImage ..< firstImage + images`.
    private static func im2col<Scalar: TensorScalar>(_ x: UnsafePointer<Scalar>, _ g: ConvolutionGeometry,
                                                     firstImage: Int, images: Int, group: Int,
                                                     into col: UnsafeMutablePointer<Scalar>) {
        let p = g.params
        let cg = g.inChannels / p.groups
        let taps = g.kernelHeight * g.kernelWidth * cg
        var row = 0
        for n in firstImage..<(firstImage + images) {
            for i in 0..<g.outHeight {
                for j in 0..<g.outWidth {
                    var dst = col + row * taps
                    for u in 0..<g.kernelHeight {
                        let h = i * p.strideHeight - p.paddingTop + u * p.dilationHeight
                        for v in 0..<g.kernelWidth {
                            let w = j * p.strideWidth - p.paddingLeft + v * p.dilationWidth
                            if h >= 0 && h < g.height && w >= 0 && w < g.width {
                                dst.update(from: x + ((n * g.height + h) * g.width + w) * g.inChannels + group * cg, count: cg)
                            } else {
                                dst.update(repeating: 0, count: cg)
                            }
                            dst += cg
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Adds the columns of `col` back into the NHWC gradient `dx` (the adjoint of `im2col`).
    private static func col2imAdd<Scalar: TensorScalar>(_ col: UnsafePointer<Scalar>, _ g: ConvolutionGeometry,
                                                        firstImage: Int, images: Int, group: Int,
                                                        into dx: UnsafeMutablePointer<Scalar>) {
        let p = g.params
        let cg = g.inChannels / p.groups
        let taps = g.kernelHeight * g.kernelWidth * cg
        var row = 0
        for n in firstImage..<(firstImage + images) {
            for i in 0..<g.outHeight {
                for j in 0..<g.outWidth {
                    var src = col + row * taps
                    for u in 0..<g.kernelHeight {
                        let h = i * p.strideHeight - p.paddingTop + u * p.dilationHeight
                        for v in 0..<g.kernelWidth {
                            let w = j * p.strideWidth - p.paddingLeft + v * p.dilationWidth
                            if h >= 0 && h < g.height && w >= 0 && w < g.width {
                                let dst = dx + ((n * g.height + h) * g.width + w) * g.inChannels + group * cg
                                for c in 0..<cg { dst[c] += src[c] }
                            }
                            src += cg
                        }
                    }
                    row += 1
                }
            }
        }
    }

    static func forward<Scalar: TensorScalar>(_ input: Tensor<Scalar>, weight: Tensor<Scalar>, bias: Tensor<Scalar>?,
                                              geometry g: ConvolutionGeometry) -> Tensor<Scalar> {
        let groups = g.params.groups
        let og = g.outChannels / groups
        let taps = g.kernelHeight * g.kernelWidth * (g.inChannels / groups)
        let pixels = g.outHeight * g.outWidth
        let chunk = imagesPerChunk(g)
        let wm = weightMatrix(weight)
        let col = UnsafeMutablePointer<Scalar>.allocate(capacity: chunk * pixels * taps)
        defer { col.deallocate() }
        var y = Tensor<Scalar>(shape: g.outputShape) { out in
            input.withUnsafeBufferPointer { x in wm.withUnsafeBufferPointer { w in
                for first in stride(from: 0, to: g.batch, by: chunk) {
                    let images = min(chunk, g.batch - first)
                    for group in 0..<groups {
                        im2col(x.baseAddress!, g, firstImage: first, images: images, group: group, into: col)
                        // y[rows, group block] = col · W_groupᵀ
                        Scalar.gemm(transposeA: false, transposeB: true, m: images * pixels, n: og, k: taps,
                                    alpha: 1, a: col, lda: taps, b: w.baseAddress! + group * og * taps, ldb: taps,
                                    beta: 0, c: out.baseAddress! + first * pixels * g.outChannels + group * og,
                                    ldc: g.outChannels)
                    }
                }
            } }
        }
        if let bias {
            y.withUnsafeMutableBufferPointer { out in bias.withUnsafeBufferPointer { b in
                let o = g.outChannels
                for row in 0..<(out.count / o) { for c in 0..<o { out[row * o + c] += b[c] } }
            } }
        }
        return y
    }

    static func backwardData<Scalar: TensorScalar>(_ gradOutput: Tensor<Scalar>, weight: Tensor<Scalar>,
                                                   geometry g: ConvolutionGeometry) -> Tensor<Scalar> {
        let groups = g.params.groups
        let og = g.outChannels / groups
        let taps = g.kernelHeight * g.kernelWidth * (g.inChannels / groups)
        let pixels = g.outHeight * g.outWidth
        let chunk = imagesPerChunk(g)
        let wm = weightMatrix(weight)
        let col = UnsafeMutablePointer<Scalar>.allocate(capacity: chunk * pixels * taps)
        defer { col.deallocate() }
        var dx = Tensor<Scalar>(repeating: 0, shape: g.inputShape)
        dx.withUnsafeMutableBufferPointer { out in
            gradOutput.withUnsafeBufferPointer { dy in wm.withUnsafeBufferPointer { w in
                for first in stride(from: 0, to: g.batch, by: chunk) {
                    let images = min(chunk, g.batch - first)
                    for group in 0..<groups {
                        // dcol = dy[rows, group block] · W_group
                        Scalar.gemm(transposeA: false, transposeB: false, m: images * pixels, n: taps, k: og,
                                    alpha: 1, a: dy.baseAddress! + first * pixels * g.outChannels + group * og,
                                    lda: g.outChannels, b: w.baseAddress! + group * og * taps, ldb: taps,
                                    beta: 0, c: col, ldc: taps)
                        col2imAdd(col, g, firstImage: first, images: images, group: group, into: out.baseAddress!)
                    }
                }
            } }
        }
        return dx
    }

    static func backwardWeights<Scalar: TensorScalar>(_ input: Tensor<Scalar>, gradOutput: Tensor<Scalar>,
                                                      geometry g: ConvolutionGeometry,
                                                      includeBias: Bool) -> (gradWeight: Tensor<Scalar>, gradBias: Tensor<Scalar>?) {
        let groups = g.params.groups
        let og = g.outChannels / groups
        let cg = g.inChannels / groups
        let taps = g.kernelHeight * g.kernelWidth * cg
        let pixels = g.outHeight * g.outWidth
        let chunk = imagesPerChunk(g)
        let col = UnsafeMutablePointer<Scalar>.allocate(capacity: chunk * pixels * taps)
        defer { col.deallocate() }
        var dwm = Tensor<Scalar>(repeating: 0, shape: [g.outChannels, g.kernelHeight, g.kernelWidth, cg])
        dwm.withUnsafeMutableBufferPointer { dw in
            input.withUnsafeBufferPointer { x in gradOutput.withUnsafeBufferPointer { dy in
                for first in stride(from: 0, to: g.batch, by: chunk) {
                    let images = min(chunk, g.batch - first)
                    for group in 0..<groups {
                        im2col(x.baseAddress!, g, firstImage: first, images: images, group: group, into: col)
                        // dW_group += dy[rows, group block]ᵀ · col
                        Scalar.gemm(transposeA: true, transposeB: false, m: og, n: taps, k: images * pixels,
                                    alpha: 1, a: dy.baseAddress! + first * pixels * g.outChannels + group * og,
                                    lda: g.outChannels, b: col, ldb: taps,
                                    beta: 1, c: dw.baseAddress! + group * og * taps, ldc: taps)
                    }
                }
            } }
        }
        var gradBias: Tensor<Scalar>?
        if includeBias {
            let o = g.outChannels
            gradBias = Tensor<Scalar>(repeating: 0, shape: [o])
            gradBias!.withUnsafeMutableBufferPointer { db in gradOutput.withUnsafeBufferPointer { dy in
                for row in 0..<(dy.count / o) { for c in 0..<o { db[c] += dy[row * o + c] } }
            } }
        }
        return (dwm.permuted([0, 3, 1, 2]), gradBias)
    }
}
