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
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        LinearAlgebraThreads.ensureConfigured()
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
}

/// Calls `cblas_sgemm` directly with no Tensor around it: the reference the core benchmark compares against.
public func referenceSgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                           c: UnsafeMutablePointer<Float>) {
    LinearAlgebraThreads.ensureConfigured()
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k),
                b, Int32(n), 0, c, Int32(n))
}
