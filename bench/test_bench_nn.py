"""ninestep vs NumPy, side by side: one pytest-benchmark group per op and shape.

    PYTHONPATH=python python3 -m pytest bench/test_bench_nn.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

The NumPy versions are the straightforward good ones (exp(x - max) / sum, batched matmul +
masked softmax for attention), float32 throughout."""
import math

import numpy as np
import pytest

from ninestep import ops

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- NumPy implementations ----------------------------------------------------------------


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_rmsnorm(x, w, eps=1e-5):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def np_rope(x, pos, theta=10000.0):  # adjacent pairs, angles in float64 like ninestep
    T, H, D = x.shape
    ang = pos[:, None].astype(np.float64) * theta ** (-2.0 * np.arange(D // 2) / D)
    c, s = np.cos(ang).astype(np.float32)[:, None], np.sin(ang).astype(np.float32)[:, None]
    a, b = x[..., 0::2], x[..., 1::2]
    y = np.empty_like(x)
    y[..., 0::2] = a * c - b * s
    y[..., 1::2] = a * s + b * c
    return y


def np_attention(q, k, v, causal=True):
    T, Hq, D = q.shape
    S, Hkv, _ = k.shape
    # every operand C-contiguous: np.matmul only calls BLAS for those (a transposed view is ~500x slower)
    kk = np.ascontiguousarray(np.repeat(k.transpose(1, 2, 0), Hq // Hkv, axis=0))  # [Hq, D, S]
    vv = np.ascontiguousarray(np.repeat(v.transpose(1, 0, 2), Hq // Hkv, axis=0))  # [Hq, S, D]
    qh = np.ascontiguousarray(q.transpose(1, 0, 2))  # [Hq, T, D]
    s = np.matmul(qh, kk) * np.float32(1 / math.sqrt(D))  # [Hq, T, S]
    if causal:
        s = np.where(np.arange(S)[None, :] <= (S - T + np.arange(T))[:, None], s, np.float32(-np.inf))
    return np.matmul(np_softmax(s), vv).transpose(1, 0, 2)


def np_swiglu(g, u):
    return g / (1 + np.exp(-g)) * u


# ---- cases: (group, ninestep call, NumPy call) --------------------------------------------

X_SM = randn(64, 49152) * 4
X_NORM, W_NORM = randn(512, 576), randn(576)
X_ROPE, POS = randn(512, 9, 64), np.arange(512, dtype=np.int32)
G, U = randn(512, 1536), randn(512, 1536)


def attn_case(T, S):
    return randn(T, 9, 64), randn(S, 3, 64), randn(S, 3, 64)


A_PREFILL, A_DECODE, A_SQUARE = attn_case(128, 512), attn_case(1, 1024), attn_case(512, 512)

CASES = {
    "softmax 64x49152": (lambda: ops.softmax(X_SM), lambda: np_softmax(X_SM)),
    "rmsnorm 512x576": (lambda: ops.rmsnorm(X_NORM, W_NORM), lambda: np_rmsnorm(X_NORM, W_NORM)),
    "rope 512x9x64": (lambda: ops.rope(X_ROPE, POS), lambda: np_rope(X_ROPE, POS)),
    "swiglu 512x1536": (lambda: ops.swiglu(G, U), lambda: np_swiglu(G, U)),
    "attention T=128 S=512 9/3 heads D=64": (lambda: ops.attention(*A_PREFILL), lambda: np_attention(*A_PREFILL)),
    "attention T=1 S=1024 9/3 heads D=64": (lambda: ops.attention(*A_DECODE), lambda: np_attention(*A_DECODE)),
    "attention T=512 S=512 9/3 heads D=64": (lambda: ops.attention(*A_SQUARE), lambda: np_attention(*A_SQUARE)),
}


@pytest.mark.parametrize("impl", ["ninestep", "numpy"])
@pytest.mark.parametrize("group", list(CASES))
def test_bench(benchmark, group, impl):
    ours, theirs = CASES[group]
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-3, atol=1e-4)  # same answer before timing
    benchmark.group = group
    benchmark(ours if impl == "ninestep" else theirs)
