import Foundation
import TensorCore

/// `lowrank bench core`: the numerical core against its ceilings, in one run on the same data.
///
/// - GEMM: `Tensor.matmul` (oneDNN's GEMM from 2^20 multiply-adds, OpenBLAS below) against a bare `cblas_sgemm` call on
///   the same buffers (target ≥ 90%).
/// - SVD: `Tensor.svd()` (gesdd, thin) at 512² and 1024².
/// - Permute: bandwidth (bytes read + written per second) of `Tensor.permuted` on a 64 MiB tensor against a
///   plain memory copy of the same bytes (target ≥ 50%).
/// - einsum: a tensor-train-shaped chain (a TT-matrix layer applied to a batch).
/// When numpy is importable, the same operations run in numpy in the same invocation and print beside ours.
struct CoreBenchmark {
    var repeats = 5

    struct Row {
        var name: String
        var unit: String
        var lowrank: Double
        var reference: Double?
        var referenceName: String
        var numpy: Double?
    }

    func run(json: Bool) throws {
        let threads = LinearAlgebraThreads.count
        if !json {
            print("LowRank core benchmark: \(threads) thread(s) (LOWRANK_THREADS), median of \(repeats)")
            print("BLAS: \(LinearAlgebraThreads.backendDescription) (kernels: \(BLASKernels.coreName))")
            print("running numpy side … ", terminator: "")
        }
        let numpy = runPythonJSON(CoreBenchmark.numpyScript, arguments: [String(repeats)])
        if !json { print(numpy.result != nil ? "done" : "skipped (\(numpy.problem ?? "unavailable"))") }
        let np = numpy.result ?? [:]

        var rows: [Row] = []
        var generator = SeededGenerator(seed: 0)
        for n in [256, 512, 1024, 2048] {
            let a = Tensor<Float>.randomNormal([n, n], generator: &generator)
            let b = Tensor<Float>.randomNormal([n, n], generator: &generator)
            let flops = 2 * Double(n) * Double(n) * Double(n)
            // At least ~2^31 multiply-adds per median: 5 runs of a 0.2 ms product are noise.
            let repeats = Swift.max(repeats, (1 << 31) / (n * n * n))
            let ours = medianSeconds(repeats: repeats) { _ = Tensor.matmul(a, b) }
            var c = [Float](repeating: 0, count: n * n)
            let plain = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    medianSeconds(repeats: repeats) {
                        referenceSgemm(m: n, n: n, k: n, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                    }
                }
            } }
            rows.append(Row(name: "matmul \(n)×\(n)", unit: "GFLOP/s", lowrank: flops / ours / 1e9,
                            reference: flops / plain / 1e9, referenceName: "cblas_sgemm",
                            numpy: (np["matmul_\(n)"] as? Double).map { flops / $0 / 1e9 }))
        }
        for n in [512, 1024] {
            let a = Tensor<Float>.randomNormal([n, n], generator: &generator)
            let seconds = try medianSeconds(repeats: max(1, repeats / 2)) { _ = try a.svd() }
            rows.append(Row(name: "svd \(n)×\(n) (thin U,S,Vᵀ)", unit: "s", lowrank: seconds, reference: nil,
                            referenceName: "", numpy: np["svd_\(n)"] as? Double))
        }
        // 64 MiB of Float.
        let bytes = Double(64 << 20)
        let source = Tensor<Float>.randomUniform([1 << 24], generator: &generator)
        // The reference: one plain memcpy of the same bytes into an already allocated buffer.
        var destination = [Float](repeating: 0, count: 1 << 24)
        let copySeconds = source.withUnsafeBufferPointer { src in
            destination.withUnsafeMutableBufferPointer { dst in
                medianSeconds(repeats: repeats) { dst.baseAddress!.update(from: src.baseAddress!, count: src.count) }
            }
        }
        let copyRate = 2 * bytes / copySeconds / 1e9
        let permutes: [(String, [Int], [Int])] = [
            ("permute 4096×4096 → transpose", [4096, 4096], [1, 0]),
            ("permute 64⁴ → (3,2,1,0)", [64, 64, 64, 64], [3, 2, 1, 0]),
            ("permute 256×16×64×64 → (0,2,1,3)", [256, 16, 64, 64], [0, 2, 1, 3]),
        ]
        for (index, (name, shape, permutation)) in permutes.enumerated() {
            let x = source.reshaped(shape)
            let seconds = medianSeconds(repeats: repeats) { _ = x.permuted(permutation) }
            rows.append(Row(name: name, unit: "GB/s", lowrank: 2 * bytes / seconds / 1e9, reference: copyRate,
                            referenceName: "memcpy", numpy: (np["permute_\(index)"] as? Double).map { 2 * bytes / $0 / 1e9 }))
        }

        // A TT-matrix layer (I = O = 4·8·8·4, ranks 16) applied to a batch of 256: einsum on its optimal path.
        let ttShapes = [[256, 4, 8, 8, 4], [4, 4, 16], [16, 8, 8, 16], [16, 8, 8, 16], [16, 4, 4]]
        let ttOperands = ttShapes.map { Tensor<Float>.randomNormal($0, generator: &generator) }
        let tt = EinsumExpression(CoreBenchmark.ttSpec, shapes: ttShapes)
        let ttPath = tt.optimalPath()
        let ttSeconds = medianSeconds(repeats: repeats) { _ = tt.evaluate(ttOperands, path: ttPath) }
        let ttFlops = 2 * Double(ttPath.multiplyAdds)
        rows.append(Row(name: "einsum TT-matrix chain (batch 256)", unit: "GFLOP/s", lowrank: ttFlops / ttSeconds / 1e9,
                        reference: nil, referenceName: "", numpy: (np["einsum_tt"] as? Double).map { ttFlops / $0 / 1e9 }))
        if json {
            try printJSON([
                "threads": threads,
                "rows": rows.map { row -> [String: Any] in
                    var object: [String: Any] = ["name": row.name, "unit": row.unit, "lowrank": row.lowrank]
                    if let r = row.reference { object[row.referenceName] = r; object["ratio"] = row.lowrank / r }
                    if let n = row.numpy { object["numpy"] = n }
                    return object
                },
            ])
            return
        }
        print("")
        print(pad("operation", 36) + pad("unit", 9) + pad("LowRank", 10) + pad("reference", 22) + pad("ratio", 8) + "numpy")
        for row in rows {
            let reference = row.reference.map { "\(format($0)) (\(row.referenceName))" } ?? "—"
            let ratio = row.reference.map { String(format: "%.0f%%", 100 * row.lowrank / $0) } ?? "—"
            print(pad(row.name, 36) + pad(row.unit, 9) + pad(format(row.lowrank), 10) + pad(reference, 22)
                  + pad(ratio, 8) + (row.numpy.map(format) ?? "—"))
        }
    }

    private func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 1 ? String(format: "%.1f", value) : String(format: "%.3f", value)
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static let ttSpec = "bijkl,iap,pjcq,qkdr,rle->bacde"

    /// The numpy side: the same shapes, float32, median of the given repeats; prints one JSON line of seconds.
    static let numpyScript = #"""
import json, sys, time
import numpy as np
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
def median(f, r=repeats):
    f()
    ts = []
    for _ in range(max(1, r)):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[len(ts) // 2]
rng = np.random.default_rng(0)
out = {}
for n in (256, 512, 1024, 2048):
    a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
    out[f"matmul_{n}"] = median(lambda: a @ b)
for n in (512, 1024):
    a = rng.standard_normal((n, n), dtype=np.float32)
    out[f"svd_{n}"] = median(lambda: np.linalg.svd(a, full_matrices=False), max(1, repeats // 2))
x = rng.random(1 << 24, dtype=np.float32)
for i, (shape, perm) in enumerate((((4096, 4096), (1, 0)), ((64, 64, 64, 64), (3, 2, 1, 0)),
                                   ((256, 16, 64, 64), (0, 2, 1, 3)))):
    y = x.reshape(shape)
    out[f"permute_{i}"] = median(lambda: np.ascontiguousarray(y.transpose(perm)))
shapes = [(256, 4, 8, 8, 4), (4, 4, 16), (16, 8, 8, 16), (16, 8, 8, 16), (16, 4, 4)]
ops = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
path = np.einsum_path("bijkl,iap,pjcq,qkdr,rle->bacde", *ops, optimize="optimal")[0]
out["einsum_tt"] = median(lambda: np.einsum("bijkl,iap,pjcq,qkdr,rle->bacde", *ops, optimize=path))
print(json.dumps(out))
"""#
}
