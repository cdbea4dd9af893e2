import Autodiff
import NeuralNetworks
import TensorCore

/// A layer that holds named child layers which model surgery may replace (a dense layer by a factorized one with
/// the same input and output shapes, keeping the parameter-name prefix).
public protocol LayerContainer<Scalar>: ShapedLayer {
    /// The children in forward order, each with its per-sample input shape when the container gets `inputShape`.
    func childLayers(inputShape: [Int]) -> [(name: String, layer: any Layer<Scalar>, inputShape: [Int])]
    /// Replaces the child named `name` by `layer`.
    ///
    /// - Precondition: a child has that name, and `layer` fits where it goes.
    func replaceChild(named name: String, with layer: any Layer<Scalar>)
}

extension Sequential: LayerContainer {
    public func childLayers(inputShape: [Int]) -> [(name: String, layer: any Layer<Scalar>, inputShape: [Int])] {
        var shape = inputShape
        return children.map { child in
            defer { shape = (child.layer as! any ShapedLayer<Scalar>).outputShape(forInput: shape) }
            return (child.name, child.layer, shape)
        }
    }

    public func replaceChild(named name: String, with layer: any Layer<Scalar>) {
        guard let index = children.firstIndex(where: { $0.name == name }) else {
            preconditionFailure("Sequential.replaceChild: no child named '\(name)'")
        }
        replace(at: index, with: layer)
    }
}

extension BasicBlock: LayerContainer {
    public func childLayers(inputShape: [Int]) -> [(name: String, layer: any Layer<Scalar>, inputShape: [Int])] {
        var result: [(name: String, layer: any Layer<Scalar>, inputShape: [Int])] = [
            ("conv1", conv1, inputShape), ("conv2", conv2, conv1.outputShape(forInput: inputShape)),
        ]
        if let downsample { result.append(("downsample", downsample, inputShape)) }
        return result
    }

    public func replaceChild(named name: String, with layer: any Layer<Scalar>) {
        guard let shaped = layer as? any ShapedLayer<Scalar> else {
            preconditionFailure("BasicBlock.replaceChild: \(type(of: layer)) does not report shapes (ShapedLayer)")
        }
        switch name {
        case "conv1": conv1 = shaped
        case "conv2": conv2 = shaped
        default: preconditionFailure("BasicBlock.replaceChild: only conv1 and conv2 can be replaced, not '\(name)'")
        }
    }
}

extension ResNet: LayerContainer {
    public func childLayers(inputShape: [Int]) -> [(name: String, layer: any Layer<Scalar>, inputShape: [Int])] {
        var shape = conv1.outputShape(forInput: inputShape)
        var result: [(name: String, layer: any Layer<Scalar>, inputShape: [Int])] = [("conv1", conv1, inputShape)]
        for (name, stage) in [("layer1", layer1), ("layer2", layer2), ("layer3", layer3)] {
            result.append((name, stage, shape))
            shape = stage.outputShape(forInput: shape)
        }
        result.append(("fc", fc, [shape[2]]))  // after global average pooling
        return result
    }

    public func replaceChild(named name: String, with layer: any Layer<Scalar>) {
        guard let shaped = layer as? any ShapedLayer<Scalar> else {
            preconditionFailure("ResNet.replaceChild: \(type(of: layer)) does not report shapes (ShapedLayer)")
        }
        switch name {
        case "conv1": conv1 = shaped
        case "fc": fc = shaped
        default: preconditionFailure("ResNet.replaceChild: only conv1 and fc can be replaced, not '\(name)'")
        }
    }
}

/// A dense layer that model surgery can replace, with where it sits.
public struct CompressibleLayer<Scalar: TensorScalar> {
    /// The dotted name, the prefix of its parameters (`"15"`, `"layer1.0.conv1"`).
    public let name: String
    /// The dense layer (`Linear` or `Conv2D`).
    public let layer: any Layer<Scalar>
    /// Its per-sample input shape.
    public let inputShape: [Int]
    /// The container that holds it and its name there.
    let parent: any LayerContainer<Scalar>
    let childName: String

    /// Whether it is a convolution (else a linear layer).
    public var isConvolution: Bool { layer is Conv2D<Scalar> }
    /// Dense parameters of its weight (bias excluded).
    public var weightParameters: Int {
        (layer as? Linear<Scalar>)?.weight.value.scalarCount ?? (layer as? Conv2D<Scalar>)?.weight.value.scalarCount ?? 0
    }
}

/// Model surgery (METHODS §2.1 step 4): list the dense `Linear` and `Conv2D` layers of a model, in forward order,
/// looking into `LayerContainer`s (`Sequential`, `BasicBlock`, `ResNet`), and replace them in place.
public enum ModelSurgery {
    /// The dense `Linear` and `Conv2D` layers of `model` for per-sample input `inputShape`, in forward order.
    public static func compressibleLayers<Scalar: TensorScalar>(of model: any Layer<Scalar>, inputShape: [Int]) -> [CompressibleLayer<Scalar>] {
        guard let container = model as? any LayerContainer<Scalar> else { return [] }
        var result: [CompressibleLayer<Scalar>] = []
        func visit(_ container: any LayerContainer<Scalar>, prefix: String, inputShape: [Int]) {
            for (name, layer, shape) in container.childLayers(inputShape: inputShape) {
                if layer is Linear<Scalar> || layer is Conv2D<Scalar> {
                    result.append(CompressibleLayer(name: prefix + name, layer: layer, inputShape: shape, parent: container,
                                                    childName: name))
                } else if let inner = layer as? any LayerContainer<Scalar> {
                    visit(inner, prefix: prefix + name + ".", inputShape: shape)
                }
            }
        }
        visit(container, prefix: "", inputShape: inputShape)
        return result
    }

    /// Calls `body` on `model` and on every layer inside it (through `LayerContainer`s), in forward order, each with
    /// its per-sample input shape.
    private static func forEachLayer<Scalar: TensorScalar>(in model: any Layer<Scalar>, inputShape: [Int],
                                                           _ body: (any Layer<Scalar>, [Int]) -> Void) {
        body(model, inputShape)
        guard let container = model as? any LayerContainer<Scalar> else { return }
        for (_, child, shape) in container.childLayers(inputShape: inputShape) { forEachLayer(in: child, inputShape: shape, body) }
    }

    /// Sets the execution mode of every factorized layer (FC and conv) of `model`; returns how many it set.
    @discardableResult
    public static func setExecutionMode<Scalar: TensorScalar>(_ mode: ExecutionMode, in model: any Layer<Scalar>,
                                                              inputShape: [Int]) -> Int {
        var count = 0
        forEachLayer(in: model, inputShape: inputShape) { layer, _ in
            if let linear = layer as? FactorizedLinear<Scalar> {
                linear.executionMode = mode
                count += 1
            } else if let conv = layer as? FactorizedConv2D<Scalar> {
                conv.executionMode = mode
                count += 1
            }
        }
        return count
    }

    /// Multiply-adds per image when `batch` images run together: `model.multiplyAdds(forInput:)` (one image) with
    /// every factorized layer's cost taken at the whole batch, in its execution mode, and divided by `batch`. Its
    /// weight-side steps (core merges, a weight rebuilt in the reconstructed mode: METHODS §0.3 Rule C3) are shared
    /// by the batch, so a model whose layers rebuild their weights can cost many times a dense model for one image
    /// and about as much as one at a training batch.
    ///
    /// - Precondition: batch ≥ 1.
    public static func multiplyAddsPerImage<Scalar: TensorScalar>(of model: any ShapedLayer<Scalar>, inputShape: [Int],
                                                                  batch: Int) -> Int {
        precondition(batch >= 1, "ModelSurgery.multiplyAddsPerImage: batch \(batch) must be at least 1")
        var total = model.multiplyAdds(forInput: inputShape)
        forEachLayer(in: model, inputShape: inputShape) { layer, inputShape in
            if let linear = layer as? FactorizedLinear<Scalar> {
                let rows = inputShape.dropLast().reduce(1, *)
                total += (linear.macs(batch: batch * rows) + batch - 1) / batch - linear.macs(batch: rows)
            } else if let conv = layer as? FactorizedConv2D<Scalar> {
                let cost = { (n: Int) in conv.cost(forInput: inputShape, batch: n, mode: conv.executionMode).total }
                total += (cost(batch) + batch - 1) / batch - cost(1)
            }
        }
        return total
    }

    /// The batches `recalibrateBatchNorm` averages by default.
    public static let recalibrationBatches = 50

    /// Re-estimates the running statistics of every `BatchNorm` of `model` as the average batch statistics over
    /// the first `batches` batches of `data` (in order), leaving every weight unchanged: the statistics a trained
    /// network collected no longer describe its activations once its layers are truncated or factorized
    /// (torch.optim.swa_utils.update_bn does the same after weight averaging). The batches run forward in
    /// training mode without a tape. Returns how many batch normalizations it re-estimated.
    @discardableResult
    public static func recalibrateBatchNorm<Scalar: TensorScalar>(in model: any Layer<Scalar>, on data: Dataset,
                                                                  batches: Int = recalibrationBatches,
                                                                  batchSize: Int = 128) -> Int {
        precondition(batches > 0 && batchSize > 0, "recalibrateBatchNorm: batches \(batches) and batchSize \(batchSize) must be positive")
        var norms: [BatchNorm<Scalar>] = []
        forEachLayer(in: model, inputShape: data.imageShape) { layer, _ in
            // Blocks and ResNets hold their batch normalizations outside the replaceable children.
            if let block = layer as? BasicBlock<Scalar> { norms += [block.bn1, block.bn2] }
            if let resnet = layer as? ResNet<Scalar> { norms.append(resnet.bn1) }
            if let norm = layer as? BatchNorm<Scalar> { norms.append(norm) }
        }
        guard !norms.isEmpty else { return 0 }
        for norm in norms { norm.averagedBatches = 0 }
        defer { for norm in norms { norm.averagedBatches = nil } }
        var start = 0
        while start < Swift.min(data.count, batches * batchSize) {
            let count = Swift.min(batchSize, data.count - start)
            guard count > 1 else { break }  // batch statistics need two samples
            let images = data.images.slice(axis: 0, start: start, count: count).converted(to: Scalar.self)
            _ = model(Variable(constant: images), mode: .training)
            start += count
        }
        return norms.count
    }

    /// Puts `replacement` where `layer` was (its parameters keep the layer's name as prefix).
    public static func replace<Scalar: TensorScalar>(_ layer: CompressibleLayer<Scalar>, with replacement: any Layer<Scalar>) {
        layer.parent.replaceChild(named: layer.childName, with: replacement)
    }

    /// Replaces the layer named `name` (a dotted path through containers) by `replacement`.
    ///
    /// - Throws: `CompressionError.unsupportedFormat` when no replaceable layer has that name.
    public static func replace<Scalar: TensorScalar>(layerNamed name: String, in model: any Layer<Scalar>, inputShape: [Int],
                                       with replacement: any Layer<Scalar>) throws {
        var container = model as? any LayerContainer<Scalar>
        var shape = inputShape
        let parts = name.split(separator: ".").map(String.init)
        for (index, part) in parts.enumerated() {
            guard let current = container,
                  let child = current.childLayers(inputShape: shape).first(where: { $0.name == part }) else { break }
            if index == parts.count - 1 {
                current.replaceChild(named: part, with: replacement)
                return
            }
            container = child.layer as? any LayerContainer<Scalar>
            shape = child.inputShape
        }
        throw CompressionError.unsupportedFormat(layer: name, problem: "the model has no replaceable layer of this name")
    }
}
