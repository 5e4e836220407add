"""The weight-type table: Python's kind lists come from C++ (dtype_table, type_kernels), every
kind is refused or served according to what C++ says it has, and ops.get_rows for every kind.

Written against whatever type_kernels() reports, not a fixed list, so a kernel landing for a
kind (the K-quants) moves that kind from the refused checks to the served ones."""
import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from ninestep import QuantizedTensor, _core, ops, quantize, tensor
from ninestep.formats import GGUFFile, RawTensor, write_gguf
from ninestep.formats import quant as ggml_types

TABLE = _core.dtype_table()
KERNELS = _core.type_kernels()
QUANTIZED = [k for k, v in TABLE.items() if v[2]]
GGML = {k: getattr(gguf.GGMLQuantizationType, k.upper()) for k in TABLE}


def kinds_where(kernel, has):
    return [k for k in TABLE if KERNELS[k][kernel] == has]


def random_blocks(rng, kind, n, k):
    """n rows of k elements of `kind` as raw bytes: random bits with finite fp16 scales (every
    fp16 field a block has is overwritten with a small value), so any kind dequantizes to finite
    numbers. The K-quants keep their fp16 d (and dmin) at the block's start (Q6_K: at its end)."""
    block, nbytes, _ = TABLE[kind]
    raw = rng.integers(0, 256, (n, k // block, nbytes), dtype=np.uint8)
    scales = rng.uniform(-0.05, 0.05, raw.shape[:2] + (2,)).astype(np.float16).view(np.uint8)
    if kind == "q6_k":
        raw[..., -2:] = scales[..., :2]
    else:
        n_fp16 = 2 if kind in ("q4_1", "q5_1", "q4_k", "q5_k") else 1
        raw[..., :2 * n_fp16] = scales.reshape(raw.shape[:2] + (4,))[..., :2 * n_fp16]
    return raw.reshape(n, -1)


def weight(rng, kind, n, k):
    """(w for the ops, the float32 matrix it stands for)."""
    if kind in ("f32", "f16"):
        w = rng.standard_normal((n, k)).astype(np.float32 if kind == "f32" else np.float16)
        return w, w.astype(np.float32)
    if kind == "bf16":
        bits = (rng.standard_normal((n, k)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return QuantizedTensor.from_bf16(bits), (bits.astype(np.uint32) << 16).view(np.float32)
    raw = random_blocks(rng, kind, n, k)
    return QuantizedTensor(raw, kind, (n, k)), gguf_dequantize(raw, GGML[kind]).reshape(n, k)


def test_every_cpp_kind_is_known_to_python():
    assert set(KERNELS) == set(TABLE)
    assert tensor.KINDS == dict(TABLE)
    assert set(tensor.BLOCKED_KINDS) == set(QUANTIZED) | {"bf16"}
    for kind, (block, nbytes, quantized) in TABLE.items():
        t = ggml_types.BY_NAME[kind]  # the GGUF reader's table has the same layout
        assert (t.block, t.nbytes) == (block, nbytes), kind
        assert set(KERNELS[kind]) == {"activations", "matmul", "quantize", "dequantize"}
    assert tensor.MATMUL_KINDS == tuple(kinds_where("matmul", True))
    assert tensor.QUANTIZE_KINDS == tuple(k for k in QUANTIZED if KERNELS[k]["quantize"])
    assert tensor.DEQUANTIZE_KINDS == tuple(kinds_where("dequantize", True))
    # what this branch landed: the five 32-element kinds are served end to end
    for kind in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1"):
        assert KERNELS[kind] == {"activations": "q8_32", "matmul": True, "quantize": True, "dequantize": True}


@pytest.mark.parametrize("kind", QUANTIZED)
def test_quantized_tensor_takes_every_blocked_kind(kind, rng):
    block, nbytes, _ = TABLE[kind]
    k = 2 * block
    raw = random_blocks(rng, kind, 3, k)
    t = QuantizedTensor(raw, kind, (3, k))
    assert t.nbytes == 3 * 2 * nbytes and np.shares_memory(t.data, raw)
    for bad in (raw.size - 1, raw.size + 1, raw.size - nbytes):  # damaged byte counts
        with pytest.raises(ValueError, match="data"):
            QuantizedTensor(np.zeros(bad, np.uint8), kind, (3, k))
    with pytest.raises(ValueError, match="shape"):
        QuantizedTensor(raw, kind, (3, k + block // 2))


@pytest.mark.parametrize("kind", QUANTIZED)
def test_quantize_accepts_exactly_the_kinds_with_a_quantize_row(kind, rng):
    k = TABLE[kind][0] * 2
    w = rng.standard_normal((4, k)).astype(np.float32)
    if KERNELS[kind]["quantize"]:
        t = quantize(w, kind)
        assert t.kind == kind and t.shape == (4, k)
        if TABLE[kind][0] == 32:  # gguf-py quantizes the 32-element kinds (not the K-quants)
            np.testing.assert_array_equal(t.data.reshape(4, -1), gguf_quantize(w, GGML[kind]))
        # bytes gguf-py reads back as ours, and close to w for any quantizing kind (>= 4 bits)
        back = gguf_dequantize(t.data.reshape(4, -1), GGML[kind]).reshape(4, k)
        np.testing.assert_allclose(t.dequantize(), back, rtol=1e-6, atol=1e-6 * np.abs(back).max())
        assert np.sqrt(np.mean((back - w) ** 2)) < 0.15 * np.sqrt(np.mean(w**2))
    else:
        with pytest.raises(ValueError, match=f"kind: .*{kind}") as e:
            quantize(w, kind)
        for ok in tensor.QUANTIZE_KINDS:  # the error lists what it can do
            assert ok in str(e.value)


@pytest.mark.parametrize("kind", list(TABLE))
def test_matmul_serves_or_refuses_each_kind_by_name(isa, kind, rng):
    k = TABLE[kind][0] * 2 if TABLE[kind][0] > 1 else 64
    w, wf = weight(rng, kind, 5, k)
    x = rng.standard_normal((3, k)).astype(np.float32)
    if KERNELS[kind]["matmul"]:
        y = ops.matmul(x, w)
        ref = x.astype(np.float64) @ wf.T.astype(np.float64)
        # 8-bit activations: each x moves by at most half its block step
        assert np.all(np.abs(y - ref) <= np.abs(x).max() / 127 * np.abs(wf).sum(axis=1) + 1e-4 * np.abs(ref).max())
    else:
        with pytest.raises(ValueError, match=f"no matmul kernel for kind '{kind}'"):
            ops.matmul(x, w)
        # the binding refuses it too, naming the type, whatever Python does
        with pytest.raises(ValueError, match=kind):
            _core.matmul(np.zeros((3, 5), np.float32), x, w.kernel_data(), kind, 5, k)


@pytest.mark.parametrize("kind", list(TABLE))
def test_get_rows_matches_gguf_dequantize(isa, kind, rng):
    n = 7
    k = TABLE[kind][0] * 3 if TABLE[kind][0] > 1 else 96
    w, wf = weight(rng, kind, n, k)
    ids = np.array([3, 0, 6, 3, 1], np.int64)
    if KERNELS[kind]["dequantize"]:
        got = ops.get_rows(w, ids)
        if TABLE[kind][0] <= 32:  # float and 32-element kinds: gguf-py's float order, bit for bit
            np.testing.assert_array_equal(got, wf[ids])
        else:  # K-quants: d * scale * q - dmin * min may round in another order
            np.testing.assert_allclose(got, wf[ids], rtol=1e-6, atol=1e-6 * np.abs(wf).max())
        if isinstance(w, QuantizedTensor):  # the same rows as the whole-matrix dequantize
            np.testing.assert_array_equal(got, w.dequantize()[ids])
        np.testing.assert_array_equal(ops.get_rows(w, ids.reshape(5, 1).astype(np.int32)), got[:, None])
        out = np.full((5, k), np.nan, np.float32)
        assert ops.get_rows(w, list(ids), out=out) is out
        np.testing.assert_array_equal(out, got)
        assert ops.get_rows(w, np.zeros(0, np.int64)).shape == (0, k)
    else:
        with pytest.raises(ValueError, match=f"no dequantize kernel for kind '{kind}'"):
            ops.get_rows(w, ids)
        with pytest.raises(ValueError, match=kind):
            _core.get_rows(np.zeros((5, k), np.float32), w.kernel_data(), kind, n, k, ids)


def test_get_rows_refuses_bad_ids(rng):
    t = quantize(rng.standard_normal((4, 64)).astype(np.float32), "q5_0")
    for bad in ([4], [0, -1], [2**40]):
        with pytest.raises(ValueError, match="ids.*out of range.*4 rows"):
            ops.get_rows(t, bad)
    for bad in ([0.0, 1.0], [True], np.array(["1"]), np.array([2**63], np.uint64)):
        with pytest.raises(ValueError, match="ids"):
            ops.get_rows(t, bad)
    with pytest.raises(ValueError, match="out"):
        ops.get_rows(t, [0, 1], out=np.zeros((2, 32), np.float32))
    with pytest.raises(ValueError, match="w"):
        ops.get_rows(t.data, [0])
    # the binding's own checks: ids against the row count, dtype and rank, the byte count
    out = np.zeros((1, 64), np.float32)
    with pytest.raises(ValueError, match="ids"):
        _core.get_rows(out, t.data, "q5_0", 4, 64, np.array([4], np.int64))
    with pytest.raises(ValueError, match="ids"):
        _core.get_rows(out, t.data, "q5_0", 4, 64, np.array([0], np.int32))
    with pytest.raises(ValueError, match="w"):
        _core.get_rows(out, t.data[:-1], "q5_0", 4, 64, np.array([0], np.int64))
    with pytest.raises(ValueError, match="out"):
        _core.get_rows(np.zeros((2, 64), np.float32), t.data, "q5_0", 4, 64, np.array([0], np.int64))


def test_gguf_views_every_kind_with_a_matmul_kernel(tmp_path, rng):
    tensors, want = {}, {}
    for kind in QUANTIZED:
        k = TABLE[kind][0] * 2
        raw = random_blocks(rng, kind, 3, k)
        tensors[f"w.{kind}"] = RawTensor(kind, (3, k), raw.reshape(-1))
        want[f"w.{kind}"] = gguf_dequantize(raw, GGML[kind]).reshape(3, k)
    path = tmp_path / "kinds.gguf"
    write_gguf(path, {"general.architecture": "llama"}, tensors)
    f = GGUFFile(path)
    for name, ref in want.items():
        kind = name.split(".")[1]
        if KERNELS[kind]["matmul"]:
            t = f.tensor(name)
            assert isinstance(t, QuantizedTensor) and t.kind == kind and t.shape == ref.shape
            np.testing.assert_allclose(t.dequantize(), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
            np.testing.assert_array_equal(ops.get_rows(t, [2, 0]), t.dequantize()[[2, 0]])
        else:
            with pytest.raises(ValueError, match=f"type {kind}, which has no direct view"):
                f.tensor(name)
        np.testing.assert_array_equal(f.dequantize(name), ref)  # the NumPy reader knows them all
