#!/usr/bin/env python3
"""Fixtures for LowRank's file I/O tests, and a check that Python reads what LowRank writes.

Usage:
  python3 scripts/make_io_fixtures.py                # rewrite Tests/TensorCoreTests/Fixtures/*
  python3 scripts/make_io_fixtures.py --check PATH   # load PATH (written by LowRank) with the Python
                                                     # safetensors / numpy packages and compare it with the
                                                     # formulas below; exit status 1 on any difference

Needs numpy and safetensors (`pip install safetensors`); torch is not needed.

The Swift tests (SafeTensorsTests, NPYTests) recompute every value from the formulas below, so they are
the single source of truth. `i` is the row-major element index 0, 1, 2, ...; every value is exact in its
type (no rounding happens anywhere except where a division is noted; it is correctly rounded in both
languages).

all_dtypes.safetensors (safetensors.numpy.save_file, metadata = METADATA)
  f64          F64   [2, 3, 4]  (i - 12) / 3                        (float64 division)
  f32          F32   [3, 4]     float32(i - 6) / float32(3)         (float32 division)
  f16          F16   [2, 5]     (i - 5) * 0.25
  f16_special  F16   [8]        0, -0, 2^-24, 2^-14, 65504, inf, -inf, -2^-24
  i64          I64   [7]        (i - 3) * 2^40 + i
  i64_extremes I64   [2]        -2^63, 2^63 - 1
  i32          I32   [13]       (i - 6) * 100000
  i16          I16   [13]       (i - 6) * 1000
  i8           I8    [13]       (i - 6) * 20
  u8           U8    [16]       i * 17
  u16          U16   [16]       i * 4369
  u32          U32   [16]       i * 286331153
  u64          U64   [8]        i * 2^60
  bool         BOOL  [2, 5]     i % 3 == 0
  empty        F32   [0, 3]     (no elements)
  scalar       F64   []         2.5

bf16.safetensors (safetensors.serialize_file; numpy has no bfloat16), metadata = {"format": "bf16"}
  bf16         BF16  [4, 4]     (i - 8) * 0.5

.npy files (numpy.save unless noted)
  f4_3x4.npy       <f4 (3, 4)      float32(i - 6) / float32(3)
  f8_2x3x4.npy     <f8 (2, 3, 4)   (i - 12) / 3
  f8_vector.npy    <f8 (5,)        (i - 2) / 3
  f8_scalar.npy    <f8 ()          2.5
  f4_empty.npy     <f4 (0, 3)
  f8_v2.npy        <f8 (5,)        (i - 2) / 3, format version 2.0 (numpy.lib.format.write_array)
  f4_v3.npy        <f4 (3, 4)      float32(i - 6) / float32(3), format version 3.0
  i8.npy           <i8 (7,)        (i - 3) * 1000
  i4.npy           <i4 (7,)        (i - 3) * 1000
  u1.npy           |u1 (16,)       i * 17
  fortran.npy      <f4 (3, 4)      as f4_3x4 but Fortran order (LowRank must refuse it)
  big_endian.npy   >f4 (3,)        0, 1, 2 (LowRank must refuse it)

--check PATH accepts a .safetensors file holding the tensors of all_dtypes.safetensors and bf16.safetensors
(every name, with METADATA), or a .npy file holding f4_3x4 (if <f4) or f8_2x3x4 (if <f8).
"""

import os
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, safe_open, serialize_file
from safetensors.numpy import save_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TensorCoreTests", "Fixtures")

METADATA = {"format": "np", "producer": "make_io_fixtures.py", "note": 'ünïcödé ✓ "quoted" \\ tab\tend'}


def idx(n):
    return np.arange(n, dtype=np.int64)


def f32_thirds(n, offset):
    return (np.arange(n, dtype=np.float32) - np.float32(offset)) / np.float32(3)


def all_dtypes():
    """name -> numpy array, as in the table above."""
    return {
        "f64": ((idx(24) - 12) / 3).reshape(2, 3, 4).astype(np.float64),
        "f32": f32_thirds(12, 6).reshape(3, 4),
        "f16": ((idx(10) - 5) * 0.25).astype(np.float16).reshape(2, 5),
        "f16_special": np.array([0.0, -0.0, 2.0**-24, 2.0**-14, 65504.0, np.inf, -np.inf, -(2.0**-24)],
                                dtype=np.float16),
        "i64": ((idx(7) - 3) * 2**40 + idx(7)).astype(np.int64),
        "i64_extremes": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "i32": ((idx(13) - 6) * 100000).astype(np.int32),
        "i16": ((idx(13) - 6) * 1000).astype(np.int16),
        "i8": ((idx(13) - 6) * 20).astype(np.int8),
        "u8": (idx(16) * 17).astype(np.uint8),
        "u16": (idx(16) * 4369).astype(np.uint16),
        "u32": (idx(16) * 286331153).astype(np.uint32),
        "u64": (np.arange(8, dtype=np.uint64) * np.uint64(2**60)),
        "bool": (idx(10) % 3 == 0).reshape(2, 5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float64),
    }


def bf16_values():
    """The bf16 tensor as float32 values; each is exact in bfloat16 (the top 16 bits of the float32)."""
    return ((np.arange(16, dtype=np.float32) - 8) * np.float32(0.5)).reshape(4, 4)


def bf16_bits(values):
    bits = values.astype(np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0), "value not exact in bfloat16"
    return (bits >> 16).astype(np.uint16)


def npy_arrays():
    """file name -> (array, version or None for numpy.save)."""
    return {
        "f4_3x4.npy": (f32_thirds(12, 6).reshape(3, 4), None),
        "f8_2x3x4.npy": (((idx(24) - 12) / 3).reshape(2, 3, 4), None),
        "f8_vector.npy": ((idx(5) - 2) / 3, None),
        "f8_scalar.npy": (np.array(2.5), None),
        "f4_empty.npy": (np.zeros((0, 3), dtype=np.float32), None),
        "f8_v2.npy": ((idx(5) - 2) / 3, (2, 0)),
        "f4_v3.npy": (f32_thirds(12, 6).reshape(3, 4), (3, 0)),
        "i8.npy": (((idx(7) - 3) * 1000).astype("<i8"), None),
        "i4.npy": (((idx(7) - 3) * 1000).astype("<i4"), None),
        "u1.npy": ((idx(16) * 17).astype("|u1"), None),
        "fortran.npy": (np.asfortranarray(f32_thirds(12, 6).reshape(3, 4)), None),
        "big_endian.npy": (np.arange(3, dtype=">f4"), None),
    }


def write_fixtures():
    os.makedirs(FIXTURES, exist_ok=True)
    save_file(all_dtypes(), os.path.join(FIXTURES, "all_dtypes.safetensors"), metadata=METADATA)

    bits = bf16_bits(bf16_values())
    spec = TensorSpec(dtype="bfloat16", shape=bits.shape, data_ptr=bits.ctypes.data, data_len=bits.nbytes)
    serialize_file({"bf16": spec}, os.path.join(FIXTURES, "bf16.safetensors"), metadata={"format": "bf16"})

    for name, (array, version) in npy_arrays().items():
        path = os.path.join(FIXTURES, name)
        if version is None:
            np.save(path, array)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, array, version=version)
    for name in sorted(os.listdir(FIXTURES)):
        print(f"wrote {name} ({os.path.getsize(os.path.join(FIXTURES, name))} bytes)")


def same(a, b):
    """Exact equality of dtype, shape and every element (NaN never expected; -0 vs 0 told apart)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b) and np.array_equal(np.signbit(a), np.signbit(b))
    return np.array_equal(a, b)


def check(path):
    with open(path, "rb") as f:
        magic = f.read(6)
    problems = []
    if magic == b"\x93NUMPY":
        array = np.load(path)
        expected = {"<f4": npy_arrays()["f4_3x4.npy"][0], "<f8": npy_arrays()["f8_2x3x4.npy"][0]}.get(array.dtype.str)
        if expected is None:
            problems.append(f"unexpected dtype {array.dtype.str}")
        elif not same(array, expected):
            problems.append(f"values differ: got {array!r}")
        print(f"numpy {np.__version__} loaded {path}: dtype {array.dtype.str}, shape {array.shape}")
    else:
        expected = all_dtypes()
        # safetensors.numpy cannot return bfloat16; read that one as raw bytes.
        with open(path, "rb") as f:
            raw = dict(safetensors.deserialize(f.read()))
        with safe_open(path, framework="np") as f:
            metadata = f.metadata()
            names = sorted(f.keys())
            loaded = {name: f.get_tensor(name) for name in names if name != "bf16"}
        print(f"safetensors {safetensors.__version__} loaded {path}: {len(names)} tensors, metadata {metadata}")
        if metadata != METADATA:
            problems.append(f"metadata {metadata} != {METADATA}")
        if set(names) != set(expected) | {"bf16"}:
            problems.append(f"names {names} != {sorted(set(expected) | {'bf16'})}")
        for name, want in expected.items():
            if name in loaded and not same(loaded[name], want):
                problems.append(f"{name}: got {loaded[name]!r}, want {want!r}")
        if "bf16" in raw:
            info = raw["bf16"]
            got = np.frombuffer(bytes(info["data"]), dtype="<u2").reshape(info["shape"])
            if info["dtype"] not in ("bfloat16", "BF16") or not np.array_equal(got, bf16_bits(bf16_values())):
                problems.append(f"bf16: dtype {info['dtype']}, bits {got!r}")
    for problem in problems:
        print("MISMATCH:", problem)
    print("OK: every tensor and the metadata match the formulas" if not problems else f"{len(problems)} mismatches")
    return 0 if not problems else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    elif len(sys.argv) == 1:
        write_fixtures()
    else:
        print(__doc__)
        sys.exit(2)
