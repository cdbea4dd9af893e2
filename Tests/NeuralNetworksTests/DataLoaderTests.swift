import Foundation
import NeuralNetworks
import Testing
import TensorCore

/// A data set of `count` images 4×3×2 whose pixels encode the example: image i holds i + 0.001·(position).
private func numberedDataset(count: Int, normalization: Normalization? = nil) -> Dataset {
    let perImage = 4 * 3 * 2
    let images = Tensor<Float>(shape: [count, 4, 3, 2], scalars: (0..<count).flatMap { i in
        (0..<perImage).map { Float(i) + Float($0) / 1000 }
    })
    return Dataset(name: "numbered", images: images, labels: (0..<count).map { $0 % 7 }, classCount: 7,
                   normalization: normalization)
}

private func isPermutation(_ order: [Int], of count: Int) -> Bool { order.sorted() == Array(0..<count) }

@Suite struct DataLoaderTests {
    @Test func ordersArePermutationsReproducibleBySeedAndEpoch() {
        let data = numberedDataset(count: 103)
        let loader = DataLoader(dataset: data, batchSize: 10, seed: 5)
        let twin = DataLoader(dataset: data, batchSize: 32, seed: 5, prefetch: 0)
        for epoch in 0..<4 {
            let order = loader.order(epoch: epoch)
            #expect(isPermutation(order, of: 103))
            #expect(order == twin.order(epoch: epoch))   // depends on (seed, epoch) only
        }
        #expect(loader.order(epoch: 0) != loader.order(epoch: 1))
        #expect(loader.order(epoch: 0) != DataLoader(dataset: data, batchSize: 10, seed: 6).order(epoch: 0))
        #expect(loader.order(epoch: 0) != Array(0..<103))
        #expect(DataLoader(dataset: data, batchSize: 10, shuffle: false).order(epoch: 3) == Array(0..<103))
    }

    @Test func batchesCoverTheEpochWithOrWithoutDropLast() {
        let data = numberedDataset(count: 23)
        for dropLast in [false, true] {
            let loader = DataLoader(dataset: data, batchSize: 5, dropLast: dropLast, seed: 1)
            #expect(loader.batchesPerEpoch == (dropLast ? 4 : 5))
            #expect(loader.examplesPerEpoch == (dropLast ? 20 : 23))
            let batches = Array(loader.epoch(2))
            #expect(batches.count == loader.batchesPerEpoch)
            #expect(batches.map(\.count) == (dropLast ? [5, 5, 5, 5] : [5, 5, 5, 5, 3]))
            #expect(batches.flatMap(\.indices) == Array(loader.order(epoch: 2).prefix(loader.examplesPerEpoch)))
            for (b, batch) in batches.enumerated() {
                #expect(batch.epoch == 2 && batch.index == b)
                #expect(batch.images == data.images(at: batch.indices))
                #expect(batch.labels == batch.indices.map { $0 % 7 })
                // Pixel (0,0,0) of each image names the example it came from.
                #expect((0..<batch.count).map { Int(batch.images[$0, 0, 0, 0]) } == batch.indices)
            }
        }
    }

    @Test func prefetchingYieldsTheSynchronousBatches() {
        let data = numberedDataset(count: 61, normalization: Normalization(mean: [0.5, 0.25], standardDeviation: [2, 4]))
        let augmentation = Augmentation(cropPadding: 1, horizontalFlip: true)
        func run(prefetch: Int, pause: Bool) -> [DataLoader.Batch] {
            let loader = DataLoader(dataset: data, batchSize: 8, seed: 3, augmentation: augmentation, prefetch: prefetch)
            var timing = SeededGenerator(seed: UInt64(prefetch))
            var batches: [DataLoader.Batch] = []
            for epoch in 0..<2 {
                for batch in loader.epoch(epoch) {
                    // Vary the consumer's pace so the producer is sometimes ahead and sometimes behind.
                    if pause { usleep(UInt32(timing.nextInt(below: 3_000))) }
                    batches.append(batch)
                }
            }
            return batches
        }
        let synchronous = run(prefetch: 0, pause: false)
        #expect(synchronous.count == 2 * 8)
        for prefetch in [1, 2] {
            let prefetched = run(prefetch: prefetch, pause: true)
            #expect(prefetched.count == synchronous.count)
            #expect(zip(prefetched, synchronous).allSatisfy {
                $0.images == $1.images && $0.labels == $1.labels && $0.indices == $1.indices
                    && $0.epoch == $1.epoch && $0.index == $1.index
            })
        }
        // The augmentation really acted, with the normalized black pixel (−mean/std) as padding.
        let black: [Float] = [(0 - 0.5) / 2, (0 - 0.25) / 4]
        let plain = DataLoader(dataset: data, batchSize: 8, seed: 3)
        let first = plain.batch(0, epoch: 0)
        #expect(synchronous[0].indices == first.indices)
        #expect(synchronous[0].images != first.images)
        let padded = synchronous.flatMap { $0.images.scalars.enumerated().filter { black.contains($0.element) } }
        #expect(Set(padded.map(\.element)) == Set(black))
        #expect(padded.allSatisfy { $0.element == black[$0.offset % 2] })
    }

    @Test func resumingMidEpochAndAbandoningAnEpochAreSafe() {
        let data = numberedDataset(count: 50)
        let loader = DataLoader(dataset: data, batchSize: 6, seed: 11,
                                augmentation: Augmentation(cropPadding: 1), prefetch: 2)
        let full = Array(loader.epoch(4))
        let resumed = Array(loader.epoch(4, startingAt: 5))
        #expect(resumed.map(\.index) == Array(5..<loader.batchesPerEpoch))
        #expect(zip(resumed, full.suffix(from: 5)).allSatisfy { $0.images == $1.images && $0.indices == $1.indices })
        #expect(Array(loader.epoch(4, startingAt: loader.batchesPerEpoch)).isEmpty)
        // One batch of the batch-by-batch API equals the same batch of the epoch.
        #expect(loader.batch(3, epoch: 4).images == full[3].images)

        // Abandon iterators after one batch: the producer threads must stop, and later epochs still run.
        for _ in 0..<20 {
            let iterator = loader.epoch(1).makeIterator()
            #expect(iterator.next()?.index == 0)
        }
        #expect(Array(loader.epoch(1)).count == loader.batchesPerEpoch)
    }

    @Test func subsetAndNormalization() {
        let data = numberedDataset(count: 10)
        let head = data.subset(first: 4)
        #expect(head.count == 4 && head.labels == [0, 1, 2, 3])
        #expect(head.images == data.images.slice(axis: 0, start: 0, count: 4))
        #expect(data.subset(first: 100).count == 10)
        #expect(data.subset(first: 0).count == 0)
        let normalization = Normalization(mean: [0.5, 1], standardDeviation: [0.25, 2])
        let normalized = data.normalized(normalization)
        #expect(normalized.normalization == normalization)
        #expect(normalized.images[3, 1, 2, 0] == (data.images[3, 1, 2, 0] - 0.5) / 0.25)
        #expect(normalized.images[7, 3, 0, 1] == (data.images[7, 3, 0, 1] - 1) / 2)
        #expect(normalization.black == [-2, -0.5])
        #expect(data.classCounts == [2, 2, 2, 1, 1, 1, 1])  // labels i % 7 for i in 0..<10
    }
}
