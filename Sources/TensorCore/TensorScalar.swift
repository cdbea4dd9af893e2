import RealModule

/// The element types a `Tensor` can hold: `Float` and `Double`.
///
/// Besides arithmetic (`Real` from swift-numerics) a scalar type knows how to call the BLAS and LAPACK
/// routine of its precision; those requirements are implemented in `BLAS.swift` and `LAPACK.swift`,
/// the only files that talk to C.
public protocol TensorScalar: Real, BinaryFloatingPoint, SIMDScalar, Sendable, Codable {
    /// Name of the type in messages and files: "float32" or "float64".
    static var dtypeName: String { get }
    /// Machine epsilon of the type.
    static var unitRoundoff: Self { get }

    // MARK: BLAS (row-major). Implemented in BLAS.swift.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func gemv(
        transpose: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, beta: Self, y: UnsafeMutablePointer<Self>)
    static func axpy(n: Int, alpha: Self, x: UnsafePointer<Self>, y: UnsafeMutablePointer<Self>)
    static func dot(n: Int, x: UnsafePointer<Self>, y: UnsafePointer<Self>) -> Self
    /// The upper triangle of C = A·Aᵀ (A n×k) or, with `transposeA`, of C = Aᵀ·A (A k×n).
    static func syrk(transposeA: Bool, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int, c: UnsafeMutablePointer<Self>, ldc: Int)

    // MARK: LAPACK (column-major, as LAPACK is). Implemented in LAPACK.swift; return LAPACK's `info`.
    static func gesdd(jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                      s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int,
                      vt: UnsafeMutablePointer<Self>?, ldvt: Int) -> Int
    static func gesvd(jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                      s: UnsafeMutablePointer<Self>, u: UnsafeMutablePointer<Self>?, ldu: Int,
                      vt: UnsafeMutablePointer<Self>?, ldvt: Int) -> Int
    static func geqrf(m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                      tau: UnsafeMutablePointer<Self>) -> Int
    static func orgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                      tau: UnsafePointer<Self>) -> Int
    static func syevd(n: Int, a: UnsafeMutablePointer<Self>, lda: Int, w: UnsafeMutablePointer<Self>) -> Int
    static func gesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                     b: UnsafeMutablePointer<Self>, ldb: Int) -> Int
    static func gelsd(m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
                      b: UnsafeMutablePointer<Self>, ldb: Int, rcond: Self, rank: inout Int) -> Int
    static func potrf(n: Int, a: UnsafeMutablePointer<Self>, lda: Int) -> Int
    static func potrs(n: Int, nrhs: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafeMutablePointer<Self>, ldb: Int) -> Int
    static func pocon(n: Int, a: UnsafePointer<Self>, lda: Int, norm1: Self, reciprocalCondition: inout Self) -> Int
}

extension Float: TensorScalar {
    public static var dtypeName: String { "float32" }
    public static var unitRoundoff: Float { Float.ulpOfOne }
}

extension Double: TensorScalar {
    public static var dtypeName: String { "float64" }
    public static var unitRoundoff: Double { Double.ulpOfOne }
}
