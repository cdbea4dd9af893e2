import Autodiff
import TensorCore

/// LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition", 1998;
/// not in the survey's reference list) in its common modern form: ReLU and max pooling instead of the scaled
/// tanh and trainable subsampling, and a plain linear output layer instead of the RBF units.
///
/// ```
/// 0 conv5×5(C→6, pad p)  1 ReLU  2 maxpool 2
/// 3 conv5×5(6→16)        4 ReLU  5 maxpool 2
/// 6 flatten  7 linear(16·5·5→120)  8 ReLU  9 linear(120→84)  10 ReLU  11 linear(84→classes)
/// ```
///
/// The padding p = (32 − H)/2 brings an H×H input to the 32×32 the network was designed for (p = 2 for
/// 28×28 MNIST, 0 for 32×32 CIFAR-10), so the flattened features are always 16·5·5 = 400 and the network has
/// 61,706 parameters for one input channel and 10 classes (62,006 for three channels). A flat `Sequential`
/// with PyTorch-style names (`"0.weight"`, …, `"11.bias"`); PyTorch's default initialization.
public enum LeNet5 {
    /// LeNet-5 for square `[H, H, C]` inputs with H ≤ 32 and H even, and `classes` outputs.
    ///
    /// - Precondition: the input is square, even-sized, at most 32×32, with C > 0; classes > 0.
    public static func make<Scalar: TensorScalar>(inputShape: [Int] = [28, 28, 1], classes: Int = 10,
                                                  generator: inout SeededGenerator) -> Sequential<Scalar> {
        precondition(inputShape.count == 3 && inputShape[0] == inputShape[1] && inputShape[0] <= 32
                     && inputShape[0] >= 8 && inputShape[0] % 2 == 0 && inputShape[2] > 0 && classes > 0,
                     "LeNet5: input \(inputShape) must be [H, H, C] with 8 ≤ H ≤ 32, H even; classes \(classes) > 0")
        let padding = (32 - inputShape[0]) / 2
        return Sequential<Scalar>([
            Conv2D<Scalar>(inChannels: inputShape[2], outChannels: 6, kernelSize: 5, padding: padding,
                           generator: &generator),
            ReLU<Scalar>(), MaxPool2D<Scalar>(kernelSize: 2),
            Conv2D<Scalar>(inChannels: 6, outChannels: 16, kernelSize: 5, generator: &generator),
            ReLU<Scalar>(), MaxPool2D<Scalar>(kernelSize: 2),
            Flatten<Scalar>(),
            Linear<Scalar>(inputFeatures: 400, outputFeatures: 120, generator: &generator), ReLU<Scalar>(),
            Linear<Scalar>(inputFeatures: 120, outputFeatures: 84, generator: &generator), ReLU<Scalar>(),
            Linear<Scalar>(inputFeatures: 84, outputFeatures: classes, generator: &generator),
        ])
    }
}
