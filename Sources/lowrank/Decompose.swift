import ArgumentParser
import Decompositions
import Foundation
import TensorCore

/// The formats `lowrank decompose` can produce (the factor-file format names).
enum DecomposeFormat: String, CaseIterable, ExpressibleByArgument {
    case svd, cp, tucker, tt, ttm, tr, ht, btd, kpd, gkpd, sttu, stt, str
}

/// `lowrank decompose INPUT --format F (--ranks … | --eps E | --ratio R) --out FACTORS.safetensors`.
struct Decompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decompose a tensor from a .npy or safetensors file and save the factors as a safetensors factor file.",
        discussion: """
        The tensor is read in Double precision and decomposed in Double; the factors are stored as F32 unless the \
        input was F64 (change with --dtype). Give exactly one target: --ranks (one value for every rank, or a \
        comma-separated list in the format's rank order), --eps (relative Frobenius error ε; guaranteed by svd, \
        tucker, tt, ttm, tr (TR-SVD), ht, kpd, gkpd and sttu) or --ratio (compression ratio: full size over factor \
        parameters). The README's "Factor files" section documents every file layout.

        Examples:
          lowrank decompose weights.npy --format tt --eps 0.05 --out w.tt.safetensors
          lowrank decompose model.safetensors --tensor fc1.weight --shape 4,8,8,4,4,8,8,4 --format tt --ranks 8 --out fc1.safetensors
          lowrank decompose conv.npy --format tucker --modes 0,1 --ranks 16,8 --out conv.tucker.safetensors --json
          lowrank decompose w.npy --format kpd --left-shape 32,16 --ranks 4 --out w.kpd.safetensors
          lowrank decompose x.npy --format tr --ranks 2,4,6,6,6,6 --seed 1 --out x.tr.safetensors
        """
    )

    @Argument(help: "The .npy or .safetensors file that holds the tensor.")
    var input: String

    @Option(help: "The tensor to read from a safetensors file (optional when the file holds one tensor).")
    var tensor: String?

    @Option(help: "The decomposition: \(DecomposeFormat.allCases.map(\.rawValue).joined(separator: "|")).")
    var format: DecomposeFormat

    @Option(help: "Ranks: one value for every rank, or a comma-separated list in the format's rank order (e.g. 2,4,6,6,6,6).")
    var ranks: String?

    @Option(parsing: .unconditional, help: "Relative error tolerance ε: ‖X − X̂‖_F ≤ ε‖X‖_F, for formats that guarantee it.")
    var eps: Double?

    @Option(parsing: .unconditional, help: "Target compression ratio (full tensor size over factor parameters, ≥ 1).")
    var ratio: Double?

    @Option(help: "Reshape the tensor first, e.g. 4,8,8,4 (the sizes must multiply to its element count).")
    var shape: String?

    @Option(parsing: .unconditional, help: "Seed of every random draw (random starts of the ALS algorithms).")
    var seed: UInt64 = 0

    @Option(help: "The factor file to write (.safetensors).")
    var out: String

    @Option(help: "Stored element type of the factors: f32 or f64 (default: f64 for F64 input, f32 otherwise).")
    var dtype: String?

    @Option(help: "tucker: the modes to factor (partial Tucker), e.g. 0,1 for Tucker-2 of a conv kernel.")
    var modes: String?

    @Option(help: "tucker: hooi (default) or hosvd. tr: als (default with --ranks/--ratio), svd (default with --eps) or adaptive (with --eps).")
    var algorithm: String?

    @Option(parsing: .unconditional, help: "tt, ttm, ht: cap every rank; tr adaptive: the largest rank (default 16).")
    var maxRank: Int?

    @Option(parsing: .unconditional, help: "cp, tr, btd, stt, str: the sweep cap of the ALS (defaults: cp 500, tr 500, btd 500, stt/str 200).")
    var maxIterations: Int?

    @Option(help: "ht: the dimension tree, e.g. \"((0,1),(2,3))\" (default: balanced).")
    var tree: String?

    @Option(parsing: .unconditional, help: "btd: the number of blocks N_b.")
    var blocks: Int = 2

    @Option(help: "kpd: I1,O1 (the shape of each A_r); gkpd: F1,C1,Kh1,Kw1. Default: the divisors nearest the square roots (gkpd: spatial sizes 1).")
    var leftShape: String?

    @Option(help: "sttu: t, or one t_k per mode; stt, str: t. Default: 2 where it divides the modes, else 1.")
    var stpFactor: String?

    @Option(help: "ttm: the input mode sizes I_1,…,I_d (I = rows of the matrix).")
    var inputModes: String?

    @Option(help: "ttm: the output mode sizes O_1,…,O_d (O = columns).")
    var outputModes: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard out.lowercased().hasSuffix(".safetensors") else {
            throw ValidationError("--out '\(out)': factor files are safetensors files; give a path ending in .safetensors")
        }
        if eps != nil, [.cp, .btd, .stt, .str].contains(format) {
            throw ValidationError("--format \(format.rawValue) is fitted by ALS at fixed ranks and cannot guarantee an error tolerance; "
                                  + "give --ranks or --ratio, or use svd, tucker, tt, ttm, tr, ht, kpd, gkpd or sttu with --eps")
        }
        if eps != nil, format == .tr, algorithm == "als" {
            throw ValidationError("--algorithm als fits fixed ranks; with --eps use --algorithm svd or adaptive, or give --ranks or --ratio")
        }
        if let maxRank, maxRank < 1 { throw ValidationError("--max-rank must be ≥ 1, got \(maxRank)") }
        if let maxIterations, maxIterations < 1 { throw ValidationError("--max-iterations must be ≥ 1, got \(maxIterations)") }
    }

    func run() throws {
        try runReportingErrors {
            try AtomicFile.checkDestination(out)
            let loaded = try TensorInput.read(input, tensor: tensor)
            var x = loaded.tensor
            if let shape {
                let sizes = try parseIntegers(shape, option: "--shape")
                let count = sizes.reduce(1, *)
                guard sizes.allSatisfy({ $0 >= 1 }), count == x.scalarCount else {
                    throw TensorError.invalidArgument("--shape \(shape) holds \(count) elements, but \(loaded.label) has shape \(x.shape) = \(x.scalarCount) elements; give sizes ≥ 1 whose product is \(x.scalarCount)")
                }
                x = x.reshaped(sizes)
            }
            let target = try rankTarget()
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try DecompositionRunner(options: self).run(x, target: target)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let error = Double(result.decomposition.relativeError(to: x))

            let storedType: SafeTensorsDType
            switch dtype?.lowercased() {
            case nil: storedType = loaded.isDouble ? .float64 : .float32
            case "f32", "float32": storedType = .float32
            case "f64", "float64": storedType = .float64
            case let other?: throw TensorError.invalidArgument("--dtype \(other) is not supported; use f32 or f64")
            }
            var metadata = ["algorithm": result.algorithm, "relative_error": "\(error)", "source": loaded.label]
            if x.shape != loaded.tensor.shape { metadata["source_shape"] = "[" + loaded.tensor.shape.map(String.init).joined(separator: ", ") + "]" }
            if let report = result.report {
                metadata["iterations"] = "\(report.iterations)"
                metadata["converged"] = "\(report.converged)"
            }
            try FactorFile.save(result.decomposition, to: out, dtype: storedType, metadata: metadata)

            let d = result.decomposition
            let full = d.shape.reduce(1, *)
            if output.json {
                var object: [String: Any] = [
                    "input": input, "tensor": loaded.name ?? NSNull(), "shape": d.shape, "format": d.format,
                    "algorithm": result.algorithm, "ranks": d.ranks, "parameters": d.parameterCount,
                    "full_parameters": full, "compression_ratio": d.compressionRatio, "relative_error": error,
                    "seconds": seconds, "out": out, "dtype": storedType.rawValue,
                    "iterations": result.report.map { $0.iterations as Any } ?? NSNull(),
                    "converged": result.report.map { $0.converged as Any } ?? NSNull(),
                    "warnings": result.report?.warnings ?? [],
                ]
                if let notes = result.notes { object["notes"] = notes }
                try printJSON(object)
                return
            }
            print("\(loaded.label): shape \(d.shape) → \(d.format) by \(result.algorithm)")
            print("  ranks              \(d.ranks)")
            print("  parameters         \(d.parameterCount) of \(full) (compression ratio \(String(format: "%.2f", d.compressionRatio))×)")
            print("  relative error     \(String(format: "%.4e", error))")
            if let report = result.report {
                print("  iterations         \(report.iterations) (\(report.converged ? "converged" : "NOT converged: hit the sweep cap"))")
                for warning in report.warnings { print("  warning: \(warning)") }
            } else {
                print("  iterations         — (direct algorithm, no iteration)")
            }
            if let notes = result.notes { print("  note: \(notes)") }
            print("  seconds            \(String(format: "%.3f", seconds))")
            print("  factors            \(out) (\(storedType.rawValue))")
        }
    }

    /// The one target among --ranks, --eps and --ratio.
    func rankTarget() throws -> RankTarget<Double> {
        let given = [ranks != nil, eps != nil, ratio != nil].filter { $0 }.count
        guard given == 1 else {
            throw TensorError.invalidArgument(given == 0
                ? "give a target: --ranks (e.g. --ranks 8 or --ranks 2,4,6), --eps (e.g. --eps 0.01) or --ratio (e.g. --ratio 10)"
                : "give only one of --ranks, --eps and --ratio")
        }
        if let ranks { return .ranks(try parseIntegers(ranks, option: "--ranks")) }
        if let eps { return .relativeError(eps) }
        return .compressionRatio(ratio!)
    }
}

/// Parses "4,8,8,4" (spaces allowed); throws naming the option otherwise.
func parseIntegers(_ text: String, option: String) throws -> [Int] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    let values = items.compactMap { Int($0) }
    guard !items.isEmpty, values.count == items.count else {
        throw TensorError.invalidArgument("\(option) \(text) is not a comma-separated list of integers (e.g. \(option) 4,8,8,4)")
    }
    return values
}

/// A tensor read from a .npy or safetensors file, in Double.
struct TensorInput {
    var tensor: Tensor<Double>
    /// The tensor's name inside a safetensors file.
    var name: String?
    /// "FILE" or "FILE:NAME", for messages.
    var label: String
    /// Whether the stored values were F64 (or `<f8`).
    var isDouble: Bool

    static func read(_ path: String, tensor name: String?) throws -> TensorInput {
        switch try Info.sniff(path) {
        case .npy:
            if let name {
                throw TensorError.invalidArgument("--tensor \(name) applies to safetensors files, but \(path) is a .npy file holding one array; drop --tensor")
            }
            let array = try NPYFile(contentsOf: path)
            return TensorInput(tensor: array.tensor(as: Double.self), name: nil, label: path, isDouble: array.dtype == "<f8")
        case .safetensors:
            let file = try SafeTensorsFile(contentsOf: path)
            let chosen: String
            if let name {
                chosen = name
            } else if file.entries.count == 1 {
                chosen = file.entries[0].name
            } else {
                let names = file.entries.prefix(20).map(\.name).joined(separator: ", ")
                throw TensorError.invalidArgument(file.entries.isEmpty
                    ? "\(path) holds no tensors"
                    : "\(path) holds \(file.entries.count) tensors; choose one with --tensor NAME (\(names)\(file.entries.count > 20 ? ", …" : ""))")
            }
            let entry = try file.entry(chosen)
            return TensorInput(tensor: try file.tensor(chosen, as: Double.self), name: chosen, label: "\(path):\(chosen)",
                               isDouble: entry.dtype == .float64)
        }
    }
}

/// Runs the chosen format's algorithm with the command's options.
struct DecompositionRunner {
    let options: Decompose

    struct Result {
        var decomposition: AnyDecomposition<Double>
        var algorithm: String
        /// Nil for direct (non-iterative) algorithms.
        var report: ConvergenceReport?
        var notes: String?
    }

    /// The STP factor t for the given modes: the option's value, or 2 when it divides every one of them, else 1.
    func stpFactor(for sizes: [Int]) throws -> (t: Int, defaulted: Bool) {
        if let text = options.stpFactor {
            let values = try parseIntegers(text, option: "--stp-factor")
            guard values.count == 1 else {
                throw TensorError.invalidArgument("--stp-factor \(text): \(options.format.rawValue) takes one STP factor t (a list is for sttu)")
            }
            return (values[0], false)
        }
        return (sizes.allSatisfy { $0 % 2 == 0 } ? 2 : 1, true)
    }

    /// The divisor of n nearest √n (the smaller one on ties).
    static func balancedDivisor(_ n: Int) -> Int {
        let root = Double(n).squareRoot()
        return (1...Swift.max(n, 1)).filter { n % $0 == 0 }.min { Swift.abs(Double($0) - root) < Swift.abs(Double($1) - root) } ?? 1
    }

    /// Throws unless an option is only used with the formats it applies to.
    func requireUnused(_ value: Any?, _ option: String, appliesTo formats: String) throws {
        if value != nil {
            throw TensorError.invalidArgument("\(option) applies to \(formats), not to --format \(options.format.rawValue); drop it")
        }
    }

    func run(_ x: Tensor<Double>, target: RankTarget<Double>) throws -> Result {
        let format = options.format
        if ![.tucker].contains(format) { try requireUnused(options.modes, "--modes", appliesTo: "tucker") }
        if ![.ht].contains(format) { try requireUnused(options.tree, "--tree", appliesTo: "ht") }
        if ![.kpd, .gkpd].contains(format) { try requireUnused(options.leftShape, "--left-shape", appliesTo: "kpd and gkpd") }
        if ![.sttu, .stt, .str].contains(format) { try requireUnused(options.stpFactor, "--stp-factor", appliesTo: "sttu, stt and str") }
        if format != .ttm {
            try requireUnused(options.inputModes, "--input-modes", appliesTo: "ttm")
            try requireUnused(options.outputModes, "--output-modes", appliesTo: "ttm")
        }
        if ![.tucker, .tr].contains(format) { try requireUnused(options.algorithm, "--algorithm", appliesTo: "tucker and tr") }
        if ![.tt, .ttm, .ht, .tr].contains(format) { try requireUnused(options.maxRank, "--max-rank", appliesTo: "tt, ttm, ht and tr (adaptive)") }
        if ![.cp, .tr, .btd, .stt, .str].contains(format) {
            try requireUnused(options.maxIterations, "--max-iterations", appliesTo: "cp, tr, btd, stt and str")
        }
        guard options.maxIterations.map({ $0 >= 1 }) ?? true else {
            throw TensorError.invalidArgument("--max-iterations must be at least 1, got \(options.maxIterations!)")
        }
        func wrap<D: TensorDecomposition>(_ d: D) -> AnyDecomposition<Double> where D.Scalar == Double { AnyDecomposition(d)! }

        switch format {
        case .svd:
            let d = try MatrixLowRank.decompose(x, target: target)
            return Result(decomposition: wrap(d), algorithm: "truncated SVD", report: nil)
        case .cp:
            let (d, report) = try CPDecomposition.decompose(x, target: target, options: CPALSOptions(seed: options.seed, maxIterations: options.maxIterations ?? 500))
            return Result(decomposition: wrap(d), algorithm: "CP-ALS (SVD start, line search)", report: report)
        case .tucker:
            let modes = try options.modes.map { try parseIntegers($0, option: "--modes") }
            switch options.algorithm?.lowercased() ?? "hooi" {
            case "hooi":
                let (d, report) = try TuckerDecomposition.hooi(x, target: target, modes: modes)
                return Result(decomposition: wrap(d), algorithm: modes == nil ? "HOOI" : "partial HOOI on modes \(modes!)", report: report)
            case "hosvd":
                let d = try TuckerDecomposition.hosvd(x, target: target, modes: modes)
                return Result(decomposition: wrap(d), algorithm: modes == nil ? "truncated HOSVD" : "partial HOSVD on modes \(modes!)", report: nil)
            case let other:
                throw TensorError.invalidArgument("--algorithm \(other) is not a Tucker algorithm; use hooi or hosvd")
            }
        case .tt:
            let d = try TensorTrain.decompose(x, target: target, maxRank: options.maxRank)
            return Result(decomposition: wrap(d), algorithm: "TT-SVD", report: nil)
        case .ttm:
            guard x.rank == 2 else {
                throw TensorError.invalidArgument("ttm factors a matrix I×O, but the tensor has shape \(x.shape); reshape it with --shape I,O")
            }
            guard let inText = options.inputModes, let outText = options.outputModes else {
                throw TensorError.invalidArgument("ttm needs --input-modes and --output-modes with the same number of factors, e.g. --input-modes \(Self.suggestModes(x.shape[0])) --output-modes \(Self.suggestModes(x.shape[1])) for a \(x.shape[0])×\(x.shape[1]) matrix")
            }
            let d = try TTMatrix.decompose(x, inputModes: try parseIntegers(inText, option: "--input-modes"),
                                           outputModes: try parseIntegers(outText, option: "--output-modes"),
                                           target: target, maxRank: options.maxRank)
            return Result(decomposition: wrap(d), algorithm: "TT-SVD of the paired tensor (TT-matrix)", report: nil)
        case .tr:
            let isTolerance: Bool
            if case .relativeError = target { isTolerance = true } else { isTolerance = false }
            let algorithm = options.algorithm?.lowercased() ?? (isTolerance ? "svd" : "als")
            let trOptions = TRALSOptions<Double>(seed: options.seed, maxIterations: options.maxIterations ?? 500)
            switch algorithm {
            case "svd":
                try requireUnused(options.maxIterations, "--max-iterations", appliesTo: "TR-ALS (--algorithm als or adaptive)")
                try requireUnused(options.maxRank, "--max-rank", appliesTo: "adaptive TR (--algorithm adaptive)")
                let d = try TensorRing.svd(x, target: target)
                return Result(decomposition: wrap(d), algorithm: "TR-SVD", report: nil,
                              notes: isTolerance ? nil : "TR-SVD has no error guarantee at fixed ranks; --algorithm als fits them")
            case "als":
                try requireUnused(options.maxRank, "--max-rank", appliesTo: "adaptive TR (--algorithm adaptive)")
                let (d, report) = try TensorRing.als(x, target: target, options: trOptions)
                return Result(decomposition: wrap(d), algorithm: "TR-ALS (\(trOptions.restarts) seeded starts probed, line search)", report: report)
            case "adaptive":
                guard case let .relativeError(eps) = target else {
                    throw TensorError.invalidArgument("--algorithm adaptive grows ranks until an error tolerance holds; give --eps instead of --ranks/--ratio")
                }
                let (d, report) = try TensorRing.adaptive(x, tolerance: eps, maxRank: options.maxRank ?? 16, options: trOptions)
                return Result(decomposition: wrap(d), algorithm: "rank-adaptive TR-ALS", report: report)
            case let other:
                throw TensorError.invalidArgument("--algorithm \(other) is not a TR algorithm; use als, svd or adaptive")
            }
        case .ht:
            let tree = try options.tree.map { try DimensionTree(parsing: $0) }
            let d = try HierarchicalTucker.decompose(x, target: target, tree: tree, maxRank: options.maxRank)
            return Result(decomposition: wrap(d), algorithm: "hierarchical SVD (tree \(d.tree))", report: nil)
        case .btd:
            let (d, report) = try BlockTerm.decompose(x, blocks: options.blocks, target: target, initialization: .algebraic(seed: options.seed),
                                                      maxIterations: options.maxIterations ?? 500)
            return Result(decomposition: wrap(d), algorithm: "BTD-ALS, \(options.blocks) blocks (algebraic start)", report: report)
        case .kpd, .gkpd:
            let order = format == .kpd ? 2 : 4
            guard x.rank == order else {
                throw TensorError.invalidArgument(format == .kpd
                    ? "kpd factors a matrix I×O, but the tensor has shape \(x.shape); reshape it with --shape I,O (or use gkpd for a 4-way kernel)"
                    : "gkpd factors a 4-way kernel F×C×Kh×Kw, but the tensor has shape \(x.shape); reshape it with --shape F,C,Kh,Kw (or use kpd for a matrix)")
            }
            let left: [Int]
            var notes: String? = nil
            if let text = options.leftShape {
                left = try parseIntegers(text, option: "--left-shape")
            } else {
                left = format == .kpd ? x.shape.map(Self.balancedDivisor) : [Self.balancedDivisor(x.shape[0]), Self.balancedDivisor(x.shape[1]), 1, 1]
                notes = "--left-shape defaulted to \(left.map(String.init).joined(separator: ","))"
            }
            if format == .kpd {
                let d = try KroneckerDecomposition.decompose(x, leftShape: left, target: target)
                return Result(decomposition: wrap(d), algorithm: "nearest Kronecker product (Van Loan–Pitsianis + SVD)", report: nil, notes: notes)
            }
            let d = try GeneralizedKroneckerDecomposition.decompose(x, leftShape: left, target: target)
            return Result(decomposition: wrap(d), algorithm: "GKPD (rearrangement + SVD)", report: nil, notes: notes)
        case .sttu:
            var t: [Int]
            var notes: String? = nil
            if let text = options.stpFactor {
                t = try parseIntegers(text, option: "--stp-factor")
            } else {
                t = x.shape.map { $0 % 2 == 0 ? 2 : 1 }
                notes = "--stp-factor defaulted to \(t.map(String.init).joined(separator: ","))"
            }
            let d = try SemiTensorTucker.decompose(x, stpFactors: t, target: target)
            return Result(decomposition: wrap(d), algorithm: "STTu by truncated partial HOSVD", report: nil, notes: notes)
        case .stt, .str:
            let linked = format == .str ? x.shape : Array(x.shape.dropFirst())
            let (t, defaulted) = try stpFactor(for: linked)
            let notes = defaulted ? "--stp-factor defaulted to \(t)" : nil
            let iterations = options.maxIterations ?? 200
            if format == .stt {
                let (d, report) = try SemiTensorTrain.decompose(x, stpFactor: t, target: target, seed: options.seed, maxIterations: iterations)
                return Result(decomposition: wrap(d), algorithm: "STT-ALS (t = \(t))", report: report, notes: notes)
            }
            let (d, report) = try SemiTensorRing.decompose(x, stpFactor: t, target: target, seed: options.seed, maxIterations: iterations)
            return Result(decomposition: wrap(d), algorithm: "STR-ALS (t = \(t))", report: report, notes: notes)
        }
    }

    /// A factorization of n into at most 4 near-equal factors, for the ttm hint ("4,8,8,4").
    static func suggestModes(_ n: Int) -> String {
        var primes: [Int] = []
        var m = n, p = 2
        while m > 1 && p * p <= m { while m % p == 0 { primes.append(p); m /= p }; p += 1 }
        if m > 1 { primes.append(m) }
        var factors = [Int](repeating: 1, count: Swift.max(1, Swift.min(4, primes.count)))
        for prime in primes.sorted(by: >) {
            let i = factors.indices.min { factors[$0] < factors[$1] }!
            factors[i] *= prime
        }
        return factors.map(String.init).joined(separator: ",")
    }
}

/// `lowrank reconstruct FACTORS.safetensors --out X.npy`.
struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild the full tensor from a factor file and write it as .npy (or .safetensors).",
        discussion: """
        The tensor is written in the factors' precision (F64 factors give <f8, others <f4) unless --dtype says \
        otherwise. An output path ending in .safetensors gets one tensor named by --name.

        Examples:
          lowrank reconstruct w.tt.safetensors --out w.npy
          lowrank reconstruct conv.tucker.safetensors --out conv.safetensors --name weight --json
        """
    )

    @Argument(help: "The factor file written by `lowrank decompose` or FactorFile.save.")
    var factors: String

    @Option(help: "The file to write: .npy, or .safetensors.")
    var out: String

    @Option(help: "Element type of the output: f32 or f64 (default: the factors' precision).")
    var dtype: String?

    @Option(help: "The tensor's name in a .safetensors output.")
    var name = "tensor"

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard !name.isEmpty else { throw ValidationError("--name must not be empty (it names the tensor in a .safetensors output)") }
    }

    func run() throws {
        try runReportingErrors {
            guard [".npy", ".safetensors"].contains(where: { out.lowercased().hasSuffix($0) }) else {
                throw TensorError.invalidArgument("--out \(out): give a path ending in .npy or .safetensors")
            }
            if try Info.sniff(factors) == .npy {
                throw TensorError.invalidArgument("\(factors) is a .npy array, not a factor file; factor files are safetensors files written by `lowrank decompose` (decompose this array first)")
            }
            let file = try SafeTensorsFile(contentsOf: factors)
            let wide: Bool
            switch dtype?.lowercased() {
            case nil: wide = !file.entries.isEmpty && file.entries.allSatisfy { $0.dtype == .float64 }
            case "f64", "float64": wide = true
            case "f32", "float32": wide = false
            case let other?: throw TensorError.invalidArgument("--dtype \(other) is not supported; use f32 or f64")
            }
            let start = DispatchTime.now().uptimeNanoseconds
            let (format, shape, ranks, parameters) = wide ? try write(Double.self) : try write(Float.self)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let recorded = file.metadata["relative_error"].flatMap(Double.init)
            if output.json {
                try printJSON([
                    "factors": factors, "format": format, "shape": shape, "ranks": ranks, "parameters": parameters,
                    "out": out, "dtype": wide ? "f64" : "f32", "seconds": seconds,
                    "recorded_relative_error": recorded.map { $0 as Any } ?? NSNull(),
                ])
                return
            }
            print("\(factors): \(format), ranks \(ranks), \(parameters) parameters → \(out): shape \(shape) (\(wide ? "f64" : "f32")), \(String(format: "%.3f", seconds)) s")
            if let recorded { print("  relative error recorded at decomposition: \(String(format: "%.4e", recorded))") }
        }
    }

    private func write<S: TensorScalar>(_ type: S.Type) throws -> (String, [Int], [Int], Int) {
        let d = try FactorFile.load(factors, as: S.self)
        let x = d.reconstruct()
        if out.lowercased().hasSuffix(".safetensors") {
            var writer = SafeTensorsWriter(metadata: ["source": factors, "reconstructed_from": d.format])
            writer.add(name: name, tensor: x)
            try writer.write(to: out)
        } else {
            try NPYFile.write(x, to: out)
        }
        return (d.format, d.shape, d.ranks, d.parameterCount)
    }
}
