"""Row-wise, elementwise and attention ops: softmax, norms, RoPE, attention, activations.

float32 C-contiguous arrays in; a new array out unless `out=` is given (it may be an input, for
in-place use). Bad arguments raise ValueError naming the argument and the shapes it got."""
import math

import numpy as np

from .. import _core
from .._checks import f32_array, flag, out_array, shape_str, typed_array


def _finite(v, name, minimum=None, strict=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number, got {type(v).__name__}")
    v = float(v)
    bad = not math.isfinite(v) or (minimum is not None and (v <= minimum if strict else v < minimum))
    if bad:
        need = "finite" if minimum is None else f"finite and {'>' if strict else '>='} {minimum}"
        raise ValueError(f"{name}: must be {need}, got {v}")
    return v


def _last_axis(x, name):
    f32_array(x, name, min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(f"{name}: last axis must be non-empty, got shape {shape_str(x)}")


def _vector(w, name, n, x):
    f32_array(w, name, ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match x {shape_str(x)}, got {shape_str(w)}")


def softmax(x, *, out=None):
    """softmax over the last axis of x (any rank >= 1), stable at any magnitude.

    A row whose entries are all -inf is uniform (1/n: the limit of softmax(c, ..., c)); a NaN
    anywhere in a row makes the whole row NaN; a +inf entry makes its row NaN, as in NumPy."""
    _last_axis(x, "x")
    out = out_array(out, "out", x.shape)
    _core.softmax(out, x)
    return out


def rmsnorm(x, weight, eps=1e-5, *, out=None):
    """x / sqrt(mean(x**2, -1) + eps) * weight; weight has x's last-axis length."""
    _last_axis(x, "x")
    _vector(weight, "weight", x.shape[-1], x)
    eps = _finite(eps, "eps", minimum=0.0)
    out = out_array(out, "out", x.shape)
    _core.rmsnorm(out, x, weight, eps)
    return out


def layernorm(x, weight, bias=None, eps=1e-5, *, out=None):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (bias optional)."""
    _last_axis(x, "x")
    _vector(weight, "weight", x.shape[-1], x)
    if bias is not None:
        _vector(bias, "bias", x.shape[-1], x)
    eps = _finite(eps, "eps", minimum=0.0)
    out = out_array(out, "out", x.shape)
    _core.layernorm(out, x, weight, bias, eps)
    return out


def rope(x, positions, theta=10000.0, style="norm", *, out=None):
    """Rotary position embedding of x [T, H, D] (D even) at int32 `positions` [T].

    Frequency i (0 <= i < D/2) turns by positions[t] * theta**(-2i/D). style "norm" rotates
    adjacent pairs (2i, 2i+1) (GGUF llama), "neox" rotates (i, i + D/2) (HF checkpoints).
    `out` may be x itself to rotate in place."""
    f32_array(x, "x", ndim=3)
    if x.shape[2] % 2:
        raise ValueError(f"x: head size D (last axis) must be even, got shape {shape_str(x)}")
    typed_array(positions, "positions", np.int32, ndim=1)
    if positions.shape[0] != x.shape[0]:
        raise ValueError(f"positions: expected shape ({x.shape[0]},) to match x {shape_str(x)}, "
                         f"got {shape_str(positions)}")
    if positions.size and positions.min() < 0:
        raise ValueError(f"positions: must be >= 0, got min {positions.min()} (shape {shape_str(positions)})")
    theta = _finite(theta, "theta", minimum=0.0, strict=True)
    if style not in ("norm", "neox"):
        raise ValueError(f"style: expected 'norm' or 'neox', got {style!r}")
    out = out_array(out, "out", x.shape)
    if out is not x:
        np.copyto(out, x)
    _core.rope(out, positions, theta, style)
    return out


def attention(q, k, v, causal=True, scale=None, *, window=None, kv_cache="f32", out=None):
    """softmax(q k^T * scale) v per query head, without forming the [T, S] score matrix.

    q [T, Hq, D]; k, v [S, Hkv, D]; Hq a multiple of Hkv, query head h reads KV head
    h // (Hq // Hkv). The T queries are the last T of the S positions, so with causal=True
    (which needs T <= S) query i sees keys 0 .. S - T + i; with a sliding `window` (causal only)
    just the last `window` of those. scale defaults to 1 / sqrt(D). kv_cache "f16" or "q8_0"
    stores k and v as a KV cache of that type would (q8_0: D a multiple of 32) and attends to that."""
    f32_array(q, "q", ndim=3)
    causal = flag(causal, "causal")
    f32_array(k, "k", ndim=3)
    f32_array(v, "v", ndim=3)
    T, Hq, D = q.shape
    S, Hkv = k.shape[0], k.shape[1]
    if 0 in q.shape:
        raise ValueError(f"q: every axis must be non-empty, got shape {shape_str(q)}")
    if 0 in k.shape or k.shape[2] != D:
        raise ValueError(f"k: expected shape (S, Hkv, {D}) with S, Hkv >= 1 to match q {shape_str(q)}, "
                         f"got {shape_str(k)}")
    if v.shape != k.shape:
        raise ValueError(f"v: expected the shape of k {shape_str(k)}, got {shape_str(v)}")
    if Hq % Hkv:
        raise ValueError(f"q: query heads must be a multiple of KV heads, got q {shape_str(q)} and k {shape_str(k)}")
    if causal and T > S:
        raise ValueError(f"q: causal attention needs T <= S, got q {shape_str(q)} and k {shape_str(k)}")
    scale = 1.0 / math.sqrt(D) if scale is None else _finite(scale, "scale")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window: expected a positive int or None, got {window!r}")
        if not causal:
            raise ValueError("window: a sliding window needs causal=True")
    out = out_array(out, "out", q.shape)
    if any(np.may_share_memory(out, a) for a in (q, k, v)):
        raise ValueError("out: must not overlap q, k or v")
    from ..engine import kv_cache_type

    kv_cache = kv_cache_type(kv_cache)
    if kv_cache == "auto":
        raise ValueError("kv_cache: expected one of 'f16', 'q8_0', 'f32' here, got 'auto'")
    if kv_cache == "q8_0" and D % 32:
        raise ValueError(f"kv_cache: a q8_0 KV cache needs a head size that is a multiple of 32, got {D}")
    _core.attention(out, q, k, v, bool(causal), scale, int(window or 0), kv_cache)
    return out


def silu(x, *, out=None):
    """x * sigmoid(x), elementwise."""
    f32_array(x, "x")
    out = out_array(out, "out", x.shape)
    _core.silu(out, x)
    return out


def gelu(x, approximate="tanh", *, out=None):
    """GELU, elementwise: approximate="tanh" (GPT-2's form) or "none" (exact, with erf)."""
    f32_array(x, "x")
    if approximate not in ("tanh", "none"):
        raise ValueError(f"approximate: expected 'tanh' or 'none', got {approximate!r}")
    out = out_array(out, "out", x.shape)
    _core.gelu(out, x, approximate == "tanh")
    return out


def swiglu(gate, up, *, out=None):
    """silu(gate) * up, elementwise; gate and up have the same shape."""
    f32_array(gate, "gate")
    f32_array(up, "up")
    if up.shape != gate.shape:
        raise ValueError(f"up: expected the shape of gate {shape_str(gate)}, got {shape_str(up)}")
    out = out_array(out, "out", gate.shape)
    _core.swiglu(out, gate, up)
    return out
