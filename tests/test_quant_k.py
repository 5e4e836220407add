"""Q4_K / Q5_K / Q6_K against gguf-py, ggml's own quantizers and a NumPy Q8_K, at every ISA.

Dequantize equals gguf-py's on the real tensors of both K-quant models and on random blocks;
quantize equals ggml's reference quantizers byte for byte (tests/goldens/make_kquant_golden.py:
gguf-py cannot quantize K-quants) and rounds every weight to its nearest level; Q8_K activations
equal a NumPy re-implementation of ggml's rounding. The K-quant matmul multiplies against the
32-element activation blocks (q8_32, one scale per 32): it equals dequantize-then-matmul within
that activation-quantization error, the same activation blocks decoded in NumPy times the
dequantized weights within float rounding, and the scalar reference within float rounding."""
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize

import ninestep
from ninestep import QuantizedTensor, _core, ops, quantize
from ninestep.formats.gguf import GGUFFile

from helpers.models import real_model_path

KINDS = ["q4_k", "q5_k", "q6_k"]
QK_K = 256
BLOCK_BYTES = {"q4_k": 144, "q5_k": 176, "q6_k": 210}
GGML = {"q4_k": gguf.GGMLQuantizationType.Q4_K, "q5_k": gguf.GGMLQuantizationType.Q5_K,
        "q6_k": gguf.GGMLQuantizationType.Q6_K}
FP16_FIELDS = {"q4_k": (0, 2), "q5_k": (0, 2), "q6_k": (208,)}  # byte offsets of the fp16 scales
GOLDEN = np.load(Path(__file__).parent / "goldens" / "kquant_golden.npz")
MODELS = ["gemma3-270m", "qwen2.5-coder-0.5b"]  # ninestep.hub names
Q8K = np.dtype([("d", "<f4"), ("qs", "i1", QK_K), ("bsums", "<i2", QK_K // 16)])
assert Q8K.itemsize == 292
QK = 32  # elements per activation block of the K-quant matmul
Q8ACT = np.dtype([("d", "<f4"), ("s", "<f4"), ("qs", "i1", QK)])
assert Q8ACT.itemsize == 40


def model_tensors(model, kind, count=3):
    """(name, QuantizedTensor, raw [rows, row bytes]) for the first `count` tensors of `kind`."""
    f = GGUFFile(str(real_model_path(model)))
    out = []
    for t in [t for t in f.tensors.values() if t.kind == kind][:count]:
        k = t.shape[-1]
        raw = f.raw(t.name).reshape(-1, k // QK_K * BLOCK_BYTES[kind])
        out.append((t.name, QuantizedTensor(raw, kind, (raw.shape[0], k)), raw))
    return out


def random_blocks(rng, kind, n, k):
    """Random bytes as n rows of `kind`: every bit pattern is a valid block except fp16 scales that
    are inf / NaN, whose top exponent bit is cleared here."""
    raw = rng.integers(0, 256, (n, k // QK_K, BLOCK_BYTES[kind]), dtype=np.uint8)
    for off in FP16_FIELDS[kind]:
        h = raw[..., off:off + 2].copy().view("<u2")
        h[(h & 0x7C00) == 0x7C00] &= 0xBFFF
        raw[..., off:off + 2] = h.view(np.uint8)
    return raw.reshape(n, -1)


def with_isa(isa, fn):
    before = _core.active_isa()
    ninestep.set_isa(isa)
    try:
        return fn()
    finally:
        ninestep.set_isa(before)


# ---- dequantize ----

@pytest.mark.parametrize("model", MODELS, ids=["gemma3", "qwen2"])
@pytest.mark.parametrize("kind", ["q4_k", "q6_k"])
def test_dequantize_real_tensors_match_gguf_py(model, kind):
    tensors = model_tensors(model, kind)
    assert tensors, f"{model} has no {kind} tensor"
    for name, qt, raw in tensors:
        theirs = gguf_dequantize(raw, GGML[kind]).reshape(qt.shape)
        np.testing.assert_array_equal(qt.dequantize(), theirs, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_dequantize_random_blocks_match_gguf_py(kind, rng):
    raw = random_blocks(rng, kind, 40, 4 * QK_K)
    ours = QuantizedTensor(raw, kind, (40, 4 * QK_K)).dequantize()
    np.testing.assert_array_equal(ours, gguf_dequantize(raw, GGML[kind]))


# ---- quantize ----

@pytest.mark.parametrize("kind", KINDS)
def test_quantize_bytes_match_ggml(kind):
    x = GOLDEN["x"]
    ours = quantize(x, kind).data.reshape(GOLDEN[kind].shape)
    bad = [i for i in range(len(x)) if not np.array_equal(ours[i], GOLDEN[kind][i])]
    assert not bad, f"{kind}: rows {bad} differ from ggml's quantize_row_{kind[:2]}_K_ref"


def sub_block_params(raw, kind):
    """Per sub-block (scale, offset, nmax, sub-block length): w = scale * q - offset, q in [0, nmax]."""
    b = raw.reshape(-1, BLOCK_BYTES[kind])
    if kind == "q6_k":
        d = b[:, 208:210].copy().view("<f2").astype(np.float64)
        sc = b[:, 192:208].view(np.int8).astype(np.float64)
        return d * sc, 32 * d * sc, 63, 16
    d = b[:, 0:2].copy().view("<f2").astype(np.float64)
    dmin = b[:, 2:4].copy().view("<f2").astype(np.float64)
    sc, mn = gguf.quants.Q4_K.get_scale_min(b[:, 4:16])
    nmax = 15 if kind == "q4_k" else 31
    return d * sc.astype(np.float64), dmin * mn.astype(np.float64), nmax, 32


def awkward(rng, n=24, k=1024):
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[0, :300] = 0.0
    w[1] = np.round(w[1] * 4) / 4
    w[2] = rng.uniform(0, 1e-3, k)
    w[3] = -np.abs(w[3])
    w[4, 40] = 300.0
    w[5] *= 1e-5
    w[6] = rng.standard_t(2, k)
    return w


@pytest.mark.parametrize("kind", KINDS)
def test_quantize_rounds_to_the_nearest_level(kind, rng):
    """Every weight is stored as the level (of its sub-block's stored scale) nearest to it, clamped
    to the codes; sub-blocks whose scale rounded to zero keep the search's codes and are skipped."""
    w = awkward(rng)
    q = quantize(w, kind)
    scale, offset, nmax, sub = sub_block_params(q.data, kind)
    x = w.astype(np.float64).reshape(scale.size, sub)
    s, o = scale.reshape(-1, 1), offset.reshape(-1, 1)
    live = (s != 0).ravel()
    level = np.clip(np.rint((x[live] + o[live]) / s[live]), 0, nmax) * s[live] - o[live]
    err = np.abs(q.dequantize().astype(np.float64).reshape(x.shape)[live] - x[live])
    nearest = np.abs(level - x[live])
    assert np.all(err <= nearest + 1e-6 * np.abs(s[live]) + 1e-12)


@pytest.mark.parametrize("kind,rel_rms", [("q4_k", 0.09), ("q5_k", 0.045), ("q6_k", 0.035)])
def test_round_trip_error_on_gaussian_weights(kind, rel_rms, rng):
    """RMS error of Gaussian weights below what the bits allow: uniform rounding over a 32-element
    sub-block's range (~4 sigma) gives 4 / 15 / sqrt(12) = 0.077 sigma for Q4_K, 0.037 for Q5_K;
    Q6_K's 64 signed levels over 16 elements about 0.03."""
    w = rng.standard_normal((64, 2048)).astype(np.float32)
    err = quantize(w, kind).dequantize() - w
    assert np.sqrt(np.mean(err.astype(np.float64) ** 2)) < rel_rms


def test_more_bits_less_error(rng):
    w = rng.standard_normal((16, 1024)).astype(np.float32)
    rms = [np.sqrt(np.mean((quantize(w, k).dequantize() - w) ** 2)) for k in KINDS]
    assert rms[0] > rms[1] > rms[2]


# ---- Q8_K activations ----

def numpy_q8k(x):
    """ggml's quantize_row_q8_K_ref in NumPy: per 256 the first element of largest |x| sets
    iscale = -127 / max; q = round-half-even(iscale * x) capped at 127; d = 1 / iscale."""
    blocks = x.reshape(-1, QK_K).astype(np.float32)
    out = np.zeros(len(blocks), Q8K)
    for b, v in enumerate(blocks):
        a = np.abs(v)
        if a.max() == 0:
            continue
        iscale = np.float32(-127.0) / v[np.argmax(a)]
        q = np.minimum(np.rint(iscale * v), 127).astype(np.int8)
        out[b]["qs"] = q
        out[b]["bsums"] = q.reshape(16, 16).astype(np.int32).sum(1)
        out[b]["d"] = np.float32(1.0) / iscale
    return out.view(np.uint8).reshape(x.shape[0], -1)


def q8k(x):
    out = np.empty((x.shape[0], x.shape[1] // QK_K * Q8K.itemsize), np.uint8)
    _core.quantize_activations(out, x, "q8_k")
    return out


def test_q8k_activations_match_numpy(isa, rng):
    x = (rng.standard_normal((9, 1536)) * np.array([1, 1e-3, 50, 1, 1, 1, 1, 1, 1])[:, None]).astype(np.float32)
    x[3, :256] = 0.0
    x[4, 10], x[4, 200] = 7.0, -7.0  # equal magnitudes, positive first
    x[5, 10], x[5, 200] = -7.0, 7.0
    x[6] = np.round(x[6] * 2) / 2  # ties in iscale * x
    np.testing.assert_array_equal(q8k(x), numpy_q8k(x))


def test_q8k_activations_match_ggml(isa):
    np.testing.assert_array_equal(q8k(GOLDEN["x"]), GOLDEN["q8_k"])


# ---- matmul ----

def activation_bound(x, wd):
    """Worst case |x @ W^T - x_q @ W^T| with x_q the 32-element activation blocks: each activation
    moves at most half its block's step amax / 127, times |w|; plus float rounding of the sums."""
    m, k = x.shape
    amax = np.abs(x.reshape(m, -1, QK)).max(-1).astype(np.float64)  # [m, k / 32]
    wabs = np.abs(wd).reshape(wd.shape[0], -1, QK).sum(-1)  # [n, k / 32]
    scale = np.abs(x).astype(np.float64) @ np.abs(wd).T
    return (amax / 254.0) @ wabs.T * 1.0001 + 1e-5 * scale + 1e-6


def decoded_activations(x):
    """x [m, k] -> the q8_32 blocks the matmul multiplies (made at the active ISA), as d * qs."""
    out = np.empty((x.shape[0], x.shape[1] // QK * Q8ACT.itemsize), np.uint8)
    _core.quantize_activations(out, x, "q8_32")
    b = out.view(Q8ACT).reshape(x.shape[0], -1)
    np.testing.assert_allclose(b["s"], b["d"] * b["qs"].astype(np.float64).sum(-1), rtol=1e-6)
    return (b["d"][..., None].astype(np.float64) * b["qs"]).reshape(x.shape)


SHAPES = [(1, 256, 37), (2, 4864, 21), (4, 1024, 67), (5, 2048, 33), (33, 768, 45), (512, 256, 19), (1, 4864, 67),
          (512, 1536, 13)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_matches_dequantized(kind, m, k, n, isa, rng):
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, :QK_K] *= 40  # blocks of very different scales in one row
    q = quantize(rng.standard_normal((n, k)).astype(np.float32), kind)
    wd = q.dequantize().astype(np.float64)
    got = ops.matmul(x, q)
    ref = x.astype(np.float64) @ wd.T
    assert np.all(np.abs(got - ref) <= activation_bound(x, wd))
    # the activation blocks decoded in NumPy times the dequantized weights: only float rounding
    scale = np.abs(x).astype(np.float64) @ np.abs(wd).T
    assert np.all(np.abs(got - decoded_activations(x) @ wd.T) <= 1e-5 * scale + 1e-5)
    # and the scalar reference on the same activations: same integers, only float order differs
    generic = with_isa("generic", lambda: ops.matmul(x, q))
    assert np.all(np.abs(got - generic) <= 1e-5 * scale + 1e-5)


@pytest.mark.parametrize("model", MODELS, ids=["gemma3", "qwen2"])
@pytest.mark.parametrize("kind", ["q4_k", "q6_k"])
def test_matmul_real_tensors(model, kind, isa, rng):
    name, q, raw = model_tensors(model, kind, count=1)[0]
    x = rng.standard_normal((5, q.shape[1])).astype(np.float32)
    wd = q.dequantize().astype(np.float64)
    got = ops.matmul(x, q)
    assert np.all(np.abs(got - x.astype(np.float64) @ wd.T) <= activation_bound(x, wd)), name


# ---- damaged and wrong input ----

@pytest.mark.parametrize("kind", KINDS)
def test_damaged_blocks_never_crash(kind, isa, rng):
    """Random bytes including inf / NaN fp16 scales: any finite-scale row stays finite, no crash,
    and every ISA agrees with the scalar reference where the reference is finite."""
    raw = rng.integers(0, 256, (7, 3 * BLOCK_BYTES[kind]), dtype=np.uint8)
    clean = random_blocks(rng, kind, 5, 3 * QK_K)
    raw[:5] = clean
    q = QuantizedTensor(raw, kind, (7, 3 * QK_K))
    x = rng.standard_normal((3, 3 * QK_K)).astype(np.float32)
    got = ops.matmul(x, q)
    assert np.all(np.isfinite(got[:, :5]))
    generic = with_isa("generic", lambda: ops.matmul(x, q))
    fin = np.isfinite(generic)
    np.testing.assert_allclose(got[fin], generic[fin], rtol=1e-4, atol=1e-2 * np.abs(generic[fin]).max())
    q.dequantize()  # non-finite values allowed, no crash


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_and_misshaped_weights_are_refused(kind):
    raw = np.zeros((4, BLOCK_BYTES[kind] * 2), np.uint8)
    with pytest.raises(ValueError, match="bytes"):
        QuantizedTensor(raw.ravel()[:-1], kind, (4, 512))
    with pytest.raises(ValueError, match="multiple of 256"):
        QuantizedTensor(raw, kind, (4, 500))
    y = np.empty((1, 4), np.float32)
    with pytest.raises(ValueError, match="needs"):
        _core.matmul(y, np.zeros((1, 512), np.float32), raw.ravel()[:-BLOCK_BYTES[kind]], kind, 4, 512)
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize(np.zeros((2, 300), np.float32), kind)


def test_quantize_activations_refuses_bad_arguments():
    x = np.zeros((2, 512), np.float32)
    with pytest.raises(ValueError, match="format"):
        _core.quantize_activations(np.empty((2, 584), np.uint8), x, "f32")
    with pytest.raises(ValueError, match="out"):
        _core.quantize_activations(np.empty((2, 583), np.uint8), x, "q8_k")
    with pytest.raises(ValueError, match="multiple of 256"):
        _core.quantize_activations(np.empty((2, 584), np.uint8), np.zeros((2, 500), np.float32), "q8_k")


def test_trait_rows_have_every_kernel():
    kernels = _core.type_kernels()
    for kind in KINDS:
        row = kernels[kind]
        assert row["activations"] == "q8_32" and row["matmul"] and row["quantize"] and row["dequantize"], row
