import Foundation
import TensorCore

// Factor files: every decomposition of this module saved to and loaded from safetensors, so numpy and PyTorch
// users can read the factors directly. Tensor names and layouts follow TensorLy where it has the format.

/// Any decomposition of this module, as one value: what `FactorFile.load` returns.
///
/// Each case wraps the format's own type; the members below forward to it, so a loaded file can be
/// reconstructed, counted and compared without knowing its format in advance.
public indirect enum AnyDecomposition<Scalar: TensorScalar>: Sendable {
    /// Truncated matrix SVD (`"svd"`).
    case svd(MatrixLowRank<Scalar>)
    /// CP [68] (`"cp"`).
    case cp(CPDecomposition<Scalar>)
    /// Tucker, full or partial [31, 42] (`"tucker"`).
    case tucker(TuckerDecomposition<Scalar>)
    /// Tensor train [33] (`"tt"`).
    case tt(TensorTrain<Scalar>)
    /// TT-matrix / MPO [45] (`"ttm"`).
    case ttm(TTMatrix<Scalar>)
    /// Tensor ring [34] (`"tr"`).
    case tr(TensorRing<Scalar>)
    /// Hierarchical Tucker [32] (`"ht"`).
    case ht(HierarchicalTucker<Scalar>)
    /// Block term decomposition [35] (`"btd"`).
    case btd(BlockTerm<Scalar>)
    /// Kronecker product decomposition of a matrix [50] (`"kpd"`).
    case kpd(KroneckerDecomposition<Scalar>)
    /// Generalized Kronecker product decomposition of a 4-way kernel [36] (`"gkpd"`).
    case gkpd(GeneralizedKroneckerDecomposition<Scalar>)
    /// Semi-tensor Tucker [37] (`"sttu"`).
    case sttu(SemiTensorTucker<Scalar>)
    /// Semi-tensor train [37] (`"stt"`).
    case stt(SemiTensorTrain<Scalar>)
    /// Semi-tensor ring [37] (`"str"`).
    case str(SemiTensorRing<Scalar>)

    /// The format names a factor file can hold, in the order of the cases.
    public static var formatNames: [String] {
        ["svd", "cp", "tucker", "tt", "ttm", "tr", "ht", "btd", "kpd", "gkpd", "sttu", "stt", "str"]
    }

    /// Wraps a decomposition of one of this module's formats; nil for a type this module does not define.
    public init?<D: TensorDecomposition>(_ decomposition: D) where D.Scalar == Scalar {
        switch decomposition as Any {
        case let x as MatrixLowRank<Scalar>: self = .svd(x)
        case let x as CPDecomposition<Scalar>: self = .cp(x)
        case let x as TuckerDecomposition<Scalar>: self = .tucker(x)
        case let x as TensorTrain<Scalar>: self = .tt(x)
        case let x as TTMatrix<Scalar>: self = .ttm(x)
        case let x as TensorRing<Scalar>: self = .tr(x)
        case let x as HierarchicalTucker<Scalar>: self = .ht(x)
        case let x as BlockTerm<Scalar>: self = .btd(x)
        case let x as KroneckerDecomposition<Scalar>: self = .kpd(x)
        case let x as GeneralizedKroneckerDecomposition<Scalar>: self = .gkpd(x)
        case let x as SemiTensorTucker<Scalar>: self = .sttu(x)
        case let x as SemiTensorTrain<Scalar>: self = .stt(x)
        case let x as SemiTensorRing<Scalar>: self = .str(x)
        default: return nil
        }
    }

    /// The wrapped decomposition.
    public var decomposition: any TensorDecomposition {
        switch self {
        case let .svd(x): return x
        case let .cp(x): return x
        case let .tucker(x): return x
        case let .tt(x): return x
        case let .ttm(x): return x
        case let .tr(x): return x
        case let .ht(x): return x
        case let .btd(x): return x
        case let .kpd(x): return x
        case let .gkpd(x): return x
        case let .sttu(x): return x
        case let .stt(x): return x
        case let .str(x): return x
        }
    }

    /// The format name written in the file's metadata (`"cp"`, `"tucker"`, …).
    public var format: String { type(of: decomposition).formatName }
    /// Shape of the full tensor ([I, O] for the matrix formats svd, ttm and kpd).
    public var shape: [Int] { decomposition.shape }
    /// The format's ranks (documented per format).
    public var ranks: [Int] { decomposition.ranks }
    /// Number of stored scalars in all factors.
    public var parameterCount: Int { decomposition.parameterCount }
    /// Parameters of the full tensor over parameters of the factors.
    public var compressionRatio: Double { Double(shape.reduce(1, *)) / Double(Swift.max(parameterCount, 1)) }

    /// Rebuilds the full tensor (the wrapped format's `reconstruct()`).
    public func reconstruct() -> Tensor<Scalar> {
        switch self {
        case let .svd(x): return x.reconstruct()
        case let .cp(x): return x.reconstruct()
        case let .tucker(x): return x.reconstruct()
        case let .tt(x): return x.reconstruct()
        case let .ttm(x): return x.reconstruct()
        case let .tr(x): return x.reconstruct()
        case let .ht(x): return x.reconstruct()
        case let .btd(x): return x.reconstruct()
        case let .kpd(x): return x.reconstruct()
        case let .gkpd(x): return x.reconstruct()
        case let .sttu(x): return x.reconstruct()
        case let .stt(x): return x.reconstruct()
        case let .str(x): return x.reconstruct()
        }
    }

    /// ‖𝒳 − reconstruct()‖_F / ‖𝒳‖_F.
    public func relativeError(to tensor: Tensor<Scalar>) -> Scalar { reconstruct().relativeError(to: tensor) }
}

/// Saves decompositions to safetensors factor files and loads them back.
///
/// A factor file is a plain safetensors file. Its `__metadata__` (string values) records:
/// - `format`: the format name (`svd`, `cp`, `tucker`, `tt`, `ttm`, `tr`, `ht`, `btd`, `kpd`, `gkpd`, `sttu`,
///   `stt`, `str`);
/// - `shape`: the full tensor's shape as a JSON list, e.g. `[100, 100, 100]`;
/// - `ranks`: the format's `ranks` as a JSON list;
/// - `layout`: `row-major` (every tensor is C-ordered, as numpy and PyTorch store them);
/// - `tensor_layouts`: a JSON object giving each tensor's axes, e.g. `{"factor.0": "n_0 x R", "weights": "R"}`;
/// - `lowrank_version`: the version of this layout (`FactorFile.version`);
/// - format-specific keys: `modes` (tucker), `input_modes` and `output_modes` (ttm), `tree` and
///   `transfer_nodes` (ht), `blocks` (btd), `left_shape` and `right_shape` (kpd, gkpd), `stp_factors` (sttu),
///   `stp_factor` (stt, str), `stp_unlinked` (str whose links k listed there are ordinary, e.g. STR-conv's kernel core);
/// - any extra keys the caller passes (the `lowrank` tool records the algorithm and the relative error).
///
/// Tensor names follow TensorLy where it has the format: CP `weights` (R) and `factor.k` (n_k×R); Tucker
/// `core` (R_1×…×R_d) and `factor.k` (n_k×R_k, k the mode); TT `core.k` (R_{k−1}×n_k×R_k); TR `core.k`
/// (R_k×n_k×R_{k+1}); the matrix SVD uses the CP layout with the singular values as `weights` and U, V as
/// `factor.0`, `factor.1`. The other formats are laid out as the README's "Factor files" table documents.
public enum FactorFile {
    /// The version of the factor-file layout written in `lowrank_version`; files with a larger version are refused.
    public static let version = 1

    /// Metadata keys written by `save`; callers cannot override them through `metadata`.
    public static let reservedKeys: Set<String> = [
        "format", "shape", "ranks", "layout", "tensor_layouts", "lowrank_version", "modes", "input_modes",
        "output_modes", "tree", "transfer_nodes", "blocks", "left_shape", "right_shape", "stp_factors", "stp_factor",
        "stp_unlinked",
    ]

    /// Saves a decomposition of any format of this module (see `AnyDecomposition`).
    ///
    /// - Parameters:
    ///   - decomposition: the factors to save.
    ///   - path: the file to write (atomically: on failure an existing file is unchanged).
    ///   - dtype: the stored element type, F64, F32, F16 or BF16 (default: F64 for Double, F32 for Float). A
    ///     narrower type rounds to nearest.
    ///   - metadata: extra string metadata; keys must not be in `reservedKeys`.
    /// - Precondition: `dtype` is a floating-point type and no extra key is reserved.
    /// - Throws: `TensorError.file` when the file cannot be written.
    public static func save<Scalar>(_ decomposition: AnyDecomposition<Scalar>, to path: String,
                                    dtype: SafeTensorsDType? = nil, metadata: [String: String] = [:]) throws {
        let clashes = metadata.keys.filter { reservedKeys.contains($0) }.sorted()
        precondition(clashes.isEmpty, "FactorFile.save: metadata keys \(clashes) are reserved for the factor-file layout; rename them")
        let dtype = dtype ?? (Scalar.self == Float.self ? .float32 : .float64)
        precondition(dtype.isFloatingPoint, "FactorFile.save: dtype \(dtype.rawValue) is not a floating-point type; use F64, F32, F16 or BF16")
        let content = FactorLayout.content(of: decomposition)
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.metadata["format"] = decomposition.format
        writer.metadata["shape"] = FactorLayout.json(decomposition.shape)
        writer.metadata["ranks"] = FactorLayout.json(decomposition.ranks)
        writer.metadata["layout"] = "row-major"
        writer.metadata["lowrank_version"] = "\(version)"
        writer.metadata["tensor_layouts"] = FactorLayout.jsonObject(content.tensors.map { ($0.name, $0.layout) })
        for (key, value) in content.metadata { writer.metadata[key] = value }
        for entry in content.tensors { writer.add(name: entry.name, tensor: entry.tensor, dtype: dtype) }
        try writer.write(to: path)
    }

    /// Saves a decomposition of one of this module's formats (wrapped in `AnyDecomposition`).
    ///
    /// - Precondition: `decomposition` is one of this module's formats; as `save(_:to:dtype:metadata:)`.
    /// - Throws: `TensorError.file` when the file cannot be written.
    public static func save<D: TensorDecomposition>(_ decomposition: D, to path: String, dtype: SafeTensorsDType? = nil,
                                                    metadata: [String: String] = [:]) throws {
        guard let any = AnyDecomposition(decomposition) else {
            preconditionFailure("FactorFile.save: \(D.self) is not a format of the Decompositions module; only its formats have a factor-file layout")
        }
        try save(any, to: path, dtype: dtype, metadata: metadata)
    }

    /// Loads a factor file, converting the stored values to `Scalar` (rounding to nearest when narrower).
    ///
    /// Everything is checked before any factor is used: the format is known, `shape` and `ranks` are valid JSON
    /// lists consistent with the format, every expected tensor is present and no other tensor is, and every
    /// tensor has the shape the metadata implies.
    /// - Throws: `TensorError.file` naming the problem and what to change: a malformed safetensors file, no
    ///   `format` in the metadata (not a factor file), an unknown format (the message lists the known ones), a
    ///   newer `lowrank_version`, a layout other than row-major, missing or malformed metadata, missing or
    ///   unexpected tensors (listed), a tensor whose shape does not match (its shape and the expected one), or one
    ///   holding NaN or ∞.
    public static func load<Scalar: TensorScalar>(_ path: String, as: Scalar.Type = Scalar.self) throws -> AnyDecomposition<Scalar> {
        let file = try SafeTensorsFile(contentsOf: path)
        var reader = FactorReader<Scalar>(file: file)
        return try reader.load()
    }

    /// Loads a factor file in Double precision (`load(path, as: Double.self)`).
    /// - Throws: as `load(_:as:)`.
    public static func load(_ path: String) throws -> AnyDecomposition<Double> { try load(path, as: Double.self) }
}

// MARK: - Writing: names, layouts and format-specific metadata

/// The tensors and metadata of each format (internal).
enum FactorLayout {
    struct Content<Scalar: TensorScalar> {
        var tensors: [(name: String, layout: String, tensor: Tensor<Scalar>)] = []
        var metadata: [String: String] = [:]
    }

    /// A JSON list of integers, e.g. `[4, 8, 8, 4]`.
    static func json(_ values: [Int]) -> String { "[" + values.map(String.init).joined(separator: ", ") + "]" }

    /// A JSON list of integer lists.
    static func json(_ lists: [[Int]]) -> String { "[" + lists.map(json).joined(separator: ", ") + "]" }

    /// A JSON object of string values in the given order.
    static func jsonObject(_ pairs: [(String, String)]) -> String {
        func quoted(_ s: String) -> String {
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default:
                    if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
                }
            }
            return out + "\""
        }
        return "{" + pairs.map { quoted($0.0) + ": " + quoted($0.1) }.joined(separator: ", ") + "}"
    }

    static func content<Scalar>(of decomposition: AnyDecomposition<Scalar>) -> Content<Scalar> {
        var c = Content<Scalar>()
        switch decomposition {
        case let .svd(x):
            c.tensors = [("weights", "R (singular values, non-increasing)", x.weights),
                         ("factor.0", "n_0 x R (U, orthonormal columns)", x.u),
                         ("factor.1", "n_1 x R (V, orthonormal columns)", x.v)]
        case let .cp(x):
            c.tensors = [("weights", "R", x.weights)]
                + x.factors.enumerated().map { ("factor.\($0.offset)", "n_\($0.offset) x R", $0.element) }
        case let .tucker(x):
            c.tensors = [("core", (0..<x.core.rank).map { "R_\($0)" }.joined(separator: " x "), x.core)]
                + zip(x.modes, x.factors).map { ("factor.\($0.0)", "n_\($0.0) x R_\($0.0)", $0.1) }
            c.metadata["modes"] = json(x.modes)
        case let .tt(x):
            c.tensors = x.cores.enumerated().map { ("core.\($0.offset)", "R_\($0.offset) x n_\($0.offset) x R_\($0.offset + 1)", $0.element) }
        case let .ttm(x):
            c.tensors = x.cores.enumerated().map {
                ("core.\($0.offset)", "R_\($0.offset) x I_\($0.offset) x O_\($0.offset) x R_\($0.offset + 1)", $0.element)
            }
            c.metadata["input_modes"] = json(x.inputModes)
            c.metadata["output_modes"] = json(x.outputModes)
        case let .tr(x):
            let d = x.cores.count
            c.tensors = x.cores.enumerated().map { ("core.\($0.offset)", "R_\($0.offset) x n_\($0.offset) x R_\(($0.offset + 1) % d)", $0.element) }
        case let .ht(x):
            let nodes = HTLayout.flatten(x.tree)
            var leafRank = [Int: Int]()  // mode → index in the post-order list of non-root nodes
            for (i, node) in nodes.enumerated() { if let k = node.leaf { leafRank[k] = i } }
            c.tensors = x.leafBases.enumerated().map { ("leaf.\($0.offset)", "n_\($0.offset) x R_t (t = leaf of mode \($0.offset))", $0.element) }
            let interior = nodes.indices.filter { nodes[$0].leaf == nil }
            for (i, node) in interior.enumerated() {
                let isRoot = node == nodes.count - 1
                c.tensors.append(("transfer.\(i)", "R_left x R_right x \(isRoot ? "1 (root)" : "R_t") for modes \(json(nodes[node].modes))",
                                  x.transferTensors[i]))
            }
            c.metadata["tree"] = x.tree.description
            c.metadata["transfer_nodes"] = json(interior.map { nodes[$0].modes })
        case let .btd(x):
            let d = x.shape.count
            c.tensors = [("core", "N_b x " + (0..<d).map { "R_\($0)" }.joined(separator: " x "), Tensor.stack(x.cores, axis: 0))]
                + (0..<d).map { k in ("factor.\(k)", "N_b x n_\(k) x R_\(k)", Tensor.stack(x.factors.map { $0[k] }, axis: 0)) }
            c.metadata["blocks"] = "\(x.blockCount)"
        case let .kpd(x):
            c.tensors = [("left", "R x I_1 x O_1", x.left), ("right", "R x I_2 x O_2", x.right)]
            c.metadata["left_shape"] = json(Array(x.left.shape.dropFirst()))
            c.metadata["right_shape"] = json(Array(x.right.shape.dropFirst()))
        case let .gkpd(x):
            c.tensors = [("left", "R x F_1 x C_1 x Kh_1 x Kw_1", x.left), ("right", "R x F_2 x C_2 x Kh_2 x Kw_2", x.right)]
            c.metadata["left_shape"] = json(Array(x.left.shape.dropFirst()))
            c.metadata["right_shape"] = json(Array(x.right.shape.dropFirst()))
        case let .sttu(x):
            let d = x.shape.count
            c.tensors = [("core", (0..<d).map { "R_\($0)" }.joined(separator: " x "), x.core)]
                + x.factors.enumerated().map { ("factor.\($0.offset)", "n_\($0.offset)/t_\($0.offset) x R_\($0.offset)/t_\($0.offset)", $0.element) }
            c.metadata["stp_factors"] = json(x.stpFactors)
        case let .stt(x):
            c.tensors = x.cores.enumerated().map { k, core in
                ("core.\(k)", k == 0 ? "1 x n_0 x R_1" : "R_\(k)/t x n_\(k)/t x R_\(k + 1)", core)
            }
            c.metadata["stp_factor"] = "\(x.stpFactor)"
        case let .str(x):
            let d = x.cores.count
            c.tensors = x.cores.enumerated().map { k, core in
                ("core.\(k)", x.linked[k] ? "R_\(k)/t x n_\(k)/t x R_\((k + 1) % d)" : "R_\(k) x n_\(k) x R_\((k + 1) % d)", core)
            }
            c.metadata["stp_factor"] = "\(x.stpFactor)"
            let unlinked = (0..<d).filter { !x.linked[$0] }
            if !unlinked.isEmpty { c.metadata["stp_unlinked"] = json(unlinked) }
        }
        return c
    }
}

/// Post-order nodes of a dimension tree (children before parents, root last), as `HierarchicalTucker` numbers
/// its ranks and transfer tensors.
enum HTLayout {
    struct Node {
        var modes: [Int]
        var leaf: Int?
        var left = -1
        var right = -1
    }

    static func flatten(_ tree: DimensionTree) -> [Node] {
        var nodes: [Node] = []
        @discardableResult
        func visit(_ t: DimensionTree) -> Int {
            switch t {
            case let .leaf(mode):
                nodes.append(Node(modes: [mode], leaf: mode))
            case let .node(l, r):
                let li = visit(l), ri = visit(r)
                nodes.append(Node(modes: nodes[li].modes + nodes[ri].modes, leaf: nil, left: li, right: ri))
            }
            return nodes.count - 1
        }
        visit(tree)
        return nodes
    }
}

// MARK: - Reading and validation

/// Reads one factor file, validating the metadata and every tensor shape before building the decomposition.
struct FactorReader<Scalar: TensorScalar> {
    let file: SafeTensorsFile
    var path: String { file.path }
    var format = ""
    var shape: [Int] = []

    init(file: SafeTensorsFile) { self.file = file }

    func failure(_ problem: String) -> TensorError {
        .file(path: path, problem: format.isEmpty ? problem : "\(format) factor file: \(problem)")
    }

    /// The metadata value of `key`, required.
    func string(_ key: String, hint: String) throws -> String {
        guard let value = file.metadata[key] else {
            throw failure("the metadata has no '\(key)' (\(hint)); re-save the decomposition with FactorFile.save or `lowrank decompose`")
        }
        return value
    }

    /// A JSON list of integers from the metadata, each ≥ `minimum`.
    func intList(_ key: String, hint: String, minimum: Int = 1) throws -> [Int] {
        let text = try string(key, hint: hint)
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]") else {
            throw failure("metadata '\(key)' is \"\(text)\", not a JSON list of integers like [4, 8, 8]")
        }
        let body = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        if body.isEmpty { return [] }
        var values: [Int] = []
        for item in body.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Int(item.trimmingCharacters(in: .whitespaces)) else {
                throw failure("metadata '\(key)' is \"\(text)\", not a JSON list of integers like [4, 8, 8]")
            }
            guard value >= minimum else {
                throw failure("metadata '\(key)' is \(text), but every entry must be ≥ \(minimum)")
            }
            values.append(value)
        }
        return values
    }

    /// A single integer from the metadata, ≥ 1.
    func positiveInt(_ key: String, hint: String) throws -> Int {
        let text = try string(key, hint: hint)
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 1 else {
            throw failure("metadata '\(key)' is \"\(text)\", expected an integer ≥ 1 (\(hint))")
        }
        return value
    }

    /// Throws unless the file holds exactly the tensors `names`.
    func requireTensors(_ names: [String]) throws {
        let present = Set(file.entries.map(\.name))
        let missing = names.filter { !present.contains($0) }
        guard missing.isEmpty else {
            let held = file.entries.map { "'\($0.name)'" }.joined(separator: ", ")
            throw failure("missing tensor\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) "
                          + "(shape \(shape) needs \(names.map { "'\($0)'" }.joined(separator: ", ")); the file holds \(held.isEmpty ? "no tensors" : held)); "
                          + "the file is incomplete or its metadata does not match its tensors")
        }
        let expected = Set(names)
        let extra = file.entries.map(\.name).filter { !expected.contains($0) }
        guard extra.isEmpty else {
            throw failure("unexpected tensor\(extra.count == 1 ? "" : "s") \(extra.map { "'\($0)'" }.joined(separator: ", ")) for shape \(shape) "
                          + "(expected exactly \(names.map { "'\($0)'" }.joined(separator: ", "))); the metadata 'shape' or 'ranks' does not match the tensors")
        }
    }

    /// The tensor `name`, after checking its shape is `expected` (`what` explains the expected shape).
    func tensor(_ name: String, _ expected: [Int], _ what: String) throws -> Tensor<Scalar> {
        let entry = try file.entry(name)
        guard entry.shape == expected else {
            throw failure("tensor '\(name)' has shape \(entry.shape), expected \(expected) (\(what)); "
                          + "the tensor does not match the metadata shape \(shape) and ranks \(file.metadata["ranks"] ?? "?")")
        }
        let value = try file.tensor(name, as: Scalar.self)
        guard value.isFinite else { throw failure("tensor '\(name)' holds NaN or infinite values; the factors are unusable") }
        return value
    }

    /// Throws unless `ranks` has `count` entries.
    func requireCount(_ ranks: [Int], _ count: Int, _ what: String) throws {
        guard ranks.count == count else {
            throw failure("metadata 'ranks' is \(FactorLayout.json(ranks)): expected \(count) values (\(what)) for shape \(shape)")
        }
    }

    func ranks() throws -> [Int] { try intList("ranks", hint: "the format's ranks as a JSON list") }

    mutating func load() throws -> AnyDecomposition<Scalar> {
        guard let name = file.metadata["format"] else {
            throw failure("the metadata has no 'format', so this is not a LowRank factor file; write factor files with "
                          + "FactorFile.save or `lowrank decompose`, or add \"format\" (one of \(AnyDecomposition<Scalar>.formatNames.joined(separator: ", "))) to __metadata__")
        }
        guard AnyDecomposition<Scalar>.formatNames.contains(name) else {
            throw failure("unknown factor format '\(name)'; known formats are \(AnyDecomposition<Scalar>.formatNames.joined(separator: ", "))")
        }
        format = name
        if let v = file.metadata["lowrank_version"] {
            guard let number = Int(v), number >= 1 else {
                throw failure("metadata 'lowrank_version' is \"\(v)\", expected a positive integer")
            }
            guard number <= FactorFile.version else {
                throw failure("written with factor-file version \(number), newer than this LowRank reads (\(FactorFile.version)); upgrade LowRank")
            }
        }
        if let layout = file.metadata["layout"], layout != "row-major" {
            throw failure("metadata 'layout' is \"\(layout)\"; LowRank factor files are row-major (C order): convert the tensors and set layout to row-major")
        }
        shape = try intList("shape", hint: "the full tensor's shape as a JSON list")
        guard !shape.isEmpty else { throw failure("metadata 'shape' is empty; a factor file describes a tensor of order ≥ 1") }
        let result = try build()
        // Every format's own shape and ranks must agree with the metadata.
        guard result.shape == shape else {
            throw failure("the tensors describe a tensor of shape \(result.shape), but the metadata 'shape' is \(shape)")
        }
        let declared = try ranks()
        guard result.ranks == declared else {
            throw failure("the tensors have ranks \(result.ranks), but the metadata 'ranks' is \(declared)")
        }
        return result
    }

    // The per-format readers. Each derives the expected tensor shapes from the metadata, so every precondition of
    // the format's initializer holds before it is called.

    func build() throws -> AnyDecomposition<Scalar> {
        let d = shape.count
        switch format {
        case "svd":
            guard d == 2 else { throw failure("metadata 'shape' is \(shape); a matrix SVD has shape [I, O]") }
            let r = try ranks()
            try requireCount(r, 1, "the rank R")
            try requireTensors(["factor.0", "factor.1", "weights"])
            let w = try tensor("weights", [r[0]], "R singular values")
            let u = try tensor("factor.0", [shape[0], r[0]], "U: I x R")
            let v = try tensor("factor.1", [shape[1], r[0]], "V: O x R")
            return .svd(MatrixLowRank(weights: w, u: u, v: v))
        case "cp":
            let r = try ranks()
            try requireCount(r, 1, "the CP rank R")
            try requireTensors(["weights"] + (0..<d).map { "factor.\($0)" })
            let w = try tensor("weights", [r[0]], "R weights")
            let factors = try (0..<d).map { try tensor("factor.\($0)", [shape[$0], r[0]], "n_\($0) x R") }
            return .cp(CPDecomposition(weights: w, factors: factors))
        case "tucker":
            let r = try ranks()
            try requireCount(r, d, "R_1..R_d, the core's shape")
            let modes = file.metadata["modes"] == nil ? Array(0..<d) : try intList("modes", hint: "the factored modes", minimum: 0)
            guard Set(modes).count == modes.count, modes.allSatisfy({ $0 < d }) else {
                throw failure("metadata 'modes' is \(FactorLayout.json(modes)); list distinct modes in 0..<\(d)")
            }
            for m in 0..<d where !modes.contains(m) && r[m] != shape[m] {
                throw failure("mode \(m) is not factored (modes \(modes)), so its rank must equal its size \(shape[m]), got ranks \(r)")
            }
            try requireTensors(["core"] + modes.map { "factor.\($0)" })
            let core = try tensor("core", r, "R_1 x … x R_d")
            let factors = try modes.map { try tensor("factor.\($0)", [shape[$0], r[$0]], "n_\($0) x R_\($0)") }
            return .tucker(TuckerDecomposition(core: core, factors: factors, modes: modes))
        case "tt", "ttm":
            let r = try ranks()
            if format == "tt" { try requireCount(r, d + 1, "R_0..R_d with R_0 = R_d = 1") }
            let order = r.count - 1
            guard order >= 1, r.first == 1, r.last == 1 else {
                throw failure("metadata 'ranks' is \(FactorLayout.json(r)); a train needs at least 2 ranks and boundary ranks R_0 = R_d = 1")
            }
            let names = (0..<order).map { "core.\($0)" }
            if format == "tt" {
                try requireTensors(names)
                let cores = try (0..<order).map { try tensor("core.\($0)", [r[$0], shape[$0], r[$0 + 1]], "R_\($0) x n_\($0) x R_\($0 + 1)") }
                return .tt(TensorTrain(cores: cores))
            }
            let ins = try intList("input_modes", hint: "I_1..I_d"), outs = try intList("output_modes", hint: "O_1..O_d")
            guard ins.count == order, outs.count == order else {
                throw failure("metadata 'input_modes' \(ins) and 'output_modes' \(outs) need \(order) entries each (one per core, from ranks \(r))")
            }
            guard ins.reduce(1, *) == shape[0], outs.reduce(1, *) == shape[1] else {
                throw failure("input modes \(ins) multiply to \(ins.reduce(1, *)) and output modes \(outs) to \(outs.reduce(1, *)), but the metadata shape is \(shape)")
            }
            try requireTensors(names)
            let cores = try (0..<order).map { try tensor("core.\($0)", [r[$0], ins[$0], outs[$0], r[$0 + 1]], "R_\($0) x I_\($0) x O_\($0) x R_\($0 + 1)") }
            return .ttm(TTMatrix(cores: cores))
        case "tr":
            let r = try ranks()
            try requireCount(r, d, "R_0..R_{d-1}; the ring closes with R_d = R_0")
            try requireTensors((0..<d).map { "core.\($0)" })
            let cores = try (0..<d).map { try tensor("core.\($0)", [r[$0], shape[$0], r[($0 + 1) % d]], "R_\($0) x n_\($0) x R_\(($0 + 1) % d)") }
            return .tr(TensorRing(cores: cores))
        case "ht":
            let text = try string("tree", hint: "the dimension tree, e.g. ((0,1),(2,3))")
            let tree: DimensionTree
            do {
                tree = try DimensionTree(parsing: text)
                try tree.validate(order: d)
            } catch let error as DecompositionError {
                throw failure("metadata 'tree': \(error)")
            }
            let nodes = HTLayout.flatten(tree)
            let r = try ranks()
            try requireCount(r, nodes.count - 1, "one rank per non-root node of the tree \(tree), children before parents")
            let interior = nodes.indices.filter { nodes[$0].leaf == nil }
            try requireTensors((0..<d).map { "leaf.\($0)" } + interior.indices.map { "transfer.\($0)" })
            var leaves = [Tensor<Scalar>](repeating: .zeros([0]), count: d)
            for (i, node) in nodes.enumerated() {
                if let k = node.leaf { leaves[k] = try tensor("leaf.\(k)", [shape[k], r[i]], "n_\(k) x R of its leaf node") }
            }
            let transfers = try interior.enumerated().map { j, i -> Tensor<Scalar> in
                let n = nodes[i]
                let top = i == nodes.count - 1 ? 1 : r[i]
                return try tensor("transfer.\(j)", [r[n.left], r[n.right], top],
                                  "R_left x R_right x \(i == nodes.count - 1 ? "1 at the root" : "R_t") for modes \(n.modes)")
            }
            return .ht(HierarchicalTucker(shape: shape, tree: tree, leafBases: leaves, transferTensors: transfers))
        case "btd":
            guard d >= 2 else { throw failure("metadata 'shape' is \(shape); a block term decomposition needs order ≥ 2") }
            let r = try ranks()
            try requireCount(r, d + 1, "N_b, R_1..R_d")
            let nb = r[0], block = Array(r.dropFirst())
            try requireTensors(["core"] + (0..<d).map { "factor.\($0)" })
            let core = try tensor("core", [nb] + block, "N_b x R_1 x … x R_d")
            let stacked = try (0..<d).map { try tensor("factor.\($0)", [nb, shape[$0], block[$0]], "N_b x n_\($0) x R_\($0)") }
            let cores = (0..<nb).map { core.slice(axis: 0, start: $0, count: 1).reshaped(block) }
            let factors = (0..<nb).map { b in (0..<d).map { stacked[$0].slice(axis: 0, start: b, count: 1).reshaped([shape[$0], block[$0]]) } }
            return .btd(BlockTerm(shape: shape, cores: cores, factors: factors))
        case "kpd", "gkpd":
            let order = format == "kpd" ? 2 : 4
            guard d == order else {
                throw failure("metadata 'shape' is \(shape); \(format == "kpd" ? "KPD factors a matrix [I, O]" : "GKPD factors a 4-way kernel [F, C, Kh, Kw]")")
            }
            let r = try ranks()
            try requireCount(r, 1, "the number of Kronecker terms R")
            let left = try intList("left_shape", hint: "the shape of each left factor")
            guard left.count == order, zip(shape, left).allSatisfy({ $0 % $1 == 0 }) else {
                throw failure("metadata 'left_shape' is \(left); it needs \(order) sizes, each dividing the matching size of \(shape)")
            }
            let right = zip(shape, left).map { $0 / $1 }
            try requireTensors(["left", "right"])
            let a = try tensor("left", [r[0]] + left, "R x left_shape")
            let b = try tensor("right", [r[0]] + right, "R x (shape / left_shape)")
            return format == "kpd" ? .kpd(KroneckerDecomposition(left: a, right: b))
                                   : .gkpd(GeneralizedKroneckerDecomposition(left: a, right: b))
        case "sttu":
            let r = try ranks()
            try requireCount(r, d, "R_1..R_d, the core's shape")
            let t = try intList("stp_factors", hint: "the STP factors t_k")
            guard t.count == d, (0..<d).allSatisfy({ shape[$0] % t[$0] == 0 && r[$0] % t[$0] == 0 }) else {
                throw failure("metadata 'stp_factors' is \(t); it needs \(d) values t_k, each dividing n_k (shape \(shape)) and R_k (ranks \(r))")
            }
            try requireTensors(["core"] + (0..<d).map { "factor.\($0)" })
            let core = try tensor("core", r, "R_1 x … x R_d")
            let factors = try (0..<d).map { try tensor("factor.\($0)", [shape[$0] / t[$0], r[$0] / t[$0]], "n_\($0)/t_\($0) x R_\($0)/t_\($0)") }
            return .sttu(SemiTensorTucker(shape: shape, core: core, factors: factors, stpFactors: t))
        case "stt", "str":
            guard d >= 2 else { throw failure("metadata 'shape' is \(shape); \(format.uppercased()) needs order ≥ 2") }
            let t = try positiveInt("stp_factor", hint: "the STP factor t")
            let r = try ranks()
            let ring = format == "str"
            // Effective ranks R_0..R_d around the chain (R_d = R_0 for a ring, 1 for a train).
            let chain: [Int]
            if ring {
                try requireCount(r, d, "R_0..R_{d-1}")
                chain = r + [r[0]]
            } else {
                try requireCount(r, d + 1, "1, R_1..R_{d-1}, 1")
                guard r.first == 1, r.last == 1 else {
                    throw failure("metadata 'ranks' is \(FactorLayout.json(r)); a semi-tensor train has boundary ranks 1")
                }
                chain = r
            }
            let unlinked = ring && file.metadata["stp_unlinked"] != nil ? try intList("stp_unlinked", hint: "the ordinary links of the ring", minimum: 0) : []
            guard unlinked.allSatisfy({ $0 < d }), Set(unlinked).count == unlinked.count else {
                throw failure("metadata 'stp_unlinked' is \(FactorLayout.json(unlinked)); it lists distinct cores 0..<\(d)")
            }
            let linked = (ring ? Array(0..<d) : Array(1..<d)).filter { !unlinked.contains($0) }
            for k in linked where shape[k] % t != 0 || chain[k] % t != 0 {
                throw failure("STP factor t = \(t) must divide n_\(k) = \(shape[k]) and R_\(k) = \(chain[k])")
            }
            try requireTensors((0..<d).map { "core.\($0)" })
            let cores = try (0..<d).map { k -> Tensor<Scalar> in
                let isLinked = linked.contains(k)
                return try tensor("core.\(k)", [isLinked ? chain[k] / t : chain[k], isLinked ? shape[k] / t : shape[k], chain[k + 1]],
                                  isLinked ? "R_\(k)/t x n_\(k)/t x R_\(k + 1)" : "R_\(k) x n_\(k) x R_\(k + 1)")
            }
            return ring ? .str(SemiTensorRing(cores: cores, stpFactor: t, linked: (0..<d).map(linked.contains)))
                : .stt(SemiTensorTrain(cores: cores, stpFactor: t))
        default:
            throw failure("unknown factor format '\(format)'; known formats are \(AnyDecomposition<Scalar>.formatNames.joined(separator: ", "))")
        }
    }
}
