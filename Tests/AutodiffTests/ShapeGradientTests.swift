import Autodiff
import Testing
import TensorCore

@Suite struct ShapeGradientTests {
    @Test func reshapeFlattenSqueezeExpand() {
        let x = randn([2, 3, 4], seed: 60)
        expectGradientsMatch([x], "reshape") { $0[0].reshaped([6, -1]) * $0[0].reshaped([6, 4]) }
        expectGradientsMatch([x], "flatten") { $0[0].flattened().exp() }
        let y = randn([2, 1, 3, 1], seed: 61)
        expectGradientsMatch([y], "squeeze all") { $0[0].squeezed().squared() }
        expectGradientsMatch([y], "squeeze one") { $0[0].squeezed(axes: [1]).squared() }
        expectGradientsMatch([x], "expand middle") { $0[0].expandingShape(at: 1).squared() }
        expectGradientsMatch([x], "expand last") { $0[0].expandingShape(at: -1).exp() }
    }

    @Test(arguments: [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [0, 2, 1]])
    func permute(_ permutation: [Int]) {
        let x = randn([2, 3, 4], seed: 62)
        let weights = Variable(constant: randn(permutation.map { [2, 3, 4][$0] }, seed: 63))
        expectGradientsMatch([x], "permute \(permutation)") { $0[0].permuted(permutation) * weights }
    }

    @Test func transposeAndBroadcastTo() {
        let m = randn([3, 4], seed: 64)
        expectGradientsMatch([m], "transposed") { matmul($0[0].transposed, $0[0]) }
        let v = randn([1, 4], seed: 65)
        expectGradientsMatch([v], "broadcasted") { $0[0].broadcasted(to: [2, 3, 4]).squared() }
    }

    @Test(arguments: [0, 1, 2, -1])
    func sliceAlongEveryAxis(_ axis: Int) {
        let x = randn([3, 4, 5], seed: 66)
        let size = x.shape[(axis + 3) % 3]
        expectGradientsMatch([x], "slice axis \(axis)") { $0[0].slice(axis: axis, start: 1, count: size - 2).exp() }
        expectGradientsMatch([x], "slice range axis \(axis)") { $0[0].slice(axis: axis, 0..<1).squared() }
    }

    @Test(arguments: [0, 1, 2])
    func concatenateAlongEveryAxis(_ axis: Int) {
        var shapeB = [2, 3, 4], shapeC = [2, 3, 4]
        shapeB[axis] = 1
        shapeC[axis] = 2
        let a = randn([2, 3, 4], seed: 67), b = randn(shapeB, seed: 68), c = randn(shapeC, seed: 69)
        expectGradientsMatch([a, b, c], "concatenate axis \(axis)") { v in
            concatenate([v[0], v[1].exp(), v[2], v[0]], axis: axis).squared()
        }
    }

    @Test func concatenateWithAConstantAndStack() {
        let a = randn([2, 3], seed: 70)
        let constant = Variable(constant: randn([2, 3], seed: 71))
        expectGradientsMatch([a], "concatenate with constant") { concatenate([constant, $0[0]], axis: 1).exp() }
        expectGradientsMatch([a, a * 2], "stack") { Variable.stack([$0[0], $0[1].squared()], axis: 1).exp() }
    }

    @Test func sliceGradientIsZeroOutsideTheRange() {
        let tape = Tape<Double>()
        let x = tape.variable(randn([4, 3], seed: 72))
        let grads = tape.gradients(of: x.slice(axis: 0, start: 1, count: 2).sum())
        let expected = Tensor<Double>(shape: [4, 3], scalars: [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0])
        #expect(grads[0] == expected)
    }
}
