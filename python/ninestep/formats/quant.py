"""GGML tensor types: block layouts and a NumPy dequantize reference.

Written from the ggml block layouts (ggml-common.h): every block starts or ends with fp16 scales,
all multi-byte fields are little-endian. Dequantizers work on all blocks of a tensor at once
(arrays [n_blocks, bytes_per_block]) and follow ggml's float32 order of operations, so results
match ggml and gguf-py bit for bit.
"""
from typing import NamedTuple

import numpy as np

QK_K = 256  # elements per K-quant super-block


class GGMLType(NamedTuple):
    id: int
    name: str
    block: int  # elements per block
    nbytes: int  # bytes per block


# Every type a GGUF file may store; sizes let a reader validate a file's layout even for types
# it cannot dequantize. Activation-only types (Q8_1, Q8_K) never appear in files.
_TYPES = [
    (0, "f32", 1, 4), (1, "f16", 1, 2), (2, "q4_0", 32, 18), (3, "q4_1", 32, 20),
    (6, "q5_0", 32, 22), (7, "q5_1", 32, 24), (8, "q8_0", 32, 34),
    (10, "q2_k", QK_K, 84), (11, "q3_k", QK_K, 110), (12, "q4_k", QK_K, 144),
    (13, "q5_k", QK_K, 176), (14, "q6_k", QK_K, 210),
    (16, "iq2_xxs", QK_K, 66), (17, "iq2_xs", QK_K, 74), (18, "iq3_xxs", QK_K, 98),
    (19, "iq1_s", QK_K, 50), (20, "iq4_nl", 32, 18), (21, "iq3_s", QK_K, 110),
    (22, "iq2_s", QK_K, 82), (23, "iq4_xs", QK_K, 136),
    (24, "i8", 1, 1), (25, "i16", 1, 2), (26, "i32", 1, 4), (27, "i64", 1, 8), (28, "f64", 1, 8),
    (29, "iq1_m", QK_K, 56), (30, "bf16", 1, 2), (34, "tq1_0", QK_K, 54), (35, "tq2_0", QK_K, 66),
    (39, "mxfp4", 32, 17),
]
TYPES = {i: GGMLType(i, n, b, s) for i, n, b, s in _TYPES}
BY_NAME = {t.name: t for t in TYPES.values()}

# plain element types: viewed as NumPy arrays directly
PLAIN_DTYPES = {
    "f32": np.dtype("<f4"), "f16": np.dtype("<f2"), "bf16": np.dtype("<u2"), "f64": np.dtype("<f8"),
    "i8": np.dtype("i1"), "i16": np.dtype("<i2"), "i32": np.dtype("<i4"), "i64": np.dtype("<i8"),
}


def _f16(blocks, start):
    """fp16 field at byte `start` of every block -> float32 [n_blocks, 1]."""
    return np.ascontiguousarray(blocks[:, start:start + 2]).view("<f2").astype(np.float32)


def _nibbles(qs):
    """[n, 16] bytes -> [n, 32]: element j in the low nibble of byte j, j+16 in the high nibble."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _high_bits_32(qh_bytes):
    """[n, 4] bytes of a little-endian uint32 -> [n, 32] of bit j (0 or 16) for element j."""
    qh = np.ascontiguousarray(qh_bytes).view("<u4")  # [n, 1]
    return (((qh >> np.arange(32, dtype=np.uint32)) & 1) << 4).astype(np.uint8)


def _q4_0(b):  # d | qs[16]
    return (_nibbles(b[:, 2:]).astype(np.int8) - np.int8(8)).astype(np.float32) * _f16(b, 0)


def _q4_1(b):  # d | m | qs[16]
    return _nibbles(b[:, 4:]).astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def _q5_0(b):  # d | qh[4] | qs[16]
    q = _nibbles(b[:, 6:]) | _high_bits_32(b[:, 2:6])
    return (q.astype(np.int8) - np.int8(16)).astype(np.float32) * _f16(b, 0)


def _q5_1(b):  # d | m | qh[4] | qs[16]
    q = _nibbles(b[:, 8:]) | _high_bits_32(b[:, 4:8])
    return q.astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def _q8_0(b):  # d | qs[32] int8
    return b[:, 2:].view(np.int8).astype(np.float32) * _f16(b, 0)


def _k_scales_mins(sc):
    """The 12 packed bytes of Q4_K/Q5_K -> (scales, mins), each [n, 8] of 6-bit values.

    Sub-blocks 0-3: low 6 bits of bytes 0-3 (scale) and 4-7 (min). Sub-blocks 4-7: low nibble
    of bytes 8-11 (scale) / high nibble (min), plus 2 high bits taken from the top of bytes
    0-3 (scale) and 4-7 (min)."""
    lo_s, lo_m, hi = sc[:, 0:4], sc[:, 4:8], sc[:, 8:12]
    scales = np.concatenate([lo_s & 63, (hi & 0x0F) | ((lo_s >> 6) << 4)], axis=1)
    mins = np.concatenate([lo_m & 63, (hi >> 4) | ((lo_m >> 6) << 4)], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_apply(q, b, n):
    """q [n, 8, 32] sub-block quants -> d*scale*q - dmin*min for Q4_K / Q5_K."""
    scales, mins = _k_scales_mins(b[:, 4:16])
    d1 = (_f16(b, 0) * scales)[:, :, None]
    m1 = (_f16(b, 2) * mins)[:, :, None]
    return (d1 * q.astype(np.float32) - m1).reshape(n, QK_K)


def _k_nibbles(qs, n):
    """[n, 128] bytes -> [n, 8, 32]: each 32-byte chunk c gives sub-block 2c (low nibbles) and
    2c+1 (high nibbles)."""
    qs = qs.reshape(n, 4, 1, 32)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32)


def _q4_k(b):  # d | dmin | scales[12] | qs[128]
    n = b.shape[0]
    return _k_apply(_k_nibbles(b[:, 16:], n), b, n)


def _q5_k(b):  # d | dmin | scales[12] | qh[32] | qs[128]
    n = b.shape[0]
    q = _k_nibbles(b[:, 48:], n)
    # bit s of qh[l] is the fifth bit of element l of sub-block s
    high = (b[:, None, 16:48] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
    return _k_apply(q | (high << 4), b, n)


def _q6_k(b):  # ql[128] | qh[64] | scales[16] int8 | d
    n = b.shape[0]
    ql = b[:, 0:128].reshape(n, 2, 2, 32)  # [half, lo/hi 32 bytes, l]
    qh = b[:, 128:192].reshape(n, 2, 1, 32)  # [half, -, l]
    # within a 128-element half: quarter j takes nibble (j >= 2) of ql[j % 2] and bits 2j..2j+1 of qh
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2)  # [n, 2, 4, 32]
    high = (qh >> (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]) & 3
    q = ((low | (high << 4)).astype(np.int8) - np.int8(32)).astype(np.float32)
    # 16 scales, one per 16 elements, in element order
    sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(n, 2, 4, 2, 1)
    d = _f16(b, 208).reshape(n, 1, 1, 1, 1)
    return ((d * sc) * q.reshape(n, 2, 4, 2, 16)).reshape(n, QK_K)


_BLOCK_DEQUANT = {
    "q4_0": _q4_0, "q4_1": _q4_1, "q5_0": _q5_0, "q5_1": _q5_1, "q8_0": _q8_0,
    "q4_k": _q4_k, "q5_k": _q5_k, "q6_k": _q6_k,
}
DEQUANTIZABLE = tuple(PLAIN_DTYPES) + tuple(_BLOCK_DEQUANT)


def dequantize(raw, type_name, n_elements):
    """raw: uint8 array holding n_elements of type `type_name` -> float32 [n_elements]."""
    t = BY_NAME[type_name]
    if n_elements % t.block or raw.size != n_elements // t.block * t.nbytes:
        raise ValueError(f"raw: {raw.size} bytes do not hold {n_elements} {type_name} elements")
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    if type_name == "bf16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if type_name in PLAIN_DTYPES:
        return raw.view(PLAIN_DTYPES[type_name]).astype(np.float32)
    if type_name not in _BLOCK_DEQUANT:
        raise ValueError(f"type_name: no dequantizer for {type_name}")
    return _BLOCK_DEQUANT[type_name](raw.reshape(-1, t.nbytes)).reshape(-1)
