"""safetensors reader and HF folders: tiny models saved by transformers (tests/data, made by
tests/data/make_tiny_hf.py; golden.json holds what torch saw) and hand-written damaged files."""
import json
import os
import shutil

import numpy as np
import pytest
from helpers import safetensors_bytes as S

from ninestep import FormatError, QuantizedTensor
from ninestep.formats import SafetensorsFile, open_folder
from ninestep.formats.safetensors import gguf_name

DATA = os.path.join(os.path.dirname(__file__), "data")


def _as_f32(v):
    """A view as float32: bf16 bit patterns widened, other types converted."""
    bits = v.data.view(np.uint16).reshape(v.shape) if isinstance(v, QuantizedTensor) else v
    if bits.dtype == np.uint16:
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.astype(np.float32)


@pytest.mark.parametrize("name, n_tensors", [("tiny_llama", 20), ("tiny_qwen2", 27)])
def test_tiny_folders_match_torch(name, n_tensors):
    folder = os.path.join(DATA, name)
    with open(os.path.join(folder, "golden.json")) as f:
        golden = json.load(f)
    with open_folder(folder) as m:
        assert len(m.tensors) == len(golden) == n_tensors
        for hf, g in golden.items():
            gg = gguf_name(hf)
            assert gg in m.tensors and m.hf_names[gg] == hf
            v = m.tensors[gg]
            assert tuple(v.shape) == tuple(g["shape"]), hf
            if g["dtype"] == "bfloat16" and len(g["shape"]) == 2:
                assert isinstance(v, QuantizedTensor) and v.kind == "bf16"
            else:
                assert v.dtype == {"bfloat16": np.uint16, "float16": np.float16}[g["dtype"]], hf
            x = _as_f32(v)
            np.testing.assert_array_equal(x.reshape(-1)[:4], np.float32(g["first"]), err_msg=hf)
            np.testing.assert_allclose(x.astype(np.float64).sum(), g["sum"], rtol=1e-9, atol=1e-9, err_msg=hf)
        assert m.tokenizer_json.endswith("tokenizer.json") and m.tokenizer_config.endswith("tokenizer_config.json")


def test_tiny_llama_config():
    with open_folder(os.path.join(DATA, "tiny_llama")) as m:
        c = m.model_config()
        assert "output.weight" not in m.tensors  # tied: the embedding is the output head
    assert (c.architecture, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff) == ("llama", 2, 64, 4, 2, 16, 160)
    assert (c.vocab_size, c.context_length, c.norm_eps, c.rope_theta) == (96, 512, 1e-5, 100000.0)
    assert c.rope_style == "neox" and c.tied_embeddings and not c.has_qkv_bias
    assert (c.bos_id, c.eos_id, c.eot_id, c.add_bos) == (1, 2, 2, False)


def test_tiny_qwen2_sharded_config():
    with open_folder(os.path.join(DATA, "tiny_qwen2")) as m:
        c = m.model_config()
        assert len(m.files) == 3
        assert "output.weight" in m.tensors and m.tensors["blk.1.attn_v.bias"].shape == (8,)
    assert (c.architecture, c.n_heads, c.n_kv_heads, c.head_dim, c.rope_theta) == ("qwen2", 4, 1, 8, 1e6)
    assert c.has_qkv_bias and not c.tied_embeddings and c.rope_style == "neox"


def test_views_are_zero_copy(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    S.write(tmp_path / "m.safetensors", {"a": a, "b": np.ones(5, np.float16)}, metadata={"format": "pt"})
    with SafetensorsFile(tmp_path / "m.safetensors") as f:
        v = f.tensor("a")
        assert f.metadata == {"format": "pt"} and f.tensors["a"].nbytes == 48
        assert np.shares_memory(v, f._bytes) and not v.flags.writeable
    np.testing.assert_array_equal(v, a)  # still valid after close


def test_name_map():
    cases = {
        "model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight",
        "model.norm.weight": "output_norm.weight",
        "model.layers.0.input_layernorm.weight": "blk.0.attn_norm.weight",
        "model.layers.12.post_attention_layernorm.weight": "blk.12.ffn_norm.weight",
        "model.layers.3.self_attn.q_proj.weight": "blk.3.attn_q.weight",
        "model.layers.3.self_attn.k_proj.bias": "blk.3.attn_k.bias",
        "model.layers.3.self_attn.v_proj.weight": "blk.3.attn_v.weight",
        "model.layers.3.self_attn.o_proj.weight": "blk.3.attn_output.weight",
        "model.layers.29.mlp.gate_proj.weight": "blk.29.ffn_gate.weight",
        "model.layers.29.mlp.up_proj.weight": "blk.29.ffn_up.weight",
        "model.layers.29.mlp.down_proj.weight": "blk.29.ffn_down.weight",
        "model.layers.0.self_attn.rotary_emb.inv_freq": None, "model.layers.x.mlp.up_proj.weight": None,
    }
    for hf, expect in cases.items():
        assert gguf_name(hf) == expect, hf


_GOOD_HEADER, _GOOD_DATA = S.header_for({"a": np.zeros((2, 3), np.float32), "b": np.zeros(4, np.float16)})


def _edit(name, **changes):
    h = json.loads(json.dumps(_GOOD_HEADER))
    h[name].update(changes)
    return S.raw(h, _GOOD_DATA)


DAMAGED = {
    "shorter than 8 bytes": (b"\x10\0\0", "header length"),
    "header length 2^63": (S.raw(_GOOD_HEADER, _GOOD_DATA, length=2**63), "header length"),
    "header length past the end": (S.raw(_GOOD_HEADER, _GOOD_DATA, length=10**6), "header length"),
    "header not JSON": (S.raw("{not json", b""), "header"),
    "header not UTF-8": (S.raw(b'{"\xff": 1}', b""), "header"),
    "header a list": (S.raw("[1, 2]", b""), "header"),
    "entry not an object": (S.raw({"a": 5}, b""), "tensor 'a'"),
    "unknown dtype": (_edit("a", dtype="F128"), "tensor 'a' dtype"),
    "negative dim": (_edit("a", shape=[-2, 3]), "tensor 'a' shape"),
    "float dim": (_edit("a", shape=[2.0, 3]), "tensor 'a' shape"),
    "offsets past the end": (_edit("b", data_offsets=[24, 2**40]), "tensor 'b' data_offsets"),
    "offsets reversed": (_edit("b", data_offsets=[32, 24]), "tensor 'b' data_offsets"),
    "offsets missing": (_edit("b", data_offsets=None), "tensor 'b' data_offsets"),
    "size mismatch": (_edit("a", shape=[2, 4]), "tensor 'a' data_offsets"),
    "overlap": (_edit("b", data_offsets=[16, 24]), "data_offsets"),
    "metadata not strings": (S.raw(dict(_GOOD_HEADER, __metadata__={"n": 1}), _GOOD_DATA), "__metadata__"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_file_raises_format_error(tmp_path, case):
    data, field = DAMAGED[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(FormatError) as e:
        SafetensorsFile(path)
    assert field in e.value.field and e.value.path == str(path) and isinstance(e.value.offset, int)


def test_bf16_kinds_and_unreadable_dtype(tmp_path):
    bits = np.arange(6, dtype=np.uint16).reshape(2, 3)
    S.write(tmp_path / "m.safetensors", {"m": bits, "v": bits[0].copy()})
    header, data = S.header_for({"f8": np.zeros(4, np.uint8)})
    header["f8"]["dtype"] = "F8_E4M3"
    (tmp_path / "f8.safetensors").write_bytes(S.raw(header, data))
    with SafetensorsFile(tmp_path / "m.safetensors") as f:
        assert f.tensor("m").kind == "bf16" and f.tensor("v").dtype == np.uint16
    with SafetensorsFile(tmp_path / "f8.safetensors") as f:
        with pytest.raises(FormatError, match="'f8'.*F8_E4M3"):
            f.tensor("f8")


def _folder(tmp_path, index=None, shards=None):
    d = tmp_path / "m"
    d.mkdir(parents=True)
    shutil.copy(os.path.join(DATA, "tiny_llama", "config.json"), d)
    for name, tensors in (shards or {}).items():
        S.write(d / name, tensors)
    if index is not None:
        (d / "model.safetensors.index.json").write_text(json.dumps(index))
    return d


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        open_folder(tmp_path)
    w = {"model.norm.weight": np.ones(4, np.float32)}
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        open_folder(_folder(tmp_path / "a"))
    bad_shard = {"weight_map": {"model.norm.weight": "../x.safetensors"}}
    with pytest.raises(FormatError, match="not a file in the model folder"):
        open_folder(_folder(tmp_path / "b", bad_shard, {"s.safetensors": w}))
    lying = {"weight_map": {"model.norm.weight": "s.safetensors", "lm_head.weight": "s.safetensors"}}
    with pytest.raises(FormatError, match="'lm_head.weight'"):
        open_folder(_folder(tmp_path / "c", lying, {"s.safetensors": w}))
    twice = {"weight_map": {"model.norm.weight": "s1.safetensors", "x": "s2.safetensors"}}
    with pytest.raises(FormatError, match="twice"):
        open_folder(_folder(tmp_path / "d", twice, {"s1.safetensors": w, "s2.safetensors": dict(w, x=np.ones(1, np.float32))}))
    with pytest.raises(FormatError, match="weight_map"):
        open_folder(_folder(tmp_path / "e", {"weight_map": []}, {}))
