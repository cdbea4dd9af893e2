import Decompositions
import Foundation
import NeuralNetworks
import TensorCore

extension FactorizedConv2D {
    /// Converts a trained `Conv2D` into `format` at explicit ranks (the pre-train path, METHODS §2.1); see
    /// `converting(_:format:target:channelModes:blocks:stpFactor:cpOptions:executionMode:name:)`.
    ///
    /// - Throws: as `converting(_:format:target:channelModes:blocks:stpFactor:cpOptions:executionMode:name:)`.
    public static func converting(_ conv: Conv2D<Scalar>, format: FactorizedConvFormat, ranks: [Int],
                                  channelModes: ConvChannelModes? = nil, blocks: Int = 1, stpFactor: Int = 2,
                                  cpOptions: CPALSOptions<Scalar> = CPALSOptions(), executionMode: ExecutionMode = .auto,
                                  name: String? = nil) throws -> FactorizedConv2D {
        try converting(conv, format: format, target: .ranks(ranks), channelModes: channelModes, blocks: blocks,
                       stpFactor: stpFactor, cpOptions: cpOptions, executionMode: executionMode, name: name)
    }

    /// Converts a trained `Conv2D` (kernel, bias, stride, padding, dilation) into `format` through the
    /// decompositions (METHODS §2.1):
    /// * `svdChannel`: truncated SVD of the C_out × C_inK_hK_w unfolding (balanced split √σ to both factors);
    /// * `svdSpatial`: truncated SVD of the (C_out·K_w) × (C_in·K_h) matrix M[(o,w),(c,h)] = 𝒦[o,c,h,w] [13];
    /// * `cp`: CP-ALS [68] of the 4-way kernel (O, I, K_h, K_w), λ folded into the factors as |λ|^{1/4} [12];
    /// * `tucker2`: HOOI on modes O and I [9] (ranks given as [R_in, R_out]);
    /// * `tensorTrain`: TT-SVD [33] of the paired kernel (K_hK_w, I_1O_1, …, I_dO_d) [38];
    /// * `tensorRing`: TR on the ring (I_1, …, I_d, K_hK_w, O_1, …, O_d) [14], [34] (TR-SVD for ε, TR-ALS for ranks);
    /// * `hierarchicalTucker`: HSVD [32] of the paired kernel with the spatial leaf first, balanced tree;
    /// * `blockTerm`: BTD-ALS [35] of the paired kernel with the spatial mode first;
    /// * `gkpd`: the multidimensional nearest Kronecker product of [36];
    /// * `semiTensorRing`: STR-ALS [37] on the TR ring (I_1, …, I_d, K_hK_w, O_1, …, O_d) with the link into the
    ///   kernel mode ordinary (ranks and ratios only: the ALS rejects ε).
    /// The stride, padding, dilation and bias are kept. At full ranks (or ε = 0 where the algorithm guarantees
    /// it) the output equals the dense layer's up to rounding.
    ///
    /// - Parameters:
    ///   - target: ranks (meaning as on `FactorizedConvFormat`), ε, or a compression ratio, as the format's
    ///     decomposition accepts them.
    ///   - channelModes: as `init(format:inChannels:…)`.
    ///   - blocks: N_b for `blockTerm`.
    ///   - stpFactor: t for `semiTensorRing`.
    ///   - cpOptions: CP-ALS settings for `cp`; its `maxIterations` also caps the BTD- and STR-ALS sweeps.
    /// - Throws: `CompressionError` for a grouped conv, modes or ranks that do not fit (with a proposal);
    ///   `DecompositionError` from the decomposition.
    public static func converting(_ conv: Conv2D<Scalar>, format: FactorizedConvFormat, target: RankTarget<Scalar>,
                                  channelModes: ConvChannelModes? = nil, blocks: Int = 1, stpFactor: Int = 2,
                                  cpOptions: CPALSOptions<Scalar> = CPALSOptions(), executionMode: ExecutionMode = .auto,
                                  name: String? = nil) throws -> FactorizedConv2D {
        let kernel = conv.weight.value
        let (co, ci, kh, kw) = (conv.outChannels, conv.inChannels, kernel.shape[2], kernel.shape[3])
        let name = name ?? defaultName(format, ci, co, kh, kw)
        let geometry = ConvGeometry(inChannels: ci, outChannels: co, kernelHeight: kh, kernelWidth: kw, params: conv.params)
        let modes = try resolvedModes(format, geometry, channelModes, layer: name)
        if case let .ranks(r) = target {
            _ = try wiring(format, geometry, ranks: r, modes: modes, blocks: blocks, stpFactor: stpFactor, layer: name)
        } else {
            // The smallest valid rank: 1, or t for STR-conv (its linked ranks are multiples of t).
            let smallest = format == .semiTensorRing ? Swift.max(stpFactor, 1) : 1
            _ = try wiring(format, geometry, ranks: [smallest], modes: modes, blocks: blocks, stpFactor: stpFactor, layer: name)
        }
        let d = modes.input.count
        let area = kh * kw
        /// (O_1..O_d, I_1..I_d, K_hK_w) → (K_hK_w, I_1O_1, …, I_dO_d).
        func pairedWithSpatialFirst() -> Tensor<Scalar> {
            kernel.reshaped(modes.output + modes.input + [area])
                .permuted([2 * d] + (0..<d).flatMap { [d + $0, $0] })
                .reshaped([area] + zip(modes.input, modes.output).map { $0.0 * $0.1 })
        }
        /// (O_1..O_d, I_1..I_d, K_hK_w) → the ring order (I_1, …, I_d, K_hK_w, O_1, …, O_d) of TRN [14].
        func ringOrder() -> Tensor<Scalar> {
            kernel.reshaped(modes.output + modes.input + [area]).permuted(Array(d..<(2 * d)) + [2 * d] + Array(0..<d))
        }
        /// A ring's kernel core R_a×K_hK_w×R_b as the OIHW conv weight [R_b, R_a, K_h, K_w].
        func spatialCore(_ core: Tensor<Scalar>) -> Tensor<Scalar> {
            core.reshaped([core.shape[0], kh, kw, core.shape[2]]).permuted([3, 0, 1, 2])
        }
        var cores: [Tensor<Scalar>]
        var ranks: [Int]
        var blockCount = 1
        switch format {
        case .svdChannel:
            let (a, b) = try MatrixLowRank.decompose(kernel.reshaped([co, ci * area]), target: target).balancedFactors()
            ranks = [a.shape[1]]
            cores = [b.transposed.reshaped([ranks[0], ci, kh, kw]), a.transposed]
        case .svdSpatial:
            let matrix = kernel.permuted([0, 3, 1, 2]).reshaped([co * kw, ci * kh])
            let (a, b) = try MatrixLowRank.decompose(matrix, target: target).balancedFactors()
            let r = a.shape[1]
            ranks = [r]
            cores = [b.transposed.reshaped([r, ci, kh, 1]), a.reshaped([co, kw, r]).permuted([0, 2, 1]).reshaped([co, r, 1, kw])]
        case .cp:
            let cp = try CPDecomposition.decompose(kernel, target: target, options: cpOptions).decomposition
            let lambda = cp.weights.scalars
            let r = lambda.count
            let factors = cp.factors.enumerated().map { k, factor in
                factor * Tensor(shape: [r], scalars: lambda.map { l -> Scalar in
                    let magnitude = Scalar(pow(Double(Swift.abs(l)), 0.25))
                    return k == 0 && l < 0 ? -magnitude : magnitude
                })
            }
            ranks = [r]
            cores = [factors[1], factors[2].transposed.reshaped([r, 1, kh, 1]), factors[3].transposed.reshaped([r, 1, 1, kw]),
                     factors[0].transposed]
        case .tucker2:
            var tuckerTarget = target
            if case let .ranks(r) = target, r.count == 2 { tuckerTarget = .ranks([r[1], r[0]]) }
            let tucker = try TuckerDecomposition.decompose(kernel, target: tuckerTarget, modes: [0, 1]).decomposition
            ranks = [tucker.core.shape[1], tucker.core.shape[0]]
            cores = [tucker.factors[1], tucker.core, tucker.factors[0].transposed]
        case .tensorTrain:
            let tt = try TensorTrain.decompose(pairedWithSpatialFirst(), target: target)
            ranks = Array(tt.ranks[1...d])
            cores = [tt.cores[0].reshaped([area, ranks[0]]).transposed.reshaped([ranks[0], 1, kh, kw])]
                + (0..<d).map { k in
                    let c = tt.cores[k + 1]
                    return c.reshaped([c.shape[0], modes.input[k], modes.output[k], c.shape[2]])
                }
        case .tensorRing:
            let ring = try TensorRing.decompose(ringOrder(), target: target).decomposition
            ranks = ring.ranks
            cores = Array(ring.cores[0..<d]) + [spatialCore(ring.cores[d])] + Array(ring.cores[(d + 1)...])
        case .semiTensorRing:
            let n = 2 * d + 1
            let str = try SemiTensorRing.decompose(ringOrder(), stpFactor: stpFactor, linked: (0..<n).map { $0 != d }, target: target,
                                                   maxIterations: cpOptions.maxIterations).decomposition
            ranks = str.ranks
            // Stored (R_j/t)×(J_j/t)×R_{j+1} → the layer's split right link (R_{j+1}/t, t), ordinary into the spatial core.
            cores = str.cores.enumerated().map { j, core in
                if j == d { return spatialCore(core) }
                let right = j + 1 == d || stpFactor == 1 ? [core.shape[2]] : [core.shape[2] / stpFactor, stpFactor]
                return core.reshaped([core.shape[0], core.shape[1]] + right)
            }
        case .hierarchicalTucker:
            let ht = try HierarchicalTucker.decompose(pairedWithSpatialFirst(), target: target, tree: .balanced(order: d + 1))
            ranks = ht.ranks
            let leaves = ht.leafBases
            cores = [leaves[0].transposed.reshaped([leaves[0].shape[1], 1, kh, kw])]
                + (1...d).map { k in leaves[k].reshaped([modes.input[k - 1], modes.output[k - 1], leaves[k].shape[1]]) }
                + ht.transferTensors
        case .blockTerm:
            let btd = try BlockTerm.decompose(pairedWithSpatialFirst(), blocks: blocks, target: target,
                                              maxIterations: cpOptions.maxIterations).decomposition
            blockCount = btd.blockCount
            ranks = btd.blockRanks
            let n = btd.blockCount
            cores = [Tensor.concatenate((0..<n).map { btd.factors[$0][0].transposed }, axis: 0).reshaped([n * ranks[0], 1, kh, kw])]
                + (1...d).map { k in
                    Tensor.concatenate((0..<n).map { b in
                        btd.factors[b][k].reshaped([1, modes.input[k - 1], modes.output[k - 1], ranks[k]])
                    }, axis: 0)
                }
                + [Tensor.concatenate(btd.cores.map { $0.reshaped([1] + $0.shape) }, axis: 0)]
        case .gkpd:
            let leftShape = [modes.output[0], modes.input[0], modes.kernelHeight[0], modes.kernelWidth[0]]
            let gkpd = try GeneralizedKroneckerDecomposition.decompose(kernel, leftShape: leftShape, target: target)
            let r = gkpd.left.shape[0]
            ranks = [r]
            cores = [gkpd.right.reshaped([r * modes.output[1], modes.input[1], modes.kernelHeight[1], modes.kernelWidth[1]]),
                     gkpd.left.permuted([1, 0, 2, 3, 4]).reshaped([modes.output[0], r * modes.input[0], modes.kernelHeight[0], modes.kernelWidth[0]])]
        }
        return try FactorizedConv2D(format: format, inChannels: ci, outChannels: co, kernelHeight: kh, kernelWidth: kw,
                                    params: conv.params, ranks: ranks, channelModes: modes, blocks: blockCount, stpFactor: stpFactor,
                                    cores: cores, bias: conv.bias?.value, executionMode: executionMode, name: name)
    }

    /// The largest uniform rank (one value for every rank of the format; for `semiTensorRing` a multiple of
    /// `stpFactor`) whose core parameters fit C_outC_inK_hK_w / `compressionRatio`, found by binary search (the
    /// parameter count grows with the rank).
    ///
    /// - Returns: the ranks to pass to the initializers or `converting`.
    /// - Throws: `CompressionError` when the ratio is not ≥ 1 or even the smallest rank (1, or t) does not reach it (the message gives
    ///   the ratio rank 1 reaches), or the modes do not fit.
    public static func uniformRanks(format: FactorizedConvFormat, inChannels: Int, outChannels: Int, kernelHeight: Int,
                                    kernelWidth: Int, channelModes: ConvChannelModes? = nil, blocks: Int = 1, stpFactor: Int = 2,
                                    compressionRatio: Double, name: String? = nil) throws -> [Int] {
        let name = name ?? defaultName(format, inChannels, outChannels, kernelHeight, kernelWidth)
        guard compressionRatio >= 1, compressionRatio.isFinite else {
            throw CompressionError.invalidRanks(layer: name, problem: "the compression ratio must be finite and ≥ 1, got \(compressionRatio)")
        }
        let geometry = ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelHeight,
                                    kernelWidth: kernelWidth, params: Convolution2D())
        let modes = try resolvedModes(format, geometry, channelModes, layer: name)
        let dense = outChannels * inChannels * kernelHeight * kernelWidth
        let budget = Double(dense) / compressionRatio
        let step = format == .semiTensorRing ? Swift.max(stpFactor, 1) : 1
        /// The wiring's parameters at uniform rank r·step, or nil when that rank is not valid (above a full rank).
        func parameters(_ r: Int) -> Int? {
            guard let (w, _) = try? wiring(format, geometry, ranks: [r * step], modes: modes, blocks: blocks, stpFactor: stpFactor,
                                           layer: name) else { return nil }
            return w.coreShapes.reduce(0) { $0 + $1.reduce(1, *) }
        }
        // The smallest rank's wiring throws the format's own error (modes or t that do not fit).
        let smallest = try wiring(format, geometry, ranks: [step], modes: modes, blocks: blocks, stpFactor: stpFactor, layer: name).0
            .coreShapes.reduce(0) { $0 + $1.reduce(1, *) }
        guard Double(smallest) <= budget else {
            throw CompressionError.invalidRanks(layer: name, problem:
                "no uniform rank reaches a compression ratio of \(compressionRatio) in \(format); rank \(step) gives \(String(format: "%.2f", Double(dense) / Double(smallest))); ask for at most that or use another format")
        }
        var low = 1
        var high = Swift.max(inChannels, outChannels, kernelHeight * kernelWidth,
                             dense / (inChannels + outChannels + kernelHeight + kernelWidth))
        while low < high {
            let middle = (low + high + 1) / 2
            if let count = parameters(middle), Double(count) <= budget { low = middle } else { high = middle - 1 }
        }
        return [low * step]
    }
}
