"""quantize / dequantize / QuantizedTensor against gguf-py and blocks written by hand from the GGUF spec."""
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

import ninestep
from ninestep import QuantizedTensor, quantize

KINDS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
GGML = {k: getattr(gguf.GGMLQuantizationType, k.upper()) for k in KINDS}
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24}


def awkward_weights(rng, n=48, k=576):
    """Gaussian rows plus blocks that stress rounding: zeros, constants, exact ties, one outlier."""
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[0, :32] = 0.0
    w[1, :32] = 1.5
    w[2] = np.round(w[2] * 4) / 4  # many values land exactly on .5 steps
    w[3] = np.linspace(-1, 1, k, dtype=np.float32)
    w[4, 40] = 300.0
    w[5] = rng.uniform(0, 1e-3, k).astype(np.float32)  # all positive, tiny: q4_1's minimum > 0
    w[6] = -np.abs(w[6])
    return w


def extreme_weights(rng, k=256):
    """Rows that are hard on the arithmetic but stay finite (no NaN in the quantizers' float
    steps): huge and tiny magnitudes, mixed scales within a block, ties for the largest |x|
    (the first one wins), constant and one-value-off rows, negative zero."""
    rows = [
        rng.standard_normal(k) * 1e37,  # fp16 scale overflows to inf; ggml stores that
        rng.standard_normal(k) * 1e-30,  # scale is an fp16 zero or subnormal
        rng.uniform(1e-36, 1e-35, k),
        np.where(rng.random(k) < 0.5, 1e30, -1e-30),
        np.full(k, -2.5), np.full(k, 65504.0), np.full(k, 1e-8),
        np.tile([3.0, -3.0] + [0.5] * 30, k // 32),  # |max| tie, positive first
        np.tile([-3.0, 3.0] + [0.5] * 30, k // 32),  # |max| tie, negative first
        np.concatenate([np.full(k - 1, 7.0), [7.000001]]),
        np.tile(np.linspace(-16, 15, 32), k // 32),  # Q5_0's grid exactly (d = 1)
        np.tile(np.arange(32.0) * 0.1 - 1, k // 32),  # Q5_1's grid up to rounding
        np.full(k, -0.0), np.zeros(k),
        np.tile([3.4e38, -3.4e38] + [0.0] * 30, k // 32),  # Q5_0 only: max - min would overflow
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_bytes_match_gguf_py(kind, rng):
    w = awkward_weights(rng)
    ours = quantize(w, kind)
    theirs = gguf_quantize(w, GGML[kind])
    assert ours.data.nbytes == theirs.nbytes
    np.testing.assert_array_equal(ours.data.reshape(theirs.shape), theirs)


@pytest.mark.parametrize("kind", KINDS)
def test_bytes_match_gguf_py_on_extremes(kind, rng):
    w = extreme_weights(rng)
    if kind in ("q4_1", "q5_1"):  # (max - min) overflows to inf on the last row: inf * 0 is NaN
        w = w[:-1]
    if kind in ("q4_0", "q5_0"):
        # An all -0.0 row: ggml's loop starts max at +0 and keeps it, d = +0 / -8 = -0 (fp16
        # 0x8000); gguf-py takes max = -0, d = +0. ninestep follows ggml (the golden test below).
        w = w[np.any(w.view(np.uint32) != 0x80000000, axis=1)]
    with np.errstate(all="ignore"):  # gguf-py's float32 steps overflow where ggml's do
        theirs = gguf_quantize(w, GGML[kind])
    ours = quantize(w, kind)
    np.testing.assert_array_equal(ours.data.reshape(theirs.shape), theirs)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(ours.dequantize(), gguf_dequantize(theirs, GGML[kind]))


GGML_GOLDENS = Path(__file__).parent / "goldens" / "ggml_quant_goldens.npz"


@pytest.mark.parametrize("kind", KINDS)
def test_bytes_match_ggml_reference_quantizer(kind):
    # bytes written by ggml's own quantize_row_<kind>_ref (libggml-base, via
    # tests/goldens/make_ggml_quant_goldens.py) for extreme and random rows, -0.0 rows included
    g = np.load(GGML_GOLDENS)
    for name in ("extreme", "awkward", "random"):
        ref = g[f"{name}_{kind}"]
        w = g[f"{name}_in"][:ref.shape[0]]  # (q4_1 / q5_1 leave out the overflowing last extreme row)
        assert ref.shape == (w.shape[0], w.shape[1] // 32 * BLOCK_BYTES[kind])
        np.testing.assert_array_equal(quantize(w, kind).data.reshape(ref.shape), ref, err_msg=f"{name} rows")


@pytest.mark.parametrize("kind", ["q5_0", "q5_1"])
def test_bytes_match_gguf_py_many_random_rows(kind, rng):
    # Gaussian, uniform and heavy-tailed rows at several scales: every rounding path of the
    # quantizer, against gguf-py's NumPy implementation of ggml's reference
    n, k = 64, 1024
    w = np.concatenate([rng.standard_normal((n, k)), rng.uniform(-1, 3, (n, k)),
                        rng.standard_cauchy((n, k)) * 1e-3]).astype(np.float32)
    w *= np.float32(10.0) ** rng.integers(-6, 4, (3 * n, 1)).astype(np.float32)
    theirs = gguf_quantize(w, GGML[kind])
    np.testing.assert_array_equal(quantize(w, kind).data.reshape(theirs.shape), theirs)


@pytest.mark.parametrize("kind", KINDS)
def test_dequantize_matches_gguf_py(kind, rng):
    w = awkward_weights(rng)
    raw = gguf_quantize(w, GGML[kind])
    ours = QuantizedTensor(raw, kind, w.shape).dequantize()
    np.testing.assert_allclose(ours, gguf_dequantize(raw, GGML[kind]), rtol=1e-6, atol=1e-6)


def block_bound(w, kind):
    """Worst-case |w - dequantize(quantize(w))| per 32-element block, from the format: half a
    step of rounding (a whole step where Q4_0 / Q5_0 clamp +8 / +16 to 7 / 15), plus fp16 rounding of the scale
    (relative 2^-11, absolute 2^-25 among subnormals; times the largest |q|) and of Q4_1's minimum."""
    b = w.reshape(-1, 32).astype(np.float64)
    amax, lo, hi = np.abs(b).max(1), b.min(1), b.max(1)

    def e16(v):
        return np.maximum(np.abs(v) * 2.0**-11, 2.0**-25)

    if kind == "q8_0":
        d = amax / 127
        bound = d / 2 + 127 * e16(d)
    elif kind in ("q4_0", "q5_0"):
        qmax = 8 if kind == "q4_0" else 16
        d = amax / qmax
        bound = d + qmax * e16(d)
    else:
        qmax = 15 if kind == "q4_1" else 31
        d = (hi - lo) / qmax
        bound = d / 2 + qmax * e16(d) + e16(lo)
    return np.repeat(bound * 1.001 + 1e-12, 32).reshape(w.shape)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_error_bound(kind, rng):
    w = awkward_weights(rng)
    err = np.abs(quantize(w, kind).dequantize().astype(np.float64) - w)
    assert np.all(err <= block_bound(w, kind))


def test_round_trip_tightens_with_bits(rng):
    w = rng.standard_normal((16, 256)).astype(np.float32)
    rms = {k: np.sqrt(np.mean((quantize(w, k).dequantize() - w) ** 2)) for k in KINDS}
    assert rms["q8_0"] < rms["q4_1"] < rms["q4_0"]
    assert rms["q8_0"] < rms["q5_1"] < rms["q5_0"] < rms["q4_0"]
    assert rms["q5_1"] < rms["q4_1"]


def test_exact_values_survive():
    # numbers the formats represent exactly come back exactly
    w = np.tile(np.arange(-8, 8, dtype=np.float32), 2)[None, :]  # q4_0: d = 1 (max = -8)
    np.testing.assert_array_equal(quantize(w, "q4_0").dequantize(), w)
    np.testing.assert_array_equal(quantize(w + 8, "q4_1").dequantize(), w + 8)
    w8 = np.arange(-16, 16, dtype=np.float32)[None, :] * (127 / 16)
    np.testing.assert_array_equal(quantize(np.round(w8), "q8_0").dequantize(), np.round(w8))


# Hand-built blocks: fp16 d (and m), then the quants. Nibbles: element j is the low nibble of
# byte j, element j + 16 the high nibble.
def nibbles(q):
    return bytes((q[j] & 0xF) | (q[j + 16] << 4) for j in range(16))


def test_hand_built_q8_0():
    q = list(range(-16, 16))
    raw = struct.pack("<e", 0.5) + struct.pack("<32b", *q)
    assert len(raw) == 34
    out = QuantizedTensor(np.frombuffer(raw, np.uint8), "q8_0", (1, 32)).dequantize()
    np.testing.assert_array_equal(out[0], 0.5 * np.array(q, np.float32))


def test_hand_built_q4_0():
    q = [(3 * j) % 16 for j in range(32)]
    raw = struct.pack("<e", -0.25) + nibbles(q)
    assert len(raw) == 18
    out = QuantizedTensor(np.frombuffer(raw, np.uint8), "q4_0", (1, 32)).dequantize()
    np.testing.assert_array_equal(out[0], -0.25 * (np.array(q, np.float32) - 8))
    # spot values from the spec by hand: element 0 -> q 0, element 17 -> q 3 (high nibble of byte 1)
    assert out[0, 0] == 2.0 and out[0, 17] == -0.25 * (3 - 8)


def test_hand_built_q4_1():
    q = [j % 16 for j in range(32)][::-1]
    raw = struct.pack("<ee", 0.125, -1.0) + nibbles(q)
    assert len(raw) == 20
    out = QuantizedTensor(np.frombuffer(raw, np.uint8), "q4_1", (1, 32)).dequantize()
    np.testing.assert_array_equal(out[0], 0.125 * np.array(q, np.float32) - 1.0)
    assert out[0, 0] == 0.125 * 15 - 1.0 and out[0, 31] == -1.0


def fifth_bits(q):
    """32 values in [0, 31] -> Q5's qh: bit j of a little-endian uint32 is bit 4 of element j."""
    return struct.pack("<I", sum(((v >> 4) & 1) << j for j, v in enumerate(q)))


def test_hand_built_q5_0():
    q = [(7 * j + 3) % 32 for j in range(32)]
    raw = struct.pack("<e", 0.5) + fifth_bits(q) + nibbles([v & 0xF for v in q])
    assert len(raw) == 22
    out = QuantizedTensor(np.frombuffer(raw, np.uint8), "q5_0", (1, 32)).dequantize()
    np.testing.assert_array_equal(out[0], 0.5 * (np.array(q, np.float32) - 16))
    # by hand: element 0 -> q 3 -> 0.5 * -13; element 2 -> q 17 (fifth bit set) -> 0.5
    assert out[0, 0] == -6.5 and out[0, 2] == 0.5


def test_hand_built_q5_1():
    q = [31 - j for j in range(32)]
    raw = struct.pack("<ee", 0.25, -4.0) + fifth_bits(q) + nibbles([v & 0xF for v in q])
    assert len(raw) == 24
    out = QuantizedTensor(np.frombuffer(raw, np.uint8), "q5_1", (1, 32)).dequantize()
    np.testing.assert_array_equal(out[0], 0.25 * np.array(q, np.float32) - 4.0)
    assert out[0, 0] == 0.25 * 31 - 4.0 and out[0, 31] == -4.0


def test_exact_q5_values_survive():
    # Q5_0 with d = -1 (the largest |x| is +16... clamped to 15) and Q5_1 with d = 1, m = 0
    w0 = np.arange(-15, 17, dtype=np.float32)[None, ::-1].copy()  # 16 first: d = 16 / -16 = -1
    np.testing.assert_array_equal(quantize(w0, "q5_0").dequantize()[0, 1:], w0[0, 1:])
    w1 = np.arange(32, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(quantize(w1, "q5_1").dequantize(), w1)


def test_two_rows_of_blocks_in_order(rng):
    # block b of row r sits at byte (r * K / 32 + b) * block_bytes
    w = rng.standard_normal((3, 64)).astype(np.float32)
    t = quantize(w, "q8_0")
    for r in range(3):
        for b in range(2):
            blk = t.data[(r * 2 + b) * 34:(r * 2 + b + 1) * 34]
            d = blk[:2].view(np.float16)[0].astype(np.float32)
            np.testing.assert_array_equal(t.dequantize()[r, 32 * b:32 * (b + 1)], d * blk[2:].view(np.int8))


# QuantizedTensor


@pytest.mark.parametrize("kind", KINDS)
def test_wraps_without_copying(kind, rng):
    raw = gguf_quantize(rng.standard_normal((4, 64)).astype(np.float32), GGML[kind])
    t = QuantizedTensor(raw, kind, (4, 64))
    assert np.shares_memory(t.data, raw)
    assert t.nbytes == 4 * 2 * BLOCK_BYTES[kind] and t.shape == (4, 64) and t.kind == kind
    flat = raw.reshape(-1)
    assert np.shares_memory(QuantizedTensor(flat, kind, (4, 64)).data, flat)


def test_wraps_a_read_only_memmap_slice(tmp_path, rng):
    raw = gguf_quantize(rng.standard_normal((4, 64)).astype(np.float32), GGML["q4_1"])
    path = tmp_path / "w.bin"
    path.write_bytes(b"\0" * 7 + raw.tobytes())
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    t = QuantizedTensor(mm[7:], "q4_1", (4, 64))
    assert np.shares_memory(t.data, mm)
    np.testing.assert_array_equal(t.dequantize(), gguf_dequantize(raw, GGML["q4_1"]))


@pytest.mark.parametrize("kind", KINDS)
def test_rejects_wrong_byte_count(kind):
    need = 2 * 2 * BLOCK_BYTES[kind]
    for nbytes in (need - 1, need + 1, need - BLOCK_BYTES[kind]):
        with pytest.raises(ValueError, match="data"):
            QuantizedTensor(np.zeros(nbytes, np.uint8), kind, (2, 64))


def test_rejects_bad_kind_shape_and_data():
    with pytest.raises(ValueError, match="kind"):
        QuantizedTensor(np.zeros(34, np.uint8), "q2_k", (1, 32))
    with pytest.raises(ValueError, match="kind"):
        QuantizedTensor(np.zeros(128, np.uint8), "f32", (1, 32))
    for k in (48, 33, 0, -32):
        with pytest.raises(ValueError, match="shape"):
            QuantizedTensor(np.zeros(34 * 2, np.uint8), "q8_0", (1, k))
    for shape in ((0, 32), (32,), "ab", None):
        with pytest.raises(ValueError, match="shape"):
            QuantizedTensor(np.zeros(34, np.uint8), "q8_0", shape)
    with pytest.raises(ValueError, match="data"):
        QuantizedTensor(b"\0" * 34, "q8_0", (1, 32))
    with pytest.raises(ValueError, match="data"):
        QuantizedTensor(np.zeros((2, 68), np.uint8)[:, ::2], "q8_0", (2, 32))


def test_quantize_rejects_bad_input():
    w = np.zeros((2, 64), np.float32)
    with pytest.raises(ValueError, match="kind"):
        quantize(w, "bf16")
    with pytest.raises(ValueError, match="shape"):
        quantize(np.zeros((2, 48), np.float32), "q8_0")
    with pytest.raises(ValueError, match="w"):
        quantize(w.astype(np.float64), "q8_0")
    with pytest.raises(ValueError, match="w"):
        quantize(w[None], "q8_0")
    with pytest.raises(ValueError, match="w"):
        quantize(np.zeros((0, 64), np.float32), "q8_0")


def test_bf16(rng):
    w = rng.standard_normal((5, 64)).astype(np.float32)
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact bf16 values
    t = QuantizedTensor.from_bf16(bits)
    assert t.kind == "bf16" and t.shape == (5, 64) and np.shares_memory(t.data, bits)
    np.testing.assert_array_equal(t.dequantize(), (bits.astype(np.uint32) << 16).view(np.float32))
    with pytest.raises(ValueError, match="bits"):
        QuantizedTensor.from_bf16(bits.astype(np.int16))
    with pytest.raises(ValueError, match="bits"):
        QuantizedTensor.from_bf16(bits[0])


def test_repr_names_kind_and_shape():
    t = QuantizedTensor(np.zeros(20, np.uint8), "q4_1", (1, 32))
    assert "q4_1" in repr(t) and "(1, 32)" in repr(t)


def test_dequantize_is_the_same_at_every_isa(isa, rng):
    # dequantize has one scalar implementation; the fixture guards against ISA-dependent paths
    w = awkward_weights(rng, n=8, k=96)
    for kind in KINDS:
        raw = gguf_quantize(w, GGML[kind])
        np.testing.assert_array_equal(QuantizedTensor(raw, kind, w.shape).dequantize(),
                                      gguf_dequantize(raw, GGML[kind]))
    assert ninestep.cpu_info()["isa"] == isa
