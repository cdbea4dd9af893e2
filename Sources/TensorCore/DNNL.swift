import CDNNL
import Foundation

// The one seam to oneDNN (the C API of Debian's libdnnl 2.6). `dnnl_*` names appear nowhere else.
//
// Every operation is a *plan*: the primitives and reorders one call needs, with the memory objects they read and
// write. A plan is built once per (operation, shapes, parameters) key (primitive creation costs about a
// millisecond) and cached; a call then only points the plan's memory objects at the caller's buffers and runs it
// (microseconds). Activations stay NHWC ("nhwc" tag, f32) end to end; weights arrive in OIHW and are reordered
// into the layout the convolution prefers by a cached reorder inside the plan.

/// The oneDNN runtime behind `Float` convolutions, pooling, batch normalization, large GEMMs and large permutes:
/// version, CPU kernels and the primitive cache.
///
/// Primitives are cached per operation and shape: the first call with new shapes builds them (about 1 ms), later
/// calls reuse them. The cache is shared by all threads; primitive calls run one at a time (each one already uses
/// every OpenMP thread, `LinearAlgebraThreads.count` of them). GEMMs (`Float.gemm` from
/// `Float.oneDNNGEMMThreshold`) need no primitive and no lock.
public enum OneDNN {
    /// The oneDNN library version, e.g. "2.6.3".
    public static var version: String {
        guard let v = dnnl_version()?.pointee else { return "unknown" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The instruction set oneDNN's just-in-time kernels target on this CPU (for example "avx512_core").
    public static var instructionSet: String {
        let isa = dnnl_get_effective_cpu_isa()
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx512_mic, "avx512_mic"), (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"),
            (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"), (dnnl_cpu_isa_sse41, "sse41"),
        ]
        return names.first { $0.0 == isa }?.1 ?? "isa \(isa.rawValue)"
    }

    /// Whether the oneDNN CPU engine could be created (when it cannot, every `Float` operation runs on its
    /// reference implementation instead).
    public static var isAvailable: Bool { DNNLRuntime.shared != nil }

    /// The number of cached plans (one per operation and shape seen so far).
    public static var cachedPrimitiveCount: Int { DNNLRuntime.shared?.cachedKeys().count ?? 0 }

    /// One line per cached plan: the operation followed by its shapes and parameters, for example
    /// `"convolution.forward input [8, 28, 28, 32] weight [32, 32, 3, 3] …"`.
    public static var cachedPrimitiveDescriptions: [String] {
        (DNNLRuntime.shared?.cachedKeys() ?? []).map(\.description).sorted()
    }

    /// Operations oneDNN could not build or run, in the same format; their calls run on the reference
    /// implementations instead. Empty unless oneDNN rejects a configuration.
    public static var unsupportedOperationDescriptions: [String] {
        (DNNLRuntime.shared?.failedKeys() ?? []).map(\.description).sorted()
    }

    /// Drops every cached primitive (they are rebuilt on next use).
    public static func removeCachedPrimitives() { DNNLRuntime.shared?.removeAll() }
}

// MARK: - Cache keys and plans

/// Identifies a cached plan: an operation name and the shapes and parameters (`identity`, hashed on every call).
/// The readable `details` are only rendered for `OneDNN.cachedPrimitiveDescriptions`.
struct DNNLKey: Hashable, CustomStringConvertible {
    let operation: String
    let identity: AnyHashable
    let details: () -> String

    static func == (lhs: DNNLKey, rhs: DNNLKey) -> Bool {
        lhs.operation == rhs.operation && lhs.identity == rhs.identity
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(identity)
    }

    var description: String { "\(operation) \(details())" }
}

/// Shapes and flags of a cached operation.
private struct DNNLIdentity<Geometry: Hashable>: Hashable {
    let geometry: Geometry
    let flag: Bool
}

/// The twelve `Int64` of a `dnnl_dims_t`, padded with zeros.
@inline(__always) private func dims12(_ values: [Int]) -> [Int64] {
    precondition(values.count <= 12, "oneDNN: at most 12 dimensions, got \(values.count)")
    var result = [Int64](repeating: 0, count: 12)
    for (i, v) in values.enumerated() { result[i] = Int64(v) }
    return result
}

/// An f32 memory descriptor with the given logical dimensions and format tag (nil when oneDNN rejects it).
private func memoryDescriptor(_ dims: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t? {
    var md = dnnl_memory_desc_t()
    guard dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims12(dims), dnnl_f32, tag) == dnnl_success else {
        return nil
    }
    return md
}

/// Caller-owned bytes that a plan also needs between calls (the max-pooling workspace, for one).
final class DNNLBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}

/// The primitives, reorders and memory objects of one cached operation.
///
/// "External" memory objects are re-pointed at the caller's buffers (by slot number) before every run; "internal"
/// buffers (for example weights in the convolution's preferred layout) belong to the plan.
final class DNNLPlan {
    private let runtime: DNNLRuntime
    private var externals: [[OpaquePointer]]
    private var steps: [(primitive: OpaquePointer, args: [dnnl_exec_arg_t])] = []
    private var memories: [OpaquePointer] = []
    private var descriptors: [OpaquePointer] = []
    private var primitives: [OpaquePointer] = []
    private var buffers: [UnsafeMutableRawPointer] = []
    /// Bytes of the workspace the operation produces or consumes (max pooling), 0 when none.
    var workspaceBytes = 0

    init(runtime: DNNLRuntime, slots: Int) {
        self.runtime = runtime
        externals = Array(repeating: [], count: slots)
    }

    deinit {
        for p in primitives { dnnl_primitive_destroy(p) }
        for d in descriptors { dnnl_primitive_desc_destroy(d) }
        for m in memories { dnnl_memory_destroy(m) }
        for b in buffers { b.deallocate() }
    }

    /// A memory object that will point at caller buffer number `slot` on every run.
    func external(_ slot: Int, _ md: dnnl_memory_desc_t) -> OpaquePointer? {
        var md = md
        var memory: OpaquePointer?
        guard dnnl_memory_create(&memory, &md, runtime.engine, nil) == dnnl_success, let memory else { return nil }
        memories.append(memory)
        externals[slot].append(memory)
        return memory
    }

    /// A memory object over a buffer the plan owns.
    func internalBuffer(_ md: dnnl_memory_desc_t) -> OpaquePointer? {
        var md = md
        let bytes = max(dnnl_memory_desc_get_size(&md), 64)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        buffers.append(buffer)
        var memory: OpaquePointer?
        guard dnnl_memory_create(&memory, &md, runtime.engine, buffer) == dnnl_success, let memory else { return nil }
        memories.append(memory)
        return memory
    }

    /// Creates a primitive descriptor for an operation descriptor (nil when oneDNN has no implementation).
    func primitiveDescriptor(_ opDesc: UnsafeRawPointer, hint: OpaquePointer? = nil) -> OpaquePointer? {
        var pd: OpaquePointer?
        guard dnnl_primitive_desc_create(&pd, opDesc, nil, runtime.engine, hint) == dnnl_success, let pd else {
            return nil
        }
        descriptors.append(pd)
        return pd
    }

    /// Appends a step that executes the primitive of `pd` with the given (argument, memory) pairs.
    func addStep(_ pd: OpaquePointer, _ args: [(Int32, OpaquePointer)]) -> Bool {
        var primitive: OpaquePointer?
        guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else { return false }
        primitives.append(primitive)
        steps.append((primitive, args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1) }))
        return true
    }

    /// Appends a reorder from one memory object to another (same logical dimensions, different layouts).
    func addReorder(from source: OpaquePointer, _ sourceMD: dnnl_memory_desc_t,
                    to destination: OpaquePointer, _ destinationMD: dnnl_memory_desc_t) -> Bool {
        var sourceMD = sourceMD, destinationMD = destinationMD
        var pd: OpaquePointer?
        guard dnnl_reorder_primitive_desc_create(&pd, &sourceMD, runtime.engine, &destinationMD, runtime.engine, nil)
                == dnnl_success, let pd else { return false }
        descriptors.append(pd)
        return addStep(pd, [(DNNLArg.from, source), (DNNLArg.to, destination)])
    }

    /// The memory descriptor a primitive descriptor wants for `query` (src, weights, workspace, …).
    static func queried(_ pd: OpaquePointer, _ query: dnnl_query_t) -> dnnl_memory_desc_t? {
        dnnl_primitive_desc_query_md(pd, query, 0)?.pointee
    }

    /// Points every external memory object at its caller buffer and runs the steps in order.
    func run(_ pointers: [UnsafeMutableRawPointer?]) -> Bool {
        precondition(pointers.count == externals.count, "DNNLPlan: \(pointers.count) buffers for \(externals.count) slots")
        for (slot, slotMemories) in externals.enumerated() {
            for memory in slotMemories where dnnl_memory_set_data_handle(memory, pointers[slot]) != dnnl_success {
                return false
            }
        }
        for step in steps {
            let status = step.args.withUnsafeBufferPointer {
                dnnl_primitive_execute(step.primitive, runtime.stream, Int32($0.count), $0.baseAddress)
            }
            guard status == dnnl_success else { return false }
        }
        return dnnl_stream_wait(runtime.stream) == dnnl_success
    }
}

/// Execution-argument numbers (`DNNL_ARG_*` in dnnl_types.h).
enum DNNLArg {
    static let src: Int32 = 1, from: Int32 = 1
    static let dst: Int32 = 17, to: Int32 = 17
    static let weights: Int32 = 33
    static let bias: Int32 = 41
    static let mean: Int32 = 49, variance: Int32 = 50
    static let scale: Int32 = 51, shift: Int32 = 52
    static let workspace: Int32 = 64
    static let diffSrc: Int32 = 129, diffDst: Int32 = 145, diffWeights: Int32 = 161, diffBias: Int32 = 169
    static let diffScale: Int32 = 255, diffShift: Int32 = 256
}

/// The CPU engine, its stream and the plan cache. Thread-safe: one lock guards the cache and every execution.
final class DNNLRuntime: @unchecked Sendable {
    /// The process-wide runtime, or nil when oneDNN cannot create a CPU engine.
    static let shared: DNNLRuntime? = DNNLRuntime()

    let engine: OpaquePointer
    let stream: OpaquePointer
    private let lock = NSLock()
    /// nil values record keys whose plan could not be built, so they are not retried.
    private var plans: [DNNLKey: DNNLPlan?] = [:]
    /// This thread's OpenMP team size as last aligned (pthread-specific data: the Foundation thread dictionary
    /// this replaced cost about 1% of a small factorized layer's step, one lookup per GEMM).
    private static let alignedThreadCount: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "DNNLRuntime: no pthread key left for the thread count")
        return key
    }()

    private init?() {
        var engine: OpaquePointer?
        guard dnnl_engine_get_count(dnnl_cpu) > 0,
              dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        var stream: OpaquePointer?
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success,
              let stream else {
            dnnl_engine_destroy(engine)
            return nil
        }
        self.engine = engine
        self.stream = stream
    }

    /// C = α·op(A)·op(B) + β·C on row-major `Float` matrices through oneDNN's just-in-time GEMM (thread-safe, no
    /// plan, so outside the lock). False when oneDNN is unavailable or rejects the arguments.
    static func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        guard shared != nil else { return false }
        alignThreadCount()
        let (transA, transB) = (CChar(UInt8(ascii: transposeA ? "T" : "N")), CChar(UInt8(ascii: transposeB ? "T" : "N")))
        return dnnl_sgemm(transA, transB, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                          beta, c, Int64(ldc)) == dnnl_success
    }

    func cachedKeys() -> [DNNLKey] {
        lock.lock(); defer { lock.unlock() }
        return plans.compactMap { $0.value == nil ? nil : $0.key }
    }

    func failedKeys() -> [DNNLKey] {
        lock.lock(); defer { lock.unlock() }
        return plans.compactMap { $0.value == nil ? $0.key : nil }
    }

    func removeAll() {
        lock.lock(); defer { lock.unlock() }
        plans.removeAll()
    }

    /// oneDNN runs on the OpenMP team of the calling thread, whose size is a per-thread setting. Align it with
    /// `LinearAlgebraThreads.count` (from `LOWRANK_THREADS`) once per thread, so a given thread count gives the
    /// same results whichever thread calls.
    static func alignThreadCount() {
        let wanted = LinearAlgebraThreads.count
        if Int(bitPattern: pthread_getspecific(alignedThreadCount)) != wanted {
            LinearAlgebraThreads.count = wanted  // openblas_set_num_threads sets this thread's OpenMP team size
            pthread_setspecific(alignedThreadCount, UnsafeRawPointer(bitPattern: wanted))
        }
    }

    /// Runs the plan cached under `key` on the caller's buffers, building it with `build` on first use.
    /// `prepare` sees the plan before it runs (for example to size a workspace) and returns extra pointers
    /// appended to `pointers`. Returns false when oneDNN cannot build or run the operation (the caller then falls
    /// back to its reference implementation); such a key is remembered as unsupported and not retried.
    func run(_ key: DNNLKey, slots: Int, pointers: [UnsafeMutableRawPointer?],
             prepare: ((DNNLPlan) -> [UnsafeMutableRawPointer?])? = nil,
             build: (DNNLPlan) -> Bool) -> Bool {
        lock.lock(); defer { lock.unlock() }
        Self.alignThreadCount()
        let plan: DNNLPlan
        if let cached = plans[key] {
            guard let cached else { return false }
            plan = cached
        } else {
            let fresh = DNNLPlan(runtime: self, slots: slots)
            guard build(fresh) else { plans[key] = .some(nil); return false }
            plans[key] = fresh
            plan = fresh
        }
        let extra = prepare?(plan) ?? []
        guard plan.run(pointers + extra) else {
            plans[key] = .some(nil)
            return false
        }
        return true
    }
}

// MARK: - Convolution

/// oneDNN convolutions on NHWC f32 activations and OIHW (GOIHW when grouped) f32 weights.
enum DNNLConvolution {
    /// Convolutions pick their preferred (blocked) weight layout and reach it through a reorder cached in the plan
    /// (microseconds for these weight sizes). Measured here: with NHWC activations and plain OIHW weights oneDNN 2.6
    /// falls back to its `ref:any` kernels, 100–1000× slower than the `brgconv`/`jit:avx512_core` kernels it picks
    /// for blocked weights.
    static let preferBlockedWeights = true

    private static func key(_ operation: String, _ g: ConvolutionGeometry, bias: Bool) -> DNNLKey {
        DNNLKey(operation: operation, identity: DNNLIdentity(geometry: g, flag: bias)) {
            "input \(g.inputShape) weight \(g.weightShape) \(g.params)\(bias ? " bias" : "")"
        }
    }

    /// Memory descriptors of the user-facing tensors: NHWC source and destination, (G)OIHW weights, bias.
    private static func userDescriptors(_ g: ConvolutionGeometry)
        -> (src: dnnl_memory_desc_t, weights: dnnl_memory_desc_t, bias: dnnl_memory_desc_t, dst: dnnl_memory_desc_t)? {
        let p = g.params
        let groups = p.groups
        guard let src = memoryDescriptor([g.batch, g.inChannels, g.height, g.width], dnnl_nhwc),
              let dst = memoryDescriptor([g.batch, g.outChannels, g.outHeight, g.outWidth], dnnl_nhwc),
              let bias = memoryDescriptor([g.outChannels], dnnl_x) else { return nil }
        let weights = groups == 1
            ? memoryDescriptor([g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth], dnnl_oihw)
            : memoryDescriptor([groups, g.outChannels / groups, g.inChannels / groups, g.kernelHeight, g.kernelWidth],
                               dnnl_goihw)
        guard let weights else { return nil }
        return (src, weights, bias, dst)
    }

    /// The same descriptors with the weights left for the primitive to choose (when blocked weights are preferred).
    private static func primitiveWeightsDescriptor(_ g: ConvolutionGeometry, user: dnnl_memory_desc_t) -> dnnl_memory_desc_t? {
        guard preferBlockedWeights else { return user }
        let groups = g.params.groups
        let dims = groups == 1
            ? [g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth]
            : [groups, g.outChannels / groups, g.inChannels / groups, g.kernelHeight, g.kernelWidth]
        return memoryDescriptor(dims, dnnl_format_tag_any)
    }

    /// Fills `desc` for the forward pass (also the hint every backward primitive needs).
    private static func forwardDescriptor(_ g: ConvolutionGeometry, src: dnnl_memory_desc_t,
                                          weights: dnnl_memory_desc_t, bias: dnnl_memory_desc_t?,
                                          dst: dnnl_memory_desc_t) -> dnnl_convolution_desc_t? {
        let p = g.params
        var desc = dnnl_convolution_desc_t()
        var src = src, weights = weights, dst = dst
        let status: dnnl_status_t
        if var bias {
            status = dnnl_dilated_convolution_forward_desc_init(
                &desc, dnnl_forward_training, dnnl_convolution_direct, &src, &weights, &bias, &dst,
                dims12([p.strideHeight, p.strideWidth]), dims12([p.dilationHeight - 1, p.dilationWidth - 1]),
                dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight]))
        } else {
            status = dnnl_dilated_convolution_forward_desc_init(
                &desc, dnnl_forward_training, dnnl_convolution_direct, &src, &weights, nil, &dst,
                dims12([p.strideHeight, p.strideWidth]), dims12([p.dilationHeight - 1, p.dilationWidth - 1]),
                dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight]))
        }
        return status == dnnl_success ? desc : nil
    }

    /// The forward primitive descriptor (kept alive by `plan`).
    private static func forwardPD(_ plan: DNNLPlan, _ g: ConvolutionGeometry, bias: Bool) -> OpaquePointer? {
        guard let user = userDescriptors(g), let weights = primitiveWeightsDescriptor(g, user: user.weights),
              var desc = forwardDescriptor(g, src: user.src, weights: weights, bias: bias ? user.bias : nil,
                                           dst: user.dst) else { return nil }
        return plan.primitiveDescriptor(&desc)
    }

    /// y = conv(x, w) (+ b). Pointers: NHWC input, OIHW weights, bias (or nil), NHWC output.
    static func forward(_ g: ConvolutionGeometry, input: UnsafeMutableRawPointer, weight: UnsafeMutableRawPointer,
                        bias: UnsafeMutableRawPointer?, output: UnsafeMutableRawPointer) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        let hasBias = bias != nil
        return runtime.run(key("convolution.forward", g, bias: hasBias), slots: 4, pointers: [input, weight, bias, output]) { plan in
            guard let user = userDescriptors(g), let pd = forwardPD(plan, g, bias: hasBias),
                  let weightsMD = DNNLPlan.queried(pd, dnnl_query_weights_md),
                  let src = plan.external(0, user.src), let dst = plan.external(3, user.dst),
                  let userWeights = plan.external(1, user.weights) else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.src, src), (DNNLArg.dst, dst)]
            var w = user.weights
            if dnnl_memory_desc_equal(&w, [weightsMD]) != 0 {
                args.append((DNNLArg.weights, userWeights))
            } else {
                guard let blocked = plan.internalBuffer(weightsMD),
                      plan.addReorder(from: userWeights, user.weights, to: blocked, weightsMD) else { return false }
                args.append((DNNLArg.weights, blocked))
            }
            if hasBias {
                guard let b = plan.external(2, user.bias) else { return false }
                args.append((DNNLArg.bias, b))
            }
            return plan.addStep(pd, args)
        }
    }

    /// dx = convᵀ(dy, w). Pointers: NHWC output gradient, OIHW weights, NHWC input gradient.
    static func backwardData(_ g: ConvolutionGeometry, gradOutput: UnsafeMutableRawPointer,
                             weight: UnsafeMutableRawPointer, gradInput: UnsafeMutableRawPointer) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        return runtime.run(key("convolution.backwardData", g, bias: false), slots: 3, pointers: [gradOutput, weight, gradInput]) { plan in
            let p = g.params
            guard let user = userDescriptors(g), let hint = forwardPD(plan, g, bias: false),
                  var weights = primitiveWeightsDescriptor(g, user: user.weights) else { return false }
            var desc = dnnl_convolution_desc_t()
            var diffSrc = user.src, diffDst = user.dst
            guard dnnl_dilated_convolution_backward_data_desc_init(
                &desc, dnnl_convolution_direct, &diffSrc, &weights, &diffDst,
                dims12([p.strideHeight, p.strideWidth]), dims12([p.dilationHeight - 1, p.dilationWidth - 1]),
                dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight])) == dnnl_success,
                  let pd = plan.primitiveDescriptor(&desc, hint: hint),
                  let weightsMD = DNNLPlan.queried(pd, dnnl_query_weights_md),
                  let dy = plan.external(0, user.dst), let dx = plan.external(2, user.src),
                  let userWeights = plan.external(1, user.weights) else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.diffDst, dy), (DNNLArg.diffSrc, dx)]
            var w = user.weights
            if dnnl_memory_desc_equal(&w, [weightsMD]) != 0 {
                args.append((DNNLArg.weights, userWeights))
            } else {
                guard let blocked = plan.internalBuffer(weightsMD),
                      plan.addReorder(from: userWeights, user.weights, to: blocked, weightsMD) else { return false }
                args.append((DNNLArg.weights, blocked))
            }
            return plan.addStep(pd, args)
        }
    }

    /// dw = Σ x ⋆ dy (and db = Σ dy). Pointers: NHWC input, NHWC output gradient, OIHW weight gradient, bias
    /// gradient (or nil).
    static func backwardWeights(_ g: ConvolutionGeometry, input: UnsafeMutableRawPointer,
                                gradOutput: UnsafeMutableRawPointer, gradWeight: UnsafeMutableRawPointer,
                                gradBias: UnsafeMutableRawPointer?) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        let hasBias = gradBias != nil
        return runtime.run(key("convolution.backwardWeights", g, bias: hasBias), slots: 4,
                           pointers: [input, gradOutput, gradWeight, gradBias]) { plan in
            let p = g.params
            guard let user = userDescriptors(g), let hint = forwardPD(plan, g, bias: hasBias),
                  var diffWeights = primitiveWeightsDescriptor(g, user: user.weights) else { return false }
            var desc = dnnl_convolution_desc_t()
            var src = user.src, diffDst = user.dst, diffBias = user.bias
            let status = hasBias
                ? dnnl_dilated_convolution_backward_weights_desc_init(
                    &desc, dnnl_convolution_direct, &src, &diffWeights, &diffBias, &diffDst,
                    dims12([p.strideHeight, p.strideWidth]), dims12([p.dilationHeight - 1, p.dilationWidth - 1]),
                    dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight]))
                : dnnl_dilated_convolution_backward_weights_desc_init(
                    &desc, dnnl_convolution_direct, &src, &diffWeights, nil, &diffDst,
                    dims12([p.strideHeight, p.strideWidth]), dims12([p.dilationHeight - 1, p.dilationWidth - 1]),
                    dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight]))
            guard status == dnnl_success,
                  let pd = plan.primitiveDescriptor(&desc, hint: hint),
                  let weightsMD = DNNLPlan.queried(pd, dnnl_query_diff_weights_md),
                  let x = plan.external(0, user.src), let dy = plan.external(1, user.dst),
                  let userDW = plan.external(2, user.weights) else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.src, x), (DNNLArg.diffDst, dy)]
            if hasBias {
                guard let db = plan.external(3, user.bias) else { return false }
                args.append((DNNLArg.diffBias, db))
            }
            var w = user.weights
            if dnnl_memory_desc_equal(&w, [weightsMD]) != 0 {
                args.append((DNNLArg.diffWeights, userDW))
                return plan.addStep(pd, args)
            }
            guard let blocked = plan.internalBuffer(weightsMD) else { return false }
            args.append((DNNLArg.diffWeights, blocked))
            return plan.addStep(pd, args) && plan.addReorder(from: blocked, weightsMD, to: userDW, user.weights)
        }
    }
}

// MARK: - Permute

/// Axis permutations of f32 tensors through oneDNN's reorder, so the copy runs on the OpenMP team the GEMMs use.
enum DNNLPermute {
    /// Writes the row-major `src` of `shape` to `dst` with its axes in `permutation` order (output axis d is input
    /// axis permutation[d]). False when oneDNN is unavailable or has no reorder for it.
    static func permute(shape: [Int], permutation: [Int], src: UnsafeRawPointer, dst: UnsafeMutableRawPointer) -> Bool {
        guard let runtime = DNNLRuntime.shared, shape.count <= 12 else { return false }
        let key = DNNLKey(operation: "permute", identity: AnyHashable([shape, permutation])) { "\(shape) → \(permutation)" }
        return runtime.run(key, slots: 2, pointers: [UnsafeMutableRawPointer(mutating: src), dst]) { plan in
            let outShape = permutation.map { shape[$0] }
            let inStrides = Tensor<Float>.strides(for: shape)
            var sourceMD = dnnl_memory_desc_t(), destinationMD = dnnl_memory_desc_t()
            guard dnnl_memory_desc_init_by_strides(&sourceMD, Int32(shape.count), dims12(outShape), dnnl_f32,
                                                   dims12(permutation.map { inStrides[$0] })) == dnnl_success,
                  dnnl_memory_desc_init_by_strides(&destinationMD, Int32(shape.count), dims12(outShape), dnnl_f32,
                                                   dims12(Tensor<Float>.strides(for: outShape))) == dnnl_success,
                  let source = plan.external(0, sourceMD), let destination = plan.external(1, destinationMD)
            else { return false }
            return plan.addReorder(from: source, sourceMD, to: destination, destinationMD)
        }
    }
}

// MARK: - Pooling

/// oneDNN pooling on NHWC f32 activations.
enum DNNLPooling {
    private static func algorithm(_ kind: PoolingKind) -> dnnl_alg_kind_t {
        switch kind {
        case .max: return dnnl_pooling_max
        case .averageIncludingPadding: return dnnl_pooling_avg_include_padding
        case .averageExcludingPadding: return dnnl_pooling_avg_exclude_padding
        }
    }

    private static func key(_ operation: String, _ g: PoolingGeometry) -> DNNLKey {
        DNNLKey(operation: operation, identity: g) { "input \(g.inputShape) \(g.kind) \(g.params)" }
    }

    private static func descriptors(_ g: PoolingGeometry) -> (src: dnnl_memory_desc_t, dst: dnnl_memory_desc_t)? {
        guard let src = memoryDescriptor([g.batch, g.channels, g.height, g.width], dnnl_nhwc),
              let dst = memoryDescriptor([g.batch, g.channels, g.outHeight, g.outWidth], dnnl_nhwc) else { return nil }
        return (src, dst)
    }

    private static func forwardPD(_ plan: DNNLPlan, _ g: PoolingGeometry) -> OpaquePointer? {
        guard var mds = descriptors(g) else { return nil }
        let p = g.params
        var desc = dnnl_pooling_desc_t()
        guard dnnl_pooling_forward_desc_init(
            &desc, dnnl_forward_training, algorithm(g.kind), &mds.src, &mds.dst,
            dims12([p.strideHeight, p.strideWidth]), dims12([p.kernelHeight, p.kernelWidth]),
            dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight])) == dnnl_success
        else { return nil }
        return plan.primitiveDescriptor(&desc)
    }

    /// Pools NHWC `input` into NHWC `output`. Returns nil when oneDNN cannot run the operation, otherwise the
    /// workspace `backward` needs (max pooling's argmax record; nil inside for average pooling).
    static func forward(_ g: PoolingGeometry, input: UnsafeMutableRawPointer,
                        output: UnsafeMutableRawPointer) -> DNNLBuffer?? {
        guard let runtime = DNNLRuntime.shared else { return nil }
        let isMax = g.kind == .max
        var workspace: DNNLBuffer?
        // Max pooling has a third slot: the workspace, allocated per call once the plan knows its size.
        let prepare: ((DNNLPlan) -> [UnsafeMutableRawPointer?])? = isMax ? { plan in
            let buffer = DNNLBuffer(byteCount: plan.workspaceBytes)
            workspace = buffer
            return [buffer.pointer]
        } : nil
        let ok = runtime.run(key("pooling.forward", g), slots: isMax ? 3 : 2, pointers: [input, output], prepare: prepare) { plan in
            guard let mds = descriptors(g), let pd = forwardPD(plan, g),
                  let src = plan.external(0, mds.src), let dst = plan.external(1, mds.dst) else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.src, src), (DNNLArg.dst, dst)]
            if isMax {
                guard var ws = DNNLPlan.queried(pd, dnnl_query_workspace_md) else { return false }
                plan.workspaceBytes = dnnl_memory_desc_get_size(&ws)
                guard plan.workspaceBytes > 0, let memory = plan.external(2, ws) else { return false }
                args.append((DNNLArg.workspace, memory))
            }
            return plan.addStep(pd, args)
        }
        return ok ? .some(workspace) : nil
    }

    /// dx from dy: max pooling routes each gradient to the argmax recorded in `workspace`, average pooling spreads
    /// it evenly over the window.
    static func backward(_ g: PoolingGeometry, gradOutput: UnsafeMutableRawPointer,
                         gradInput: UnsafeMutableRawPointer, workspace: DNNLBuffer?) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        let usesWorkspace = g.kind == .max
        if usesWorkspace && workspace == nil { return false }
        return runtime.run(key("pooling.backward", g), slots: usesWorkspace ? 3 : 2,
                           pointers: usesWorkspace ? [gradOutput, gradInput, workspace!.pointer] : [gradOutput, gradInput]) { plan in
            guard var mds = descriptors(g), let hint = forwardPD(plan, g) else { return false }
            let p = g.params
            var desc = dnnl_pooling_desc_t()
            guard dnnl_pooling_backward_desc_init(
                &desc, algorithm(g.kind), &mds.src, &mds.dst,
                dims12([p.strideHeight, p.strideWidth]), dims12([p.kernelHeight, p.kernelWidth]),
                dims12([p.paddingTop, p.paddingLeft]), dims12([p.paddingBottom, p.paddingRight])) == dnnl_success,
                  let pd = plan.primitiveDescriptor(&desc, hint: hint),
                  let dy = plan.external(0, mds.dst), let dx = plan.external(1, mds.src) else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.diffDst, dy), (DNNLArg.diffSrc, dx)]
            if usesWorkspace {
                guard let wsMD = DNNLPlan.queried(hint, dnnl_query_workspace_md),
                      let ws = plan.external(2, wsMD) else { return false }
                var wsCopy = wsMD
                guard dnnl_memory_desc_get_size(&wsCopy) <= workspace!.byteCount else { return false }
                args.append((DNNLArg.workspace, ws))
            }
            return plan.addStep(pd, args)
        }
    }
}

// MARK: - Batch normalization

/// oneDNN batch normalization over the channels (last axis) of f32 data seen as rows × channels, optionally with
/// ReLU fused into the same pass (training then records a bit mask workspace for the backward pass).
enum DNNLBatchNorm {
    /// Data of `rows` × `channels` (row-major) presented to oneDNN as NHWC [rows, channels, 1, 1].
    private static func dataDescriptor(rows: Int, channels: Int) -> dnnl_memory_desc_t? {
        memoryDescriptor([rows, channels, 1, 1], dnnl_nhwc)
    }

    private static func key(_ operation: String, rows: Int, channels: Int, epsilon: Float, relu: Bool) -> DNNLKey {
        DNNLKey(operation: operation, identity: DNNLIdentity(geometry: [rows, channels, Int(epsilon.bitPattern)], flag: relu)) {
            "rows \(rows) channels \(channels) epsilon \(epsilon)\(relu ? " relu" : "")"
        }
    }

    private static func flags(training: Bool, relu: Bool) -> UInt32 {
        var flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        if !training { flags |= dnnl_use_global_stats.rawValue }
        if relu { flags |= dnnl_fuse_norm_relu.rawValue }
        return flags
    }

    private static func forwardPD(_ plan: DNNLPlan, rows: Int, channels: Int, epsilon: Float, training: Bool,
                                  relu: Bool) -> OpaquePointer? {
        guard var data = dataDescriptor(rows: rows, channels: channels) else { return nil }
        var desc = dnnl_batch_normalization_desc_t()
        guard dnnl_batch_normalization_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, &data, epsilon,
            flags(training: training, relu: relu)) == dnnl_success
        else { return nil }
        return plan.primitiveDescriptor(&desc)
    }

    /// Training forward: y = γ·(x − μ)/√(σ² + ε) + β with batch statistics (then max(0, y) when `relu`); writes
    /// the batch mean and the biased batch variance. Returns nil when oneDNN cannot run it, otherwise the ReLU
    /// workspace the backward pass needs (nil inside without ReLU).
    static func forwardTraining(rows: Int, channels: Int, epsilon: Float, relu: Bool, input: UnsafeMutableRawPointer,
                                scale: UnsafeMutableRawPointer, shift: UnsafeMutableRawPointer,
                                output: UnsafeMutableRawPointer, mean: UnsafeMutableRawPointer,
                                variance: UnsafeMutableRawPointer) -> DNNLBuffer?? {
        guard let runtime = DNNLRuntime.shared else { return nil }
        var workspace: DNNLBuffer?
        let prepare: ((DNNLPlan) -> [UnsafeMutableRawPointer?])? = relu ? { plan in
            let buffer = DNNLBuffer(byteCount: plan.workspaceBytes)
            workspace = buffer
            return [buffer.pointer]
        } : nil
        let ok = runtime.run(key("batchNorm.forwardTraining", rows: rows, channels: channels, epsilon: epsilon, relu: relu),
                             slots: relu ? 7 : 6, pointers: [input, scale, shift, output, mean, variance],
                             prepare: prepare) { plan in
            guard let data = dataDescriptor(rows: rows, channels: channels),
                  let vector = memoryDescriptor([channels], dnnl_x),
                  let pd = forwardPD(plan, rows: rows, channels: channels, epsilon: epsilon, training: true, relu: relu),
                  let x = plan.external(0, data), let g = plan.external(1, vector), let b = plan.external(2, vector),
                  let y = plan.external(3, data), let m = plan.external(4, vector), let v = plan.external(5, vector)
            else { return false }
            var args: [(Int32, OpaquePointer)] = [(DNNLArg.src, x), (DNNLArg.scale, g), (DNNLArg.shift, b),
                                                  (DNNLArg.dst, y), (DNNLArg.mean, m), (DNNLArg.variance, v)]
            if relu {
                guard var ws = DNNLPlan.queried(pd, dnnl_query_workspace_md) else { return false }
                plan.workspaceBytes = dnnl_memory_desc_get_size(&ws)
                guard plan.workspaceBytes > 0, let memory = plan.external(6, ws) else { return false }
                args.append((DNNLArg.workspace, memory))
            }
            return plan.addStep(pd, args)
        }
        return ok ? .some(workspace) : nil
    }

    /// Inference forward with given (running) mean and variance, optionally followed by ReLU.
    static func forwardInference(rows: Int, channels: Int, epsilon: Float, relu: Bool, input: UnsafeMutableRawPointer,
                                 scale: UnsafeMutableRawPointer, shift: UnsafeMutableRawPointer,
                                 mean: UnsafeMutableRawPointer, variance: UnsafeMutableRawPointer,
                                 output: UnsafeMutableRawPointer) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        return runtime.run(key("batchNorm.forwardInference", rows: rows, channels: channels, epsilon: epsilon, relu: relu),
                           slots: 6, pointers: [input, scale, shift, mean, variance, output]) { plan in
            guard let data = dataDescriptor(rows: rows, channels: channels),
                  let vector = memoryDescriptor([channels], dnnl_x),
                  let pd = forwardPD(plan, rows: rows, channels: channels, epsilon: epsilon, training: false, relu: relu),
                  let x = plan.external(0, data), let g = plan.external(1, vector), let b = plan.external(2, vector),
                  let m = plan.external(3, vector), let v = plan.external(4, vector), let y = plan.external(5, data)
            else { return false }
            return plan.addStep(pd, [(DNNLArg.src, x), (DNNLArg.scale, g), (DNNLArg.shift, b), (DNNLArg.mean, m),
                                     (DNNLArg.variance, v), (DNNLArg.dst, y)])
        }
    }

    /// Backward through the batch statistics: dx, dγ, dβ from dy, x, γ and the saved mean and (biased) variance.
    /// With `reluWorkspace` (from a fused-ReLU training forward) dy is first masked where the ReLU clipped.
    /// oneDNN 2.6 insists on the shift as an input of the backward primitive although the gradients do not depend
    /// on it.
    static func backward(rows: Int, channels: Int, epsilon: Float, reluWorkspace: DNNLBuffer?,
                         gradOutput: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer,
                         scale: UnsafeMutableRawPointer, shift: UnsafeMutableRawPointer, mean: UnsafeMutableRawPointer,
                         variance: UnsafeMutableRawPointer, gradInput: UnsafeMutableRawPointer,
                         gradScale: UnsafeMutableRawPointer, gradShift: UnsafeMutableRawPointer) -> Bool {
        guard let runtime = DNNLRuntime.shared else { return false }
        let relu = reluWorkspace != nil
        var pointers: [UnsafeMutableRawPointer?] = [gradOutput, input, scale, mean, variance, gradInput, gradScale,
                                                     gradShift, shift]
        if let reluWorkspace { pointers.append(reluWorkspace.pointer) }
        return runtime.run(key("batchNorm.backward", rows: rows, channels: channels, epsilon: epsilon, relu: relu),
                           slots: pointers.count, pointers: pointers) { plan in
            guard var data = dataDescriptor(rows: rows, channels: channels),
                  let vector = memoryDescriptor([channels], dnnl_x),
                  let hint = forwardPD(plan, rows: rows, channels: channels, epsilon: epsilon, training: true, relu: relu)
            else { return false }
            var diffData = data
            var desc = dnnl_batch_normalization_desc_t()
            guard dnnl_batch_normalization_backward_desc_init(
                &desc, dnnl_backward, &diffData, &data, epsilon, flags(training: true, relu: relu)) == dnnl_success,
                  let pd = plan.primitiveDescriptor(&desc, hint: hint),
                  let dy = plan.external(0, data), let x = plan.external(1, data), let g = plan.external(2, vector),
                  let m = plan.external(3, vector), let v = plan.external(4, vector),
                  let dx = plan.external(5, data), let dg = plan.external(6, vector), let db = plan.external(7, vector),
                  let b = plan.external(8, vector)
            else { return false }
            var args: [(Int32, OpaquePointer)] = [
                (DNNLArg.diffDst, dy), (DNNLArg.src, x), (DNNLArg.scale, g), (DNNLArg.shift, b), (DNNLArg.mean, m),
                (DNNLArg.variance, v), (DNNLArg.diffSrc, dx), (DNNLArg.diffScale, dg), (DNNLArg.diffShift, db)]
            if let reluWorkspace {
                guard var ws = DNNLPlan.queried(pd, dnnl_query_workspace_md),
                      dnnl_memory_desc_get_size(&ws) <= reluWorkspace.byteCount,
                      let memory = plan.external(9, ws) else { return false }
                args.append((DNNLArg.workspace, memory))
            }
            return plan.addStep(pd, args)
        }
    }
}
