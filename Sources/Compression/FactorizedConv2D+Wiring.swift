import Autodiff
import Decompositions
import TensorCore

// The pipeline of every conv format (METHODS §1 conv forms): which stages run, which cores they use, and the
// weight expression that rebuilds the OIHW kernel. Forward, backward and costs follow from these in
// `FactorizedConv2D`.

/// The dense geometry a factorized conv replaces.
struct ConvGeometry {
    var inChannels: Int
    var outChannels: Int
    var kernelHeight: Int
    var kernelWidth: Int
    var params: Convolution2D
}

/// A per-pixel channel map: the channel axis of every pixel (rows = N·H·W) contracted with a tensor network of
/// cores along a fixed path.
struct ChannelStage {
    /// The wiring: input modes are the per-pixel channel modes entering the stage.
    let network: TensorNetwork
    /// The layer's core indices, in the order of `network.coreShapes`.
    let cores: [Int]
    /// The contraction path as pairs of positions (opt_einsum convention), independent of the row count.
    let pairs: [[Int]]

    /// The most elements one intermediate of a channel stage may hold before the stage merges its cores first
    /// (2^27: 512 MiB in Float). HT- and BTD-conv's schedules reached 2.1·10⁹ at batch 256 and ran out of memory.
    static let intermediateLimit = 1 << 27

    /// The path on `rows` rows: `pairs`, unless its largest intermediate passes `intermediateLimit` and merging the
    /// cores among themselves first (weight side), then one product with the input, keeps a smaller one.
    func path(rows: Int) -> ContractionPath {
        let expression = network.forwardExpression(batch: rows)
        let scheduled = expression.path(pairs: pairs.map { ($0[0], $0[1]) })
        guard scheduled.largestIntermediate > Self.intermediateLimit, cores.count > 1 else { return scheduled }
        let merged = expression.path(pairs: Self.weightFirstPairs(coreCount: cores.count).map { ($0[0], $0[1]) })
        return merged.largestIntermediate < scheduled.largestIntermediate ? merged : scheduled
    }

    /// Pairs (opt_einsum convention: the result goes last) that merge cores 1…m in order, then absorb the merged
    /// weight into the input (position 0).
    static func weightFirstPairs(coreCount m: Int) -> [[Int]] {
        var pairs: [[Int]] = []
        var size = m + 1
        if m > 1 {
            pairs.append([1, 2])
            size -= 1
            while size > 2 { pairs.append([size - 1, 1]); size -= 1 }
        }
        pairs.append([0, 1])
        return pairs
    }

    /// [N, H, W, C] → [N, H, W, C'] through the network.
    func apply<Scalar>(_ x: Variable<Scalar>, cores coreVariables: [Variable<Scalar>]) -> Variable<Scalar> {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let rows = Swift.max(n * h * w, 1)
        return einsum(network.forwardExpression(batch: rows), [x.reshaped([rows] + network.inputModes)] + coreVariables,
                      path: path(rows: rows))
            .reshaped([n, h, w, network.outputFeatures])
    }
}

/// A spatial convolution with one core as its OIHW weight. The per-pixel channel modes are permuted by
/// `permutation`; the first `sharedCount` of them join the batch (the same kernel bank runs on each of their
/// slices), the rest are the conv's input channels. The conv output channels and the shared modes then form the
/// new per-pixel modes in the order `outputPermutation` gives over (shared…, conv output).
struct SpatialStage {
    let core: Int
    let params: Convolution2D
    let inputModes: [Int]
    let permutation: [Int]
    let sharedCount: Int
    let outputPermutation: [Int]

    /// The product of the shared modes (the batch multiplier).
    var sharedSize: Int { permutation.prefix(sharedCount).reduce(1) { $0 * inputModes[$1] } }
    /// The conv's input channels.
    var convInputChannels: Int { permutation.dropFirst(sharedCount).reduce(1) { $0 * inputModes[$1] } }

    /// [N, H, W, C] → [N, H', W', C'].
    func apply<Scalar>(_ x: Variable<Scalar>, weight: Variable<Scalar>) -> Variable<Scalar> {
        guard sharedCount > 0 || permutation != Array(permutation.indices) else {
            return conv2d(x, weight: weight, params: params)
        }
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let s = sharedCount
        let shared = permutation.prefix(s).map { inputModes[$0] }
        // [N, H, W, m…] → [N, shared…, H, W, conv…] → [N·G, H, W, c].
        let moved = x.reshaped([n, h, w] + inputModes)
            .permuted([0] + permutation.prefix(s).map { 3 + $0 } + [1, 2] + permutation.dropFirst(s).map { 3 + $0 })
            .reshaped([n * sharedSize, h, w, convInputChannels])
        let y = conv2d(moved, weight: weight, params: params)
        let (h2, w2, o) = (y.shape[1], y.shape[2], y.shape[3])
        // [N·G, H', W', O] → [N, shared…, H', W', O] → [N, H', W', (shared…, O) in output order].
        let channelAxes = Array(1..<(s + 1)) + [s + 3]
        return y.reshaped([n] + shared + [h2, w2, o])
            .permuted([0, s + 1, s + 2] + outputPermutation.map { channelAxes[$0] })
            .reshaped([n, h2, w2, sharedSize * o])
    }
}

extension SpatialStage {
    /// A plain convolution on the whole channel axis.
    init(core: Int, params: Convolution2D, channels: Int) {
        self.init(core: core, params: params, inputModes: [channels], permutation: [0], sharedCount: 0, outputPermutation: [0])
    }
}

/// One stage of a factorized conv.
enum ConvStage {
    case channels(ChannelStage)
    case spatial(SpatialStage)
}

/// The stages of a format, its core shapes, and the einsum that rebuilds the kernel from the cores (each core
/// viewed through a reshape; the result reshaped to OIHW).
struct ConvWiring {
    var coreShapes: [[Int]] = []
    var stages: [ConvStage] = []
    var weightLetters: [[Character]] = []
    var weightViews: [[Int]] = []
    var weightOutput: [Character] = []

    /// "core views → o… i… h… w…" (parsed once per process).
    var weightExpression: EinsumExpression {
        EinsumExpression.parsed(weightLetters.map { String($0) }.joined(separator: ",") + "->" + String(weightOutput), shapes: weightViews)
    }

    /// N_terms = ∏ sizes of the letters summed in the weight expression (METHODS §2.2).
    var termCount: Int {
        var sizes: [Character: Int] = [:]
        for (letters, view) in zip(weightLetters, weightViews) {
            for (letter, size) in zip(letters, view) { sizes[letter] = size }
        }
        let output = Set(weightOutput)
        return sizes.filter { !output.contains($0.key) }.values.reduce(1, *)
    }

    /// σ of i.i.d. zero-mean core entries giving every kernel entry the variance v (METHODS §2.2).
    func presetStandardDeviation(targetVariance v: Double) -> Double {
        Compression.presetStandardDeviation(targetVariance: v, termCount: termCount, coreCount: coreShapes.count)
    }

    /// Appends a core: its stored shape, and its view and letters in the weight expression.
    mutating func addCore(_ shape: [Int], view: [Int]? = nil, letters: [Character]) {
        coreShapes.append(shape)
        weightViews.append(view ?? shape)
        weightLetters.append(letters)
    }
}

extension FactorizedConv2D {
    /// The number of ranks `format` takes with d channel modes.
    static func rankCount(_ format: FactorizedConvFormat, d: Int) -> Int {
        switch format {
        case .svdChannel, .svdSpatial, .cp, .gkpd: return 1
        case .tucker2: return 2
        case .tensorTrain: return d
        case .tensorRing, .semiTensorRing: return 2 * d + 1
        case .hierarchicalTucker: return 2 * d
        case .blockTerm: return d + 1
        }
    }

    /// The channel modes the format uses: given ones checked, or the defaults (two balanced factors; for `gkpd`
    /// the whole kernel in 𝒜); empty for the formats that use the channels whole.
    static func resolvedModes(_ format: FactorizedConvFormat, _ g: ConvGeometry, _ given: ConvChannelModes?,
                              layer: String) throws -> ConvChannelModes {
        let (ci, co) = (g.inChannels, g.outChannels)
        switch format {
        case .svdChannel, .svdSpatial, .cp, .tucker2:
            return ConvChannelModes(input: [], output: [])
        case .gkpd:
            let suggestion = ConvChannelModes(input: balancedFactorization(of: ci, into: 2), output: balancedFactorization(of: co, into: 2),
                                              kernelHeight: [g.kernelHeight, 1], kernelWidth: [g.kernelWidth, 1])
            guard let modes = given else { return suggestion }
            let all = modes.input + modes.output + modes.kernelHeight + modes.kernelWidth
            guard [modes.input, modes.output, modes.kernelHeight, modes.kernelWidth].allSatisfy({ $0.count == 2 }),
                  all.allSatisfy({ $0 >= 1 }),
                  modes.input.reduce(1, *) == ci, modes.output.reduce(1, *) == co,
                  modes.kernelHeight.reduce(1, *) == g.kernelHeight, modes.kernelWidth.reduce(1, *) == g.kernelWidth else {
                throw CompressionError.invalidModes(layer: layer, problem:
                    "GKPD needs two factors each of C_in = \(ci), C_out = \(co), K_h = \(g.kernelHeight), K_w = \(g.kernelWidth) (𝒜 sizes first), got \(modes); use for example \(suggestion)")
            }
            return modes
        case .tensorTrain, .tensorRing, .hierarchicalTucker, .blockTerm, .semiTensorRing:
            let suggestion = ConvChannelModes(input: balancedFactorization(of: ci, into: 2), output: balancedFactorization(of: co, into: 2))
            guard let modes = given else { return suggestion }
            guard !modes.input.isEmpty, modes.input.count == modes.output.count,
                  (modes.input + modes.output).allSatisfy({ $0 >= 1 }),
                  modes.input.reduce(1, *) == ci, modes.output.reduce(1, *) == co else {
                let d = Swift.max(modes.input.count, modes.output.count, 1)
                throw CompressionError.invalidModes(layer: layer, problem:
                    "channel modes \(modes.input) → \(modes.output) must be d ≥ 1 factors each of C_in = \(ci) and C_out = \(co); use for example \(balancedFactorization(of: ci, into: d)) → \(balancedFactorization(of: co, into: d)) (pad with 1s)")
            }
            return ConvChannelModes(input: modes.input, output: modes.output)
        }
    }

    /// The wiring of `format` for the geometry, ranks and (resolved) modes, with the ranks expanded.
    ///
    /// - Throws: `CompressionError` for a grouped or empty geometry, ranks of the wrong count, below 1 or above
    ///   the full rank of a matrix format, cores far larger than the kernel (`oversizedFactorsProblem`), an STP
    ///   factor that does not divide the linked modes and ranks, or more
    ///   index letters than the einsum engine has.
    static func wiring(_ format: FactorizedConvFormat, _ g: ConvGeometry, ranks given: [Int], modes: ConvChannelModes,
                       blocks: Int, stpFactor: Int = 2, layer: String) throws -> (ConvWiring, [Int]) {
        let (ci, co, kh, kw, p) = (g.inChannels, g.outChannels, g.kernelHeight, g.kernelWidth, g.params)
        guard ci >= 1, co >= 1, kh >= 1, kw >= 1 else {
            throw CompressionError.invalidModes(layer: layer, problem: "channels \(ci) → \(co) and kernel \(kh)×\(kw) must be ≥ 1")
        }
        guard p.groups == 1 else {
            throw CompressionError.unsupportedFormat(layer: layer, problem:
                "grouped convolutions (groups \(p.groups)) are not factorized; convert a groups-1 convolution or leave this layer dense")
        }
        let d = modes.input.count
        let expected = rankCount(format, d: d)
        let ranks = given.count == 1 ? [Int](repeating: given[0], count: expected) : given
        guard ranks.count == expected else {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "\(format) with \(d) channel mode(s) takes \(expected) rank(s) (or one for all), got \(given.count): \(given)")
        }
        guard ranks.allSatisfy({ $0 >= 1 }), blocks >= 1 else {
            throw CompressionError.invalidRanks(layer: layer, problem: "ranks and blocks must be ≥ 1, got ranks \(given) and \(blocks) block(s)")
        }
        let full: [Int]
        switch format {
        case .svdChannel: full = [Swift.min(co, ci * kh * kw)]
        case .svdSpatial: full = [Swift.min(co * kw, ci * kh)]
        case .tucker2: full = [ci, co]
        case .gkpd:
            let left = modes.output[0] * modes.input[0] * modes.kernelHeight[0] * modes.kernelWidth[0]
            full = [Swift.min(left, co * ci * kh * kw / left)]
        default: full = ranks
        }
        if zip(ranks, full).contains(where: { $0 > $1 }) {
            throw CompressionError.invalidRanks(layer: layer, problem:
                "ranks \(ranks) exceed the full ranks \(full) of the \(format) kernel; use at most \(full) (full ranks reproduce the kernel exactly)")
        }
        var pool = LetterPool()
        let batch = try pool.next(layer)
        let i = try pool.next(d, layer), o = try pool.next(d, layer)
        let (hl, wl) = (try pool.next(layer), try pool.next(layer))
        var wiring = ConvWiring()
        func network(_ inputModes: [Int], _ inputLetters: [Character], _ outputModes: [Int], _ outputLetters: [Character],
                     cores: [Int]) -> TensorNetwork {
            TensorNetwork(inputModes: inputModes, outputModes: outputModes, batchLetter: batch, inputLetters: inputLetters,
                          outputLetters: outputLetters, coreLetters: cores.map { wiring.weightLetters[$0] },
                          coreShapes: cores.map { wiring.coreShapes[$0] })
        }
        /// A channel stage absorbing its cores in `order` (positions of its own operands, 0 = the input).
        func channels(_ net: TensorNetwork, cores: [Int], sequence order: [Int]? = nil) -> ConvStage {
            let order = order ?? Array(0...cores.count)
            let pairs = net.forwardExpression(batch: 1).path(sequence: order).pairs.map { [$0.0, $0.1] }
            return .channels(ChannelStage(network: net, cores: cores, pairs: pairs))
        }
        /// Merges the cores 1..m among themselves first (weight side), then absorbs the result (TRN, [14]).
        func chainThenAbsorb(_ net: TensorNetwork, cores: [Int]) -> ConvStage {
            .channels(ChannelStage(network: net, cores: cores, pairs: ChannelStage.weightFirstPairs(coreCount: cores.count)))
        }
        let vertical = Convolution2D(strideHeight: p.strideHeight, strideWidth: 1, paddingTop: p.paddingTop, paddingBottom: p.paddingBottom,
                                     paddingLeft: 0, paddingRight: 0, dilationHeight: p.dilationHeight, dilationWidth: 1)
        let horizontal = Convolution2D(strideHeight: 1, strideWidth: p.strideWidth, paddingTop: 0, paddingBottom: 0,
                                       paddingLeft: p.paddingLeft, paddingRight: p.paddingRight, dilationHeight: 1,
                                       dilationWidth: p.dilationWidth)
        let ciL = try pool.next(layer), coL = try pool.next(layer)
        // Whole channels (o, i, h, w) for the matrix formats; o_1…o_d i_1…i_d h w for the tensorized ones.
        wiring.weightOutput = d == 0 ? [coL, ciL, hl, wl] : o + i + [hl, wl]
        var stages: [ConvStage] = []
        /// The per-input-channel spatial stage of TT, HT and BTD: the core's conv 1 → m runs on every channel.
        let sharedSpatial = SpatialStage(core: 0, params: p, inputModes: [ci], permutation: [0], sharedCount: 1, outputPermutation: [0, 1])

        switch format {
        case .svdChannel:
            let r = try pool.next(layer)
            wiring.addCore([ranks[0], ci, kh, kw], letters: [r, ciL, hl, wl])
            wiring.addCore([ranks[0], co], letters: [r, coL])
            stages = [.spatial(SpatialStage(core: 0, params: p, channels: ci)),
                             channels(network([ranks[0]], [r], [co], [coL], cores: [1]), cores: [1])]
        case .svdSpatial:
            let r = try pool.next(layer)
            wiring.addCore([ranks[0], ci, kh, 1], view: [ranks[0], ci, kh], letters: [r, ciL, hl])
            wiring.addCore([co, ranks[0], 1, kw], view: [co, ranks[0], kw], letters: [coL, r, wl])
            stages = [.spatial(SpatialStage(core: 0, params: vertical, channels: ci)),
                             .spatial(SpatialStage(core: 1, params: horizontal, channels: ranks[0]))]
        case .cp:
            let r = try pool.next(layer), rank = ranks[0]
            wiring.addCore([ci, rank], letters: [ciL, r])
            wiring.addCore([rank, 1, kh, 1], view: [rank, kh], letters: [r, hl])
            wiring.addCore([rank, 1, 1, kw], view: [rank, kw], letters: [r, wl])
            wiring.addCore([rank, co], letters: [r, coL])
            var depthVertical = vertical, depthHorizontal = horizontal
            depthVertical.groups = rank
            depthHorizontal.groups = rank
            stages = [channels(network([ci], [ciL], [rank], [r], cores: [0]), cores: [0]),
                             .spatial(SpatialStage(core: 1, params: depthVertical, channels: rank)),
                             .spatial(SpatialStage(core: 2, params: depthHorizontal, channels: rank)),
                             channels(network([rank], [r], [co], [coL], cores: [3]), cores: [3])]
        case .tucker2:
            let (a, b) = (try pool.next(layer), try pool.next(layer))
            wiring.addCore([ci, ranks[0]], letters: [ciL, a])
            wiring.addCore([ranks[1], ranks[0], kh, kw], letters: [b, a, hl, wl])
            wiring.addCore([ranks[1], co], letters: [b, coL])
            stages = [channels(network([ci], [ciL], [ranks[0]], [a], cores: [0]), cores: [0]),
                             .spatial(SpatialStage(core: 1, params: p, channels: ranks[0])),
                             channels(network([ranks[1]], [b], [co], [coL], cores: [2]), cores: [2])]
        case .tensorTrain:
            let bonds = ranks + [1]
            let r = try pool.next(d + 1, layer)
            wiring.addCore([bonds[0], 1, kh, kw], view: [bonds[0], kh, kw], letters: [r[0], hl, wl])
            for k in 0..<d {
                wiring.addCore([bonds[k], modes.input[k], modes.output[k], bonds[k + 1]], letters: [r[k], i[k], o[k], r[k + 1]])
            }
            let channelCores = Array(1...d)
            stages = [.spatial(sharedSpatial),
                             channels(network(modes.input + [bonds[0]], i + [r[0]], modes.output, o, cores: channelCores), cores: channelCores)]
        case .tensorRing:
            let n = 2 * d + 1
            let l = try pool.next(n, layer)
            for k in 0..<d { wiring.addCore([ranks[k], modes.input[k], ranks[k + 1]], letters: [l[k], i[k], l[k + 1]]) }
            wiring.addCore([ranks[d + 1], ranks[d], kh, kw], letters: [l[d + 1], l[d], hl, wl])
            for k in 0..<d {
                let j = d + 1 + k
                wiring.addCore([ranks[j], modes.output[k], ranks[(j + 1) % n]], letters: [l[j], o[k], l[(j + 1) % n]])
            }
            let inputCores = Array(0..<d), outputCores = Array((d + 1)...(2 * d))
            stages = [chainThenAbsorb(network(modes.input, i, [ranks[0], ranks[d]], [l[0], l[d]], cores: inputCores), cores: inputCores),
                             .spatial(SpatialStage(core: d, params: p, inputModes: [ranks[0], ranks[d]], permutation: [0, 1],
                                                   sharedCount: 1, outputPermutation: [0, 1])),
                             chainThenAbsorb(network([ranks[0], ranks[d + 1]], [l[0], l[d + 1]], modes.output, o, cores: outputCores),
                                             cores: outputCores)]
        case .hierarchicalTucker:
            let nodes = postOrder(.balanced(order: d + 1))
            let t = try pool.next(nodes.count, layer)
            let nodeRank = ranks + [1]
            var leafCoreShapes = [[Int]](repeating: [], count: d + 1), leafLetters = [[Character]](repeating: [], count: d + 1)
            var transferShapes: [[Int]] = [], transferLetters: [[Character]] = []
            var schedule = [0]
            var spatialLetter = t[0]
            for (m, node) in nodes.enumerated() {
                if let k = node.leafMode {
                    if k == 0 {
                        spatialLetter = t[m]
                        leafCoreShapes[0] = [nodeRank[m], 1, kh, kw]
                        leafLetters[0] = [t[m], hl, wl]
                    } else {
                        leafCoreShapes[k] = [modes.input[k - 1], modes.output[k - 1], nodeRank[m]]
                        leafLetters[k] = [i[k - 1], o[k - 1], t[m]]
                        schedule.append(k)
                    }
                } else {
                    transferShapes.append([nodeRank[node.left], nodeRank[node.right], nodeRank[m]])
                    transferLetters.append([t[node.left], t[node.right], t[m]])
                    schedule.append(d + transferShapes.count)
                }
            }
            wiring.addCore(leafCoreShapes[0], view: [leafCoreShapes[0][0], kh, kw], letters: leafLetters[0])
            for k in 1...d { wiring.addCore(leafCoreShapes[k], letters: leafLetters[k]) }
            for (shape, letters) in zip(transferShapes, transferLetters) { wiring.addCore(shape, letters: letters) }
            let channelCores = Array(1...(2 * d))
            stages = [.spatial(sharedSpatial),
                             channels(network(modes.input + [leafCoreShapes[0][0]], i + [spatialLetter], modes.output, o,
                                              cores: channelCores), cores: channelCores, sequence: schedule)]
        case .blockTerm:
            let nb = try pool.next(layer), r = try pool.next(d + 1, layer)
            wiring.addCore([blocks * ranks[0], 1, kh, kw], view: [blocks, ranks[0], kh, kw], letters: [nb, r[0], hl, wl])
            for k in 0..<d {
                wiring.addCore([blocks, modes.input[k], modes.output[k], ranks[k + 1]], letters: [nb, i[k], o[k], r[k + 1]])
            }
            wiring.addCore([blocks] + ranks, letters: [nb] + r)
            let channelCores = Array(1...(d + 1))
            stages = [.spatial(sharedSpatial),
                             channels(network(modes.input + [blocks, ranks[0]], i + [nb, r[0]], modes.output, o, cores: channelCores),
                                      cores: channelCores)]
        case .semiTensorRing:
            let n = 2 * d + 1, t = stpFactor
            // Link j enters ring core j (U_1…U_d, the spatial core, V_1…V_d); all but the spatial core's use the STP.
            let linked = (0..<n).map { $0 != d && t > 1 }
            try checkSemiTensorRingConv(t: t, ranks: ranks, modes: modes, linked: linked, layer: layer)
            let tk = linked.map { $0 ? t : 1 }
            let l = try pool.next(n, layer)
            // Pass-through letters for the linked links only (unused placeholders elsewhere).
            let pass = try linked.map { $0 ? try pool.next(layer) : Character(" ") }
            /// A mode of size `size` entered by link j: (size/t_j, j's pass-through index).
            func split(_ size: Int, _ letter: Character, link j: Int) -> (sizes: [Int], letters: [Character]) {
                linked[j] ? ([size / t, t], [letter, pass[j]]) : ([size], [letter])
            }
            /// The right link of core j: (R/t, pass-through index) when linked.
            func right(of j: Int) -> (sizes: [Int], letters: [Character]) { split(ranks[(j + 1) % n], l[(j + 1) % n], link: (j + 1) % n) }
            let inputSplit = (0..<d).map { split(modes.input[$0], i[$0], link: $0) }
            let outputSplit = (0..<d).map { split(modes.output[$0], o[$0], link: d + 1 + $0) }
            /// Ring core j with mode `size` (letter `m`): [R_j/t_j, size/t_j, right link…].
            func addRingCore(_ j: Int, _ size: Int, _ m: Character) {
                let r = right(of: j)
                wiring.addCore([ranks[j] / tk[j], size / tk[j]] + r.sizes, letters: [l[j], m] + r.letters)
            }
            for k in 0..<d { addRingCore(k, modes.input[k], i[k]) }
            let spatialOut = right(of: d)
            wiring.addCore([ranks[d + 1], ranks[d], kh, kw], view: spatialOut.sizes + [ranks[d], kh, kw],
                           letters: spatialOut.letters + [l[d], hl, wl])
            for k in 0..<d { addRingCore(d + 1 + k, modes.output[k], o[k]) }
            wiring.weightOutput = outputSplit.flatMap(\.letters) + inputSplit.flatMap(\.letters) + [hl, wl]
            // Per pixel: (I_k/t, j)… → (R_0/t, j_0, R_a) → conv R_a → R_b → (R_0/t, j_0, R_b/t, j_b) → (O_k/t, j)….
            let closing = split(ranks[0], l[0], link: 0)
            let inputCores = Array(0..<d), outputCores = Array((d + 1)...(2 * d))
            stages = [chainThenAbsorb(network(inputSplit.flatMap(\.sizes), inputSplit.flatMap(\.letters), closing.sizes + [ranks[d]],
                                              closing.letters + [l[d]], cores: inputCores), cores: inputCores),
                      .spatial(SpatialStage(core: d, params: p, inputModes: [ranks[0], ranks[d]], permutation: [0, 1], sharedCount: 1,
                                            outputPermutation: [0, 1])),
                      chainThenAbsorb(network(closing.sizes + spatialOut.sizes, closing.letters + spatialOut.letters,
                                              outputSplit.flatMap(\.sizes), outputSplit.flatMap(\.letters), cores: outputCores),
                                      cores: outputCores)]
        case .gkpd:
            let (c1, c2) = (modes.input[0], modes.input[1]), (f1, f2) = (modes.output[0], modes.output[1])
            let (kh1, kh2) = (modes.kernelHeight[0], modes.kernelHeight[1]), (kw1, kw2) = (modes.kernelWidth[0], modes.kernelWidth[1])
            let rank = ranks[0]
            let r = try pool.next(layer)
            let (h2, w2) = (try pool.next(layer), try pool.next(layer))
            wiring.addCore([rank * f2, c2, kh2, kw2], view: [rank, f2, c2, kh2, kw2], letters: [r, o[1], i[1], h2, w2])
            wiring.addCore([f1, rank * c1, kh1, kw1], view: [f1, rank, c1, kh1, kw1], letters: [o[0], r, i[0], hl, wl])
            wiring.weightOutput = [o[0], o[1], i[0], i[1], hl, h2, wl, w2]
            let first = Convolution2D(strideHeight: 1, strideWidth: 1, paddingTop: p.paddingTop, paddingBottom: p.paddingBottom,
                                      paddingLeft: p.paddingLeft, paddingRight: p.paddingRight,
                                      dilationHeight: p.dilationHeight, dilationWidth: p.dilationWidth)
            let second = Convolution2D(strideHeight: p.strideHeight, strideWidth: p.strideWidth, paddingTop: 0, paddingBottom: 0,
                                       paddingLeft: 0, paddingRight: 0, dilationHeight: p.dilationHeight * kh2,
                                       dilationWidth: p.dilationWidth * kw2)
            stages = [.spatial(SpatialStage(core: 0, params: first, inputModes: [c1, c2], permutation: [0, 1], sharedCount: 1,
                                                   outputPermutation: [0, 1])),
                             .spatial(SpatialStage(core: 1, params: second, inputModes: [c1, rank, f2], permutation: [2, 1, 0],
                                                   sharedCount: 1, outputPermutation: [1, 0]))]
        }
        wiring.stages = stages
        if let problem = oversizedFactorsProblem(shapes: wiring.coreShapes, entries: co * ci * kh * kw) {
            throw CompressionError.invalidRanks(layer: layer, problem: "\(format) ranks \(given): \(problem)")
        }
        return (wiring, ranks)
    }

    /// Throws unless t ≥ 1 divides every channel mode and the rank of every linked link of STR-conv, proposing a
    /// valid t or rank.
    static func checkSemiTensorRingConv(t: Int, ranks: [Int], modes: ConvChannelModes, linked: [Bool], layer: String) throws {
        guard t >= 1 else {
            throw CompressionError.invalidRanks(layer: layer, problem: "the STP factor t must be ≥ 1, got \(t)")
        }
        let channelModes = modes.input + modes.output
        if let bad = channelModes.first(where: { $0 % t != 0 }) {
            let common = channelModes.reduce(0) { greatestCommonDivisor($0, $1) }
            let choices = (1...Swift.max(common, 1)).filter { common % $0 == 0 }
            throw CompressionError.invalidModes(layer: layer, problem:
                "STR-conv splits every channel mode by the STP factor t = \(t), but mode \(bad) of \(modes) is not a multiple of \(t); choose t among \(choices) or channel modes that are multiples of \(t)")
        }
        for (j, rank) in ranks.enumerated() where linked[j] && rank % t != 0 {
            let lower = rank / t * t
            throw CompressionError.invalidRanks(layer: layer, problem:
                "STR-conv rank \(j) (\(rank)) links two cores by the STP and must be a multiple of t = \(t); use \(lower >= t ? "\(lower) or \(lower + t)" : "\(t)")")
        }
    }
}
