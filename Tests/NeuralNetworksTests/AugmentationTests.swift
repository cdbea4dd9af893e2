import NeuralNetworks
import Testing
import TensorCore

/// The crop-then-flip of one pixel, straight from the definition: padded image, window at the offsets,
/// then mirrored columns.
private func reference(_ images: Tensor<Float>, image: Int, y: Int, x: Int, c: Int, padding p: Int,
                       draw: Augmentation.Draw, fill: [Float]) -> Float {
    let (height, width) = (images.shape[1], images.shape[2])
    let column = draw.flip ? width - 1 - x : x
    let sourceY = y + draw.offsetY - p, sourceX = column + draw.offsetX - p
    guard (0..<height).contains(sourceY) && (0..<width).contains(sourceX) else { return fill[c] }
    return images[image, sourceY, sourceX, c]
}

/// A 1×3×3×1 image holding 1…9 row by row.
private let nine = Tensor<Float>(shape: [1, 3, 3, 1], scalars: (1...9).map(Float.init))

private func grid(_ tensor: Tensor<Float>) -> [[Float]] {
    (0..<tensor.shape[1]).map { y in (0..<tensor.shape[2]).map { x in tensor[0, y, x, 0] } }
}

@Suite struct AugmentationTests {
    @Test func cropHandCases() {
        let crop = Augmentation(cropPadding: 1)
        let f: Float = -5
        func cropped(_ offsetY: Int, _ offsetX: Int) -> [[Float]] {
            grid(crop.applying([.init(offsetY: offsetY, offsetX: offsetX, flip: false)], to: nine, fill: [f]))
        }
        #expect(cropped(1, 1) == [[1, 2, 3], [4, 5, 6], [7, 8, 9]])        // window at the original place
        #expect(cropped(0, 0) == [[f, f, f], [f, 1, 2], [f, 4, 5]])        // shifted down-right
        #expect(cropped(2, 2) == [[5, 6, f], [8, 9, f], [f, f, f]])        // shifted up-left
        #expect(cropped(0, 2) == [[f, f, f], [2, 3, f], [5, 6, f]])
        #expect(cropped(2, 1) == [[4, 5, 6], [7, 8, 9], [f, f, f]])
        // Padding wider than the image: the corner windows see only padding.
        let wide = Augmentation(cropPadding: 3)
        #expect(grid(wide.applying([.init(offsetY: 0, offsetX: 0, flip: false)], to: nine, fill: [f]))
            == [[Float]](repeating: [f, f, f], count: 3))
        #expect(grid(wide.applying([.init(offsetY: 3, offsetX: 5, flip: false)], to: nine, fill: [f]))
            == [[3, f, f], [6, f, f], [9, f, f]])
    }

    @Test func flipHandCasesAndChannelsTravelWithTheirPixel() {
        let flip = Augmentation(horizontalFlip: true)
        let mirrored = flip.applying([.init(offsetY: 0, offsetX: 0, flip: true)], to: nine, fill: [0])
        #expect(grid(mirrored) == [[3, 2, 1], [6, 5, 4], [9, 8, 7]])
        #expect(flip.applying([.init(offsetY: 0, offsetX: 0, flip: true)], to: mirrored, fill: [0]) == nine)
        #expect(flip.applying([.init(offsetY: 0, offsetX: 0, flip: false)], to: nine, fill: [0]) == nine)

        // Two channels: pixel (y, x) holds (10y + x, −(10y + x)); 2×4 image, even width.
        var scalars: [Float] = []
        for y in 0..<2 { for x in 0..<4 { scalars += [Float(10 * y + x), -Float(10 * y + x)] } }
        let image = Tensor<Float>(shape: [1, 2, 4, 2], scalars: scalars)
        let both = Augmentation(cropPadding: 1, horizontalFlip: true)
        let out = both.applying([.init(offsetY: 1, offsetX: 0, flip: true)], to: image, fill: [100, 200])
        // Crop shifts right by one (column 0 is padding), then the flip mirrors: padding lands in column 3.
        #expect((0..<4).map { out[0, 0, $0, 0] } == [2, 1, 0, 100])
        #expect((0..<4).map { out[0, 1, $0, 1] } == [-12, -11, -10, 200])
    }

    @Test func randomBatchesMatchTheDefinitionAndAreSeeded() {
        var data = SeededGenerator(seed: 31)
        let images = Tensor<Float>.randomNormal([40, 5, 6, 3], generator: &data)
        let fill: [Float] = [-1, -2, -3]
        let augmentation = Augmentation(cropPadding: 2, horizontalFlip: true)

        var generator = SeededGenerator(seed: 7)
        let out = augmentation.apply(to: images, fill: fill, using: &generator)
        #expect(out.shape == images.shape)
        var replay = SeededGenerator(seed: 7)
        let draws = (0..<40).map { _ in augmentation.draw(using: &replay) }
        var mismatches = 0
        for i in 0..<40 { for y in 0..<5 { for x in 0..<6 { for c in 0..<3 {
            if out[i, y, x, c] != reference(images, image: i, y: y, x: x, c: c, padding: 2, draw: draws[i], fill: fill) {
                mismatches += 1
            }
        } } } }
        #expect(mismatches == 0)
        // Same seed, same batch; the draws use every offset in 0...2p and both flip outcomes.
        var again = SeededGenerator(seed: 7)
        #expect(augmentation.apply(to: images, fill: fill, using: &again) == out)
        var many = SeededGenerator(seed: 8)
        let sample = (0..<500).map { _ in augmentation.draw(using: &many) }
        #expect(Set(sample.map(\.offsetY)) == Set(0...4))
        #expect(Set(sample.map(\.offsetX)) == Set(0...4))
        #expect(Set(sample.map(\.flip)) == [false, true])
    }

    @Test func disabledPartsDrawNothing() {
        var generator = SeededGenerator(seed: 9)
        let before = generator
        #expect(Augmentation.none.draw(using: &generator) == .init(offsetY: 0, offsetX: 0, flip: false))
        #expect(generator.next() == { var g = before; return g.next() }())
        let cropOnly = Augmentation(cropPadding: 3)
        #expect((0..<50).allSatisfy { _ in !cropOnly.draw(using: &generator).flip })
        let flipOnly = Augmentation(horizontalFlip: true)
        #expect((0..<50).allSatisfy { _ in
            let draw = flipOnly.draw(using: &generator)
            return draw.offsetX == 0 && draw.offsetY == 0
        })
        #expect(Augmentation.none.apply(to: nine, fill: [0], using: &generator) == nine)
    }
}
