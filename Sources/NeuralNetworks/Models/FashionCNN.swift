import Autodiff
import TensorCore

/// The reference Fashion-MNIST network `fmnist-cnn`, exactly the model the PyTorch peer trains
/// (`../shared/peers/PEERS.md`, `train_peer.py`): 870,826 trainable parameters and about 19.1 M multiply–adds
/// per 28×28 image.
///
/// ```
///  0 conv3×3(1→32, pad 1, no bias)   1 BN(32)  2 ReLU
///  3 conv3×3(32→32, pad 1, no bias)  4 BN(32)  5 ReLU   6 maxpool 2
///  7 conv3×3(32→64, pad 1, no bias)  8 BN(64)  9 ReLU
/// 10 conv3×3(64→64, pad 1, no bias) 11 BN(64) 12 ReLU  13 maxpool 2
/// 14 flatten  15 linear(3136→256)  16 ReLU  17 linear(256→10)
/// ```
///
/// A flat `Sequential`, so parameter names are PyTorch's `state_dict` names of the peer (`"0.weight"`,
/// `"1.running_mean"`, `"15.bias"`, …). Differences that do not change the function class: activations are
/// NHWC, so the flatten orders features (h, w, c) instead of (c, h, w), and `Linear` weights are stored
/// `[in, out]`. Initialization is PyTorch's default for every layer (see `Initializer.pytorchDefault`), so
/// the comparison with the peer is fair.
public enum FashionCNN {
    /// The network for `inputShape` `[H, W, C]` images (H and W divisible by 4; `[28, 28, 1]` for
    /// Fashion-MNIST gives the peer's 3136 flattened features) and `classes` outputs.
    ///
    /// - Precondition: H and W are positive multiples of 4; C and classes are positive.
    public static func make<Scalar: TensorScalar>(inputShape: [Int] = [28, 28, 1], classes: Int = 10,
                                                  generator: inout SeededGenerator) -> Sequential<Scalar> {
        precondition(inputShape.count == 3 && inputShape[0] > 0 && inputShape[1] > 0 && inputShape[0] % 4 == 0
                     && inputShape[1] % 4 == 0 && inputShape[2] > 0 && classes > 0,
                     "FashionCNN: input \(inputShape) must be [H, W, C] with H, W multiples of 4, classes \(classes) > 0")
        func block(_ input: Int, _ output: Int) -> [any Layer<Scalar>] {
            [Conv2D<Scalar>(inChannels: input, outChannels: output, kernelSize: 3, padding: 1, bias: false,
                            generator: &generator),
             BatchNorm<Scalar>(channels: output), ReLU<Scalar>()]
        }
        let features = (inputShape[0] / 4) * (inputShape[1] / 4) * 64
        var layers: [any Layer<Scalar>] = []
        layers += block(inputShape[2], 32)
        layers += block(32, 32)
        layers.append(MaxPool2D<Scalar>(kernelSize: 2))
        layers += block(32, 64)
        layers += block(64, 64)
        layers.append(MaxPool2D<Scalar>(kernelSize: 2))
        layers.append(Flatten<Scalar>())
        layers.append(Linear<Scalar>(inputFeatures: features, outputFeatures: 256, generator: &generator))
        layers.append(ReLU<Scalar>())
        layers.append(Linear<Scalar>(inputFeatures: 256, outputFeatures: classes, generator: &generator))
        return Sequential(layers)
    }
}
