#ifndef LOWRANK_CLINEARALGEBRA_SHIM_H
#define LOWRANK_CLINEARALGEBRA_SHIM_H
// Debian's OpenBLAS (OpenMP build) and LAPACKE. OpenBLAS uses 32-bit indices here.
#define HAVE_LAPACK_CONFIG_H 1
#define LAPACK_COMPLEX_STRUCTURE 1
#include <cblas.h>
#include <lapacke.h>
#include <malloc.h>  // mallopt: heap tuning for large tensor buffers (BLAS.swift)
#endif
