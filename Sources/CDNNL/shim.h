#ifndef LOWRANK_CDNNL_SHIM_H
#define LOWRANK_CDNNL_SHIM_H
// oneDNN 2.x C API (Debian libdnnl-dev). Used only by TensorCore/DNNL.swift.
#include <oneapi/dnnl/dnnl.h>
#endif
