import Autodiff
import TensorCore

/// Layers applied one after another, y = f_k(… f_2(f_1(x))), with named children.
///
/// Children are named `"0"`, `"1"`, … by default (PyTorch's `nn.Sequential`), or by the names given; a child's
/// parameters are visited as `"<prefix><child name>.<parameter>"` (for example `"features.3.weight"`).
///
/// A `BatchNorm` immediately followed by a `ReLU` runs as one fused batch-norm-and-ReLU operation (forward and
/// backward), which saves a pass over the activations and a tape node; the result is the same function.
public final class Sequential<Scalar: TensorScalar>: ShapedLayer, StochasticLayer {
    /// The children with their names, in order.
    public private(set) var children: [(name: String, layer: any Layer<Scalar>)]

    /// Children named `"0"`, `"1"`, ….
    public init(_ layers: [any Layer<Scalar>]) {
        children = layers.enumerated().map { (String($0.offset), $0.element) }
    }

    /// Children named `"0"`, `"1"`, ….
    public convenience init(_ layers: any Layer<Scalar>...) { self.init(layers) }

    /// Children with the given names.
    ///
    /// - Precondition: names are unique, non-empty and contain no `"."`.
    public init(named children: [(name: String, layer: any Layer<Scalar>)]) {
        var seen = Set<String>()
        for (name, _) in children {
            precondition(!name.isEmpty && !name.contains(".") && seen.insert(name).inserted,
                         "Sequential: child names must be unique, non-empty and without '.', got '\(name)'")
        }
        self.children = children
    }

    /// The number of children.
    public var count: Int { children.count }

    /// The child layers, in order.
    public var layers: [any Layer<Scalar>] { children.map(\.layer) }

    /// Appends a child named by its position (or `name`).
    public func append(_ layer: any Layer<Scalar>, name: String? = nil) {
        let name = name ?? String(children.count)
        precondition(!children.contains { $0.name == name }, "Sequential.append: a child is already named '\(name)'")
        children.append((name, layer))
    }

    /// Replaces the child at `index` by `layer`, keeping its name (model surgery: a dense layer becomes a factorized
    /// one, and its parameters keep their prefix).
    ///
    /// - Precondition: 0 ≤ index < count.
    public func replace(at index: Int, with layer: any Layer<Scalar>) {
        precondition(children.indices.contains(index), "Sequential.replace: index \(index) outside 0..<\(children.count)")
        children[index].layer = layer
    }

    /// Applies the children in order (fusing BatchNorm + ReLU pairs).
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        var x = input
        var i = 0
        while i < children.count {
            let layer = children[i].layer
            if let norm = layer as? BatchNorm<Scalar>, i + 1 < children.count, children[i + 1].layer is ReLU<Scalar> {
                x = norm.forward(x, mode: mode, fusingReLU: true)
                i += 2
                continue
            }
            x = layer(x, mode: mode)
            i += 1
        }
        return x
    }

    /// Visits each child's parameters under `"<prefix><name>."`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        for (name, layer) in children { layer.visitParameters(prefix: prefix + name + ".", visitor) }
    }

    /// Reseeds every stochastic child with a seed derived from `seed` and its position.
    public func reseed(_ seed: UInt64) {
        for (index, child) in children.enumerated() {
            (child.layer as? any StochasticLayer)?.reseed(childSeed(seed, index))
        }
    }

    /// The output shape after every child.
    ///
    /// - Precondition: every child is a `ShapedLayer`.
    public func outputShape(forInput shape: [Int]) -> [Int] {
        children.reduce(shape) { shaped($1.layer, $1.name).outputShape(forInput: $0) }
    }

    /// The sum of the children's multiply–adds.
    public func multiplyAdds(forInput shape: [Int]) -> Int {
        var current = shape, total = 0
        for (name, layer) in children {
            let child = shaped(layer, name)
            total += child.multiplyAdds(forInput: current)
            current = child.outputShape(forInput: current)
        }
        return total
    }

    /// The children's summaries, in order.
    public func layerSummaries(prefix: String, inputShape: [Int]) -> [LayerSummary] {
        var current = inputShape, result: [LayerSummary] = []
        for (name, layer) in children {
            let child = shaped(layer, name)
            result += child.layerSummaries(prefix: prefix + name + ".", inputShape: current)
            current = child.outputShape(forInput: current)
        }
        return result
    }

    public var layerDescription: String { "Sequential(\(children.count) layers)" }

    /// True when every child is a `ShapedLayer` that reports its shapes.
    public var reportsShapes: Bool {
        children.allSatisfy { ($0.layer as? any ShapedLayer<Scalar>)?.reportsShapes ?? false }
    }

    private func shaped(_ layer: any Layer<Scalar>, _ name: String) -> any ShapedLayer<Scalar> {
        guard let shaped = layer as? any ShapedLayer<Scalar> else {
            preconditionFailure("Sequential: child '\(name)' (\(type(of: layer))) does not report shapes (ShapedLayer)")
        }
        return shaped
    }
}
