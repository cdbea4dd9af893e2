import CLinearAlgebra
import Foundation

// The one seam to CBLAS. `Int32` and `CblasRowMajor` appear nowhere else.

/// Threads used by OpenBLAS (and, through the shared OpenMP pool, by everything that runs on it).
///
/// The count comes from the environment variable `LOWRANK_THREADS` (default: every core) the first time
/// linear algebra runs, and can be changed at any time.
public enum LinearAlgebraThreads {
    private static let configured: Void = {
        let env = ProcessInfo.processInfo.environment["LOWRANK_THREADS"].flatMap { Int($0) }
        let count = max(1, env ?? ProcessInfo.processInfo.activeProcessorCount)
        openblas_set_num_threads(Int32(count))
    }()

    /// Applies `LOWRANK_THREADS` once; every BLAS entry point calls this.
    @inline(__always) static func ensureConfigured() { _ = configured }

    /// The number of threads OpenBLAS uses now.
    public static var count: Int {
        get { ensureConfigured(); return Int(openblas_get_num_threads()) }
        set { ensureConfigured(); openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's own build description (core type, threading model).
    public static var backendDescription: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: config)
    }
}

@inline(__always) private func cblasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float {
    /// The multiply-add count (m·n·k) from which `gemm` runs on oneDNN's GEMM rather than OpenBLAS's.
    ///
    /// Measured side by side on the development machine (2 threads, Sapphire Rapids, oneDNN 2.6 against OpenBLAS
    /// 0.3.21), oneDNN's is 2.5–5.7× faster on the skinny products that factorized layers run — (65536×4)·(4×4)
    /// 0.09 vs 0.52 ms, (65536×16)·(16×16) 0.25 vs 1.13 ms, 1×1 conv stages (50176×64)·(64×27) 1.3 vs 3.3 ms and their
    /// weight gradients — 1.0–1.7× faster on 128³ to 2048³ and on (256×1024)·(1024×64)-like thin ones, and slower
    /// only below about 64³, where its dispatch costs a few microseconds.
    public static let oneDNNGEMMThreshold = 1 << 20

    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        LinearAlgebraThreads.ensureConfigured()
        if m * n * k >= oneDNNGEMMThreshold,
           DNNLRuntime.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                             a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) { return }
        cblas_sgemm(CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func gemv(
        transpose: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
    ) {
        LinearAlgebraThreads.ensureConfigured()
        cblas_sgemv(CblasRowMajor, cblasTranspose(transpose), Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }
    public static func axpy(n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }
    public static func dot(n: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(n), x, 1, y, 1)
    }
    public static func syrk(transposeA: Bool, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        LinearAlgebraThreads.ensureConfigured()
        cblas_ssyrk(CblasRowMajor, CblasUpper, cblasTranspose(transposeA), Int32(n), Int32(k), 1, a, Int32(lda), 0, c, Int32(ldc))
    }
}

extension Double {
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        LinearAlgebraThreads.ensureConfigured()
        cblas_dgemm(CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func gemv(
        transpose: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>
    ) {
        LinearAlgebraThreads.ensureConfigured()
        cblas_dgemv(CblasRowMajor, cblasTranspose(transpose), Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }
    public static func axpy(n: Int, alpha: Double, x: UnsafePointer<Double>, y: UnsafeMutablePointer<Double>) {
        cblas_daxpy(Int32(n), alpha, x, 1, y, 1)
    }
    public static func dot(n: Int, x: UnsafePointer<Double>, y: UnsafePointer<Double>) -> Double {
        cblas_ddot(Int32(n), x, 1, y, 1)
    }
    public static func syrk(transposeA: Bool, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, c: UnsafeMutablePointer<Double>, ldc: Int) {
        LinearAlgebraThreads.ensureConfigured()
        cblas_dsyrk(CblasRowMajor, CblasUpper, cblasTranspose(transposeA), Int32(n), Int32(k), 1, a, Int32(lda), 0, c, Int32(ldc))
    }
}

/// Calls `cblas_sgemm` directly with no Tensor around it: the reference the core benchmark compares against.
public func referenceSgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                           c: UnsafeMutablePointer<Float>) {
    LinearAlgebraThreads.ensureConfigured()
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k),
                b, Int32(n), 0, c, Int32(n))
}

/// Which OpenBLAS kernels run, and a fix for CPUs that Debian's OpenBLAS 0.3.21 does not recognise.
///
/// OpenBLAS picks its kernels once, when the library loads. On recent CPUs reported under a generic name
/// (for example "Intel Xeon Processor" on a Sapphire Rapids host) its detection falls back to the SSE3
/// "Prescott" kernels, which run FP32 GEMM 3–5× below the machine's ceiling. `OPENBLAS_CORETYPE` overrides the
/// choice, but only before the library loads, so a program calls `relaunchWithBestKernelsIfNeeded()` first
/// thing: it re-executes the process once with the variable set when the CPU supports better kernels.
public enum BLASKernels {
    /// The kernel family OpenBLAS chose ("Prescott", "Haswell", "SkylakeX", …).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The best kernel family this CPU supports according to /proc/cpuinfo, or nil if unknown.
    public static func bestSupportedCoreType() -> String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// Re-executes the current process with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to its generic
    /// Prescott kernels on a CPU that supports better ones. Does nothing when the variable is already set
    /// (by the user or by a previous relaunch) or when the kernels are already right.
    public static func relaunchWithBestKernelsIfNeeded() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              coreName.lowercased() == "prescott",
              let best = bestSupportedCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", best, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv only returns on failure: keep running with the slower kernels.
    }
}

/// Process-wide heap tuning for programs that allocate many large tensors.
public enum TensorMemory {
    /// Keeps freed large buffers in the heap for reuse instead of returning them to the kernel.
    ///
    /// glibc serves allocations above 32 MiB with fresh `mmap`s, so every large temporary is page-faulted anew
    /// (about as slow as writing it). Raising the thresholds to 1 GiB lets a freed buffer be reused as-is.
    public static func keepFreedBuffersForReuse() {
        mallopt(M_MMAP_THRESHOLD, 1 << 30)
        mallopt(M_TRIM_THRESHOLD, 1 << 30)
    }
}
