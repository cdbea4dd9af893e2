import Foundation
import TensorCore

/// Mini-batches of a `Dataset` for training and evaluation: seeded shuffling, optional drop-last,
/// seeded augmentation, and a background thread that prepares the next batches while the current one trains.
///
/// Everything random is a pure function of `(seed, epoch)` or `(seed, epoch, batch)`: epoch `e`'s order is a
/// Fisher–Yates permutation drawn from a generator seeded by `(seed, e)`, and batch `b`'s augmentation from
/// one seeded by `(seed, e, b)`. So resuming at epoch `e`, batch `b` reproduces exactly the batches of an
/// uninterrupted run, and prefetching (any depth, any timing) yields the same batches as a synchronous pass.
///
/// ```swift
/// let loader = DataLoader(dataset: train, batchSize: 128, seed: 0)
/// for epoch in 0..<5 {
///     for batch in loader.epoch(epoch) { /* train on batch.images [b, h, w, c], batch.labels */ }
/// }
/// ```
public struct DataLoader: Sendable {
    /// One mini-batch.
    public struct Batch: Sendable {
        /// The (possibly augmented) images, `[count, height, width, channels]`.
        public let images: Tensor<Float>
        /// The label of each image.
        public let labels: [Int]
        /// The position of each image in the data set.
        public let indices: [Int]
        /// The epoch this batch belongs to.
        public let epoch: Int
        /// The batch's position within its epoch, from 0.
        public let index: Int

        /// The number of examples in the batch.
        public var count: Int { labels.count }
    }

    /// The examples.
    public let dataset: Dataset
    /// Examples per batch (the last batch of an epoch may be smaller unless `dropLast`).
    public let batchSize: Int
    /// Whether each epoch visits the examples in a fresh seeded random order (otherwise in data-set order).
    public let shuffle: Bool
    /// Whether to skip the final batch of an epoch when it has fewer than `batchSize` examples.
    public let dropLast: Bool
    /// The seed of the orders and the augmentation.
    public let seed: UInt64
    /// The augmentation applied to each batch (`.none` for evaluation).
    public let augmentation: Augmentation
    /// How many batches the background thread may prepare ahead (0: none, batches are made on demand).
    public let prefetch: Int

    /// A loader over `dataset`.
    ///
    /// - Parameters:
    ///   - batchSize: Examples per batch, positive.
    ///   - shuffle: Random order per epoch (training) or data-set order (evaluation).
    ///   - dropLast: Skip an incomplete final batch.
    ///   - seed: Seeds the order of every epoch and the augmentation.
    ///   - augmentation: Random crop and flip, seeded; padding uses the black pixel of the data set's
    ///     normalization.
    ///   - prefetch: Batches prepared ahead on a background thread, `0...2` (0 disables the thread).
    public init(dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0,
                augmentation: Augmentation = .none, prefetch: Int = 1) {
        precondition(batchSize > 0, "DataLoader: batchSize must be positive, got \(batchSize)")
        precondition((0...2).contains(prefetch), "DataLoader: prefetch must be 0...2 batches, got \(prefetch)")
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
        self.augmentation = augmentation
        self.prefetch = prefetch
    }

    /// Batches per epoch: `⌊n / batchSize⌋` with `dropLast`, `⌈n / batchSize⌉` without.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// Examples visited per epoch (all of them unless `dropLast` skips a remainder).
    public var examplesPerEpoch: Int { dropLast ? batchesPerEpoch * batchSize : dataset.count }

    /// The order in which epoch `epoch` visits the examples: a permutation of `0..<dataset.count`, the same
    /// for the same `(seed, epoch)` and independent across epochs; the identity when `shuffle` is false.
    public func order(epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<dataset.count) }
        var generator = SeededGenerator(seed: mixSeeds(seed, UInt64(bitPattern: Int64(epoch)), shuffleStream))
        return generator.permutation(dataset.count)
    }

    /// Batch `index` of epoch `epoch`, made on the calling thread.
    public func batch(_ index: Int, epoch: Int) -> Batch {
        makeBatch(index, epoch: epoch, order: order(epoch: epoch))
    }

    /// The batches of epoch `epoch` from batch `firstBatch` on (to resume mid-epoch), prepared ahead on a
    /// background thread when `prefetch > 0`.
    public func epoch(_ epoch: Int, startingAt firstBatch: Int = 0) -> Epoch {
        precondition(firstBatch >= 0 && firstBatch <= batchesPerEpoch,
                     "DataLoader.epoch: first batch \(firstBatch) outside 0...\(batchesPerEpoch)")
        return Epoch(loader: self, epoch: epoch, firstBatch: firstBatch)
    }

    /// The batches of one epoch, in order. Iterating starts the background thread (if any); abandoning the
    /// iterator stops it.
    public struct Epoch: Sequence, Sendable {
        /// The loader the batches come from.
        public let loader: DataLoader
        /// The epoch number.
        public let epoch: Int
        /// The first batch produced.
        public let firstBatch: Int

        /// An iterator over the batches.
        public func makeIterator() -> EpochIterator {
            EpochIterator(loader: loader, epoch: epoch, firstBatch: firstBatch)
        }

        /// The number of batches produced.
        public var underestimatedCount: Int { loader.batchesPerEpoch - firstBatch }
    }

    /// Yields the batches of one epoch in order; with prefetching, a background thread fills a queue of at
    /// most `prefetch` batches ahead of the consumer.
    public final class EpochIterator: IteratorProtocol {
        private let loader: DataLoader
        private let epoch: Int
        private let order: [Int]
        private var position: Int
        private let end: Int
        private let queue: PrefetchQueue?

        init(loader: DataLoader, epoch: Int, firstBatch: Int) {
            self.loader = loader
            self.epoch = epoch
            self.order = loader.order(epoch: epoch)
            self.position = firstBatch
            self.end = loader.batchesPerEpoch
            if loader.prefetch > 0 && firstBatch < end {
                let queue = PrefetchQueue(capacity: loader.prefetch)
                self.queue = queue
                let (order, end) = (order, end)
                let thread = Thread {
                    for index in firstBatch..<end {
                        guard queue.waitForRoom() else { return }
                        queue.push(loader.makeBatch(index, epoch: epoch, order: order))
                    }
                }
                thread.name = "lowrank.data.prefetch"
                thread.start()
            } else {
                self.queue = nil
            }
        }

        /// The next batch, or `nil` after the last one.
        public func next() -> Batch? {
            guard position < end else { return nil }
            defer { position += 1 }
            if let queue { return queue.pop() }
            return loader.makeBatch(position, epoch: epoch, order: order)
        }

        deinit { queue?.cancel() }
    }

    /// Batch `index` of an epoch whose order is `order`.
    func makeBatch(_ index: Int, epoch: Int, order: [Int]) -> Batch {
        precondition(index >= 0 && index < batchesPerEpoch,
                     "DataLoader: batch \(index) outside 0..<\(batchesPerEpoch)")
        let start = index * batchSize
        let indices = Array(order[start..<min(start + batchSize, order.count)])
        var images = dataset.images(at: indices)
        if !augmentation.isIdentity {
            var generator = SeededGenerator(
                seed: mixSeeds(seed, UInt64(bitPattern: Int64(epoch)), UInt64(index), augmentationStream))
            let fill = dataset.normalization?.black ?? [Float](repeating: 0, count: dataset.channels)
            images = augmentation.apply(to: images, fill: fill, using: &generator)
        }
        return Batch(images: images, labels: dataset.labels(at: indices), indices: indices, epoch: epoch, index: index)
    }
}

private let shuffleStream: UInt64 = 0x5348_5546_464C_4531  // "SHUFFLE1"
private let augmentationStream: UInt64 = 0x4155_474D_454E_5431  // "AUGMENT1"

/// A 64-bit seed derived from several values: each is folded in with the SplitMix64 finalizer, so nearby
/// inputs (epoch 1 vs 2) give unrelated seeds.
func mixSeeds(_ values: UInt64...) -> UInt64 {
    var hash: UInt64 = 0x243F_6A88_85A3_08D3
    for value in values {
        var z = hash ^ value
        z &+= 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        hash = z ^ (z >> 31)
    }
    return hash
}

/// A bounded first-in, first-out hand-off of batches from one producer thread to one consumer.
///
/// `@unchecked Sendable`: every access to `items` and `cancelled` happens with `condition` locked.
final class PrefetchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var items: [DataLoader.Batch] = []
    private var reserved = 0
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    /// Producer: blocks until a slot is free and reserves it; false once the consumer has gone.
    func waitForRoom() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !cancelled && items.count + reserved >= capacity { condition.wait() }
        if cancelled { return false }
        reserved += 1
        return true
    }

    /// Producer: fills the reserved slot.
    func push(_ batch: DataLoader.Batch) {
        condition.lock()
        reserved -= 1
        if !cancelled { items.append(batch) }
        condition.broadcast()
        condition.unlock()
    }

    /// Consumer: the oldest batch, waiting for the producer if none is ready.
    func pop() -> DataLoader.Batch {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty { condition.wait() }
        let batch = items.removeFirst()
        condition.broadcast()
        return batch
    }

    /// Consumer: stops the producer and drops prepared batches.
    func cancel() {
        condition.lock()
        cancelled = true
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
