"""ops.matmul with quantized weights, at every ISA: against the scalar reference, an exact NumPy
emulation of the 8-bit activation blocks, and float32 NumPy on the dequantized weights."""
import functools

import numpy as np
import pytest

import ninestep
from ninestep import QuantizedTensor, _core, ops, quantize

KINDS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
# (M, N, K): matvec and tiles with every remainder of the 4-row activation tile and of the 2- and
# 4-row weight tiles, one block (K=32), an odd block count (K=96, AVX-512 pairs blocks), the model's
# K=576, M above the 32-row cache chunk, and K at and above the AVX-512 path's limit. The LM
# head's N has its own test below.
SHAPES = [(1, 7, 32), (1, 33, 96), (1, 1536, 576), (3, 33, 96), (5, 64, 576), (2, 9, 32), (8, 17, 64),
          (13, 30, 160), (37, 21, 96), (16, 11, 96), (9, 3, 64),
          (13, 9, 1536), (5, 6, 4096), (1, 5, 4128), (3, 5, 4128),
          # Q5's two-row GEMV and its odd row; the 4-row tile alone and with a 1-row tail; m = 37 at
          # the real models' widths
          (1, 3, 640), (1, 11, 4096), (4, 7, 32), (4, 5, 4096), (37, 7, 896), (37, 3, 4096),
          # more rows than the AVX2 kernel's unpacked-weight panel holds (K > 8192): unpacked per tile
          (9, 3, 8224)]


def act_blocks(x):
    """x [M, K] -> (d [M, nb], s [M, nb], q [M, nb, 32]) exactly as the kernels quantize it."""
    xb = x.reshape(x.shape[0], -1, 32)
    d = np.abs(xb).max(axis=2) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.rint(xb * inv[..., None]).astype(np.int32)  # rint: round half to even, like the kernels
    return d, d * q.sum(axis=2).astype(np.float32), q


def weight_blocks(t):
    """QuantizedTensor -> (d [N, nb], m [N, nb] or None, q [N, nb, 32]) straight from the bytes."""
    n, k = t.shape
    nbytes = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24}[t.kind]
    raw = t.data.reshape(n, k // 32, nbytes)
    d = raw[..., :2].copy().view(np.float16)[..., 0].astype(np.float32)
    if t.kind == "q8_0":
        return d, None, raw[..., 2:].view(np.int8).astype(np.int32)
    qs = raw[..., nbytes - 16:].astype(np.int32)
    q = np.concatenate([qs & 0xF, qs >> 4], axis=2)
    if t.kind in ("q5_0", "q5_1"):  # fifth bits: bit j of the uint32 before the nibbles
        qh = raw[..., nbytes - 20:nbytes - 16].copy().view("<u4").astype(np.int64)  # [n, nb, 1]
        q = q | (((qh >> np.arange(32)) & 1) << 4).astype(np.int32)
    if t.kind in ("q4_0", "q5_0"):
        return d, None, q - (8 if t.kind == "q4_0" else 16)
    return d, raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32), q


def emulate(x, t):
    """(y, scale): y in float64 from exact integer block dots; scale = sum of |terms| per output,
    what float rounding error is relative to. Q5_0's kernels may multiply the unsigned q and add
    -16 d_w s_x (AVX2 does): its rounding is relative to those larger terms, so they join scale."""
    da, sa, qa = act_blocks(x)
    dw, mw, qw = weight_blocks(t)
    isum = np.einsum("ibc,jbc->ijb", qa, qw)
    dd = da[:, None, :].astype(np.float64) * dw[None].astype(np.float64)
    terms = dd * isum
    scale = np.abs(terms).sum(axis=2)
    if mw is not None:
        terms = np.concatenate([terms, sa[:, None, :].astype(np.float64) * mw[None]], axis=2)
        scale = np.abs(terms).sum(axis=2)
    if t.kind == "q5_0":
        scale = scale + (np.abs(dd) * 32 * np.abs(qa.sum(axis=2))[:, None, :]).sum(axis=2)
    return terms.sum(axis=2), scale


def inputs(rng, m, n, k, kind):
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32) * np.float32(0.1)
    if m > 1:
        x[1, :32] = 0.0  # a zero block: d = 0, q = 0
    if m > 2:
        x[2] *= 1e4
    return x, quantize(w, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_scalar_reference_and_emulation(isa, kind, m, n, k, rng):
    x, t = inputs(rng, m, n, k, kind)
    y = ops.matmul(x, t)
    ninestep.set_isa("generic")
    ref = ops.matmul(x, t)  # the fixture restores the ISA afterwards
    emu, scale = emulate(x, t)
    tol = 1e-5 * scale + 1e-30
    assert np.all(np.abs(y - ref) <= tol)
    assert np.all(np.abs(y - emu) <= tol)
    assert np.all(np.abs(ref - emu) <= tol)


@functools.lru_cache(maxsize=None)
def lm_head(kind):
    """The real model's output head shape [49152, 576] and its emulated product, made once."""
    rng = np.random.default_rng(7)
    x, t = inputs(rng, 1, 49152, 576, kind)
    return x, t, emulate(x, t)


@pytest.mark.parametrize("kind", ["q8_0", "q5_0"])
def test_large_n(isa, kind):
    x, t, (emu, scale) = lm_head(kind)  # SmolLM2's LM head is Q8_0; Qwen2.5's embeddings are Q5_0
    assert np.all(np.abs(ops.matmul(x, t) - emu) <= 1e-5 * scale)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,n,k", [(1, 40, 576), (5, 33, 96), (6, 8, 32), (1, 9, 4096), (3, 5, 2048),
                                   (4, 13, 640), (37, 7, 896)])
def test_close_to_float_matmul(isa, kind, m, n, k, rng):
    x, t = inputs(rng, m, n, k, kind)
    wd = t.dequantize()
    y = ops.matmul(x, t)
    ref = x.astype(np.float64) @ wd.T.astype(np.float64)
    # activation rounding moves each x by at most half its block's step d/2
    d = np.abs(x.reshape(m, -1, 32)).max(axis=2) / 127
    bound = np.einsum("ib,jb->ij", d / 2, np.abs(wd.reshape(n, -1, 32)).sum(axis=2))
    assert np.all(np.abs(y - ref) <= bound * 1.01 + 1e-5 * np.abs(x) @ np.abs(wd).T)


def test_zero_activations_give_zero(isa, rng):
    for kind in KINDS:
        t = quantize(rng.standard_normal((9, 64)).astype(np.float32), kind)
        np.testing.assert_array_equal(ops.matmul(np.zeros((5, 64), np.float32), t), 0.0)


def test_threads_agree(isa, rng):
    x, t = inputs(rng, 6, 301, 96, "q4_1")
    before = ninestep.get_num_threads()
    try:
        ninestep.set_num_threads(1)
        one = ops.matmul(x, t)
        ninestep.set_num_threads(2)
        two = ops.matmul(x, t)
    finally:
        ninestep.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_out_argument(isa, rng):
    x, t = inputs(rng, 3, 20, 64, "q8_0")
    out = np.full((3, 20), np.nan, np.float32)
    assert ops.matmul(x, t, out=out) is out
    np.testing.assert_array_equal(out, ops.matmul(x, t))


def test_bad_inputs(rng):
    t = quantize(rng.standard_normal((4, 64)).astype(np.float32), "q4_1")
    with pytest.raises(ValueError, match="x"):
        ops.matmul(np.zeros((2, 32), np.float32), t)
    with pytest.raises(ValueError, match="x"):
        ops.matmul(np.zeros((2, 64), np.float64), t)
    with pytest.raises(ValueError, match="x"):
        ops.matmul(np.zeros(64, np.float32), t)
    with pytest.raises(ValueError, match="x"):
        ops.matmul(np.zeros((2, 128), np.float32)[:, ::2], t)
    with pytest.raises(ValueError, match="out"):
        ops.matmul(np.zeros((2, 64), np.float32), t, out=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="out"):
        ops.matmul(np.zeros((2, 64), np.float32), t, out=np.zeros((2, 4), np.float64))
    with pytest.raises(ValueError, match="w"):
        ops.matmul(np.zeros((2, 64), np.float32), t.data)
    # the binding re-checks what Python hands it: a byte count that does not match the kind
    with pytest.raises(ValueError, match="w"):
        _core.matmul(np.zeros((2, 4), np.float32), np.zeros((2, 64), np.float32), t.data[:-1], "q4_1", 4, 64)
    with pytest.raises(ValueError):
        _core.matmul(np.zeros((2, 4), np.float32), np.zeros((2, 48), np.float32), np.zeros(80, np.uint8),
                     "q4_1", 4, 48)


def test_empty_batch(rng):
    t = quantize(rng.standard_normal((4, 64)).astype(np.float32), "q8_0")
    assert ops.matmul(np.zeros((0, 64), np.float32), t).shape == (0, 4)


def test_wrapped_gguf_bytes_multiply_like_quantize(isa, rng):
    w = rng.standard_normal((10, 96)).astype(np.float32)
    x = rng.standard_normal((3, 96)).astype(np.float32)
    t = quantize(w, "q4_0")
    wrapped = QuantizedTensor(t.data.copy(), "q4_0", (10, 96))
    np.testing.assert_array_equal(ops.matmul(x, wrapped), ops.matmul(x, t))


def tie_heavy_activations(rng, m, k):
    """Blocks whose largest |x| is 127, so d = 1 and x * (1 / d) = x: values on .5 ties (rounded
    half to even), just off them, and a zero block."""
    x = (rng.integers(-127, 127, (m, k)) + rng.choice([0.5, 0.499, 0.501, 0.0], (m, k))).astype(np.float32)
    x = np.clip(x, -126.5, 126.5)
    x[:, ::32] = 127.0
    x[0, 32:64] = 0.0 if k > 32 else x[0, 32:64]
    return x


def test_activation_quantization_is_exact(isa, rng):
    # One-hot Q8_0 rows pick single activations: y[i, j] = d_w * d_x * 127 * q_x[i, j], one term,
    # so every ISA must give the same float bit for bit, and q_x must be NumPy's rint.
    m, k = 5, 96
    x = tie_heavy_activations(rng, m, k)
    t = quantize(np.eye(k, dtype=np.float32), "q8_0")
    y = ops.matmul(x, t)
    ninestep.set_isa("generic")
    np.testing.assert_array_equal(y, ops.matmul(x, t))
    dw, _, qw = weight_blocks(t)
    da, _, qa = act_blocks(x)
    diag = np.arange(k)
    assert np.all(qw.reshape(k, k)[diag, diag] == 127)
    scale = dw[diag, diag // 32][None, :] * np.repeat(da, 32, axis=1)  # float32, as the kernels round it
    np.testing.assert_array_equal(y, scale * (127 * qa.reshape(m, k)).astype(np.float32))


@pytest.mark.parametrize("kind", ["q4_1", "q5_1"])
def test_activation_block_sums_are_exact(isa, kind, rng):
    # A constant row has d = 0 and m = 1, so y = sum over blocks of s = d_x * sum(q_x): the
    # per-block sums the kernels precompute, compared bit for bit across ISAs.
    m, k = 6, 160
    x = tie_heavy_activations(rng, m, k)
    t = quantize(np.ones((3, k), np.float32), kind)
    y = ops.matmul(x, t)
    ninestep.set_isa("generic")
    np.testing.assert_array_equal(y, ops.matmul(x, t))
    _, sa, _ = act_blocks(x)
    np.testing.assert_allclose(y, np.repeat(sa.sum(axis=1, dtype=np.float64)[:, None], 3, axis=1), rtol=1e-6)


def q5_blocks(q, d, m=None):
    """Q5_0 (m None) or Q5_1 bytes [n, nb, 22 or 24] from q [n, nb, 32] in [0, 31] and fp16 d (, m)."""
    q = q.astype(np.uint32)
    head = [np.full(q.shape[:2] + (2,), np.frombuffer(np.float16(v).tobytes(), np.uint8)) for v in
            ([d] if m is None else [d, m])]
    qh = ((q >> 4) << np.arange(32, dtype=np.uint32)).sum(axis=2, dtype=np.uint32).astype("<u4")
    qs = ((q[..., :16] & 0xF) | ((q[..., 16:] & 0xF) << 4)).astype(np.uint8)
    return np.concatenate(head + [qh[..., None].view(np.uint8), qs], axis=2)


def test_q5_0_offset_cancels(isa, rng):
    # every q = 16 is w = 0: whatever a kernel does with the -16 offset must cancel to (almost) 0
    n, k, m = 5, 1024, 4
    t = QuantizedTensor(q5_blocks(np.full((n, k // 32, 32), 16), 0.37), "q5_0", (n, k))
    x = (rng.standard_normal((m, k)) * 3 + 5).astype(np.float32)  # mostly positive: large sum(q_x)
    _, scale = emulate(x, t)
    y = ops.matmul(x, t)
    assert np.all(np.abs(y) <= 1e-6 * scale) and np.all(scale > 0)


@pytest.mark.parametrize("kind", ["q5_0", "q5_1"])
def test_full_q5_range(isa, kind, rng):
    # q at 0 and 31 (fifth bit set and clear) against x = +-127: the unsigned int16 pair sums
    # reach 2 * 31 * 127 and must not saturate
    n, k, m = 9, 256, 5
    q = rng.choice(np.array([0, 31, 16, 15, 1, 30]), (n, k // 32, 32))
    q[0] = 31
    q[1] = 0
    t = QuantizedTensor(q5_blocks(q, 0.01, None if kind == "q5_0" else -0.2), kind, (n, k))
    x = np.where(rng.random((m, k)) < 0.5, -127.0, 127.0).astype(np.float32)
    x[0] = 127.0
    emu, scale = emulate(x, t)
    assert np.all(np.abs(ops.matmul(x, t) - emu) <= 1e-5 * scale)
    d = np.float32(np.float16(0.01))
    want = d * (q - 16) if kind == "q5_0" else d * q + np.float32(np.float16(-0.2))
    np.testing.assert_array_equal(t.dequantize(), want.astype(np.float32).reshape(n, k))


def test_full_int8_range_in_q8_0_files(isa, rng):
    # ggml's quantizer never writes -128, but a Q8_0 file may hold any int8: |w| = 128 against
    # x = +-127 must not saturate the int16 pair sums of maddubs.
    n, k, m = 12, 96, 5
    raw = np.empty((n, k // 32, 34), np.uint8)
    raw[..., :2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
    q = rng.choice(np.array([-128, 127, -127, 0, 1], np.int8), (n, k // 32, 32))
    q[0] = -128
    raw[..., 2:] = q.view(np.uint8)
    t = QuantizedTensor(raw, "q8_0", (n, k))
    x = np.where(rng.random((m, k)) < 0.5, -127.0, 127.0).astype(np.float32)
    emu, scale = emulate(x, t)
    assert np.all(np.abs(ops.matmul(x, t) - emu) <= 1e-5 * scale)


@pytest.mark.parametrize("kind", KINDS + ["q4_k", "q5_k", "q6_k"])
def test_rows_do_not_depend_on_their_batch(isa, kind, rng):
    # A row's result is the same bits in any batch of two or more rows (in a tile's tail, in a full
    # tile): so a sequence's logits do not depend on what else the multi-sequence engine batches
    # with it, as far as the matmuls go. A lone row (decode) takes the GEMV, which sums the same
    # integer block dots in another float order: equal to float rounding.
    m, n, k = 45, 13, 512
    x, t = inputs(rng, m, n, k, kind)
    full = ops.matmul(x, t)
    for a, b in [(3, 5), (43, 45), (5, 13), (7, 40), (0, 9), (30, 45)]:
        np.testing.assert_array_equal(ops.matmul(np.ascontiguousarray(x[a:b]), t), full[a:b], err_msg=f"rows {a}:{b}")
    for a in (0, 44):
        one = ops.matmul(np.ascontiguousarray(x[a:a + 1]), t)
        np.testing.assert_allclose(one, full[a:a + 1], rtol=0, atol=2e-5 * np.abs(full).max(), err_msg=f"row {a}")


@pytest.mark.parametrize("kind", KINDS)
def test_small_batches_equal_large_batches(isa, kind, rng):
    # Batches of 5..16 rows take another AVX2 loop order (activations on the panel) than larger
    # ones: every row count from 2 to 17, against every weight-row remainder of its 4-row tile
    # (n = 11: 4 + 4 + 3; n = 6: 4 + 2; n = 1), gives the bits of the same rows in a batch of 40.
    for n in (11, 6, 1):
        x, t = inputs(rng, 40, n, 160, kind)
        full = ops.matmul(x, t)
        for m in range(2, 18):
            a = (3 * m) % (40 - m)
            np.testing.assert_array_equal(ops.matmul(np.ascontiguousarray(x[a:a + m]), t), full[a:a + m],
                                          err_msg=f"n {n} rows {a}:{a + m}")


PACKED_SHAPES = [(2, 8, 32), (3, 13, 64), (8, 1536, 576), (4, 5, 96), (9, 20, 576),
                 # more rows than a tile (the Q4 column group spread to bytes first), more than a chunk
                 (17, 30, 160), (40, 9, 576), (150, 24, 1536),
                 # K above the spread panel's 256 groups: the packed groups read directly
                 (20, 11, 8224), (1, 24, 64)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,n,k", PACKED_SHAPES)
def test_packed_weights_give_the_same_bits(isa, kind, m, n, k, rng):
    # A loaded model packs its 32-element quantized matrices for batches (cpp/kernels/quant_packed.h;
    # AVX2 maddubs or AVX-512 VNNI dpbusd): the packed product rounds as the AVX2 panel over the
    # GGUF rows, so equal bits, in column groups of 8 with a padded last one (n = 13, 5, ...), every
    # tile remainder and chunk. (K above 8192 has no panel: the GGUF rows then take another kernel,
    # equal to float rounding.)
    x, t = inputs(rng, m, n, k, kind)
    y = ops.matmul(x, t, packed=True)
    if m == 1 and _core.packed_gemv(kind):
        # a lone row reads the packed copy too (AVX2 without VNNI): the bits of that row in a batch,
        # the GGUF rows' GEMV to float rounding
        np.testing.assert_array_equal(y, ops.matmul(np.concatenate([x, x]), t, packed=True)[:1])
        np.testing.assert_allclose(y, ops.matmul(x, t), rtol=1e-5, atol=1e-5 * float(np.abs(y).max()))
    elif k <= 8192:
        np.testing.assert_array_equal(y, ops.matmul(x, t))
    emu, scale = emulate(x, t)
    assert np.all(np.abs(y - emu) <= 1e-5 * scale + 1e-30)
    if m > 2:  # any batch of 2+ rows gives a row the same bits
        np.testing.assert_array_equal(ops.matmul(np.ascontiguousarray(x[1:3]), t, packed=True), y[1:3])


@pytest.mark.parametrize("kind", ["q4_k", "q5_k", "q6_k"])
@pytest.mark.parametrize("m,n,k", [(2, 8, 256), (3, 13, 512), (8, 40, 2048), (17, 9, 256), (40, 20, 768),
                                   (150, 10, 512)])
def test_packed_k_quants_give_the_same_bits(isa, kind, m, n, k, rng):
    # The K-quants pack by super-block (the 8 groups' quads, then the rows' scales): as the AVX2
    # panel over the GGUF rows, bit for bit, including Q6_K's two scales per group.
    x, t = inputs(rng, m, n, k, kind)
    y = ops.matmul(x, t, packed=True)
    np.testing.assert_array_equal(y, ops.matmul(x, t))
    np.testing.assert_allclose(y, x @ t.dequantize().T, rtol=0, atol=0.05 * np.abs(y).max())


def test_which_kinds_pack(isa):
    from ninestep import _core
    kq = ["q4_k", "q5_k", "q6_k"]
    packs = {kind: _core.packs(kind) for kind in KINDS + kq + ["f32", "f16"]}
    want = {kind: kind in KINDS + kq and isa in ("avx2", "avx512") for kind in packs}
    assert packs == want
