"""ninestep.ops.matmul with float weights (f32, f16, bf16) at every ISA, against NumPy and the scalar kernel."""
import numpy as np
import pytest

import ninestep
from ninestep import QuantizedTensor
from ninestep.ops import matmul

# (M, K, N): decode rows (M < 4 or < 7 stream W), packed tiles above that with partial row tiles, K tails
# (not a multiple of 8 / 16), K above the 256-column panel depth, N not a multiple of 16 or of the panel.
SHAPES = [
    (1, 576, 1536), (1, 1, 1), (1, 7, 33), (2, 7, 5), (3, 17, 70), (1, 1000, 9),
    (4, 16, 16), (5, 1, 48), (6, 9, 31), (7, 40, 100), (13, 100, 70), (12, 257, 64), (25, 600, 97), (37, 33, 130),
]
KINDS = ["f32", "f16", "bf16"]


def _weights(rng, kind, n, k):
    """(what matmul takes, the same weights as float64)."""
    w = rng.standard_normal((n, k), dtype=np.float32)
    if kind == "f32":
        return w, w.astype(np.float64)
    if kind == "f16":
        h = w.astype(np.float16)
        return h, h.astype(np.float64)
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)  # truncation is a fine bf16 for a test
    return QuantizedTensor.from_bf16(bits), (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _assert_close(y, x, w64):
    """Within float32 accumulation error of the exact product, relative to sum |x||w| per output."""
    x64 = x.astype(np.float64)
    scale = np.abs(x64) @ np.abs(w64).T
    err = np.abs(y - x64 @ w64.T)
    bad = err > 1e-5 * scale + 1e-30
    assert not bad.any(), f"max relative error {np.max(err / (scale + 1e-30)):.3g}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matches_numpy(isa, rng, kind, m, k, n):
    x = rng.standard_normal((m, k), dtype=np.float32)
    w, w64 = _weights(rng, kind, n, k)
    y = matmul(x, w)
    assert y.shape == (m, n) and y.dtype == np.float32
    _assert_close(y, x, w64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,k,n", [(1, 300, 1000), (3, 45, 77), (11, 300, 200), (30, 519, 41)])
def test_simd_matches_scalar_reference(isa, rng, kind, m, k, n):
    x = rng.standard_normal((m, k), dtype=np.float32)
    w, _ = _weights(rng, kind, n, k)
    y = matmul(x, w)
    ninestep.set_isa("generic")  # the fixture restores the ISA under test afterwards
    ref = matmul(x, w)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_counts_split_rows(isa, rng, threads):
    x = rng.standard_normal((9, 40), dtype=np.float32)
    w, w64 = _weights(rng, "f32", 1000, 40)
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        y = matmul(x, w)
    finally:
        ninestep.set_num_threads(before)
    _assert_close(y, x, w64)


def test_large_n_decode(isa, rng):
    x = rng.standard_normal((1, 64), dtype=np.float32)
    w, w64 = _weights(rng, "f16", 20000, 64)
    _assert_close(matmul(x, w), x, w64)


def test_out_is_filled_and_returned(isa, rng):
    x = rng.standard_normal((7, 20), dtype=np.float32)
    w, w64 = _weights(rng, "f32", 50, 20)
    out = np.full((7, 50), np.nan, dtype=np.float32)
    assert matmul(x, w, out=out) is out
    _assert_close(out, x, w64)


def test_zero_rows_of_x(rng):
    w = rng.standard_normal((5, 8), dtype=np.float32)
    assert matmul(np.zeros((0, 8), np.float32), w).shape == (0, 5)


def test_values_exact_on_small_integers(isa):
    # integer products and sums below 2^24 are exact in float32, whatever the summation order
    x = np.arange(3 * 37, dtype=np.float32).reshape(3, 37) % 7 - 3
    w = np.arange(19 * 37, dtype=np.float32).reshape(19, 37) % 5 - 2
    np.testing.assert_array_equal(matmul(x, w), x @ w.T)
    np.testing.assert_array_equal(matmul(x, w.astype(np.float16)), x @ w.T)


def _bad(**kw):
    rng = np.random.default_rng(0)
    args = dict(x=rng.standard_normal((3, 8), dtype=np.float32), w=rng.standard_normal((5, 8), dtype=np.float32))
    args.update(kw)
    return args


@pytest.mark.parametrize("args,name", [
    (_bad(x=np.ones((3, 8), np.float64)), "x"),
    (_bad(x=[[1.0] * 8]), "x"),
    (_bad(x=np.ones(8, np.float32)), "x"),
    (_bad(x=np.ones((3, 16), np.float32)[:, ::2]), "x"),
    (_bad(x=np.ones((3, 7), np.float32)), "x"),
    (_bad(w=np.ones((5, 8), np.float64)), "w"),
    (_bad(w=np.ones((5, 8), np.int32)), "w"),
    (_bad(w=np.ones(8, np.float32)), "w"),
    (_bad(w=np.ones((2, 5, 8), np.float32)), "w"),
    (_bad(w=np.ones((8, 5), np.float32).T), "w"),
    (_bad(w=np.ones((0, 8), np.float32)), "w"),
    (_bad(x=np.ones((3, 0), np.float32), w=np.ones((5, 0), np.float32)), "w"),
    (_bad(w=np.ones((5, 8), np.uint16)), "w"),
    (_bad(w=[[1.0] * 8] * 5), "w"),
])
def test_bad_inputs_name_the_argument(args, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        matmul(args["x"], args["w"])


@pytest.mark.parametrize("out", [
    np.ones((3, 4), np.float32),
    np.ones((3, 5), np.float64),
    np.ones((5, 3), np.float32).T,
    np.ones((3, 5), np.float32)[None],
])
def test_bad_out_is_named(out):
    args = _bad()
    with pytest.raises(ValueError, match="^out:"):
        matmul(args["x"], args["w"], out=out)


def test_read_only_out_is_named():
    args = _bad()
    out = np.empty((3, 5), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="^out:"):
        matmul(args["x"], args["w"], out=out)


def test_bf16_bits_must_be_uint16_2d():
    with pytest.raises(ValueError, match="^bits:"):
        QuantizedTensor.from_bf16(np.ones((4, 8), np.float32))
