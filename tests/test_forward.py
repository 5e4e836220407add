"""The C++ forward pass (ninestep.engine) against the NumPy reference (ninestep.reference), the
transformers goldens of the tiny HF models, and SmolLM2's greedy continuation."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import ninestep
from ninestep import QuantizedTensor, reference
from ninestep.config import ModelConfig
from ninestep.engine import Session, load_weights
from ninestep.formats.gguf import GGUFFile

DATA = Path(__file__).parent / "data"
BASE = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=96, vocab_size=100,
            norm_eps=1e-5, rope_theta=10000.0, rope_style="norm", tied_embeddings=False, has_qkv_bias=False)


def make_model(rng, **over):
    """A random model: (config dict, float32 weights by GGUF name)."""
    c = dict(BASE, **over)
    d, qd, kvd, ff = c["d_model"], c["n_heads"] * c["head_dim"], c["n_kv_heads"] * c["head_dim"], c["d_ff"]
    mat = lambda n, k: (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    vec = lambda n, s=0.1, c0=1.0: (c0 + s * rng.standard_normal(n)).astype(np.float32)
    w = {"token_embd.weight": rng.standard_normal((c["vocab_size"], d)).astype(np.float32),
         "output_norm.weight": vec(d)}
    if not c["tied_embeddings"]:
        w["output.weight"] = mat(c["vocab_size"], d)
    for i in range(c["n_layers"]):
        p = f"blk.{i}."
        w.update({p + "attn_norm.weight": vec(d), p + "ffn_norm.weight": vec(d),
                  p + "attn_q.weight": mat(qd, d), p + "attn_k.weight": mat(kvd, d), p + "attn_v.weight": mat(kvd, d),
                  p + "attn_output.weight": mat(d, qd), p + "ffn_gate.weight": mat(ff, d),
                  p + "ffn_up.weight": mat(ff, d), p + "ffn_down.weight": mat(d, ff)})
        if c["has_qkv_bias"]:
            w.update({p + "attn_q.bias": vec(qd, 0.5, 0.0), p + "attn_k.bias": vec(kvd, 0.5, 0.0),
                      p + "attn_v.bias": vec(kvd, 0.5, 0.0)})
        if c.get("architecture") == "gemma3":
            hd = c["head_dim"]
            w.update({p + "attn_q_norm.weight": vec(hd), p + "attn_k_norm.weight": vec(hd),
                      p + "post_attention_norm.weight": vec(d), p + "post_ffw_norm.weight": vec(d)})
    return c, w


def quantized(weights, kind):
    """(tensors for the engine, float32 weights the engine effectively holds) with every matrix in `kind`."""
    if kind == "f32":
        return weights, weights
    tensors, deq = {}, {}
    for name, a in weights.items():
        if a.ndim == 1:
            t, f = a, a
        elif kind == "f16":
            t = a.astype(np.float16)
            f = t.astype(np.float32)
        elif kind == "bf16":
            t = QuantizedTensor.from_bf16((a.view(np.uint32) >> 16).astype(np.uint16))
            f = t.dequantize()
        else:
            t = ninestep.quantize(a, kind)
            f = t.dequantize()
        tensors[name], deq[name] = t, f
    return tensors, deq


def rel_err(got, want):
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def ref_logits(config, weights, ids):
    return reference.forward(SimpleNamespace(**config), weights, ids)


# Gemma 3's block: QK-norm, post-norms, GeGLU, scaled embeddings, sliding windows on all layers but
# every second one (with their own RoPE base); 21 tokens outrun the 5-key window.
GEMMA3 = dict(architecture="gemma3", rope_style="neox", tied_embeddings=True, sliding_window=5,
              sliding_window_pattern=2, rope_theta=1e6, rope_theta_local=1e4, embd_scale=8.0, ffn_act="gelu_tanh",
              attn_scale=0.2)
VARIANTS = {
    "norm-gqa-untied": dict(),
    "neox-bias-tied": dict(rope_style="neox", has_qkv_bias=True, tied_embeddings=True),
    "mha-tied": dict(n_kv_heads=4, tied_embeddings=True, rope_theta=100000.0),
    "gemma3": GEMMA3,
    "mistral-window": dict(sliding_window=7),
}


# Quantized weights: the reference runs on the dequantized weights, so what remains is the 8-bit
# activation rounding (~0.5% per matmul, as NumPy shows for one product), ~1% after two layers.
@pytest.mark.parametrize("kind,tol", [("f32", 1e-4), ("f16", 1e-4), ("bf16", 1e-4), ("q8_0", 2e-2), ("q4_1", 2e-2),
                                      ("q4_0", 2e-2)])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_reference(isa, rng, variant, kind, tol):
    config, w = make_model(rng, **VARIANTS[variant])
    tensors, deq = quantized(w, kind)
    ids = rng.integers(0, config["vocab_size"], 21)
    s = Session(load_weights(config, tensors), n_ctx=32)
    got = s.forward(ids, all_logits=True)
    assert s.n_past == 21
    assert rel_err(got, ref_logits(config, deq, ids)) < tol


@pytest.mark.parametrize("threads", [1, 3])
def test_chunked_prefill_equals_one_pass(rng, threads):
    config, w = make_model(rng)
    tensors, _ = quantized(w, "q4_1")
    weights = load_weights(config, tensors)
    ids = rng.integers(0, config["vocab_size"], 23)
    s = Session(weights, n_ctx=64)
    whole = s.forward(ids, all_logits=True)
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        # chunks of 5, 5, 5, 5 and 3 tokens: the last takes the few-rows path decode takes
        got = Session(weights, n_ctx=64, chunk=5).forward(ids, all_logits=True)
        last = Session(weights, n_ctx=64, chunk=5).forward(ids)
        again = s.forward(ids[-2:], pos=21)  # the same session, now with a different thread count
    finally:
        ninestep.set_num_threads(before)
    np.testing.assert_allclose(got, whole, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(last, whole[-1:], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(again, whole[-1:], rtol=1e-4, atol=1e-4)


def test_prefill_then_decode_equals_full_pass(isa, rng):
    config, w = make_model(rng, rope_style="neox", has_qkv_bias=True)
    weights = load_weights(config, w)
    ids = rng.integers(0, config["vocab_size"], 12)
    whole = Session(weights, n_ctx=16).forward(ids, all_logits=True)
    s = Session(weights, n_ctx=16)
    steps = [s.forward(ids[:5])]
    steps += [s.forward(ids[t : t + 1]) for t in range(5, 12)]
    np.testing.assert_allclose(np.concatenate(steps), whole[4:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads,n_kv_heads", [(1, 3), (2, 3), (3, 2), (2, 6)])
def test_decode_over_a_long_context_splits_keys_across_threads(isa, rng, threads, n_kv_heads):
    # 150 cached positions: each KV head's keys split into blocks (2 threads, 3 heads: 2 blocks each)
    config, w = make_model(rng, n_heads=6, n_kv_heads=n_kv_heads)
    weights = load_weights(config, w)
    ids = rng.integers(0, config["vocab_size"], 156)
    whole = Session(weights, n_ctx=160).forward(ids, all_logits=True)
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        s = Session(weights, n_ctx=160)
        s.forward(ids[:150])
        steps = [s.forward(ids[t : t + 1]) for t in range(150, 153)]
        steps.append(s.forward(ids[153:], all_logits=True))  # 3 tokens at once: causal within the chunk
    finally:
        ninestep.set_num_threads(before)
    np.testing.assert_allclose(np.concatenate(steps), whole[150:], rtol=1e-4, atol=1e-4)


def test_rewind_overwrites_cache(rng):
    config, w = make_model(rng)
    weights = load_weights(config, w)
    a = rng.integers(0, config["vocab_size"], 10)
    b = rng.integers(0, config["vocab_size"], 4)
    s = Session(weights, n_ctx=16)
    s.forward(a)
    got = s.forward(b, pos=6, all_logits=True)
    assert s.n_past == 10
    fresh = Session(weights, n_ctx=16).forward(np.concatenate([a[:6], b]), all_logits=True)
    np.testing.assert_allclose(got, fresh[6:], rtol=1e-5, atol=1e-5)
    s.reset()
    assert s.n_past == 0
    np.testing.assert_allclose(s.forward(a[:3], all_logits=True), fresh[:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2", "tiny-mistral"])
def test_tiny_hf_models_match_transformers(name):
    from goldens.load_hf_for_reference import load_hf

    ns, w = load_hf(DATA / name)
    config = dict(vars(ns), has_qkv_bias="blk.0.attn_q.bias" in w)
    golden = np.load(DATA / name / "goldens.npz")
    got = Session(load_weights(config, w), n_ctx=64).forward(golden["ids"], all_logits=True)
    assert rel_err(got, golden["logits"]) < 1e-4


def test_smollm2_says_paris():
    from goldens.load_gguf_for_reference import smollm2_path

    g = GGUFFile(smollm2_path())
    config = ModelConfig.from_gguf(g.metadata, g.tensors)
    vocab = g.metadata["tokenizer.ggml.tokens"]
    # "The capital of France is": tokenizers.Tokenizer(models.BPE(gguf vocab, gguf merges)) with
    # pre_tokenizers Digits(individual_digits=True) + ByteLevel(add_prefix_space=False), .encode(text).ids
    prompt = [504, 3575, 282, 4649, 314]
    assert "".join(vocab[i] for i in prompt) == "TheĠcapitalĠofĠFranceĠis"
    s = Session(load_weights(config, {name: g.tensor(name) for name in g.tensors}), n_ctx=64)
    first = int(np.argmax(s.forward(prompt)[0]))
    second = int(np.argmax(s.forward([first])[0]))
    assert vocab[first] == "ĠParis"  # then "." with llama.cpp and transformers
    assert s.n_past == 6 and 0 <= second < config.vocab_size


def test_f16_vectors_are_converted(rng):
    config, w = make_model(rng, has_qkv_bias=True)
    half = {k: v.astype(np.float16) if v.ndim == 1 else v for k, v in w.items()}
    widened = {k: v.astype(np.float16).astype(np.float32) if v.ndim == 1 else v for k, v in w.items()}
    ids = [3, 1, 4, 1, 5]
    got = Session(load_weights(config, half), n_ctx=8).forward(ids)
    np.testing.assert_array_equal(got, Session(load_weights(config, widened), n_ctx=8).forward(ids))


def test_bf16_bits_as_the_readers_give_them(rng):
    # GGUF and safetensors readers hand out BF16 vectors as uint16 bits and BF16 matrices as
    # QuantizedTensors; the engine widens the vectors itself, whichever reader they came from
    config, w = make_model(rng, has_qkv_bias=True)
    bits = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in w.items()}
    widened = {k: (b.astype(np.uint32) << 16).view(np.float32) for k, b in bits.items()}
    ids = [3, 1, 4, 1, 5]
    got = Session(load_weights(config, bits), n_ctx=8).forward(ids)
    np.testing.assert_array_equal(got, Session(load_weights(config, widened), n_ctx=8).forward(ids))


def test_bad_arguments_raise_value_error(rng):
    config, w = make_model(rng)
    weights = load_weights(config, w)
    s = Session(weights, n_ctx=8)
    s.forward([1, 2, 3])
    for bad in ([], [[1, 2]], [1.5], [100], [-1]):
        with pytest.raises(ValueError, match="ids"):
            s.forward(bad)
    with pytest.raises(ValueError, match="pos"):
        s.forward([1], pos=4)
    with pytest.raises(ValueError, match="n_ctx"):
        s.forward([1] * 6)
    with pytest.raises(ValueError, match="out"):
        s.forward([1], out=np.empty((1, 99), np.float32))
    assert s.n_past == 3  # nothing ran
    # the C++ side checks on its own too
    core = s._engine._e
    item = lambda seq, n, n_logits: np.array([[seq, n, n_logits]], np.int64)  # noqa: E731
    with pytest.raises(ValueError, match="vocabulary"):
        core.step(np.array([100], np.int32), item(0, 1, 1), np.empty((1, 100), np.float32))
    with pytest.raises(ValueError, match="sequence 1"):
        core.step(np.array([1], np.int32), item(1, 1, 1), np.empty((1, 100), np.float32))
    with pytest.raises(ValueError, match="logits_out"):
        core.step(np.array([1, 2], np.int32), item(0, 2, 2), np.empty((1, 100), np.float32))
    with pytest.raises(ValueError, match="tokens"):
        core.step(np.array([1], np.int64), item(0, 1, 1), np.empty((1, 100), np.float32))
    with pytest.raises(ValueError, match="n_ctx"):
        core.step(np.array([1] * 6, np.int32), item(0, 6, 1), np.empty((1, 100), np.float32))
    assert s.n_past == 3
    with pytest.raises(ValueError, match="n_ctx"):
        Session(weights, n_ctx=0)


def test_bad_weights_raise_value_error(rng):
    config, w = make_model(rng)
    cases = [
        (dict(config, n_kv_heads=3), w, "n_kv_heads"),
        ({k: v for k, v in config.items() if k != "d_ff"}, w, "d_ff"),
        (dict(config, rope_style="gptj"), w, "rope_style"),
        (config, {k: v for k, v in w.items() if k != "blk.1.ffn_up.weight"}, "blk.1.ffn_up.weight"),
        (config, dict(w, **{"blk.0.attn_k.weight": w["blk.0.attn_q.weight"]}), "blk.0.attn_k.weight"),
        (config, dict(w, extra=w["output_norm.weight"]), "extra"),
        (dict(config, tied_embeddings=True), w, "output.weight"),
        (config, dict(w, **{"blk.0.ffn_up.weight": (w["blk.0.ffn_up.weight"][:-1], "f32", (96, 64))}), "ffn_up"),
        (config, dict(w, **{"blk.0.ffn_up.weight": (w["blk.0.ffn_up.weight"], "q9", (96, 64))}), "kind"),
    ]
    for cfg, tensors, match in cases:
        with pytest.raises(ValueError, match=match):
            load_weights(cfg, tensors)
