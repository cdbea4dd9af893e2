import Testing
import TensorCore
import Decompositions

/// Regression for the release-build crash of the factor-file tests (signal 11 in `Tensor.stack` from
/// `FactorLayout.content`, or in a key-path getter of `AnyDecomposition`).
///
/// Swift 6.3.1's optimizer put the array literals of an inline `BlockTerm(cores: [..], factors: [[..]])` on the
/// stack when the value was wrapped in a (then non-indirect) multi-payload `AnyDecomposition` inside an
/// `[AnyDecomposition?]` literal that was force-unwrapped by `map { $0! }` and returned: it missed that the
/// payload escapes through the copied elements. The returned values then pointed into a dead stack frame.
/// `AnyDecomposition` is `indirect` (each payload in its own heap box), which the optimizer tracks correctly.
@Suite("AnyDecomposition values built from literals outlive the function that built them")
struct AnyDecompositionLifetimeTests {
    static func wrapped(seed: UInt64) -> [AnyDecomposition<Double>] {
        var g = SeededGenerator(seed: seed)
        func r(_ shape: [Int]) -> Tensor<Double> { Tensor<Double>.randomNormal(shape, generator: &g) }
        let list: [AnyDecomposition<Double>?] = [
            AnyDecomposition(CPDecomposition(weights: r([2]), factors: [r([3, 2]), r([4, 2])])),
            AnyDecomposition(BlockTerm(shape: [4, 5, 3], cores: [r([2, 2, 1]), r([2, 2, 1])],
                                       factors: [[r([4, 2]), r([5, 2]), r([3, 1])], [r([4, 2]), r([5, 2]), r([3, 1])]])),
            AnyDecomposition(KroneckerDecomposition(left: r([2, 2, 3]), right: r([2, 3, 2]))),
        ]
        return list.map { $0! }
    }

    /// Overwrites the stack region a dead frame used, so dangling payloads would be visible.
    @inline(never)
    static func scribble() -> Int {
        var junk = [Int](repeating: 7, count: 512)
        junk.withUnsafeMutableBufferPointer { buffer in for i in buffer.indices { buffer[i] = i &* 31 } }
        return junk.reduce(0, &+)
    }

    @Test("the block-term factors survive: stacked per mode and reconstructed as freshly built ones")
    func blockTermSurvives() throws {
        let values = Self.wrapped(seed: 5)
        #expect(Self.scribble() != 0)
        let fresh = Self.wrapped(seed: 5)
        #expect(values.map(\.format) == ["cp", "btd", "kpd"])
        guard case let .btd(x) = values[1], case let .btd(y) = fresh[1] else {
            Issue.record("the second value is not a block term")
            return
        }
        for k in 0..<3 {
            #expect(Tensor.stack(x.factors.map { $0[k] }, axis: 0) == Tensor.stack(y.factors.map { $0[k] }, axis: 0))
        }
        for (a, b) in zip(values, fresh) { #expect(a.reconstruct() == b.reconstruct()) }
    }
}
