import CLinearAlgebra

// The one seam to LAPACKE. LAPACK's `info` codes are returned as `Int` and interpreted by the callers in
// Tensor+Factorizations.swift. All calls use column-major storage; callers pass transposed views.

extension Float {
    public static func gesdd(jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                             s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>?, ldu: Int,
                             vt: UnsafeMutablePointer<Float>?, ldvt: Int) -> Int {
        LinearAlgebraThreads.ensureConfigured()
        return Int(LAPACKE_sgesdd(LAPACK_COL_MAJOR, CChar(jobz), Int32(m), Int32(n), a, Int32(lda), s,
                                  u, Int32(ldu), vt, Int32(ldvt)))
    }
    public static func gesvd(jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                             s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>?, ldu: Int,
                             vt: UnsafeMutablePointer<Float>?, ldvt: Int) -> Int {
        LinearAlgebraThreads.ensureConfigured()
        var superb = [Float](repeating: 0, count: max(1, min(m, n)))
        return Int(LAPACKE_sgesvd(LAPACK_COL_MAJOR, CChar(jobu), CChar(jobvt), Int32(m), Int32(n), a, Int32(lda),
                                  s, u, Int32(ldu), vt, Int32(ldvt), &superb))
    }
    public static func geqrf(m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                             tau: UnsafeMutablePointer<Float>) -> Int {
        Int(LAPACKE_sgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau))
    }
    public static func orgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                             tau: UnsafePointer<Float>) -> Int {
        Int(LAPACKE_sorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(k), a, Int32(lda), tau))
    }
    public static func syevd(n: Int, a: UnsafeMutablePointer<Float>, lda: Int, w: UnsafeMutablePointer<Float>) -> Int {
        Int(LAPACKE_ssyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(n), a,
                           Int32(lda), w))
    }
    public static func gesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                            b: UnsafeMutablePointer<Float>, ldb: Int) -> Int {
        var pivots = [Int32](repeating: 0, count: max(1, n))
        return Int(LAPACKE_sgesv(LAPACK_COL_MAJOR, Int32(n), Int32(nrhs), a, Int32(lda), &pivots, b, Int32(ldb)))
    }
    public static func gelsd(m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                             b: UnsafeMutablePointer<Float>, ldb: Int, rcond: Float, rank: inout Int) -> Int {
        var s = [Float](repeating: 0, count: max(1, min(m, n)))
        var r: Int32 = 0
        let info = LAPACKE_sgelsd(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb),
                                  &s, rcond, &r)
        rank = Int(r)
        return Int(info)
    }
    public static func potrf(n: Int, a: UnsafeMutablePointer<Float>, lda: Int) -> Int {
        Int(LAPACKE_spotrf(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), a, Int32(lda)))
    }
    public static func potrs(n: Int, nrhs: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafeMutablePointer<Float>, ldb: Int) -> Int {
        Int(LAPACKE_spotrs(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb)))
    }
    public static func pocon(n: Int, a: UnsafePointer<Float>, lda: Int, norm1: Float, reciprocalCondition: inout Float) -> Int {
        Int(LAPACKE_spocon(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), a, Int32(lda), norm1, &reciprocalCondition))
    }
}

extension Double {
    public static func gesdd(jobz: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             s: UnsafeMutablePointer<Double>, u: UnsafeMutablePointer<Double>?, ldu: Int,
                             vt: UnsafeMutablePointer<Double>?, ldvt: Int) -> Int {
        LinearAlgebraThreads.ensureConfigured()
        return Int(LAPACKE_dgesdd(LAPACK_COL_MAJOR, CChar(jobz), Int32(m), Int32(n), a, Int32(lda), s,
                                  u, Int32(ldu), vt, Int32(ldvt)))
    }
    public static func gesvd(jobu: UInt8, jobvt: UInt8, m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             s: UnsafeMutablePointer<Double>, u: UnsafeMutablePointer<Double>?, ldu: Int,
                             vt: UnsafeMutablePointer<Double>?, ldvt: Int) -> Int {
        LinearAlgebraThreads.ensureConfigured()
        var superb = [Double](repeating: 0, count: max(1, min(m, n)))
        return Int(LAPACKE_dgesvd(LAPACK_COL_MAJOR, CChar(jobu), CChar(jobvt), Int32(m), Int32(n), a, Int32(lda),
                                  s, u, Int32(ldu), vt, Int32(ldvt), &superb))
    }
    public static func geqrf(m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             tau: UnsafeMutablePointer<Double>) -> Int {
        Int(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau))
    }
    public static func orgqr(m: Int, n: Int, k: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             tau: UnsafePointer<Double>) -> Int {
        Int(LAPACKE_dorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(k), a, Int32(lda), tau))
    }
    public static func syevd(n: Int, a: UnsafeMutablePointer<Double>, lda: Int, w: UnsafeMutablePointer<Double>) -> Int {
        Int(LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(n), a,
                           Int32(lda), w))
    }
    public static func gesv(n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                            b: UnsafeMutablePointer<Double>, ldb: Int) -> Int {
        var pivots = [Int32](repeating: 0, count: max(1, n))
        return Int(LAPACKE_dgesv(LAPACK_COL_MAJOR, Int32(n), Int32(nrhs), a, Int32(lda), &pivots, b, Int32(ldb)))
    }
    public static func gelsd(m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
                             b: UnsafeMutablePointer<Double>, ldb: Int, rcond: Double, rank: inout Int) -> Int {
        var s = [Double](repeating: 0, count: max(1, min(m, n)))
        var r: Int32 = 0
        let info = LAPACKE_dgelsd(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb),
                                  &s, rcond, &r)
        rank = Int(r)
        return Int(info)
    }
    public static func potrf(n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int {
        Int(LAPACKE_dpotrf(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), a, Int32(lda)))
    }
    public static func potrs(n: Int, nrhs: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafeMutablePointer<Double>, ldb: Int) -> Int {
        Int(LAPACKE_dpotrs(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), Int32(nrhs), a, Int32(lda), b, Int32(ldb)))
    }
    public static func pocon(n: Int, a: UnsafePointer<Double>, lda: Int, norm1: Double, reciprocalCondition: inout Double) -> Int {
        Int(LAPACKE_dpocon(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), a, Int32(lda), norm1, &reciprocalCondition))
    }
}
