"""KV cache element types (f32, f16, q8_0): the typed attention kernels at every ISA against the
scalar reference and a float64 reference on the same rounded K/V, the difference each type makes
against f32 (bounded), the engine with each type (mixed batches, windows, prefix copies), and the
argument errors."""
import math
import re

import numpy as np
import pytest
from helpers.sanitized import impossible_allocation
from test_forward import GEMMA3, make_model, quantized
from test_ops_nn import at_generic, ref_attention

import ninestep
from ninestep import ops
from ninestep.engine import Engine, Session, load_weights


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def rounded(x, kind):
    """x [S, Hkv, D] as a cache of `kind` holds it (float64)."""
    if kind == "f16":
        return x.astype(np.float16).astype(np.float64)
    if kind == "q8_0":
        S = x.shape[0]
        return ninestep.quantize(x.reshape(S, -1), "q8_0").dequantize().reshape(x.shape).astype(np.float64)
    return x.astype(np.float64)


def ref_window(q, k, v, window, scale):
    # float64 causal attention where query t sees only the last `window` keys up to its own position
    T, Hq, D = q.shape
    S, Hkv, _ = k.shape
    out = np.empty((T, Hq, D))
    for t in range(T):
        end = S - T + t + 1
        lo = max(0, end - window)
        for h in range(Hq):
            g = h // (Hq // Hkv)
            s = (k[lo:end, g] @ q[t, h].astype(np.float64)) * scale
            p = np.exp(s - s.max())
            out[t, h] = (p / p.sum()) @ v[lo:end, g]
    return out


SHAPES = [  # (T, S, Hq, Hkv, D): decode (split) shapes and prefill tiles, head sizes with tails
    (1, 1, 1, 1, 32), (1, 37, 9, 3, 64), (1, 700, 9, 3, 64), (3, 257, 4, 2, 32), (4, 300, 8, 2, 64),
    (5, 5, 2, 2, 64), (17, 40, 4, 2, 64), (20, 20, 9, 3, 64), (33, 70, 6, 3, 256), (64, 64, 1, 1, 128),
    (16, 19, 2, 1, 96), (9, 100, 3, 3, 32),
]
F16_ONLY = [(16, 16, 3, 3, 33), (3, 9, 2, 1, 7), (9, 100, 3, 3, 5), (40, 45, 2, 1, 20), (1, 300, 2, 1, 20)]


@pytest.mark.parametrize("D", [8, 13, 64, 100])
def test_f16_cache_rows_round_to_nearest_even(isa, rng, D):
    """With one key the softmax weight is exactly 1, so the output is V as the cache holds it: the
    stored f16 bits, checked against NumPy's round-to-nearest-even on values that hit ties,
    subnormals, the largest finite half and overflow (lanes of 8 and the tail alike)."""
    ulp_tie = np.float32(1 + 2.0 ** -11)  # halfway between 1 and the next half: rounds to 1 (even)
    odd_tie = np.float32(1 + 3 * 2.0 ** -11)  # halfway above an odd mantissa: rounds up
    special = np.array([ulp_tie, odd_tie, -odd_tie, 6.0e-8, -3.0e-6, 65504.0, 65519.0, 65520.0, -1e6, 0.0,
                        -0.0, 2.0 ** -24, 1.5 * 2.0 ** -24, 1e-3], np.float32)
    v = (rng.standard_normal((1, 1, D)) * np.float32(10.0) ** rng.integers(-6, 5, (1, 1, D))).astype(np.float32)
    n = min(D, special.size)
    v[0, 0, :n] = special[:n]
    q, k = randn(rng, 1, 1, D), randn(rng, 1, 1, D)
    got = ops.attention(q, k, v, kv_cache="f16")
    with np.errstate(over="ignore"):  # 65520 and -1e6 overflow to inf, in the cache too
        want = v.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T,S,Hq,Hkv,D", SHAPES + F16_ONLY)
def test_typed_cache_attention_matches_references(isa, rng, kind, causal, T, S, Hq, Hkv, D):
    if kind == "q8_0" and D % 32:
        pytest.skip("q8_0 needs D % 32 == 0")
    q, k, v = randn(rng, T, Hq, D), randn(rng, S, Hkv, D), randn(rng, S, Hkv, D)
    got = ops.attention(q, k, v, causal=causal, kv_cache=kind)
    # exact up to float32 arithmetic against the K/V the cache holds
    want = ref_attention(q, rounded(k, kind), rounded(v, kind), causal, 1 / math.sqrt(D))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got, at_generic(lambda: ops.attention(q, k, v, causal=causal, kv_cache=kind)),
                               rtol=1e-4, atol=1e-5)
    # and within the type's rounding of the f32 cache's result
    f32 = ops.attention(q, k, v, causal=causal)
    bound = 3e-3 if kind == "f16" else 3e-2
    assert np.max(np.abs(got - f32)) < bound
    assert np.max(np.abs(got - f32)) > 0  # the rounding is really there


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("kind", ["f16", "q8_0"])
@pytest.mark.parametrize("T,S,Hq,Hkv,D", [(1, 2000, 9, 3, 64), (2, 1000, 4, 1, 32), (4, 70, 16, 2, 64)])
def test_typed_cache_decode_splits_keys_across_threads(isa, rng, threads, kind, T, S, Hq, Hkv, D):
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        q, k, v = randn(rng, T, Hq, D, scale=2.0), randn(rng, S, Hkv, D), randn(rng, S, Hkv, D)
        got = ops.attention(q, k, v, kv_cache=kind)
        want = ref_attention(q, rounded(k, kind), rounded(v, kind), True, 1 / math.sqrt(D))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    finally:
        ninestep.set_num_threads(before)


@pytest.mark.skipif("avx512" not in ninestep._core.supported_isas(), reason="needs an AVX-512 CPU")
@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
def test_avx512_decode_attention_is_its_own_kernel(rng, kind):
    # The AVX-512 decode kernels sum a score over 16 lanes, the AVX2 ones over 8: the same inputs give
    # close but not identical bits. Identical bits meant the linker had kept one ISA's copy of the
    # shared walk (attention_decode_items.h) for both entries, and AVX-512 ran the AVX2 kernels.
    q, k, v = randn(rng, 1, 9, 64, scale=2.0), randn(rng, 1000, 3, 64), randn(rng, 1000, 3, 64)
    before = ninestep._core.active_isa()
    try:
        got = {}
        for name in ("avx2", "avx512"):
            ninestep.set_isa(name)
            got[name] = ops.attention(q, k, v, kv_cache=kind)
    finally:
        ninestep.set_isa(before)
    np.testing.assert_allclose(got["avx512"], got["avx2"], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(got["avx512"], got["avx2"])


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("T,S,window", [(1, 50, 7), (4, 60, 9), (16, 40, 5), (30, 30, 12), (8, 100, 33)])
def test_typed_cache_sliding_window(isa, rng, kind, T, S, window):
    q, k, v = randn(rng, T, 4, 64), randn(rng, S, 2, 64), randn(rng, S, 2, 64)
    got = ops.attention(q, k, v, window=window, kv_cache=kind)
    want = ref_window(q, rounded(k, kind), rounded(v, kind), window, 1 / 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got, at_generic(lambda: ops.attention(q, k, v, window=window, kv_cache=kind)),
                               rtol=1e-4, atol=1e-5)


def test_typed_cache_large_scores_stay_finite(isa, rng):
    q, k, v = randn(rng, 4, 2, 32, scale=30.0), randn(rng, 50, 1, 32, scale=30.0), randn(rng, 50, 1, 32)
    for kind in ("f16", "q8_0"):
        got = ops.attention(q, k, v, scale=1.0, kv_cache=kind)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref_attention(q, rounded(k, kind), rounded(v, kind), True, 1.0), rtol=1e-3,
                                   atol=1e-4)


# ---- the engine with each cache type ------------------------------------------------------


def _alone(weights, ids, kv):
    return Session(weights, n_ctx=64, kv_cache=kv).forward(ids, all_logits=True)


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
@pytest.mark.parametrize("variant", [dict(head_dim=32), dict(GEMMA3, head_dim=32),
                                     dict(sliding_window=6, has_qkv_bias=True, head_dim=32)])
def test_engine_mixed_batch_with_typed_cache(isa, rng, kind, variant):
    # prompts and decode rows of several sequences in one step give each the logits it gets alone
    # with the same cache type, and stay near the f32 cache's logits
    config, w = make_model(rng, **variant)
    tensors, _ = quantized(w, "q8_0")
    weights = load_weights(config, tensors)
    prompts = [rng.integers(0, 100, n) for n in (9, 3, 17)]
    alone = [_alone(weights, p, kind) for p in prompts]
    e = Engine(weights, n_ctx=64, n_seq=4, kv_cache=kind)
    assert e.kv_cache == kind
    out = e.step([(3, prompts[0][:-1], 8), (0, prompts[1][:-1], 2), (1, prompts[2][:-1], 16)])
    for o, a in zip(out, alone):
        np.testing.assert_allclose(o, a[:-1], rtol=2e-4, atol=2e-4)
    new = rng.integers(0, 100, 5)
    out = e.step([(3, prompts[0][-1:], 1), (2, new, 1), (0, prompts[1][-1:], 1), (1, prompts[2][-1:], 1)])
    np.testing.assert_allclose(out[0], alone[0][-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[1], _alone(weights, new, kind)[-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[2], alone[1][-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[3], alone[2][-1:], rtol=2e-4, atol=2e-4)
    f32 = _alone(weights, prompts[2], "f32")
    diff = np.max(np.abs(alone[2] - f32)) / np.max(np.abs(f32))
    print(f"{kind}: max logit difference {diff:.2e} of the largest logit")
    assert 0 < diff < (0.03 if kind == "f16" else 0.1)  # random tiny models amplify the rounding


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_engine_windows_across_pieces_and_copy_with_typed_cache(rng, kind):
    # chunk 4: the window (5 keys) cuts into every later piece; copy moves the typed rows. The pieces'
    # float GEMMs (4 rows) and the whole prompt's (30) round apart by ~1e-5, enough to move a K/V
    # element across an f16 / q8_0 rounding step now and then (seen: 6e-4 on a logit, AVX-512),
    # hence atol 2e-3; a wrong window or copy moves logits by far more.
    config, w = make_model(rng, **dict(GEMMA3, head_dim=32))
    weights = load_weights(config, w)
    ids = rng.integers(0, 100, 30)
    whole = Session(weights, n_ctx=32, kv_cache=kind).forward(ids, all_logits=True)
    e = Engine(weights, n_ctx=32, n_seq=2, chunk=4, kv_cache=kind)
    np.testing.assert_allclose(e.step([(1, ids, len(ids))])[0], whole, rtol=2e-4, atol=2e-3)
    e.copy(1, 0, 20)
    np.testing.assert_allclose(e.step([(0, ids[20:22], 2)])[0], whole[20:22], rtol=2e-4, atol=2e-3)
    f32 = Session(weights, n_ctx=32, kv_cache="f32").forward(ids, all_logits=True)
    diff = np.max(np.abs(whole - f32)) / np.max(np.abs(f32))
    print(f"{kind}: max logit difference {diff:.2e} of the largest logit")
    assert 0 < diff < (0.03 if kind == "f16" else 0.1)  # random tiny models amplify the rounding


def test_auto_cache_is_f16_for_quantized_weights_and_f32_for_float(rng):
    config, w = make_model(rng)
    assert Engine(load_weights(config, w), n_ctx=8).kv_cache == "f32"
    assert Engine(load_weights(config, quantized(w, "q8_0")[0]), n_ctx=8).kv_cache == "f16"
    assert Engine(load_weights(config, w), n_ctx=8, kv_cache="f16").kv_cache == "f16"


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["bf16", "F16", "q4_0", "", 16, None])
def test_bad_kv_cache_names_the_choices(rng, bad):
    config, w = make_model(rng)
    weights = load_weights(config, w)
    with pytest.raises(ValueError, match=r"kv_cache: expected one of 'auto', 'f16', 'q8_0', 'f32'"):
        Engine(weights, n_ctx=8, kv_cache=bad)
    with pytest.raises(ValueError, match="kv_cache"):
        Session(weights, n_ctx=8, kv_cache=bad)
    with pytest.raises(ValueError, match="kv_cache"):
        ninestep.load("/nonexistent/model.gguf", kv_cache=bad)  # checked before the file is opened
    q = np.ones((1, 1, 32), np.float32)
    with pytest.raises(ValueError, match="kv_cache"):
        ops.attention(q, q, q, kv_cache=bad)


def test_q8_0_cache_needs_head_size_multiple_of_32(rng):
    config, w = make_model(rng)  # head_dim 16
    with pytest.raises(ValueError, match="kv_cache: a q8_0 KV cache needs a head size that is a multiple of 32, got 16"):
        Engine(load_weights(config, w), n_ctx=8, kv_cache="q8_0")
    q = np.ones((1, 1, 16), np.float32)
    with pytest.raises(ValueError, match="multiple of 32"):
        ops.attention(q, q, q, kv_cache="q8_0")
    with pytest.raises(ValueError, match="auto"):
        ops.attention(q, q, q, kv_cache="auto")


@impossible_allocation
@pytest.mark.parametrize("kind, per_32", [("f32", 128), ("f16", 64), ("q8_0", 34)])
def test_kv_memory_error_counts_the_bytes_of_the_type(rng, kind, per_32):
    config, w = make_model(rng, head_dim=32)
    weights = load_weights(config, w)
    n_ctx, n_seq = 2**31 - 1, 4096  # petabytes: the allocation fails
    with pytest.raises(ValueError, match="n_ctx") as e:
        Engine(weights, n_ctx=n_ctx, n_seq=n_seq, kv_cache=kind)
    need = int(re.search(r"needs (\d+) bytes", str(e.value)).group(1))
    kv_dim = config["n_kv_heads"] * config["head_dim"]
    want = 2 * config["n_layers"] * n_seq * n_ctx * kv_dim // 32 * per_32
    assert abs(need - want) <= want * 1e-12
    assert kind in str(e.value)
