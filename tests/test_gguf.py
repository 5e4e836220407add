"""GGUF reader, writer and dequantize reference, checked against gguf-py (an independent reader)."""
import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GT
from helpers.models import smollm2_path

import ninestep
from ninestep.tensor import MATMUL_KINDS
from ninestep import FormatError, QuantizedTensor
from ninestep.formats import GGUFFile, Typed, write_gguf
from ninestep.formats import quant
from ninestep.formats.gguf_writer import RawTensor


def _gguf_py_type(field):
    """gguf-py's field types -> our type descriptor (files without nested arrays)."""
    names = [t.name.lower() for t in field.types]
    return ("array", names[1]) if names[0] == "array" else names[0]


@pytest.fixture(scope="module")
def real():
    path = smollm2_path()
    with GGUFFile(path) as g:
        yield g, gguf.GGUFReader(path)


def test_real_metadata_matches_gguf_py(real):
    g, ref = real
    keys = [k for k in ref.fields if not k.startswith("GGUF.")]
    assert list(g.metadata) == keys
    for k in keys:
        assert g.metadata[k] == ref.fields[k].contents(), k
        assert g.metadata_types[k] == _gguf_py_type(ref.fields[k]), k
    assert g.version == 3 and g.alignment == 32
    assert len(g.metadata["tokenizer.ggml.tokens"]) == 49152
    assert g.metadata["llama.rope.freq_base"] == 100000.0


def test_real_tensor_infos_match_gguf_py(real):
    g, ref = real
    assert len(g.tensors) == len(ref.tensors) == 272
    for t in ref.tensors:
        info = g.tensors[t.name]
        assert info.kind == t.tensor_type.name.lower()
        assert info.shape == tuple(reversed(t.shape.tolist()))
        assert (info.offset, info.nbytes) == (t.data_offset, t.n_bytes)
    assert g.tensors["token_embd.weight"].kind == "q8_0"
    assert g.tensors["blk.0.attn_q.weight"].shape == (576, 576)


def test_real_every_tensor_dequantizes_like_gguf_py(real):
    g, ref = real
    for t in ref.tensors:
        expect = gguf.quants.dequantize(t.data, t.tensor_type)
        got = g.dequantize(t.name)
        assert got.dtype == np.float32 and got.shape == g.tensors[t.name].shape
        np.testing.assert_allclose(got, expect.reshape(got.shape), rtol=0, atol=1e-6, err_msg=t.name)


def test_real_views_are_zero_copy(real):
    g, _ = real
    for name, info in g.tensors.items():
        v = g.tensor(name)
        data = v.data if isinstance(v, QuantizedTensor) else v
        assert np.shares_memory(data, g.raw(name)) and not data.flags.writeable
        if isinstance(v, QuantizedTensor):
            assert v.kind == info.kind and v.shape == info.shape
        else:
            assert v.dtype == np.float32 and v.shape == info.shape
    emb = g.tensor("token_embd.weight")
    assert emb.shape == (49152, 576)
    # the C++ dequantize over the mapped bytes agrees with the NumPy reference
    np.testing.assert_array_equal(emb.dequantize(), g.dequantize("token_embd.weight"))
    np.testing.assert_array_equal(g.tensor("blk.3.ffn_down.weight").dequantize(), g.dequantize("blk.3.ffn_down.weight"))


def test_real_round_trip_is_byte_identical(real, tmp_path):
    g, _ = real
    out = tmp_path / "copy.gguf"
    meta = {k: Typed(v, g.metadata_types[k]) for k, v in g.metadata.items()}
    write_gguf(out, meta, {name: g.tensor(name) for name in g.tensors})
    assert out.read_bytes() == open(g.path, "rb").read()
    with GGUFFile(out) as h:
        assert h.metadata == g.metadata and h.metadata_types == g.metadata_types
        assert h.tensors == {n: t for n, t in g.tensors.items()}


def test_views_survive_close(tmp_path):
    path = tmp_path / "t.gguf"
    w = np.arange(64, dtype=np.float32).reshape(2, 32)
    write_gguf(path, {"a": 1}, {"w": w, "q": ninestep.quantize(w, "q8_0")})
    with GGUFFile(path) as g:
        v, q = g.tensor("w"), g.tensor("q")
    g.close()  # closing twice is fine
    np.testing.assert_array_equal(v, w)
    np.testing.assert_allclose(q.dequantize(), w, atol=0.5)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        GGUFFile(tmp_path / "nope.gguf")


META = {
    "u8": Typed(255, "uint8"), "i8": Typed(-128, "int8"), "u16": Typed(65535, "uint16"),
    "i16": Typed(-32768, "int16"), "u32": Typed(2**32 - 1, "uint32"), "i32": -5,
    "u64": 2**64 - 1, "i64": -2**40, "f32": 0.5, "f64": Typed(0.1, "float64"),
    "yes": True, "no": False, "text": "héllo ✓ <|im_end|>", "empty": "",
    "ints": [1, 2, 3], "u32s": Typed([1, 2], ("array", "uint32")), "floats": [0.5, 1, -2.25],
    "f64s": Typed(np.array([0.1, 0.2]), ("array", "float64")), "bools": [True, False],
    "strings": ["a", "", "ü"], "no_items": Typed([], ("array", "int8")),
    "nested": [[1, 2], ["x", "y"], [[True], []]], "np_u16": np.arange(3, dtype=np.uint16),
}
META_TYPES = {
    "u8": "uint8", "i8": "int8", "u16": "uint16", "i16": "int16", "u32": "uint32", "i32": "int32",
    "u64": "uint64", "i64": "int64", "f32": "float32", "f64": "float64", "yes": "bool", "no": "bool",
    "text": "string", "empty": "string", "ints": ("array", "int32"), "u32s": ("array", "uint32"),
    "floats": ("array", "float32"), "f64s": ("array", "float64"), "bools": ("array", "bool"),
    "strings": ("array", "string"), "no_items": ("array", "int8"),
    "nested": ("array", [("array", "int32"), ("array", "string"), ("array", [("array", "bool"), ("array", "string")])]),
    "np_u16": ("array", "uint16"),
}


def _synthetic_tensors(rng):
    w = rng.standard_normal((4, 64)).astype(np.float32)
    return {
        "f32_1d": rng.standard_normal(7).astype(np.float32),
        "f32_4d": rng.standard_normal((2, 3, 1, 5)).astype(np.float32),
        "f16_2d": rng.standard_normal((3, 8)).astype(np.float16),
        "q8": ninestep.quantize(w, "q8_0"), "q4": ninestep.quantize(w, "q4_0"), "q41": ninestep.quantize(w, "q4_1"),
        "bf16": QuantizedTensor.from_bf16((w.view(np.uint32) >> 16).astype(np.uint16)),
        "q6k": RawTensor("q6_k", (2, 256), _random_blocks(rng, "q6_k", 2)),
    }


@pytest.mark.parametrize("alignment", [1, 32, 64])
def test_writer_round_trip_all_value_types(tmp_path, rng, alignment):
    path = tmp_path / "all.gguf"
    tensors = _synthetic_tensors(rng)
    write_gguf(path, META, tensors, alignment=alignment)
    with GGUFFile(path) as g:
        expect_types = dict(META_TYPES, **({"general.alignment": "uint32"} if alignment != 32 else {}))
        assert g.metadata_types == expect_types and g.alignment == alignment
        assert g.metadata["text"] == META["text"] and g.metadata["u64"] == 2**64 - 1
        assert g.metadata["nested"] == [[1, 2], ["x", "y"], [[True], []]]
        assert g.metadata["f64s"] == [0.1, 0.2] and g.metadata["f32"] == 0.5
        for name, t in tensors.items():
            raw = t.data if isinstance(t, (QuantizedTensor, RawTensor)) else t
            assert g.raw(name).tobytes() == np.ascontiguousarray(raw).tobytes(), name
            assert g.tensors[name].offset % alignment == 0
        assert g.tensor("f16_2d").dtype == np.float16
        assert g.tensor("bf16").kind == "bf16"
        np.testing.assert_array_equal(g.dequantize("bf16"), tensors["bf16"].dequantize())
    ref = gguf.GGUFReader(path)  # an independent reader accepts the file and sees the same values
    assert ref.fields["strings"].contents() == META["strings"]
    assert ref.fields["u32"].contents() == 2**32 - 1
    assert {t.name: t.n_bytes for t in ref.tensors} == {n: g.tensors[n].nbytes for n in tensors}


@pytest.mark.parametrize("meta, tensors, alignment, match", [
    ({}, {}, 3, "alignment"),
    ({"general.alignment": Typed(64, "uint32")}, {}, 32, "general.alignment"),
    ({"x": [1, "a"]}, {}, 32, "mixes"),
    ({"x": 2**64}, {}, 32, "64 bits"),
    ({"x": Typed(-1, "uint32")}, {}, 32, "does not fit"),
    ({"x": object()}, {}, 32, "cannot store"),
    ({}, {"t": np.zeros(3, np.uint16)}, 32, "expected a float32"),
    ({}, {"t": np.zeros((2, 0), np.float32)}, 32, "positive dims"),
    ({}, {"t": np.zeros((1, 1, 1, 1, 1), np.float32)}, 32, "positive dims"),
    ({}, {"t": RawTensor("q8_0", (1, 32), np.zeros(33, np.uint8))}, 32, "needs 34"),
])
def test_writer_rejects_bad_input(tmp_path, meta, tensors, alignment, match):
    with pytest.raises(ValueError, match=match):
        write_gguf(tmp_path / "bad.gguf", meta, tensors, alignment=alignment)


# --- dequantize reference vs gguf-py -------------------------------------------------------------

def _random_blocks(rng, kind, n_blocks):
    """Random block bytes with finite fp16 scales (the fields at each type's fp16 offsets)."""
    t = quant.BY_NAME[kind]
    b = rng.integers(0, 256, size=(n_blocks, t.nbytes), dtype=np.uint8)
    f16_at = {"q4_k": (0, 2), "q5_k": (0, 2), "q6_k": (208,)}[kind]
    for at in f16_at:
        b[:, at:at + 2] = rng.uniform(-2, 2, size=(n_blocks, 1)).astype(np.float16).view(np.uint8)
    return b.reshape(-1)


@pytest.mark.parametrize("kind", ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"])
def test_dequantize_legacy_quants_match_gguf_py(rng, kind):
    x = (rng.standard_normal((8, 256)) * rng.uniform(0.01, 10, size=(8, 1))).astype(np.float32)
    raw = gguf.quants.quantize(x, GT[kind.upper()])
    expect = gguf.quants.dequantize(raw, GT[kind.upper()])
    got = quant.dequantize(raw.reshape(-1), kind, x.size).reshape(x.shape)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, x, atol=np.abs(x).max() / 6)  # and it is a sane reconstruction


@pytest.mark.parametrize("kind", ["q4_k", "q5_k", "q6_k"])
def test_dequantize_k_quants_match_gguf_py(rng, kind):
    raw = _random_blocks(rng, kind, 64)
    expect = gguf.quants.dequantize(raw.reshape(64, -1), GT[kind.upper()]).reshape(-1)
    np.testing.assert_allclose(quant.dequantize(raw, kind, 64 * 256), expect, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "bf16", "f16"])
def test_file_dequantize_matches_gguf_py(tmp_path, rng, kind):
    t = quant.BY_NAME[kind]
    shape = (3, 512)
    raw = (_random_blocks(rng, kind, 6) if kind.endswith("_k")
           else gguf.quants.quantize(rng.standard_normal(shape).astype(np.float32), GT[kind.upper()]))
    write_gguf(tmp_path / "k.gguf", {}, {"w": RawTensor(kind, shape, raw.reshape(-1).view(np.uint8))})
    ref = gguf.GGUFReader(tmp_path / "k.gguf").tensors[0]
    with GGUFFile(tmp_path / "k.gguf") as g:
        assert g.tensors["w"].nbytes == 3 * 512 // t.block * t.nbytes
        expect = gguf.quants.dequantize(ref.data, ref.tensor_type).reshape(shape)
        np.testing.assert_allclose(g.dequantize("w"), expect, rtol=0, atol=1e-6)


def test_type_table_matches_gguf_py():
    for tid, t in quant.TYPES.items():
        assert gguf.GGML_QUANT_SIZES[GT(tid)] == (t.block, t.nbytes), t.name
        assert GT(tid).name.lower() == t.name


def test_view_shapes_by_kind(tmp_path, rng):
    w = rng.standard_normal((2, 3, 64)).astype(np.float32)
    q = ninestep.quantize(w.reshape(-1, 64), "q8_0")
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)
    write_gguf(tmp_path / "v.gguf", {}, {
        "q3d": RawTensor("q8_0", (2, 3, 64), q.data),
        "q1d": RawTensor("q4_1", (64,), ninestep.quantize(w[0, :1], "q4_1").data),
        "bf1d": RawTensor("bf16", (64,), bits[0, 0]),
        "q5k": RawTensor("q5_k", (256,), _random_blocks(rng, "q5_k", 1)),
        "q2k": RawTensor("q2_k", (256,), np.zeros(84, np.uint8)),
    })
    with GGUFFile(tmp_path / "v.gguf") as g:
        assert g.tensor("q3d").shape == (6, 64) and g.tensors["q3d"].shape == (2, 3, 64)
        assert g.tensor("q1d").shape == (1, 64)
        b = g.tensor("bf1d")
        assert b.dtype == np.uint16 and b.shape == (64,)
        np.testing.assert_array_equal(g.dequantize("q3d"), q.dequantize().reshape(2, 3, 64))
        if "q5_k" in MATMUL_KINDS:  # a view for every kind with a C++ matmul kernel
            v = g.tensor("q5k")
            assert v.kind == "q5_k" and v.shape == (1, 256)
            np.testing.assert_array_equal(v.dequantize(), g.dequantize("q5k")[None])
        else:
            with pytest.raises(FormatError, match="'q5k'.*q5_k.*dequantize"):
                g.tensor("q5k")
        with pytest.raises(FormatError, match="'q2k'.*q2_k.*no direct view.*dequantize"):
            g.tensor("q2k")  # a kind C++ does not know
        with pytest.raises(FormatError, match="'q2k'.*q2_k"):
            g.dequantize("q2k")
        with pytest.raises(KeyError):
            g.tensor("missing")
