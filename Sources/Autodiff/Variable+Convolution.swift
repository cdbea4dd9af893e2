import TensorCore

// Convolution and pooling as differentiable operations over the TensorCore kernels (NHWC activations, OIHW
// weights). `Float` runs on oneDNN unless `backend` is `.reference`; `Double` always runs on the im2col + GEMM
// reference, which is what the gradient checks exercise.

/// 2-D convolution of an NHWC input with an OIHW weight and optional bias (stride, padding, dilation and groups
/// from `params`; see `conv2dForward`).
///
/// VJP: ∂x = `conv2dBackwardData` (the transposed convolution of g), and ∂w, ∂b = `conv2dBackwardWeights`
/// (one call computes both); each is computed only for an operand on a tape. A bias without a recorded weight
/// gets ∂b = Σ_{n,h,w} g directly.
///
/// - Parameters:
///   - input: [N, H, W, C].
///   - weight: [O, C/groups, KH, KW].
///   - bias: [O], or nil.
/// - Precondition: shapes consistent with `params` (as `conv2dForward`).
public func conv2d<Scalar>(_ input: Variable<Scalar>, weight: Variable<Scalar>, bias: Variable<Scalar>? = nil,
                           params: Convolution2D = Convolution2D(),
                           backend: ConvolutionBackend = .oneDNN) -> Variable<Scalar> {
    let x = input.value, w = weight.value
    let output = conv2dForward(x, weight: w, bias: bias?.value, params: params, backend: backend)
    let needX = input.isRecorded, needW = weight.isRecorded, needB = bias?.isRecorded ?? false
    let hasBias = bias != nil
    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return recordOperation(output, inputs: inputs) { g in
        let dx = needX ? conv2dBackwardData(g, weight: w, inputShape: x.shape, params: params, backend: backend) : nil
        var dw: Tensor<Scalar>? = nil, db: Tensor<Scalar>? = nil
        if needW {
            let grads = conv2dBackwardWeights(input: x, gradOutput: g, weightShape: w.shape, params: params,
                                              includeBias: needB, backend: backend)
            dw = grads.gradWeight
            db = grads.gradBias
        } else if needB {
            db = g.reshaped([-1, g.shape[3]]).sum(axes: [0], keepingDimensions: false)
        }
        return hasBias ? [dx, dw, db] : [dx, dw]
    }
}

/// Max pooling over windows of an NHWC input (`params`: kernel, stride, padding; padding never wins).
///
/// VJP: each output gradient goes to the input position that held the window's maximum (recorded by the
/// forward kernel), accumulating where windows overlap (`maxPool2DBackward`).
///
/// - Precondition: the input is NHWC and the window fits (as `maxPool2DForward`).
public func maxPool2D<Scalar>(_ input: Variable<Scalar>, params: Pooling2D,
                              backend: ConvolutionBackend = .oneDNN) -> Variable<Scalar> {
    let (output, indices) = maxPool2DForward(input.value, params: params, backend: backend)
    return recordOperation(output, inputs: [input]) { g in [maxPool2DBackward(g, indices: indices)] }
}

/// Average pooling over windows of an NHWC input; with `countIncludesPadding` the divisor counts padded
/// positions (PyTorch's default), otherwise only the input positions in the window.
///
/// VJP: each output gradient, divided by its window's divisor, is spread over the window
/// (`avgPool2DBackward`).
///
/// - Precondition: the input is NHWC and the window fits (as `avgPool2DForward`).
public func avgPool2D<Scalar>(_ input: Variable<Scalar>, params: Pooling2D, countIncludesPadding: Bool = true,
                              backend: ConvolutionBackend = .oneDNN) -> Variable<Scalar> {
    let shape = input.shape
    let output = avgPool2DForward(input.value, params: params, countIncludesPadding: countIncludesPadding,
                                  backend: backend)
    return recordOperation(output, inputs: [input]) { g in
        [avgPool2DBackward(g, inputShape: shape, params: params, countIncludesPadding: countIncludesPadding,
                           backend: backend)]
    }
}

/// Global average pooling, NHWC [N, H, W, C] → [N, C]: y[n, c] = mean over h, w of x[n, h, w, c].
///
/// VJP: ∂x[n, h, w, c] = g[n, c]/(H·W).
///
/// - Precondition: the input is NHWC with a non-empty image.
public func globalAvgPool2D<Scalar>(_ input: Variable<Scalar>) -> Variable<Scalar> {
    let shape = input.shape
    return recordOperation(globalAvgPool2DForward(input.value), inputs: [input]) { g in
        [globalAvgPool2DBackward(g, inputShape: shape)]
    }
}
