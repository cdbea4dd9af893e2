#ifndef LOWRANK_CZLIB_SHIM_H
#define LOWRANK_CZLIB_SHIM_H
// zlib (Debian zlib1g-dev): gunzip of the IDX data files. Used only by NeuralNetworks/Data/Gzip.swift.
#include <zlib.h>
#endif
