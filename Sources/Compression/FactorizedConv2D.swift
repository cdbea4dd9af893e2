import Autodiff
import Foundation
import NeuralNetworks
import TensorCore

/// The formats of a factorized 2-D convolution (METHODS §1 conv forms; kernel 𝒦 ∈ ℝ^{C_out×C_in×K_h×K_w}, OIHW).
///
/// Every format runs as a short pipeline of per-pixel channel maps (a tensor network contracted with the channel
/// axis, rows = N·H·W) and spatial convolutions that carry the layer's stride, padding and dilation. Channels are
/// reduced before the K×K work wherever the format allows. The `ranks` passed with a format mean (one value
/// stands for all of them); channel modes are C_in = ∏I_k and C_out = ∏O_k (d modes):
/// * `svdChannel` (§1.1, cf. [30], [63]): [R]; a K_h×K_w conv C_in→R, then a 1×1 R→C_out.
///   Cores [R, C_in, K_h, K_w], [R, C_out].
/// * `svdSpatial` (§1.1, scheme of [13]): [R]; a K_h×1 conv C_in→R (vertical stride/padding), then a 1×K_w conv
///   R→C_out (horizontal). Cores [R, C_in, K_h, 1], [C_out, R, 1, K_w].
/// * `cp` (§1.2, 4-layer CP [12]): [R]; 1×1 C_in→R, depthwise K_h×1, depthwise 1×K_w, 1×1 R→C_out.
///   Cores [C_in, R], [R, 1, K_h, 1], [R, 1, 1, K_w], [R, C_out].
/// * `tucker2` (§1.3, [9]): [R_in, R_out]; 1×1 C_in→R_in, K_h×K_w R_in→R_out, 1×1 R_out→C_out.
///   Cores [C_in, R_in], [R_out, R_in, K_h, K_w], [R_out, C_out].
/// * `tensorTrain` (§1.6, TT-conv [38]): d ranks [R_0, …, R_{d−1}] (R_d = 1); the spatial core applied to every
///   input channel (R_0 maps each), then the TT channel cores at output resolution. Cores [R_0, 1, K_h, K_w],
///   then 𝒢_k ∈ ℝ^{R_{k−1}×I_k×O_k×R_k}.
/// * `tensorRing` (§1.7, TRN [14]): 2d+1 ranks, the left bond of each ring core in ring order
///   [R_0, R_1, …, R_{d−1}, R_a, R_b, S_1, …, S_{d−1}] (R_0 closes the ring); input cores U_k ∈ ℝ^{R_{k−1}×I_k×R_k}
///   (R_d = R_a), the spatial core [R_b, R_a, K_h, K_w] (a K_h×K_w conv R_a→R_b for each r_0), output cores
///   V_k ∈ ℝ^{S_{k−1}×O_k×S_k} (S_0 = R_b, S_d = R_0).
/// * `hierarchicalTucker` (§1.5, spatial leaf): 2d ranks of the non-root nodes in post-order of the balanced tree
///   over the modes (K_hK_w, I_1O_1, …, I_dO_d); cores: the spatial leaf [R_s, 1, K_h, K_w] (applied to every
///   input channel), the channel leaves ℝ^{I_k×O_k×R_k}, then the transfer tensors in post-order (root last).
/// * `blockTerm` (§1.4, [39], spatial factor): d+1 block ranks [R_0, R_1, …, R_d] with N_b `blocks`; cores: the
///   spatial factors [N_b·R_0, 1, K_h, K_w], A^{(k)} ∈ ℝ^{N_b×I_k×O_k×R_k}, the block cores ℝ^{N_b×R_0×R_1×⋯×R_d}.
/// * `gkpd` (§1.8, KroneckerConvolution [36]): [R]; 𝒦 = Σ_r 𝒜_r ⊗ ℬ_r with 𝒜_r ∈ ℝ^{F_1×C_1×K_h1×K_w1},
///   ℬ_r ∈ ℝ^{F_2×C_2×K_h2×K_w2} (modes: input [C_1, C_2], output [F_1, F_2], kernel [K_h1, K_h2], [K_w1, K_w2]);
///   a grouped conv with ℬ (C_1 groups, padding here), then a conv with 𝒜 at dilation K_h2×K_w2 (stride here).
///   Cores ℬ as [R·F_2, C_2, K_h2, K_w2], 𝒜 as [F_1, R·C_1, K_h1, K_w1].
/// * `semiTensorRing` (§1.9, STR-conv [37]): the `tensorRing` pipeline and ranks with its links joined by the
///   semi-tensor product of factor t (`stpFactor`): every link but the one entering the spatial core (whose mode
///   K_hK_w stays whole) stores its left bond as R/t, and its pass-through index j ∈ [t], carried by the previous
///   core, completes the mode of the core it enters (I_k = (I_k/t, j) or O_k = (O_k/t, j)); each linked core stores
///   the TR core ÷ t². Cores U_k ∈ ℝ^{(R_{k−1}/t)×(I_k/t)×(R_k/t)×t} (U_d: ×R_a, the spatial link is ordinary), the
///   spatial core [R_b, R_a, K_h, K_w] (its output channels R_b = (R_b/t, j)), V_k ∈ ℝ^{(S_{k−1}/t)×(O_k/t)×(S_k/t)×t}.
public enum FactorizedConvFormat: String, Sendable, Equatable, CaseIterable {
    case svdChannel, svdSpatial, cp, tucker2, tensorTrain, tensorRing, hierarchicalTucker, blockTerm, gkpd, semiTensorRing
}

/// The channel factorizations of a factorized conv: C_in = ∏ `input`, C_out = ∏ `output` (same count d), and for
/// `gkpd` the kernel factorizations K_h = ∏ `kernelHeight`, K_w = ∏ `kernelWidth` (two factors each: the 𝒜 and ℬ
/// sizes).
public struct ConvChannelModes: Sendable, Equatable, CustomStringConvertible {
    /// [I_1, …, I_d] (for `gkpd`: [C_1, C_2]).
    public var input: [Int]
    /// [O_1, …, O_d] (for `gkpd`: [F_1, F_2]).
    public var output: [Int]
    /// `gkpd` only: [K_h1, K_h2].
    public var kernelHeight: [Int]
    /// `gkpd` only: [K_w1, K_w2].
    public var kernelWidth: [Int]

    /// Modes with the given factors (kernel factors only for `gkpd`).
    public init(input: [Int], output: [Int], kernelHeight: [Int] = [], kernelWidth: [Int] = []) {
        self.input = input
        self.output = output
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
    }

    public var description: String {
        let channels = "\(input) → \(output)"
        return kernelHeight.isEmpty ? channels : channels + ", kernel \(kernelHeight)×\(kernelWidth)"
    }
}

/// A 2-D convolution on NHWC activations whose kernel 𝒦 ∈ ℝ^{C_out×C_in×K_h×K_w} is held in one of the
/// `FactorizedConvFormat`s and applied as a pipeline of channel maps and spatial convolutions, never rebuilding 𝒦
/// (METHODS §1 conv forms). Stride, padding and dilation of the dense layer are kept; the bias is added last.
///
/// Build it from scratch (pre-set, METHODS §2.2) with `init(inChannels:outChannels:kernelSize:…)`, or from a
/// trained `Conv2D` (pre-train, §2.1) with `converting(_:format:ranks:…)`.
public final class FactorizedConv2D<Scalar: TensorScalar>: ShapedLayer {
    /// The format.
    public let format: FactorizedConvFormat
    /// C_in.
    public let inChannels: Int
    /// C_out.
    public let outChannels: Int
    /// (K_h, K_w).
    public let kernelSize: (height: Int, width: Int)
    /// The dense layer's stride, padding and dilation (groups 1).
    public let params: Convolution2D
    /// The ranks (meaning as on `FactorizedConvFormat`).
    public let ranks: [Int]
    /// The channel modes (empty for the formats that use the channels whole).
    public let channelModes: ConvChannelModes
    /// N_b for `blockTerm` (1 otherwise).
    public let blocks: Int
    /// t for `semiTensorRing` (1 otherwise).
    public let stpFactor: Int
    /// The cores, in the order documented on `FactorizedConvFormat`.
    public let cores: [Parameter<Scalar>]
    /// b ∈ ℝ^{C_out}, or nil.
    public let bias: Parameter<Scalar>?
    /// The name used in error messages and reports.
    public let name: String
    /// How the forward pass runs (default `.auto`): the stage pipeline (`factorized`), or the kernel rebuilt once
    /// per pass and one dense conv (`reconstructed`).
    public var executionMode: ExecutionMode
    /// The stages and the weight expression.
    let wiring: ConvWiring
    /// The cheapest path of the weight expression.
    let weightPath: ContractionPath
    /// `auto`'s measured choices, per input shape (`ContractionPlanCache.autoMode`).
    public let planCache = ContractionPlanCache()
    /// The kernel last rebuilt from constant cores (`RebuiltWeightCache`).
    public let rebuiltWeight = RebuiltWeightCache<Scalar>()

    /// A layer from given core values (shapes as documented on `FactorizedConvFormat` for the given ranks).
    ///
    /// - Parameters:
    ///   - params: stride, padding and dilation of the convolution (groups must be 1).
    ///   - channelModes: the channel (and for `gkpd` kernel) factorizations; nil picks two balanced factors
    ///     (`balancedFactorization`) and, for `gkpd`, puts the whole kernel in 𝒜 ([K_h, 1], [K_w, 1]); ignored by
    ///     `svdChannel`, `svdSpatial`, `cp` and `tucker2`, which use the channels whole.
    ///   - stpFactor: t for `semiTensorRing` (ignored by the other formats).
    ///   - executionMode: how the forward pass runs (default `.auto`: measured per input shape, see `autoMode`).
    /// - Throws: `CompressionError` when the geometry, modes, ranks or core shapes do not fit the format.
    public init(format: FactorizedConvFormat, inChannels: Int, outChannels: Int, kernelHeight: Int, kernelWidth: Int,
                params: Convolution2D = Convolution2D(), ranks: [Int], channelModes: ConvChannelModes? = nil,
                blocks: Int = 1, stpFactor: Int = 2, cores coreValues: [Tensor<Scalar>], bias: Tensor<Scalar>? = nil,
                executionMode: ExecutionMode = .auto, name: String? = nil) throws {
        let name = name ?? Self.defaultName(format, inChannels, outChannels, kernelHeight, kernelWidth)
        let geometry = ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelHeight,
                                    kernelWidth: kernelWidth, params: params)
        let modes = try Self.resolvedModes(format, geometry, channelModes, layer: name)
        let (wiring, ranks) = try Self.wiring(format, geometry, ranks: ranks, modes: modes, blocks: blocks, stpFactor: stpFactor,
                                              layer: name)
        guard coreValues.map(\.shape) == wiring.coreShapes else {
            throw CompressionError.invalidRanks(layer: name, problem:
                "core shapes \(coreValues.map(\.shape)) do not fit the \(format) wiring with ranks \(ranks), which expects \(wiring.coreShapes)")
        }
        if let bias, bias.shape != [outChannels] {
            throw CompressionError.invalidModes(layer: name, problem: "bias \(bias.shape) does not match \(outChannels) output channels")
        }
        self.format = format
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = (kernelHeight, kernelWidth)
        self.params = params
        self.ranks = ranks
        self.channelModes = modes
        self.blocks = format == .blockTerm ? blocks : 1
        self.stpFactor = format == .semiTensorRing ? stpFactor : 1
        self.cores = coreValues.map { Parameter($0) }
        self.bias = bias.map { Parameter($0) }
        self.name = name
        self.wiring = wiring
        self.weightPath = wiring.weightExpression.optimalPath()
        self.executionMode = executionMode
    }

    /// A pre-set layer (METHODS §2.2) with a square K×K kernel and symmetric stride, padding and dilation; see
    /// `init(format:inChannels:outChannels:kernelHeight:kernelWidth:params:ranks:…:generator:)`.
    ///
    /// - Throws: as that initializer.
    public convenience init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, format: FactorizedConvFormat, ranks: [Int],
                            channelModes: ConvChannelModes? = nil, blocks: Int = 1, stpFactor: Int = 2, bias: Bool = true,
                            initialization: FactorInitialization = .kaiming, calibrated: Bool = true,
                            executionMode: ExecutionMode = .auto, name: String? = nil, generator: inout SeededGenerator) throws {
        try self.init(format: format, inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelSize,
                      kernelWidth: kernelSize, params: Convolution2D(stride: stride, padding: padding, dilation: dilation),
                      ranks: ranks, channelModes: channelModes, blocks: blocks, stpFactor: stpFactor, bias: bias,
                      initialization: initialization,
                      calibrated: calibrated, executionMode: executionMode, name: name, generator: &generator)
    }

    /// A pre-set layer (METHODS §2.2): cores with i.i.d. N(0, σ²) entries, σ² = (v/N_terms)^{1/F}, so that every
    /// kernel entry, a sum of N_terms products of one entry from each of the F cores, has variance v
    /// (`initialization` with fan-in C_inK_hK_w and fan-out C_outK_hK_w: Kaiming 2/(C_inK_hK_w) by default). With
    /// `calibrated` (the default) the cores are then scaled by a common factor so that the reconstructed kernel's
    /// mean square equals v exactly (as `FactorizedLinear`'s pre-set init). The bias starts at 0.
    ///
    /// - Parameters: as `init(format:inChannels:…:cores:…)`.
    /// - Throws: `CompressionError` for modes or ranks that do not fit (the message proposes a valid setting).
    public convenience init(format: FactorizedConvFormat, inChannels: Int, outChannels: Int, kernelHeight: Int,
                            kernelWidth: Int, params: Convolution2D = Convolution2D(), ranks: [Int],
                            channelModes: ConvChannelModes? = nil, blocks: Int = 1, stpFactor: Int = 2, bias: Bool = true,
                            initialization: FactorInitialization = .kaiming, calibrated: Bool = true,
                            executionMode: ExecutionMode = .auto, name: String? = nil, generator: inout SeededGenerator) throws {
        let name = name ?? Self.defaultName(format, inChannels, outChannels, kernelHeight, kernelWidth)
        let geometry = ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelHeight,
                                    kernelWidth: kernelWidth, params: params)
        let modes = try Self.resolvedModes(format, geometry, channelModes, layer: name)
        let (wiring, _) = try Self.wiring(format, geometry, ranks: ranks, modes: modes, blocks: blocks, stpFactor: stpFactor,
                                          layer: name)
        let area = kernelHeight * kernelWidth
        let v = initialization.targetVariance(inputFeatures: inChannels * area, outputFeatures: outChannels * area)
        guard v > 0, v.isFinite else {
            throw CompressionError.invalidRanks(layer: name, problem: "the target weight variance must be positive and finite, got \(v)")
        }
        let sigma = wiring.presetStandardDeviation(targetVariance: v)
        let values = wiring.coreShapes.map {
            Tensor<Scalar>.randomNormal($0, standardDeviation: Scalar(sigma), generator: &generator)
        }
        try self.init(format: format, inChannels: inChannels, outChannels: outChannels, kernelHeight: kernelHeight,
                      kernelWidth: kernelWidth, params: params, ranks: ranks, channelModes: modes, blocks: blocks,
                      stpFactor: stpFactor, cores: values, bias: bias ? Tensor.zeros([outChannels]) : nil,
                      executionMode: executionMode, name: name)
        if calibrated {
            let w = reconstructWeight()
            let meanSquare = Double(w.squaredNorm()) / Double(w.scalarCount)
            if meanSquare > 0 {
                let scale = Scalar(Foundation.pow(v / meanSquare, 1 / (2 * Double(cores.count))))
                for core in cores { core.value = core.value * scale }
            }
        }
    }

    static func defaultName(_ format: FactorizedConvFormat, _ inChannels: Int, _ outChannels: Int, _ kh: Int, _ kw: Int) -> String {
        "FactorizedConv2D[\(format.rawValue)](\(inChannels) → \(outChannels), \(kh)×\(kw))"
    }

    /// Stored scalars of the cores (bias excluded, METHODS §0.3); `parameterCount` includes the bias.
    public var coreParameterCount: Int { wiring.coreShapes.reduce(0) { $0 + $1.reduce(1, *) } }
    /// The number of cores F.
    public var coreCount: Int { wiring.coreShapes.count }
    /// Dense kernel parameters C_outC_inK_hK_w over `coreParameterCount`.
    public var compressionRatio: Double {
        Double(outChannels * inChannels * kernelSize.height * kernelSize.width) / Double(coreParameterCount)
    }

    // MARK: Forward

    /// The convolution with the cores given as variables, run in `mode` (a pure function of its arguments, for
    /// gradient checks). `factorized`: the stages in order, then the bias on the [N·H'·W', C_out] view
    /// (`addingRowBias`: the general broadcasting add took a large share of a step); `reconstructed`: the kernel
    /// rebuilt by the weight expression and one dense conv with the bias. Backward passes come from the einsum, conv2d and
    /// reshape/permute VJPs.
    ///
    /// - Precondition: `input` is NHWC with C_in channels; core and bias shapes match the layer.
    public func apply(_ input: Variable<Scalar>, cores coreVariables: [Variable<Scalar>], bias biasVariable: Variable<Scalar>?,
                      mode: ExecutionMode) -> Variable<Scalar> {
        precondition(input.shape.count == 4 && input.shape[3] == inChannels,
                     "\(name): input \(input.shape) must be NHWC with \(inChannels) channels")
        precondition(coreVariables.map { $0.shape } == wiring.coreShapes,
                     "\(name): core shapes \(coreVariables.map { $0.shape }) do not match \(wiring.coreShapes)")
        if let biasVariable {
            precondition(biasVariable.shape == [outChannels], "\(name): bias \(biasVariable.shape) for \(outChannels) outputs")
        }
        let resolved = mode == .auto
            ? autoMode(input: input.value, cores: coreVariables.map { $0.value }, bias: biasVariable?.value,
                       constantCores: !coreVariables.contains(where: { $0.isRecorded })) : mode
        if resolved == .reconstructed {
            return conv2d(input, weight: reconstructWeight(coreVariables), bias: biasVariable, params: params)
        }
        var x = input
        for stage in wiring.stages {
            switch stage {
            case let .channels(s): x = s.apply(x, cores: s.cores.map { coreVariables[$0] })
            case let .spatial(s): x = s.apply(x, weight: coreVariables[s.core])
            }
        }
        guard let biasVariable else { return x }
        let shape = x.shape
        return addingRowBias(x.reshaped([shape.dropLast().reduce(1, *), outChannels]), biasVariable).reshaped(shape)
    }

    /// `auto`'s choice for `x` (`ContractionPlanCache.autoMode`: the exact counts when they differ by more than
    /// `ExecutionMode.measuredBand`, else the best of `ExecutionMode.timedPasses` timed passes per mode), timed on private variables (the
    /// parameters and their gradients are not touched) and cached per input shape. Equal MACs are far from equal
    /// time here: the stages are small convolutions and GEMMs with few channels, the rebuilt kernel one large
    /// convolution. With `constantCores` (no gradient to the cores) a rebuilt kernel is kept, so the reconstructed
    /// mode counts only its conv and is timed forward.
    public func autoMode(input x: Tensor<Scalar>, cores coreValues: [Tensor<Scalar>], bias biasValue: Tensor<Scalar>?,
                         constantCores: Bool = false) -> ExecutionMode {
        let constant = Variable(constant: x)
        return planCache.autoMode(inputShape: x.shape, constantCores: constantCores) {
            let (shape, batch) = (Array(x.shape.dropFirst()), Swift.max(x.shape[0], 1))
            let reconstructed = cost(forInput: shape, batch: batch, mode: .reconstructed)
            return (cost(forInput: shape, batch: batch, mode: .factorized).total,
                    constantCores ? reconstructed.activationSide : reconstructed.total)
        } pass: { mode in
            autoModePass(constantCores: constantCores, cores: coreValues, bias: biasValue) { apply(constant, cores: $0, bias: $1, mode: mode) }
        }
    }

    /// The mode a training pass (cores recorded) on `batch` samples of shape [H, W, C_in] runs in: `executionMode`,
    /// with `auto` resolved by the measured choice for that input when there is one, else by the exact counts.
    /// Reports (`lowrank cost`) show this choice; an inference pass decides apart (`ExecutionMode.auto`).
    public func resolvedMode(forInput shape: [Int], batch: Int) -> ExecutionMode {
        guard executionMode == .auto else { return executionMode }
        return planCache.measuredMode(inputShape: [batch] + shape) ?? cost(forInput: shape, batch: batch, mode: .auto).mode
    }

    /// Applies the layer, recording the cores and bias on the input's tape.
    public func callAsFunction(_ input: Variable<Scalar>, mode: ForwardMode) -> Variable<Scalar> {
        apply(input, cores: cores.map { input.watching($0) }, bias: bias.map { input.watching($0) }, mode: executionMode)
    }

    /// Yields `cores.0`, …, `cores.{F−1}` and `bias`.
    public func visitParameters(prefix: String, _ visitor: (String, Parameter<Scalar>) -> Void) {
        for (k, core) in cores.enumerated() { visitor(prefix + "cores.\(k)", core) }
        if let bias { visitor(prefix + "bias", bias) }
    }

    // MARK: Weight and costs

    /// The dense OIHW kernel the cores represent (the weight expression along its cheapest path).
    public func reconstructWeight() -> Tensor<Scalar> { rebuild(cores.map { $0.value }) }

    /// The OIHW kernel as a differentiable function of core variables (the reconstructed mode); when no core is
    /// recorded, the rebuild kept in `rebuiltWeight`.
    ///
    /// - Precondition: one variable per core, of the core's shape.
    public func reconstructWeight(_ coreVariables: [Variable<Scalar>]) -> Variable<Scalar> {
        precondition(coreVariables.map { $0.shape } == wiring.coreShapes,
                     "\(name): core shapes \(coreVariables.map { $0.shape }) do not match \(wiring.coreShapes)")
        guard coreVariables.contains(where: { $0.isRecorded }) else {
            let values = coreVariables.map { $0.value }
            return Variable(constant: rebuiltWeight.weight(for: values) { rebuild(values) })
        }
        let views = zip(coreVariables, wiring.weightViews).map { $0.reshaped($1) }
        return einsum(wiring.weightExpression, views, path: weightPath)
            .reshaped([outChannels, inChannels, kernelSize.height, kernelSize.width])
    }

    /// The weight expression on core values, as OIHW.
    private func rebuild(_ values: [Tensor<Scalar>]) -> Tensor<Scalar> {
        wiring.weightExpression.evaluate(zip(values, wiring.weightViews).map { $0.reshaped($1) }, path: weightPath)
            .reshaped([outChannels, inChannels, kernelSize.height, kernelSize.width])
    }

    /// The exact multiply-adds of one forward pass on `batch` samples of shape [H, W, C_in] in `mode`, split into
    /// activation-side and weight-side MACs (Rule C3); the bias is not counted. `factorized`: stage by stage as
    /// executed (Rule C1 along each channel stage's fixed path, core merges on the weight side; Rule C2 for the
    /// convolutions). `reconstructed`: the weight path's MACs plus the dense conv's. `auto`: the cheaper of the
    /// two (ties go to `reconstructed`, one large conv).
    public func cost(forInput shape: [Int], batch: Int = 1, mode: ExecutionMode) -> ExecutionCost {
        precondition(shape.count == 3 && shape[2] == inChannels, "\(name): per-sample input \(shape) must be [H, W, \(inChannels)]")
        precondition(batch >= 1, "\(name): batch \(batch) must be at least 1")
        switch mode {
        case .factorized: break
        case .reconstructed:
            let dense = params.multiplyAdds(input: [batch] + shape, weight: [outChannels, inChannels, kernelSize.height, kernelSize.width])
            return ExecutionCost(mode: .reconstructed, activationSide: dense, weightSide: weightPath.multiplyAdds)
        case .auto:
            let factorized = cost(forInput: shape, batch: batch, mode: .factorized)
            let reconstructed = cost(forInput: shape, batch: batch, mode: .reconstructed)
            return factorized.total < reconstructed.total ? factorized : reconstructed
        }
        var (h, w) = (shape[0], shape[1])
        var activation = 0, weight = 0
        for stage in wiring.stages {
            switch stage {
            case let .channels(s):
                let split = s.network.splitCost(of: s.path(rows: batch * h * w))
                activation += split.activationSide
                weight += split.weightSide
            case let .spatial(s):
                let c = s.convInputChannels
                activation += s.params.multiplyAdds(input: [batch * s.sharedSize, h, w, c], weight: wiring.coreShapes[s.core])
                (h, w) = s.params.outputSize(inputHeight: h, inputWidth: w, kernelHeight: wiring.coreShapes[s.core][2],
                                             kernelWidth: wiring.coreShapes[s.core][3])
            }
        }
        return ExecutionCost(mode: .factorized, activationSide: activation, weightSide: weight)
    }
}

extension FactorizedConv2D {
    /// `[H, W, C_in]` → `[H', W', C_out]` (the dense layer's geometry).
    public func outputShape(forInput shape: [Int]) -> [Int] {
        precondition(shape.count == 3 && shape[2] == inChannels, "\(name): per-sample input \(shape) must be [H, W, \(inChannels)]")
        let size = params.outputSize(inputHeight: shape[0], inputWidth: shape[1], kernelHeight: kernelSize.height,
                                     kernelWidth: kernelSize.width)
        return [size.height, size.width, outChannels]
    }

    /// Exact MACs of one forward pass on one sample in the execution mode, both sides.
    public func multiplyAdds(forInput shape: [Int]) -> Int { cost(forInput: shape, mode: executionMode).total }

    public var layerDescription: String {
        var parts = ["\(inChannels) → \(outChannels)", "\(kernelSize.height)×\(kernelSize.width)", "ranks \(ranks)"]
        if !channelModes.input.isEmpty { parts.append("modes \(channelModes)") }
        if blocks != 1 { parts.append("\(blocks) blocks") }
        if format == .semiTensorRing { parts.append("t = \(stpFactor)") }
        if params.strideHeight != 1 || params.strideWidth != 1 { parts.append("stride \(params.strideHeight)") }
        if params.paddingTop != 0 || params.paddingLeft != 0 { parts.append("padding \(params.paddingTop)") }
        if bias == nil { parts.append("no bias") }
        return "FactorizedConv2D[\(format.rawValue)](" + parts.joined(separator: ", ")
            + ", \(coreParameterCount) core parameters, CR \(String(format: "%.1f", compressionRatio))×)"
    }
}
