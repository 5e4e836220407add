"""GPT-2: config, tensor names (Conv1D weights transposed) and the NumPy reference against
transformers logits on the tiny random GPT-2 (tests/data/make_tiny_encoders.py); the same model
as a `gpt2` GGUF written by ninestep's own GGUF writer."""
import json
from pathlib import Path

import numpy as np
import pytest

from ninestep import quantize, reference_gpt2
from ninestep.config import ModelConfig
from ninestep.formats import write_gguf
from ninestep.formats.safetensors import SafetensorsFile
from ninestep.loader import open_model
from ninestep.reference import load

FOLDER = Path(__file__).parent / "data" / "tiny-gpt2"
G = np.load(FOLDER / "goldens.npz")


def gpt2_gguf(path, kind=None):
    """The tiny GPT-2 folder as a llama.cpp-style `gpt2` GGUF (matrices as `kind` if given)."""
    config, _, tensors, close = open_model(FOLDER)
    try:
        out = {}
        for name, t in tensors.items():
            a = np.array(t, dtype=np.float32)
            out[name] = quantize(a, kind) if kind and a.ndim == 2 and "embd" not in name else a
    finally:
        close()
    tok = json.loads((FOLDER / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = {**tok["model"]["vocab"], **{a["content"]: a["id"] for a in tok["added_tokens"]}}
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    c = config
    meta = {"general.architecture": "gpt2", "gpt2.context_length": c.context_length, "gpt2.embedding_length": c.d_model,
            "gpt2.feed_forward_length": c.d_ff, "gpt2.block_count": c.n_layers, "gpt2.attention.head_count": c.n_heads,
            "gpt2.attention.layer_norm_epsilon": c.norm_eps, "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "gpt2", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
            "tokenizer.ggml.bos_token_id": 0, "tokenizer.ggml.eos_token_id": 0}
    write_gguf(path, meta, out)
    return path


def test_config_from_folder():
    c, tok, tensors, close = open_model(FOLDER)
    close()
    assert (c.architecture, c.n_layers, c.d_model, c.n_heads, c.d_ff, c.vocab_size, c.context_length) == \
        ("gpt2", 2, 32, 4, 128, 300, 64)
    assert (c.ffn_act, c.tied_embeddings, c.has_qkv_bias) == ("gelu_tanh", True, True)
    assert c.norm_eps == pytest.approx(1e-5)
    assert tok is not None and tok.kind == "byte-level BPE"


def test_conv1d_weights_transposed():
    st = SafetensorsFile(FOLDER / "model.safetensors")
    _, _, tensors, close = open_model(FOLDER)
    try:
        hf = st.tensor("transformer.h.1.attn.c_attn.weight")  # [in 32, out 96]
        assert tensors["blk.1.attn_qkv.weight"].shape == (96, 32)
        np.testing.assert_array_equal(tensors["blk.1.attn_qkv.weight"], hf.T)
        np.testing.assert_array_equal(tensors["blk.0.ffn_down.weight"], st.tensor("transformer.h.0.mlp.c_proj.weight").T)
        np.testing.assert_array_equal(tensors["position_embd.weight"], st.tensor("transformer.wpe.weight"))
        assert "output.weight" not in tensors  # tied to token_embd
    finally:
        close()
        st.close()


def test_reference_matches_transformers():
    c, w = load(FOLDER)
    for ids, want in zip(G["ids"], G["logits"]):
        got = reference_gpt2.forward(c, w, ids)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # a prefix sees only itself (causal)
    np.testing.assert_allclose(reference_gpt2.forward(c, w, G["ids"][0][:7]), G["logits"][0][:7], atol=1e-4, rtol=0)


def test_gguf_written_by_ninestep(tmp_path):
    path = gpt2_gguf(tmp_path / "tiny-gpt2.gguf")
    c, tok, tensors, close = open_model(path)
    close()
    assert (c.architecture, c.n_layers, c.d_model, c.d_ff, c.vocab_size, c.tied_embeddings, c.ffn_act) == \
        ("gpt2", 2, 32, 128, 300, True, "gelu_tanh")
    c2, w = load(path)
    np.testing.assert_allclose(reference_gpt2.forward(c2, w, G["ids"][1]), G["logits"][1], atol=1e-4, rtol=0)
    hf_tok = open_model(FOLDER)[1]
    text = "The cat sat on the mat. Café!"
    assert tok.encode(text) == hf_tok.encode(text)


@pytest.mark.parametrize("key, value, match", [
    ("activation_function", "relu", "activation_function"),
    ("scale_attn_by_inverse_layer_idx", True, "scale_attn_by_inverse_layer_idx"),
    ("n_embd", None, "n_embd"),
])
def test_bad_config(key, value, match):
    c = json.loads((FOLDER / "config.json").read_text())
    c[key] = value
    with pytest.raises(ValueError, match=match):
        ModelConfig.from_hf(c)


# ---- the C++ engine (cpp/model/gpt2.cpp) ----

def test_engine_matches_transformers(isa):
    import ninestep

    with ninestep.load(FOLDER) as m:
        assert m.config.architecture == "gpt2" and m.n_ctx == 64
        for ids, want in zip(G["ids"], G["logits"]):
            np.testing.assert_allclose(m.logits([int(i) for i in ids]), want, atol=1e-4, rtol=0)


def test_engine_decode_step_by_step():
    """Prompt then single tokens through the KV cache give the logits of the whole sequence at once."""
    from ninestep import engine

    config, _, tensors, close = open_model(FOLDER)
    try:
        s = engine.Session(engine.load_weights(config, tensors), n_ctx=64)
        ids = G["ids"][2]
        rows = [s.forward(ids[:5], 0, all_logits=True)]
        rows += [s.forward(ids[t:t + 1], t) for t in range(5, len(ids))]
        np.testing.assert_allclose(np.concatenate(rows), G["logits"][2], atol=1e-4, rtol=0)
    finally:
        close()


@pytest.mark.parametrize("kind", [None, "q8_0"])
def test_engine_on_gguf(tmp_path, kind):
    import ninestep

    path = gpt2_gguf(tmp_path / "tiny-gpt2.gguf", kind)
    c, w = load(path)  # the reference on the same (dequantized) weights
    with ninestep.load(path) as m:
        for ids in G["ids"][:2]:
            got = m.logits([int(i) for i in ids])
            want = reference_gpt2.forward(c, w, ids)
            if kind is None:
                np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
            else:  # 8-bit activation blocks against the f32 reference
                assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
                assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_engine_refuses_contexts_past_the_learned_positions():
    import ninestep

    with pytest.raises(ValueError, match="trained on"):
        ninestep.load(FOLDER, n_ctx=65)
    with pytest.raises(ValueError, match="64 learned positions"):  # C++ checks it too
        ninestep.load(FOLDER, n_ctx=65, ctx_override=True)
    with ninestep.load(FOLDER) as m:
        with pytest.raises(ValueError, match="n_ctx"):
            m.logits(list(range(65)))
