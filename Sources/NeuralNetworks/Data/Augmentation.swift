import TensorCore

/// Random training-time transformations of NHWC images: a random crop after zero padding and a random
/// horizontal flip, the augmentation of [1] that became the standard CIFAR recipe.
///
/// For padding `p`, an image `H×W` is padded with `p` black pixels on every side and an `H×W` window is cut at
/// offset `(offsetY, offsetX)`, each uniform in `0...2p`:
/// `cropped[y][x] = image[y + offsetY − p][x + offsetX − p]` (black outside the image). Then, with
/// probability ½, columns are mirrored: `out[y][x] = cropped[y][W − 1 − x]`. Channels travel with their pixel.
/// "Black" is byte 0 after the data set's normalization, `−mean[c] / std[c]`, so padding matches padding
/// before normalization (torchvision's `RandomCrop(padding:)` then `Normalize`).
///
/// Draws come from a `SeededGenerator`, so a seed fixes every crop and flip.
public struct Augmentation: Sendable, Equatable {
    /// Pixels of padding on each side for the random crop; 0 disables cropping.
    public var cropPadding: Int
    /// Whether to mirror each image left–right with probability ½.
    public var horizontalFlip: Bool

    /// An augmentation with the given crop padding and flip.
    public init(cropPadding: Int = 0, horizontalFlip: Bool = false) {
        precondition(cropPadding >= 0, "Augmentation: cropPadding must be non-negative, got \(cropPadding)")
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
    }

    /// No augmentation.
    public static let none = Augmentation()
    /// The standard CIFAR augmentation: pad 4, random 32×32 crop, random horizontal flip.
    public static let cifar = Augmentation(cropPadding: 4, horizontalFlip: true)

    /// Whether this augmentation leaves every image unchanged.
    public var isIdentity: Bool { cropPadding == 0 && !horizontalFlip }

    /// The random choices for one image.
    public struct Draw: Sendable, Equatable {
        /// Row of the crop window in the padded image, `0...2p` (`p` = identity).
        public var offsetY: Int
        /// Column of the crop window in the padded image, `0...2p` (`p` = identity).
        public var offsetX: Int
        /// Whether the cropped image is mirrored left–right.
        public var flip: Bool

        /// The choices for one image.
        public init(offsetY: Int, offsetX: Int, flip: Bool) {
            self.offsetY = offsetY
            self.offsetX = offsetX
            self.flip = flip
        }
    }

    /// Draws one image's choices: `offsetY`, then `offsetX` (each uniform in `0...2p`, only when `p > 0`), then
    /// the flip (a fair coin, only when enabled). Disabled parts take their identity values.
    public func draw(using generator: inout SeededGenerator) -> Draw {
        var draw = Draw(offsetY: cropPadding, offsetX: cropPadding, flip: false)
        if cropPadding > 0 {
            draw.offsetY = generator.nextInt(below: 2 * cropPadding + 1)
            draw.offsetX = generator.nextInt(below: 2 * cropPadding + 1)
        }
        if horizontalFlip { draw.flip = generator.next() >> 63 == 1 }
        return draw
    }

    /// Applies random draws to each image of a batch `[n, height, width, channels]`, drawing image 0's
    /// choices first.
    ///
    /// - Parameters:
    ///   - images: The batch.
    ///   - fill: The value of a padding pixel for each channel (see `Normalization.black`).
    ///   - generator: The source of the draws.
    public func apply(to images: Tensor<Float>, fill: [Float], using generator: inout SeededGenerator) -> Tensor<Float> {
        if isIdentity { return images }
        precondition(images.rank == 4, "Augmentation.apply: images must be [n, height, width, channels], got \(images.shape)")
        let draws = (0..<images.shape[0]).map { _ in draw(using: &generator) }
        return applying(draws, to: images, fill: fill)
    }

    /// Applies given choices to each image of a batch `[n, height, width, channels]`.
    ///
    /// - Parameters:
    ///   - draws: One `Draw` per image, offsets in `0...2 × cropPadding`.
    ///   - fill: The value of a padding pixel for each channel.
    public func applying(_ draws: [Draw], to images: Tensor<Float>, fill: [Float]) -> Tensor<Float> {
        precondition(images.rank == 4, "Augmentation.applying: images must be [n, height, width, channels], got \(images.shape)")
        let (n, height, width, channels) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        precondition(draws.count == n, "Augmentation.applying: \(draws.count) draws for a batch of shape \(images.shape)")
        precondition(fill.count == channels,
                     "Augmentation.applying: \(fill.count) fill values for images of shape \(images.shape)")
        let p = cropPadding
        for draw in draws {
            precondition((0...2 * p).contains(draw.offsetY) && (0...2 * p).contains(draw.offsetX),
                         "Augmentation.applying: offsets (\(draw.offsetY), \(draw.offsetX)) outside 0...\(2 * p)")
        }
        let perImage = height * width * channels
        return Tensor<Float>(shape: images.shape) { out in
            images.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    let draw = draws[i]
                    let input = src.baseAddress! + i * perImage
                    let output = out.baseAddress! + i * perImage
                    let dy = draw.offsetY - p, dx = draw.offsetX - p
                    for y in 0..<height {
                        let row = output + y * width * channels
                        let sourceY = y + dy
                        // Columns x whose source column x + dx lies inside the image.
                        let first = max(0, -dx), last = min(width, width - dx)
                        if sourceY < 0 || sourceY >= height || first >= last {
                            for x in 0..<width { for c in 0..<channels { row[x * channels + c] = fill[c] } }
                            continue
                        }
                        for x in 0..<first { for c in 0..<channels { row[x * channels + c] = fill[c] } }
                        for x in last..<width { for c in 0..<channels { row[x * channels + c] = fill[c] } }
                        (row + first * channels).update(from: input + (sourceY * width + first + dx) * channels,
                                                        count: (last - first) * channels)
                    }
                    if draw.flip {
                        for y in 0..<height {
                            let row = output + y * width * channels
                            var left = 0, right = width - 1
                            while left < right {
                                for c in 0..<channels {
                                    let kept = row[left * channels + c]
                                    row[left * channels + c] = row[right * channels + c]
                                    row[right * channels + c] = kept
                                }
                                left += 1
                                right -= 1
                            }
                        }
                    }
                }
            }
        }
    }
}
