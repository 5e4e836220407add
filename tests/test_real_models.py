"""The real K-quant GGUFs people download, end to end against HF transformers loading the same file
(fp32 dequantized; goldens by tests/goldens/make_gguf_goldens.py): Gemma 3 270M (gemma3: sliding
windows, QK-norm, post-norms, GeGLU; Q5_0/Q4_K/Q6_K/Q8_0) and Qwen2.5-Coder 0.5B (qwen2: Q/K/V
biases, untied head, Q5_0 embeddings). The files come from PyPI packages through ninestep.hub."""
import json
from pathlib import Path

import numpy as np
import pytest

import ninestep
from goldens import metrics
from helpers.models import real_model_path

GOLDENS = Path(__file__).parent / "goldens"
MODELS = {"gemma3": "gemma3-270m", "qwen2": "qwen2.5-coder-0.5b"}


@pytest.fixture(scope="module", params=list(MODELS))
def real(request):
    with ninestep.load(real_model_path(MODELS[request.param]), n_ctx=1024) as m:
        yield request.param, m


def test_config_and_architecture(real):
    arch, m = real
    c = m.config
    assert c.architecture == arch
    if arch == "gemma3":
        assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size) == (18, 640, 4, 1, 256, 262144)
        assert (c.sliding_window, c.sliding_window_pattern, c.rope_theta, c.rope_theta_local) == (512, 6, 1e6, 1e4)
        assert c.ffn_act == "gelu_tanh" and c.tied_embeddings and abs(c.embd_scale - 640 ** 0.5) < 1e-9
    else:
        assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.vocab_size) == (24, 896, 14, 2, 151936)
        assert c.has_qkv_bias and not c.tied_embeddings and c.rope_style == "neox"


def test_logits_agree_with_transformers(real):
    # The bar: top-1 >= 0.94 and mean KL(ref || ninestep) <= 0.01 over 400+ tokens.
    arch, m = real
    g = dict(np.load(GOLDENS / f"{arch}_goldens.npz"))
    logits = m.logits(g["ids"].tolist())
    agree, kl = metrics.top1_agreement(g, logits), metrics.mean_kl(g, logits)
    print(f"{arch} ninestep vs transformers, {len(g['ids'])} tokens: top-1 {agree:.4f}, mean KL {kl:.5f}")
    assert len(g["ids"]) >= 400
    assert agree >= 0.94
    assert kl <= 0.01


def test_greedy_continuations_agree_with_transformers(real):
    # Free-running greedy text from the same prompt ids: the agreed prefix covers half the length:
    # one flipped near-tie parts the texts for the rest of that prompt (kernel builds with the same
    # mean KL, 0.00237 on Gemma, measured 160, 124 and 115 of 192), so the tight check is the
    # teacher-forced one: along transformers' continuation each of its tokens is ninestep's top
    # choice (90%) or within a near-tie (1.0) of it.
    arch, m = real
    cases = json.loads((GOLDENS / f"{arch}_greedy.json").read_text())
    agreed, total, top = 0, 0, 0
    for case in cases:
        p, want = case["prompt_ids"], case["output_ids"]
        got = m.generate(p, max_new_tokens=len(want), temperature=0, ignore_eos=True).tokens
        n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        agreed, total = agreed + n, total + len(want)
        logits = m.logits(p + want)[len(p) - 1:-1]
        for row, tok in zip(logits, want):
            assert row.max() - row[tok] < 1.0, (case["prompt"], tok)
            top += int(np.argmax(row) == tok)
    print(f"{arch}: greedy agreed prefix {agreed}/{total} tokens, teacher-forced top-1 {top}/{total}")
    assert agreed >= 0.5 * total
    assert top >= 0.9 * total


def test_generation_says_the_obvious(real):
    arch, m = real
    c = m.generate("The capital of France is", max_new_tokens=8, temperature=0)
    if arch == "qwen2":  # (Gemma 270M, a base model, goes on about "the capital of the country of France")
        assert "Paris" in c.text
    assert c.stats.new_tokens == len(c.tokens) > 0
