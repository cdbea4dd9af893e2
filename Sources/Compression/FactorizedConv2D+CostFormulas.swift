import Decompositions
import TensorCore

/// The geometry of one conv layer on one input: channels, kernel, stride/padding/dilation and the input size.
public struct ConvLayerShape: Sendable, Equatable {
    /// C_in.
    public var inChannels: Int
    /// C_out.
    public var outChannels: Int
    /// K_h.
    public var kernelHeight: Int
    /// K_w.
    public var kernelWidth: Int
    /// Stride, padding and dilation of the dense conv.
    public var params: Convolution2D
    /// H.
    public var inputHeight: Int
    /// W.
    public var inputWidth: Int

    /// A layer shape with the given sizes.
    public init(inChannels: Int, outChannels: Int, kernelHeight: Int, kernelWidth: Int, params: Convolution2D = Convolution2D(),
                inputHeight: Int, inputWidth: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.params = params
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
    }

    /// H'W', the output pixels of the dense conv.
    public var outputPixels: Int {
        let size = params.outputSize(inputHeight: inputHeight, inputWidth: inputWidth, kernelHeight: kernelHeight, kernelWidth: kernelWidth)
        return size.height * size.width
    }
    /// K² = K_hK_w.
    public var kernelArea: Int { kernelHeight * kernelWidth }
    /// HW.
    public var inputPixels: Int { inputHeight * inputWidth }
}

/// A closed-form cost of a factorized conv layer on one sample: stored scalars (bias excluded), activation-side
/// MACs and weight-side MACs (core merges, once per forward pass; METHODS §0.3 Rule C3).
public struct ConvClosedFormCost: Sendable, Equatable {
    /// Stored scalars of the cores.
    public var parameters: Int
    /// MACs of the steps that touch the activation (they scale with the batch).
    public var activationSide: Int
    /// MACs of core merges (once per forward pass).
    public var weightSide: Int

    /// A cost with the given parts.
    public init(parameters: Int, activationSide: Int, weightSide: Int = 0) {
        self.parameters = parameters
        self.activationSide = activationSide
        self.weightSide = weightSide
    }
}

/// The closed forms of METHODS §1 (conv forms) and §1.10 (the rows standing in for the survey's Table 4; derived
/// formulas) for `FactorizedConv2D`, each for the schedule the layer executes. P = H'W' output pixels, HW input
/// pixels, K² = K_hK_w, C_in = ∏I_k, C_out = ∏O_k. The layer's `cost(forInput:)` must equal these exactly (the
/// tests check it on a grid of shapes and ranks).
public enum ConvCostFormulas {
    private static func product(_ values: ArraySlice<Int>) -> Int { values.reduce(1, *) }

    /// Dense conv (§0.4): K²C_inC_out stored, P·K²C_inC_out MACs.
    public static func dense(_ s: ConvLayerShape) -> ConvClosedFormCost {
        let size = s.kernelArea * s.inChannels * s.outChannels
        return ConvClosedFormCost(parameters: size, activationSide: s.outputPixels * size)
    }

    /// Channel SVD (§1.1): R(C_inK² + C_out) stored; P·R(C_inK² + C_out) MACs.
    public static func svdChannel(_ s: ConvLayerShape, rank r: Int) -> ConvClosedFormCost {
        let perPixel = r * (s.inChannels * s.kernelArea + s.outChannels)
        return ConvClosedFormCost(parameters: perPixel, activationSide: s.outputPixels * perPixel)
    }

    /// Spatial SVD (§1.1, [13]): R(C_inK_h + C_outK_w) stored; H'·W_mid·R·C_inK_h + P·R·C_outK_w MACs, W_mid the
    /// width after the vertical stage (the input width W: no horizontal padding or stride there).
    public static func svdSpatial(_ s: ConvLayerShape, rank r: Int) -> ConvClosedFormCost {
        let p = s.params
        let verticalHeight = p.outputSize(inputHeight: s.inputHeight, inputWidth: s.inputWidth, kernelHeight: s.kernelHeight,
                                          kernelWidth: s.kernelWidth).height
        return ConvClosedFormCost(parameters: r * (s.inChannels * s.kernelHeight + s.outChannels * s.kernelWidth),
                                  activationSide: verticalHeight * s.inputWidth * r * s.inChannels * s.kernelHeight
                                      + s.outputPixels * r * s.outChannels * s.kernelWidth)
    }

    /// 4-layer CP (§1.2, [12]): R(C_in + K_h + K_w + C_out) stored; HW·C_inR + H'W_mid·RK_h + P·RK_w + P·RC_out MACs.
    public static func cp(_ s: ConvLayerShape, rank r: Int) -> ConvClosedFormCost {
        let verticalHeight = s.params.outputSize(inputHeight: s.inputHeight, inputWidth: s.inputWidth, kernelHeight: s.kernelHeight,
                                                 kernelWidth: s.kernelWidth).height
        return ConvClosedFormCost(parameters: r * (s.inChannels + s.kernelHeight + s.kernelWidth + s.outChannels),
                                  activationSide: s.inputPixels * s.inChannels * r + verticalHeight * s.inputWidth * r * s.kernelHeight
                                      + s.outputPixels * r * (s.kernelWidth + s.outChannels))
    }

    /// Tucker-2 (§1.3, [9]): C_inR_1 + K²R_1R_2 + R_2C_out stored; HW·C_inR_1 + P·K²R_1R_2 + P·R_2C_out MACs.
    public static func tucker2(_ s: ConvLayerShape, inputRank r1: Int, outputRank r2: Int) -> ConvClosedFormCost {
        ConvClosedFormCost(parameters: s.inChannels * r1 + s.kernelArea * r1 * r2 + r2 * s.outChannels,
                           activationSide: s.inputPixels * s.inChannels * r1 + s.outputPixels * (s.kernelArea * r1 * r2 + r2 * s.outChannels))
    }

    /// TT-conv (§1.6, [38]) with ranks [R_0, …, R_{d−1}] (R_d = 1): K²R_0 + Σ_k R_{k−1}I_kO_kR_k stored;
    /// P·K²·C_inR_0 + P·Σ_{k=1}^d R_{k−1}R_k(∏_{j≤k}O_j)(∏_{j≥k}I_j) MACs (spatial first, then cores 1..d).
    public static func tensorTrain(_ s: ConvLayerShape, inputModes: [Int], outputModes: [Int], ranks: [Int]) -> ConvClosedFormCost {
        let d = inputModes.count
        let bonds = ranks + [1]
        var params = s.kernelArea * bonds[0], macs = s.kernelArea * s.inChannels * bonds[0]
        for k in 0..<d {
            params += bonds[k] * inputModes[k] * outputModes[k] * bonds[k + 1]
            macs += bonds[k] * bonds[k + 1] * product(outputModes[...k]) * product(inputModes[k...])
        }
        return ConvClosedFormCost(parameters: params, activationSide: s.outputPixels * macs)
    }

    /// TRN (§1.7, [14]) with ring bonds [R_0, R_1, …, R_{d−1}, R_a, R_b, S_1, …, S_{d−1}] (S_0 = R_b, S_d = R_0):
    /// Σ_k R_{k−1}I_kR_k + K²R_aR_b + Σ_k S_{k−1}O_kS_k stored; activation HW·C_inR_0R_a + P·K²R_0R_aR_b +
    /// P·R_0R_bC_out; weight side (merging each chain before absorbing it) Σ_{k=2}^d R_0(∏_{j≤k}I_j)R_{k−1}R_k +
    /// Σ_{k=2}^d R_b(∏_{j≤k}O_j)S_{k−1}S_k. (`semiTensorRing` at t = 1.)
    public static func tensorRing(_ s: ConvLayerShape, inputModes: [Int], outputModes: [Int], ranks b: [Int]) -> ConvClosedFormCost {
        semiTensorRing(s, inputModes: inputModes, outputModes: outputModes, ranks: b, stpFactor: 1)
    }

    /// STR-conv (§1.9, [37]): the TRN terms above with every link but the spatial core's STP-linked. Each ring
    /// core U_k, V_k stores the TR core ÷ t² (its left bond and its mode are divided by t), the spatial core is
    /// unchanged; the two channel absorptions cost the TR ones ÷ t (HW·C_inR_0R_a/t, P·R_0R_bC_out/t: the
    /// pass-through index of the closing link, and of the spatial core's output, runs along without being summed),
    /// the spatial conv P·K²R_0R_aR_b is unchanged, and every chain merge costs the TR one ÷ t³ (two bonds and the
    /// chain's first mode divided by t).
    public static func semiTensorRing(_ s: ConvLayerShape, inputModes: [Int], outputModes: [Int], ranks b: [Int],
                                      stpFactor t: Int) -> ConvClosedFormCost {
        let d = inputModes.count, n = 2 * d + 1
        precondition(b.count == n, "ConvCostFormulas.semiTensorRing: \(b.count) ranks for d = \(d) (need 2d + 1)")
        precondition(t >= 1 && (inputModes + outputModes).allSatisfy { $0 % t == 0 }
                     && b.indices.allSatisfy { $0 == d || b[$0] % t == 0 },
                     "ConvCostFormulas.semiTensorRing: t = \(t) must divide every channel mode and every rank but R_a, got \(inputModes) → \(outputModes), ranks \(b)")
        let (t2, t3) = (t * t, t * t * t)
        var params = s.kernelArea * b[d] * b[d + 1], weight = 0
        for k in 1...d {
            params += (b[k - 1] * inputModes[k - 1] * b[k] + b[d + k] * outputModes[k - 1] * b[(d + k + 1) % n]) / t2
            if k >= 2 {
                weight += b[0] * product(inputModes[..<k]) * b[k - 1] * b[k] / t3
                weight += b[d + 1] * product(outputModes[..<k]) * b[d + k] * b[(d + k + 1) % n] / t3
            }
        }
        let activation = s.inputPixels * s.inChannels * b[0] * b[d] / t
            + s.outputPixels * (s.kernelArea * b[0] * b[d] * b[d + 1] + b[0] * b[d + 1] * s.outChannels / t)
        return ConvClosedFormCost(parameters: params, activationSide: activation, weightSide: weight)
    }

    /// HT with a spatial leaf (§1.5) on the balanced tree over the spatial leaf s and the channel modes 1…d, ranks
    /// for the non-root nodes in post-order, run as the layer runs it: the spatial leaf as a convolution, then the
    /// channel leaves and transfer nodes absorbed in post-order. Absorbing leaf k (I_k×O_k×R_k) costs P·(live)·O_kR_k
    /// and a transfer node (R_l×R_r×R_t) P·(live)·R_t, where "live" is the product of the activation's indices at
    /// that point (the input modes not yet absorbed, the output modes absorbed so far, the ranks of the subtrees
    /// done and not yet merged); stored: K²R_s + Σ_k I_kO_kR_k + Σ_t R_lR_rR_t (root R_t = 1). For example
    /// d = 1 (tree (s, 1), ranks [R_s, R_1]): K²R_s + C_inC_outR_1 + R_sR_1 stored;
    /// P·[K²C_inR_s + C_inR_sC_outR_1 + C_outR_sR_1] MACs.
    /// d = 2 (tree ((s, 1), 2), ranks [R_s, R_1, T, R_2]): K²R_s + I_1O_1R_1 + R_sR_1T + I_2O_2R_2 + TR_2 stored;
    /// P·[K²C_inR_s + C_inR_sO_1R_1 + I_2R_sO_1R_1T + I_2O_1TO_2R_2 + O_1O_2TR_2] MACs.
    /// For any d this is P × `FCCostFormulas.hierarchicalTucker` with the spatial leaf as a paired leaf of K² inputs
    /// (the receptive field) and 1 output in front: absorbing it is the K×K convolution, K²C_inR_s per pixel.
    public static func hierarchicalTucker(_ s: ConvLayerShape, inputModes: [Int], outputModes: [Int], ranks r: [Int]) -> ConvClosedFormCost {
        let perPixel = FCCostFormulas.hierarchicalTucker(inputModes: [s.kernelArea] + inputModes, outputModes: [1] + outputModes, ranks: r)
        return ConvClosedFormCost(parameters: perPixel.parameters, activationSide: s.outputPixels * perPixel.macsPerSample)
    }

    /// BTD with a spatial factor (§1.4, [39]) and block ranks [R_0, R_1, …, R_d]: N_b(K²R_0 + Σ_k I_kO_kR_k +
    /// R_0∏R_j) stored; P·N_b·[K²C_inR_0 + R_0Σ_k(∏_{j≤k}R_j)(∏_{j≤k}O_j)(∏_{j≥k}I_j) + C_outR_0∏_jR_j] MACs.
    public static func blockTerm(_ s: ConvLayerShape, inputModes: [Int], outputModes: [Int], blocks: Int, ranks: [Int]) -> ConvClosedFormCost {
        let d = inputModes.count
        let channelRanks = Array(ranks[1...])
        let coreSize = ranks.reduce(1, *)
        var params = s.kernelArea * ranks[0] + coreSize
        var macs = s.kernelArea * s.inChannels * ranks[0] + coreSize * s.outChannels
        for k in 0..<d {
            params += inputModes[k] * outputModes[k] * channelRanks[k]
            macs += ranks[0] * product(channelRanks[...k]) * product(outputModes[...k]) * product(inputModes[k...])
        }
        return ConvClosedFormCost(parameters: blocks * params, activationSide: s.outputPixels * blocks * macs)
    }

    /// GKPD KroneckerConvolution (§1.8, [36]): R(F_1C_1K_h1K_w1 + F_2C_2K_h2K_w2) stored;
    /// R·[H_1W_1·C_inF_2K_h2K_w2 + P·C_outC_1K_h1K_w1] MACs, H_1×W_1 the size after the padded ℬ stage
    /// (H_1 = H + p_top + p_bottom − δ_h(K_h2 − 1)).
    public static func gkpd(_ s: ConvLayerShape, modes: ConvChannelModes, rank r: Int) -> ConvClosedFormCost {
        let (c1, c2, f1, f2) = (modes.input[0], modes.input[1], modes.output[0], modes.output[1])
        let (kh1, kh2, kw1, kw2) = (modes.kernelHeight[0], modes.kernelHeight[1], modes.kernelWidth[0], modes.kernelWidth[1])
        let p = s.params
        let h1 = s.inputHeight + p.paddingTop + p.paddingBottom - p.dilationHeight * (kh2 - 1)
        let w1 = s.inputWidth + p.paddingLeft + p.paddingRight - p.dilationWidth * (kw2 - 1)
        return ConvClosedFormCost(parameters: r * (f1 * c1 * kh1 * kw1 + f2 * c2 * kh2 * kw2),
                                  activationSide: r * (h1 * w1 * s.inChannels * f2 * kh2 * kw2 + s.outputPixels * s.outChannels * c1 * kh1 * kw1))
    }
}
