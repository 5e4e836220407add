"""softmax, norms, RoPE, attention and activations at every ISA against float64 NumPy references,
and each SIMD variant against the scalar reference ("generic")."""
import math

import numpy as np
import pytest

import ninestep
from ninestep import ops, reference

# ---- float64 references -------------------------------------------------------------------


def ref_softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_rmsnorm(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def ref_layernorm(x, w, b, eps):
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w
    return y if b is None else y + b


def ref_rope(x, pos, theta, style):
    T, H, D = x.shape
    half = D // 2
    ang = pos.astype(np.float64)[:, None] * theta ** (-2.0 * np.arange(half) / D)  # [T, D/2]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x = x.astype(np.float64)
    a, b = (x[..., 0::2], x[..., 1::2]) if style == "norm" else (x[..., :half], x[..., half:])
    y = np.empty_like(x)
    ra, rb = a * c - b * s, a * s + b * c
    if style == "norm":
        y[..., 0::2], y[..., 1::2] = ra, rb
    else:
        y[..., :half], y[..., half:] = ra, rb
    return y


def ref_attention(q, k, v, causal, scale):
    T, Hq, D = q.shape
    S, Hkv, _ = k.shape
    out = np.empty((T, Hq, D))
    visible = np.arange(S)[None, :] <= (S - T + np.arange(T))[:, None]  # [T, S]
    for h in range(Hq):
        g = h // (Hq // Hkv)
        s = q[:, h].astype(np.float64) @ k[:, g].astype(np.float64).T * scale
        if causal:
            s = np.where(visible, s, -np.inf)
        out[:, h] = ref_softmax(s) @ v[:, g].astype(np.float64)
    return out


def ref_silu(x):
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):  # exp(-x) = inf gives the right limit, -0
        return x / (1 + np.exp(-x))


def ref_gelu(x, approximate):
    x = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def close(got, want, rtol=1e-5, atol=1e-6):
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def at_generic(fn):
    """fn() computed with the scalar reference kernels."""
    before = ninestep.cpu_info()["isa"]
    ninestep.set_isa("generic")
    try:
        return fn()
    finally:
        ninestep.set_isa(before)


# ---- softmax ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 1), (5, 8), (4, 17), (2, 3, 33), (3, 1000), (1, 49152)])
def test_softmax_matches_numpy(isa, rng, shape):
    x = randn(rng, *shape, scale=4.0)
    got = ops.softmax(x)
    close(got, ref_softmax(x))
    np.testing.assert_allclose(got, at_generic(lambda: ops.softmax(x)), rtol=2e-6, atol=1e-7)


def test_softmax_extremes(isa):
    ninf = -np.inf
    x = np.array([
        [1e30, -1e30, 0.0, 5.0],
        [-1e30, -1e30, -1e30, -1e30],
        [ninf, 0.0, ninf, 1.0],
        [3e38, -3e38, 0.0, 3e38],
        [-100.0, -120.0, -87.0, -104.0],
        [88.0, 89.0, 90.0, 80.0],
    ], np.float32)
    x = np.repeat(x, 5, axis=1)  # 20 columns: SIMD body and tail both see the values
    close(ops.softmax(x), ref_softmax(x))


def test_softmax_all_neg_inf_rows_are_uniform_and_nan_propagates(isa):
    for n in (1, 5, 16, 37):
        x = np.full((3, n), -np.inf, np.float32)
        x[1, n // 2] = np.nan
        x[2, 0] = 0.0
        x[2, -1] = np.nan
        y = ops.softmax(x)
        np.testing.assert_array_equal(y[0], np.full(n, 1.0 / n, np.float32))
        assert np.isnan(y[1]).all() and np.isnan(y[2]).all()


def test_softmax_in_place(isa, rng):
    x = randn(rng, 4, 50)
    want = ref_softmax(x)
    y = ops.softmax(x, out=x)
    assert y is x
    close(x, want)


def test_softmax_exp_accuracy_over_wide_range(isa):
    # softmax([x, 0]) [0] / softmax(...)[1] = exp(x): checks the SIMD exp against float64 at
    # every input scale (the row max is 0 or x, so both signs of the argument are hit). |x| <= 80
    # keeps exp(-|x|) / 32 clear of float32 subnormals, which would lose digits on their own.
    xs = np.linspace(-80.0, 80.0, 4001, dtype=np.float32)
    x = np.zeros((xs.size, 32), np.float32)
    x[:, 0] = xs
    y = ops.softmax(x).astype(np.float64)
    ratio = y[:, 0] / y[:, 1]
    rel = np.abs(ratio - np.exp(xs.astype(np.float64))) / np.exp(xs.astype(np.float64))
    assert rel.max() < 1e-6


# ---- norms --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (1, 1), (3, 7), (4, 576), (2, 3, 33), (5, 1000)])
def test_rmsnorm_matches_numpy(isa, rng, shape):
    x = randn(rng, *shape, scale=3.0)
    w = randn(rng, shape[-1])
    close(ops.rmsnorm(x, w, eps=1e-5), ref_rmsnorm(x, w, 1e-5), rtol=2e-5, atol=2e-6)
    close(ops.rmsnorm(x, w, eps=1e-5), at_generic(lambda: ops.rmsnorm(x, w, eps=1e-5)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (3, 7), (4, 576), (2, 3, 33), (5, 1000)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_layernorm_matches_numpy(isa, rng, shape, with_bias):
    x = randn(rng, *shape) + 50.0  # a large mean: variance must not cancel
    w = randn(rng, shape[-1])
    b = randn(rng, shape[-1]) if with_bias else None
    close(ops.layernorm(x, w, b, eps=1e-5), ref_layernorm(x, w, b, 1e-5), rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(ops.layernorm(x, w, b), at_generic(lambda: ops.layernorm(x, w, b)), rtol=2e-5,
                               atol=1e-5)


def test_norms_in_place_and_constant_rows(isa):
    x = np.full((3, 19), 2.5, np.float32)
    w = np.ones(19, np.float32)
    close(ops.layernorm(x, w), np.zeros((3, 19)))
    want = ref_rmsnorm(x, w, 1e-5)
    ops.rmsnorm(x, w, out=x)
    close(x, want)


# ---- rope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["norm", "neox"])
@pytest.mark.parametrize("T,H,D", [(1, 1, 2), (5, 3, 64), (7, 9, 64), (3, 2, 6), (4, 2, 256), (2, 1, 34),
                                   (2, 1, 1030)])
def test_rope_matches_numpy(isa, rng, style, T, H, D):
    x = randn(rng, T, H, D)
    pos = rng.integers(0, 4096, T).astype(np.int32)
    got = ops.rope(x, pos, theta=10000.0, style=style)
    close(got, ref_rope(x, pos, 10000.0, style), atol=2e-6)
    np.testing.assert_allclose(got, at_generic(lambda: ops.rope(x, pos, style=style)), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("style", ["norm", "neox"])
def test_rope_large_positions_stay_accurate(isa, rng, style):
    x = randn(rng, 6, 3, 64)
    pos = np.array([0, 1, 99_999, 100_000, 65_537, 2**31 - 1], np.int32)
    close(ops.rope(x, pos, theta=100000.0, style=style), ref_rope(x, pos, 100000.0, style), atol=5e-6)


def test_rope_alternating_bases_and_sizes(isa, rng):
    # The kernels may keep the frequency tables of recent (theta, D) pairs (a decode step calls
    # rope twice per layer, Gemma 3 alternates two bases): every switch must give that base's result.
    pos = rng.integers(0, 4096, 3).astype(np.int32)
    for theta, D in [(10000.0, 64), (1e6, 64), (10000.0, 64), (10000.0, 128), (5e5, 256), (1e6, 64), (10000.0, 64),
                     (10000.0, 1030), (10000.0, 64)]:
        x = randn(rng, 3, 2, D)
        for style in ("norm", "neox"):
            close(ops.rope(x, pos, theta=theta, style=style), ref_rope(x, pos, theta, style), atol=3e-6)


def test_rope_in_place_and_new_array(isa, rng):
    x = randn(rng, 4, 2, 8)
    pos = np.arange(4, dtype=np.int32)
    want = ref_rope(x, pos, 10000.0, "norm")
    y = ops.rope(x, pos)
    assert y is not x
    close(y, want)
    assert ops.rope(x, pos, out=x) is x
    close(x, want)


# ---- attention ----------------------------------------------------------------------------


@pytest.mark.parametrize("T,S,Hq,Hkv,D", [
    (1, 1, 1, 1, 1), (1, 1, 3, 1, 64), (1, 37, 9, 3, 64), (5, 5, 2, 2, 8), (17, 40, 4, 2, 64),
    (16, 16, 3, 3, 33), (33, 70, 6, 3, 256), (3, 9, 2, 1, 7), (20, 20, 9, 3, 64), (12, 30, 4, 2, 16),
    (16, 19, 2, 1, 300), (9, 100, 3, 3, 5), (40, 45, 2, 1, 20), (64, 64, 1, 1, 128),
    (50, 301, 9, 3, 64),  # several 32-key softmax blocks, the last one partial
])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_numpy(isa, rng, T, S, Hq, Hkv, D, causal):
    q, k, v = randn(rng, T, Hq, D), randn(rng, S, Hkv, D), randn(rng, S, Hkv, D)
    got = ops.attention(q, k, v, causal=causal)
    close(got, ref_attention(q, k, v, causal, 1 / math.sqrt(D)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, at_generic(lambda: ops.attention(q, k, v, causal=causal)), rtol=1e-4, atol=1e-5)


def test_attention_non_causal_more_queries_than_keys_and_scale(isa, rng):
    q, k, v = randn(rng, 9, 4, 16), randn(rng, 3, 2, 16), randn(rng, 3, 2, 16)
    close(ops.attention(q, k, v, causal=False, scale=0.7), ref_attention(q, k, v, False, 0.7), rtol=1e-4, atol=1e-5)


def test_attention_gqa_mapping(isa, rng):
    # each KV head's values are constant g, so query head h must read exactly h // (Hq // Hkv)
    T, S, Hq, Hkv, D = 3, 6, 6, 3, 8
    q, k = randn(rng, T, Hq, D), randn(rng, S, Hkv, D)
    v = np.broadcast_to(np.arange(Hkv, dtype=np.float32)[None, :, None], (S, Hkv, D)).copy()
    got = ops.attention(q, k, v)
    for h in range(Hq):
        close(got[:, h], np.full((T, D), h // 2), atol=1e-5)


def test_attention_large_scores_are_stable(isa, rng):
    q, k, v = randn(rng, 4, 2, 32, scale=30.0), randn(rng, 50, 1, 32, scale=30.0), randn(rng, 50, 1, 32)
    got = ops.attention(q, k, v, scale=1.0)
    assert np.isfinite(got).all()
    close(got, ref_attention(q, k, v, True, 1.0), rtol=1e-3, atol=1e-4)


def test_attention_causal_first_query_sees_only_visible_keys(isa, rng):
    # T == S: query 0 sees key 0 only, so its output is v[0]
    q, k, v = randn(rng, 4, 1, 8), randn(rng, 4, 1, 8), randn(rng, 4, 1, 8)
    close(ops.attention(q, k, v)[0, 0], v[0, 0], atol=1e-6)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("T,S,Hq,Hkv,D", [
    (1, 700, 9, 3, 64), (4, 300, 8, 2, 64), (2, 1000, 4, 1, 20), (3, 257, 12, 4, 33), (1, 3000, 2, 2, 16),
    (4, 70, 16, 2, 64),
])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_decode_splits_keys_across_threads(isa, rng, threads, T, S, Hq, Hkv, D, causal):
    # few queries past the one-thread cutoff: each KV head's keys split into blocks whose softmax
    # states are merged (flash-decoding); the block edges and the causal edge land anywhere
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        q, k, v = randn(rng, T, Hq, D, scale=2.0), randn(rng, S, Hkv, D), randn(rng, S, Hkv, D)
        got = ops.attention(q, k, v, causal=causal)
        close(got, ref_attention(q, k, v, causal, 1 / math.sqrt(D)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, at_generic(lambda: ops.attention(q, k, v, causal=causal)), rtol=1e-4,
                                   atol=1e-5)
    finally:
        ninestep.set_num_threads(before)


@pytest.mark.parametrize("T,S", [(1, 2000), (3, 900), (40, 300), (200, 200)])
def test_attention_bits_do_not_depend_on_which_thread_takes_an_item(isa, rng, T, S):
    # the threads claim items as they come free, so the split between them changes from call to
    # call: every call must give the same bits, and a prefill shape the same as on one thread
    q, k, v = randn(rng, T, 9, 64, scale=2.0), randn(rng, S, 3, 64), randn(rng, S, 3, 64)
    before = ninestep.get_num_threads()
    try:
        ninestep.set_num_threads(1)
        alone = ops.attention(q, k, v)
        ninestep.set_num_threads(2)
        first = ops.attention(q, k, v)
        for _ in range(15):
            np.testing.assert_array_equal(ops.attention(q, k, v), first)
        if T > 4:  # decode shapes split the keys by the thread count: other float sums
            np.testing.assert_array_equal(first, alone)
    finally:
        ninestep.set_num_threads(before)


# ---- activations --------------------------------------------------------------------------

ACT_SIZES = [1, 7, 16, 17, 100, 1543]


@pytest.mark.parametrize("n", ACT_SIZES)
def test_silu_matches_numpy(isa, rng, n):
    x = randn(rng, n, scale=6.0)
    close(ops.silu(x), ref_silu(x))
    np.testing.assert_allclose(ops.silu(x), at_generic(lambda: ops.silu(x)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("n", ACT_SIZES)
def test_gelu_matches_numpy(isa, rng, approximate, n):
    x = randn(rng, n, scale=4.0)
    close(ops.gelu(x, approximate=approximate), ref_gelu(x, approximate), atol=2e-6)
    np.testing.assert_allclose(ops.gelu(x, approximate), at_generic(lambda: ops.gelu(x, approximate)), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("shape", [(1,), (3, 7), (512, 48), (2, 3, 17)])
def test_swiglu_matches_numpy(isa, rng, shape):
    g, u = randn(rng, *shape, scale=4.0), randn(rng, *shape)
    close(ops.swiglu(g, u), ref_silu(g) * u)
    np.testing.assert_allclose(ops.swiglu(g, u), at_generic(lambda: ops.swiglu(g, u)), rtol=1e-6, atol=1e-7)


def test_activations_extremes(isa):
    x = np.array([-1e30, -200.0, -88.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 88.0, 200.0, 1e30] * 3, np.float32)
    close(ops.silu(x), ref_silu(x))
    close(ops.gelu(x), ref_gelu(x, "tanh"))
    close(ops.gelu(x, approximate="none"), ref_gelu(x, "none"))
    y = x.copy()
    ops.swiglu(y, np.ones_like(y), out=y)
    close(y, ref_silu(x))
    nan = np.full(17, np.nan, np.float32)
    for f in (ops.silu, ops.gelu):
        assert np.isnan(f(nan)).all()


# ---- bad inputs ---------------------------------------------------------------------------

F = np.zeros((4, 8), np.float32)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.softmax(F.astype(np.float64)), r"x: expected dtype float32, got float64 with shape \(4, 8\)"),
    (lambda: ops.softmax(np.zeros(0, np.float32)), r"x: last axis must be non-empty"),
    (lambda: ops.softmax(np.float32(1.0)), r"x: expected a float32 NumPy array"),
    (lambda: ops.softmax(F.T), r"x: array must be C-contiguous"),
    (lambda: ops.softmax(F, out=np.zeros((4, 9), np.float32)), r"out: expected shape \(4, 8\)"),
    (lambda: ops.rmsnorm(F, np.ones(7, np.float32)), r"weight: expected shape \(8,\).*got \(7,\)"),
    (lambda: ops.rmsnorm(F, np.ones(8, np.float32), eps=-1.0), r"eps: must be finite and >= 0"),
    (lambda: ops.layernorm(F, np.ones(8, np.float32), np.ones(3, np.float32)), r"bias: expected shape \(8,\)"),
    (lambda: ops.layernorm(F, np.ones(8, np.float32), eps=float("nan")), r"eps:"),
    (lambda: ops.rope(np.zeros((2, 1, 5), np.float32), np.zeros(2, np.int32)), r"x: head size D .* even"),
    (lambda: ops.rope(np.zeros((2, 1, 4), np.float32), np.zeros(2, np.int64)), r"positions: expected dtype int32"),
    (lambda: ops.rope(np.zeros((2, 1, 4), np.float32), np.zeros(3, np.int32)), r"positions: expected shape \(2,\)"),
    (lambda: ops.rope(np.zeros((2, 1, 4), np.float32), np.array([0, -1], np.int32)), r"positions: must be >= 0"),
    (lambda: ops.rope(np.zeros((2, 4), np.float32), np.zeros(2, np.int32)), r"x: expected a 3-d array"),
    (lambda: ops.rope(np.zeros((2, 1, 4), np.float32), np.zeros(2, np.int32), theta=0.0), r"theta:"),
    (lambda: ops.rope(np.zeros((2, 1, 4), np.float32), np.zeros(2, np.int32), style="gptj"), r"style:"),
    (lambda: ops.attention(np.zeros((2, 3, 8), np.float32), np.zeros((4, 2, 8), np.float32),
                           np.zeros((4, 2, 8), np.float32)), r"q: query heads must be a multiple"),
    (lambda: ops.attention(np.zeros((5, 2, 8), np.float32), np.zeros((4, 1, 8), np.float32),
                           np.zeros((4, 1, 8), np.float32)), r"q: causal attention needs T <= S"),
    (lambda: ops.attention(np.zeros((2, 2, 8), np.float32), np.zeros((4, 1, 4), np.float32),
                           np.zeros((4, 1, 4), np.float32)), r"k: expected shape \(S, Hkv, 8\)"),
    (lambda: ops.attention(np.zeros((2, 2, 8), np.float32), np.zeros((4, 1, 8), np.float32),
                           np.zeros((5, 1, 8), np.float32)), r"v: expected the shape of k"),
    (lambda: ops.attention(np.zeros((2, 2, 8), np.float32), np.zeros((0, 1, 8), np.float32),
                           np.zeros((0, 1, 8), np.float32)), r"k: expected shape"),
    (lambda: ops.attention(np.zeros((2, 2, 8), np.float32), np.zeros((4, 1, 8), np.float32),
                           np.zeros((4, 1, 8), np.float32), scale=float("inf")), r"scale: must be finite"),
    (lambda: ops.gelu(F, approximate="fast"), r"approximate: expected 'tanh' or 'none'"),
    (lambda: ops.swiglu(F, np.zeros((4, 7), np.float32)), r"up: expected the shape of gate \(4, 8\), got \(4, 7\)"),
    (lambda: ops.silu(F.astype(np.float16)), r"x: expected dtype float32, got float16"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_attention_out_must_not_alias_inputs():
    q = np.zeros((2, 2, 8), np.float32)
    with pytest.raises(ValueError, match="out: must not overlap"):
        ops.attention(q, q, q, out=q)


def test_core_checks_sizes_without_the_python_layer():
    from ninestep import _core

    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="weight"):
        _core.rmsnorm(x, x, np.ones(5, np.float32), 1e-5)
    with pytest.raises(ValueError, match="causal attention needs T <= S"):
        q = np.zeros((3, 1, 4), np.float32)
        _core.attention(q.copy(), q, np.zeros((2, 1, 4), np.float32), np.zeros((2, 1, 4), np.float32), True, 0.5)
    with pytest.raises(ValueError, match="head size D must be even"):
        _core.rope(np.zeros((1, 1, 3), np.float32), np.zeros(1, np.int32), 1e4, "norm")


# ---- multi-threaded split -----------------------------------------------------------------


@pytest.fixture
def two_threads():
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(2)
    try:
        yield
    finally:
        ninestep.set_num_threads(before)


def test_large_inputs_split_across_threads(isa, rng, two_threads):
    # sizes past the one-thread cutoff (32768 elements), with rows / elements that split unevenly
    x, w, b = randn(rng, 67, 577), randn(rng, 577), randn(rng, 577)
    close(ops.softmax(x), ref_softmax(x))
    close(ops.rmsnorm(x, w), ref_rmsnorm(x, w, 1e-5), rtol=2e-5, atol=2e-6)
    close(ops.layernorm(x, w, b), ref_layernorm(x, w, b, 1e-5), rtol=2e-5, atol=1e-5)
    xr, pos = randn(rng, 67, 9, 64), rng.integers(0, 100000, 67).astype(np.int32)
    close(ops.rope(xr, pos, theta=100000.0), ref_rope(xr, pos, 100000.0, "norm"), atol=5e-6)
    e, u = randn(rng, 40001, scale=4.0), randn(rng, 40001)
    close(ops.silu(e), ref_silu(e))
    close(ops.gelu(e), ref_gelu(e, "tanh"), atol=2e-6)
    close(ops.swiglu(e, u), ref_silu(e) * u)
    for T, S in [(1, 700), (37, 50)]:
        q, k, v = randn(rng, T, 9, 64), randn(rng, S, 3, 64), randn(rng, S, 3, 64)
        close(ops.attention(q, k, v), ref_attention(q, k, v, True, 0.125), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("T,S,window", [(1, 40, 7), (3, 40, 7), (8, 40, 5), (21, 40, 9), (40, 40, 16), (16, 16, 20),
                                        (33, 70, 1), (100, 301, 50), (1, 300, 100)])
def test_attention_sliding_window_matches_numpy(isa, rng, T, S, window):
    q = rng.standard_normal((T, 4, 32)).astype(np.float32)
    k = rng.standard_normal((S, 2, 32)).astype(np.float32)
    v = rng.standard_normal((S, 2, 32)).astype(np.float32)
    want = reference.attention(q, k, v, window).reshape(T, 4, 32)
    np.testing.assert_allclose(ops.attention(q, k, v, window=window), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="window"):
        ops.attention(q, k, v, causal=False, window=window)
    with pytest.raises(ValueError, match="window"):
        ops.attention(q, k, v, window=0)
