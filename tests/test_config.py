"""ModelConfig from GGUF metadata and HF config.json, and its validation."""
import dataclasses
import math

import pytest
from helpers.models import smollm2_path

from ninestep.config import ModelConfig
from ninestep.formats import GGUFFile


def test_from_real_gguf():
    with GGUFFile(smollm2_path()) as g:
        c = ModelConfig.from_gguf(g.metadata, g.tensors)
    assert (c.architecture, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim) == ("llama", 30, 576, 9, 3, 64)
    assert (c.d_ff, c.vocab_size, c.context_length, c.rope_theta) == (1536, 49152, 8192, 100000.0)
    assert c.rope_style == "norm" and c.tied_embeddings and not c.has_qkv_bias
    assert math.isclose(c.norm_eps, 1e-5, rel_tol=1e-6)
    assert (c.bos_id, c.eos_id, c.eot_id, c.add_bos) == (1, 2, 2, False)
    assert c.stop_ids == [2]


def _qwen2_gguf():
    meta = {
        "general.architecture": "qwen2", "qwen2.block_count": 2, "qwen2.embedding_length": 64,
        "qwen2.attention.head_count": 4, "qwen2.attention.head_count_kv": 2, "qwen2.feed_forward_length": 128,
        "qwen2.context_length": 1024, "qwen2.attention.layer_norm_rms_epsilon": 1e-6, "qwen2.rope.freq_base": 1e6,
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "tokenizer.ggml.eos_token_id": 1,
    }
    return meta, ["token_embd.weight", "output.weight", "blk.0.attn_q.bias"]


def test_from_gguf_qwen2():
    c = ModelConfig.from_gguf(*_qwen2_gguf())
    assert c.rope_style == "neox" and c.has_qkv_bias and not c.tied_embeddings
    assert (c.vocab_size, c.head_dim, c.eos_id, c.eot_id, c.bos_id, c.add_bos) == (4, 16, 1, 3, None, False)
    assert c.stop_ids == [1, 3]


def test_from_gguf_explicit_keys_win():
    meta, names = _qwen2_gguf()
    meta.update({"tokenizer.ggml.eot_token_id": 0, "qwen2.attention.key_length": 32, "qwen2.vocab_size": 4,
                 "tokenizer.ggml.add_bos_token": True})
    c = ModelConfig.from_gguf(meta, names)
    assert (c.eot_id, c.head_dim, c.add_bos) == (0, 32, True)
    del meta["tokenizer.ggml.add_bos_token"]
    meta["tokenizer.ggml.model"] = "llama"  # SentencePiece vocabularies add BOS by default
    assert ModelConfig.from_gguf(meta, names).add_bos


@pytest.mark.parametrize("change, field", [
    ({"general.architecture": "falcon"}, "architecture"),
    ({"qwen2.block_count": None}, "qwen2.block_count"),
    ({"qwen2.block_count": 0}, "n_layers"),
    ({"qwen2.attention.head_count_kv": 3}, "n_kv_heads"),
    ({"qwen2.rope.scaling.type": "yarn"}, "rope.scaling.type"),
    ({"qwen2.rope.dimension_count": 8}, "rope.dimension_count"),
    ({"tokenizer.ggml.eos_token_id": 4}, "eos_id"),
])
def test_from_gguf_rejects(change, field):
    meta, names = _qwen2_gguf()
    meta.update(change)
    meta = {k: v for k, v in meta.items() if v is not None}
    with pytest.raises(ValueError, match=field):
        ModelConfig.from_gguf(meta, names)


# SmolLM2-135M-Instruct's config.json as transformers 4 wrote it (fields the config reads)
SMOLLM2_HF = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000, "rope_scaling": None,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False,
}


def test_from_hf_matches_gguf_except_rope_style():
    with GGUFFile(smollm2_path()) as g:
        from_gguf = ModelConfig.from_gguf(g.metadata, g.tensors)
    tok = {"added_tokens": [{"id": 0, "content": "<|endoftext|>"}, {"id": 2, "content": "<|im_end|>"}]}
    c = ModelConfig.from_hf(SMOLLM2_HF, tokenizer_config={"add_bos_token": False}, tokenizer_json=tok)
    assert dataclasses.replace(c, rope_style="norm", norm_eps=from_gguf.norm_eps) == from_gguf
    assert c.rope_style == "neox"


def test_from_hf_tokenizer_details():
    cfg = dict(SMOLLM2_HF, eos_token_id=[2, 0], model_type="qwen2")
    single = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]}
    c = ModelConfig.from_hf(cfg, tokenizer_json={"post_processor": {"type": "Sequence", "processors": [single]}},
                            tokenizer_config={"added_tokens_decoder": {"5": {"content": "<|eot_id|>"}}})
    assert (c.eos_id, c.eot_id, c.add_bos, c.has_qkv_bias) == (2, 5, True, True)
    c = ModelConfig.from_hf(cfg)
    assert (c.eot_id, c.add_bos) == (2, False)


@pytest.mark.parametrize("change, field", [
    ({"model_type": "falcon"}, "architecture"),
    ({"hidden_size": None}, "hidden_size"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope_parameters"),
    ({"num_key_value_heads": 2}, "n_kv_heads"),
    ({"rms_norm_eps": -1.0}, "norm_eps"),
])
def test_from_hf_rejects(change, field):
    cfg = {k: v for k, v in dict(SMOLLM2_HF, **change).items() if v is not None}
    with pytest.raises(ValueError, match=field):
        ModelConfig.from_hf(cfg)


BASE = dict(architecture="llama", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128,
            vocab_size=100, norm_eps=1e-5, rope_theta=1e4, rope_style="norm", context_length=256,
            tied_embeddings=True, bos_id=1, eos_id=2)


@pytest.mark.parametrize("change, field", [
    ({"n_layers": 0}, "n_layers"), ({"d_model": -64}, "d_model"), ({"n_heads": 2.0}, "n_heads"),
    ({"n_kv_heads": 3}, "n_kv_heads"), ({"head_dim": 15}, "head_dim"), ({"d_ff": None}, "d_ff"),
    ({"vocab_size": True}, "vocab_size"), ({"context_length": 0}, "context_length"),
    ({"norm_eps": 0.0}, "norm_eps"), ({"rope_theta": math.inf}, "rope_theta"),
    ({"rope_style": "gptj"}, "rope_style"), ({"bos_id": 100}, "bos_id"), ({"eot_id": -1}, "eot_id"),
])
def test_validation_names_the_field(change, field):
    ModelConfig(**BASE)
    with pytest.raises(ValueError, match=f"^{field}:"):
        ModelConfig(**dict(BASE, **change))
