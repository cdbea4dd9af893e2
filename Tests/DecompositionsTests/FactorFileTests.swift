import Foundation
import Testing
import TensorCore
import Decompositions

/// Seeded decompositions of every format, and helpers to write, tamper with and read factor files.
enum FactorFileFixtures {
    /// One small decomposition of every format (three Tucker and two HT variants), with random factors of the
    /// documented shapes, so each file layout is exercised with ranks that differ from mode to mode.
    static func all<S: TensorScalar>(seed: UInt64, as: S.Type = S.self) throws -> [AnyDecomposition<S>] {
        var g = SeededGenerator(seed: seed)
        func r(_ shape: [Int]) -> Tensor<S> { Tensor<S>.randomNormal(shape, generator: &g) }
        let htInput = r([3, 4, 2, 3])
        let list: [AnyDecomposition<S>?] = [
            AnyDecomposition(try MatrixLowRank.decompose(r([6, 5]), target: .ranks([3]))),
            AnyDecomposition(CPDecomposition(weights: r([3]), factors: [r([4, 3]), r([5, 3]), r([2, 3])])),
            AnyDecomposition(TuckerDecomposition(core: r([2, 3, 2]), factors: [r([4, 2]), r([5, 3]), r([3, 2])])),
            AnyDecomposition(TuckerDecomposition(core: r([2, 3, 3, 3]), factors: [r([6, 2]), r([4, 3])], modes: [0, 1])),
            AnyDecomposition(TuckerDecomposition(core: r([4, 2, 3]), factors: [r([5, 2]), r([6, 3])], modes: [1, 2])),
            AnyDecomposition(TensorTrain(cores: [r([1, 4, 2]), r([2, 3, 3]), r([3, 5, 1])])),
            AnyDecomposition(TTMatrix(cores: [r([1, 2, 3, 2]), r([2, 2, 2, 1])])),
            AnyDecomposition(TensorRing(cores: [r([2, 3, 3]), r([3, 4, 2]), r([2, 5, 2])])),
            AnyDecomposition(try HierarchicalTucker.decompose(htInput, target: .ranks([2]))),
            AnyDecomposition(try HierarchicalTucker.decompose(htInput, target: .ranks([2]), tree: try DimensionTree(parsing: "((0,2),(1,3))"))),
            AnyDecomposition(BlockTerm(shape: [4, 5, 3], cores: [r([2, 2, 1]), r([2, 2, 1])],
                                       factors: [[r([4, 2]), r([5, 2]), r([3, 1])], [r([4, 2]), r([5, 2]), r([3, 1])]])),
            AnyDecomposition(KroneckerDecomposition(left: r([2, 2, 3]), right: r([2, 3, 2]))),
            AnyDecomposition(GeneralizedKroneckerDecomposition(left: r([2, 2, 1, 1, 3]), right: r([2, 2, 3, 3, 1]))),
            AnyDecomposition(SemiTensorTucker(shape: [4, 6, 3], core: r([2, 4, 3]), factors: [r([2, 1]), r([3, 2]), r([3, 3])],
                                              stpFactors: [2, 2, 1])),
            AnyDecomposition(SemiTensorTrain(cores: [r([1, 3, 4]), r([2, 2, 2]), r([1, 3, 1])], stpFactor: 2)),
            AnyDecomposition(SemiTensorRing(cores: [r([1, 2, 4]), r([2, 1, 2]), r([1, 3, 2])], stpFactor: 2)),
        ]
        return list.map { $0! }
    }

    /// A fresh path in the temporary folder.
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lowrank-factorfile-\(UUID().uuidString)-\(name).safetensors").path
    }

    /// Rewrites a factor file with some metadata changed (nil removes the key) and some tensors replaced
    /// (nil removes the tensor); returns the new path.
    static func tampered(_ path: String, metadata changes: [String: String?] = [:],
                         tensors replacements: [String: Tensor<Double>?] = [:]) throws -> String {
        let file = try SafeTensorsFile(contentsOf: path)
        var metadata = file.metadata
        for (key, value) in changes { metadata[key] = value }
        var writer = SafeTensorsWriter(metadata: metadata)
        for entry in file.entries where replacements[entry.name] == nil {
            writer.add(name: entry.name, tensor: try file.tensor(entry.name, as: Double.self))
        }
        for (name, tensor) in replacements { if let tensor { writer.add(name: name, tensor: tensor) } }
        let out = temporaryPath("tampered")
        try writer.write(to: out)
        return out
    }

    /// The problem text of the `TensorError.file` thrown by loading `path`, nil when it loads.
    static func loadProblem(_ path: String) -> String? {
        do {
            _ = try FactorFile.load(path, as: Double.self)
            return nil
        } catch let TensorError.file(_, problem) {
            return problem
        } catch {
            return "unexpected error type: \(error)"
        }
    }

    /// A JSON list of integers from metadata text.
    static func intList(_ text: String?) -> [Int]? {
        guard let text, let data = text.data(using: .utf8),
              let list = try? JSONSerialization.jsonObject(with: data) as? [Int] else { return nil }
        return list
    }
}

/// A decomposition type defined outside the module: it has no factor-file layout.
private struct ForeignDecomposition: TensorDecomposition {
    static var formatName: String { "foreign" }
    var shape: [Int] { [2] }
    var ranks: [Int] { [1] }
    var parameterCount: Int { 2 }
    func reconstruct() -> Tensor<Double> { Tensor([1, 2]) }
}

@Suite("Factor files (safetensors save/load of every format)")
struct FactorFileTests {
    @Test("every format round-trips in Double: same format, shape, ranks, parameters, and a bit-for-bit equal reconstruction")
    func roundTripDouble() throws {
        let formats = try FactorFileFixtures.all(seed: 1, as: Double.self)
        #expect(Set(formats.map(\.format)) == Set(AnyDecomposition<Double>.formatNames))
        for original in formats {
            let path = FactorFileFixtures.temporaryPath(original.format)
            defer { try? FileManager.default.removeItem(atPath: path) }
            try FactorFile.save(original, to: path)
            let loaded = try FactorFile.load(path)  // Double by default
            #expect(loaded.format == original.format)
            #expect(loaded.shape == original.shape, "\(original.format)")
            #expect(loaded.ranks == original.ranks, "\(original.format)")
            #expect(loaded.parameterCount == original.parameterCount, "\(original.format)")
            #expect(loaded.reconstruct().scalars == original.reconstruct().scalars, "\(original.format) reconstruction differs")
            // The F64 entries hold exactly the parameters: their count is the parameter count.
            let file = try SafeTensorsFile(contentsOf: path)
            #expect(file.entries.allSatisfy { $0.dtype == .float64 })
            #expect(file.entries.reduce(0) { $0 + $1.scalarCount } == original.parameterCount, "\(original.format)")
        }
    }

    @Test("every format round-trips in Float (F32 entries), bit for bit")
    func roundTripFloat() throws {
        for original in try FactorFileFixtures.all(seed: 2, as: Float.self) {
            let path = FactorFileFixtures.temporaryPath(original.format)
            defer { try? FileManager.default.removeItem(atPath: path) }
            try FactorFile.save(original, to: path)
            #expect(try SafeTensorsFile(contentsOf: path).entries.allSatisfy { $0.dtype == .float32 })
            let loaded = try FactorFile.load(path, as: Float.self)
            #expect(loaded.format == original.format && loaded.ranks == original.ranks)
            #expect(loaded.reconstruct().scalars == original.reconstruct().scalars, "\(original.format) reconstruction differs")
        }
    }

    @Test("a Double decomposition saved as F32 loads as the Float rounding of its factors")
    func storedPrecision() throws {
        var g = SeededGenerator(seed: 3)
        let weights = Tensor<Double>.randomNormal([3], generator: &g)
        let factors = [[4, 3], [5, 3], [2, 3]].map { Tensor<Double>.randomNormal($0, generator: &g) }
        let path = FactorFileFixtures.temporaryPath("f32")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FactorFile.save(CPDecomposition(weights: weights, factors: factors), to: path, dtype: .float32)
        let rounded = CPDecomposition<Float>(weights: weights.converted(), factors: factors.map { $0.converted() })
        let loaded = try FactorFile.load(path, as: Float.self)
        #expect(loaded.reconstruct().scalars == rounded.reconstruct().scalars)
        // Read as Double, the values are the Float values exactly (widening is exact).
        guard case let .cp(wide) = try FactorFile.load(path, as: Double.self) else {
            Issue.record("expected a CP decomposition")
            return
        }
        #expect(wide.factors[1].scalars == rounded.factors[1].scalars.map { Double($0) })
    }

    @Test("metadata records format, shape, ranks, row-major layout, per-tensor layouts and the version; extra keys are kept")
    func metadataFields() throws {
        for original in try FactorFileFixtures.all(seed: 4, as: Double.self) {
            let path = FactorFileFixtures.temporaryPath(original.format)
            defer { try? FileManager.default.removeItem(atPath: path) }
            try FactorFile.save(original, to: path, metadata: ["algorithm": "test", "relative_error": "0.5"])
            let file = try SafeTensorsFile(contentsOf: path)
            let m = file.metadata
            #expect(m["format"] == original.format)
            #expect(FactorFileFixtures.intList(m["shape"]) == original.shape)
            #expect(FactorFileFixtures.intList(m["ranks"]) == original.ranks)
            #expect(m["layout"] == "row-major")
            #expect(m["lowrank_version"] == "\(FactorFile.version)")
            #expect(m["algorithm"] == "test" && m["relative_error"] == "0.5")
            let layouts = try #require(m["tensor_layouts"]?.data(using: .utf8))
            let object = try #require(try JSONSerialization.jsonObject(with: layouts) as? [String: String])
            #expect(Set(object.keys) == Set(file.entries.map(\.name)), "\(original.format)")
        }
    }

    @Test("TensorLy layouts: CP weights R and factor.k n_k×R; Tucker core and factor.k n_k×R_k; TT core.k R_{k−1}×n_k×R_k; TR core.k R_k×n_k×R_{k+1}; SVD = CP layout with σ as weights")
    func tensorLyLayouts() throws {
        var g = SeededGenerator(seed: 5)
        let x = Tensor<Double>.randomNormal([5, 4, 6], generator: &g)
        func entries(_ d: some TensorDecomposition) throws -> [String: [Int]] {
            let path = FactorFileFixtures.temporaryPath("layout")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try FactorFile.save(d, to: path)
            return Dictionary(uniqueKeysWithValues: try SafeTensorsFile(contentsOf: path).entries.map { ($0.name, $0.shape) })
        }
        let (cp, _) = try CPDecomposition.decompose(x, target: .ranks([3]), options: CPALSOptions(maxIterations: 5))
        #expect(try entries(cp) == ["weights": [3], "factor.0": [5, 3], "factor.1": [4, 3], "factor.2": [6, 3]])
        let tucker = try TuckerDecomposition.hosvd(x, target: .ranks([2, 3, 4]))
        #expect(try entries(tucker) == ["core": [2, 3, 4], "factor.0": [5, 2], "factor.1": [4, 3], "factor.2": [6, 4]])
        let tt = try TensorTrain.decompose(x, target: .ranks([1, 3, 2, 1]))
        #expect(try entries(tt) == ["core.0": [1, 5, 3], "core.1": [3, 4, 2], "core.2": [2, 6, 1]])
        let tr = try TensorRing.svd(x, target: .ranks([1, 3, 2]))
        #expect(try entries(tr) == ["core.0": [1, 5, 3], "core.1": [3, 4, 2], "core.2": [2, 6, 1]])
        let m = x.reshaped([20, 6])
        let svd = try MatrixLowRank.decompose(m, target: .ranks([4]))
        #expect(try entries(svd) == ["weights": [4], "factor.0": [20, 4], "factor.1": [6, 4]])
        // The weights are the leading singular values of the matrix.
        let sigma = try m.svd().s.scalars
        let path = FactorFileFixtures.temporaryPath("svd")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FactorFile.save(svd, to: path)
        let stored = try SafeTensorsFile(contentsOf: path).tensor("weights", as: Double.self).scalars
        for i in 0..<4 { #expect(Swift.abs(stored[i] - sigma[i]) <= 1e-12 * sigma[0]) }
    }

    @Test("the README's einsum formulas, run with TensorCore's einsum on the raw file tensors, rebuild every format")
    func documentedEinsums() throws {
        for original in try FactorFileFixtures.all(seed: 6, as: Double.self) {
            let path = FactorFileFixtures.temporaryPath(original.format)
            defer { try? FileManager.default.removeItem(atPath: path) }
            try FactorFile.save(original, to: path)
            let file = try SafeTensorsFile(contentsOf: path)
            func t(_ name: String) throws -> Tensor<Double> { try file.tensor(name, as: Double.self) }
            let shape = original.shape
            let rebuilt: Tensor<Double>
            switch original.format {
            case "svd":
                rebuilt = einsum("r,ir,jr->ij", [try t("weights"), try t("factor.0"), try t("factor.1")])
            case "cp":
                rebuilt = einsum("r,ir,jr,kr->ijk", [try t("weights"), try t("factor.0"), try t("factor.1"), try t("factor.2")])
            case "tucker" where file.metadata["modes"] == "[1, 2]":  // factors are named by their mode
                rebuilt = einsum("ibc,jb,kc->ijk", [try t("core"), try t("factor.1"), try t("factor.2")])
            case "tucker" where file.metadata["modes"] == "[0, 1, 2]":
                rebuilt = einsum("abc,ia,jb,kc->ijk", [try t("core"), try t("factor.0"), try t("factor.1"), try t("factor.2")])
            case "tucker":  // Tucker-2 on modes 0 and 1
                #expect(file.metadata["modes"] == "[0, 1]")
                rebuilt = einsum("abkl,ia,jb->ijkl", [try t("core"), try t("factor.0"), try t("factor.1")])
            case "tt":
                rebuilt = einsum("xia,ajb,bky->ijk", [try t("core.0"), try t("core.1"), try t("core.2")])
            case "ttm":
                rebuilt = einsum("xiob,bjpy->ijop", [try t("core.0"), try t("core.1")]).reshaped(shape)
            case "tr":
                rebuilt = einsum("aib,bjc,cka->ijk", [try t("core.0"), try t("core.1"), try t("core.2")])
            case "ht" where file.metadata["tree"] == "((0,1),(2,3))":
                rebuilt = einsum("ia,jb,kc,ld,abe,cdf,efz->ijkl", [try t("leaf.0"), try t("leaf.1"), try t("leaf.2"), try t("leaf.3"),
                                                                  try t("transfer.0"), try t("transfer.1"), try t("transfer.2")])
            case "ht":  // tree ((0,2),(1,3))
                #expect(file.metadata["tree"] == "((0,2),(1,3))")
                rebuilt = einsum("ia,kb,jc,ld,abe,cdf,efz->ijkl", [try t("leaf.0"), try t("leaf.2"), try t("leaf.1"), try t("leaf.3"),
                                                                  try t("transfer.0"), try t("transfer.1"), try t("transfer.2")])
            case "btd":
                rebuilt = einsum("zabc,zia,zjb,zkc->ijk", [try t("core"), try t("factor.0"), try t("factor.1"), try t("factor.2")])
            case "kpd":
                rebuilt = einsum("rac,rbd->abcd", [try t("left"), try t("right")]).reshaped(shape)
            case "gkpd":
                rebuilt = einsum("rabcd,refgh->aebfcgdh", [try t("left"), try t("right")]).reshaped(shape)
            case "sttu":
                let steps = try #require(FactorFileFixtures.intList(file.metadata["stp_factors"]))
                let u = try (0..<3).map { Tensor.kronecker(try t("factor.\($0)"), Tensor<Double>.identity(steps[$0])) }
                rebuilt = einsum("abc,ia,jb,kc->ijk", [try t("core"), u[0], u[1], u[2]])
            case "stt":
                let step = try #require(Int(file.metadata["stp_factor"] ?? ""))
                let (g0, g1) = (try t("core.0"), try t("core.1"))
                rebuilt = einsum("zias,ambu,bnz->imsnu", [g0.reshaped([1, g0.shape[1], g0.shape[2] / step, step]),
                                                          g1.reshaped([g1.shape[0], g1.shape[1], g1.shape[2] / step, step]),
                                                          try t("core.2")]).reshaped(shape)
            case "str":
                let step = try #require(Int(file.metadata["stp_factor"] ?? ""))
                let cores = try (0..<3).map { k -> Tensor<Double> in
                    let c = try t("core.\(k)")
                    return c.reshaped([c.shape[0], c.shape[1], c.shape[2] / step, step])
                }
                rebuilt = einsum("apbv,bqcw,cras->psqvrw", cores).reshaped(shape)
            default:
                Issue.record("no documented einsum for \(original.format)")
                continue
            }
            let reference = original.reconstruct()
            #expect(rebuilt.shape == reference.shape, "\(original.format)")
            #expect(Double(rebuilt.relativeError(to: reference)) <= 1e-13, "\(original.format): the documented einsum does not rebuild the tensor")
        }
    }

    @Test("AnyDecomposition forwards the wrapped format's members and refuses foreign types")
    func anyDecomposition() throws {
        var g = SeededGenerator(seed: 7)
        let train = TensorTrain(cores: [Tensor<Double>.randomNormal([1, 4, 2], generator: &g), Tensor<Double>.randomNormal([2, 5, 1], generator: &g)])
        let any = try #require(AnyDecomposition(train))
        #expect(any.format == "tt" && any.shape == [4, 5] && any.ranks == [1, 2, 1] && any.parameterCount == 18)
        #expect(any.compressionRatio == train.compressionRatio)
        let x = Tensor<Double>.randomNormal([4, 5], generator: &g)
        #expect(any.relativeError(to: x) == train.relativeError(to: x))
        #expect(AnyDecomposition(ForeignDecomposition()) == nil)
    }

    @Test("bad files fail with errors that name the problem")
    func badFiles() throws {
        var g = SeededGenerator(seed: 8)
        let cp = CPDecomposition(weights: Tensor<Double>.randomNormal([3], generator: &g),
                                 factors: [[4, 3], [5, 3], [2, 3]].map { Tensor<Double>.randomNormal($0, generator: &g) })
        let good = FactorFileFixtures.temporaryPath("good")
        try FactorFile.save(cp, to: good)
        var paths = [good]
        defer { for p in paths { try? FileManager.default.removeItem(atPath: p) } }
        func problem(metadata: [String: String?] = [:], tensors: [String: Tensor<Double>?] = [:]) throws -> String? {
            let path = try FactorFileFixtures.tampered(good, metadata: metadata, tensors: tensors)
            paths.append(path)
            return FactorFileFixtures.loadProblem(path)
        }
        #expect(FactorFileFixtures.loadProblem(good) == nil)

        let noFormat = try #require(try problem(metadata: ["format": nil]))
        #expect(noFormat.contains("no 'format'") && noFormat.contains("not a LowRank factor file"))
        let unknown = try #require(try problem(metadata: ["format": "parafac2"]))
        #expect(unknown.contains("unknown factor format 'parafac2'") && unknown.contains("cp") && unknown.contains("tucker"))
        let missing = try #require(try problem(tensors: ["factor.2": nil]))
        #expect(missing.contains("missing tensor 'factor.2'"))
        let extra = try #require(try problem(tensors: ["factor.3": Tensor<Double>.zeros([7, 3])]))
        #expect(extra.contains("unexpected tensor 'factor.3'"))
        let wrongShape = try #require(try problem(tensors: ["factor.1": Tensor<Double>.zeros([6, 3])]))
        #expect(wrongShape.contains("tensor 'factor.1' has shape [6, 3], expected [5, 3]"))
        let wrongRank = try #require(try problem(metadata: ["ranks": "[4]"]))
        #expect(wrongRank.contains("tensor 'weights' has shape [3], expected [4]"))
        let badShape = try #require(try problem(metadata: ["shape": "[4, five, 2]"]))
        #expect(badShape.contains("metadata 'shape'") && badShape.contains("JSON list"))
        let newer = try #require(try problem(metadata: ["lowrank_version": "\(FactorFile.version + 1)"]))
        #expect(newer.contains("newer") && newer.contains("upgrade"))
        let columnMajor = try #require(try problem(metadata: ["layout": "column-major"]))
        #expect(columnMajor.contains("row-major"))
        let notFinite = try #require(try problem(tensors: ["factor.1": Tensor<Double>(shape: [5, 3], scalars: [.nan] + [Double](repeating: 1, count: 14))]))
        #expect(notFinite.contains("tensor 'factor.1' holds NaN"))

        // A tree that does not match the modes of an HT file.
        let ht = try HierarchicalTucker.decompose(Tensor<Double>.randomNormal([3, 4, 2, 3], generator: &g), target: .ranks([2]))
        let htPath = FactorFileFixtures.temporaryPath("ht")
        paths.append(htPath)
        try FactorFile.save(ht, to: htPath)
        let badTree = try FactorFileFixtures.tampered(htPath, metadata: ["tree": "((0,1),2)"])
        paths.append(badTree)
        let treeProblem = try #require(FactorFileFixtures.loadProblem(badTree))
        #expect(treeProblem.contains("tree") && treeProblem.contains("missing"))

        // An STP factor that does not divide the modes.
        let str = SemiTensorRing(cores: [[1, 2, 4], [2, 1, 2], [1, 3, 2]].map { Tensor<Double>.randomNormal($0, generator: &g) }, stpFactor: 2)
        let strPath = FactorFileFixtures.temporaryPath("str")
        paths.append(strPath)
        try FactorFile.save(str, to: strPath)
        let badStep = try FactorFileFixtures.tampered(strPath, metadata: ["stp_factor": "3"])
        paths.append(badStep)
        #expect(FactorFileFixtures.loadProblem(badStep)?.contains("STP factor t = 3 must divide") == true)

        // Not a safetensors file at all.
        let text = FactorFileFixtures.temporaryPath("text")
        paths.append(text)
        try Data("hello, this is not a tensor file".utf8).write(to: URL(fileURLWithPath: text))
        #expect(FactorFileFixtures.loadProblem(text) != nil)
    }
}
