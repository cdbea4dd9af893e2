import Autodiff
import NeuralNetworks
import Testing
import TensorCore

/// A minimal layer y = x·w with one trainable and one non-trainable parameter.
private final class ScaleLayer: Layer {
    let weight = Parameter(Tensor<Double>([2]))
    let statistic = Parameter(Tensor<Double>([0, 0]), isTrainable: false)
    func callAsFunction(_ input: Variable<Double>, mode: ForwardMode) -> Variable<Double> { input }
    func visitParameters(prefix: String, _ visitor: (String, Parameter<Double>) -> Void) {
        visitor(prefix + "weight", weight)
        visitor(prefix + "running_mean", statistic)
    }
}

@Suite struct LayerTests {
    @Test func namedParametersAndCounts() {
        let layer = ScaleLayer()
        #expect(layer.namedParameters().map(\.name) == ["weight", "running_mean"])
        #expect(layer.parameterCount == 3)
        #expect(layer.statistic.isFrozen && !layer.statistic.isTrainable)
    }
}
