"""A short, readable NumPy forward pass of GPT-2: the yardstick for the C++ gpt2 architecture.

Weights are a dict keyed by GGUF names (formats/hf_encoders.py maps an HF folder; Conv1D weights
already transposed to [out, in]); per layer (pre-norm, biases everywhere):
    x = x + out(causal_attention(split(qkv(LN1(x)))))
    x = x + down(gelu_tanh(up(LN2(x))))
after x = token_embd[ids] + position_embd[0..T); logits = LN_f(x) @ token_embd.T (tied) or output.T.
"""
import numpy as np

from .reference import linear
from .reference_bert import attention, gelu_erf, gelu_tanh, layernorm


def forward(config, weights, ids):
    """ids [T] at positions 0..T-1 -> logits float32 [T, vocab]."""
    c, w = config, weights
    ids = np.asarray(ids)
    T, d = len(ids), c.d_model
    if T > w["position_embd.weight"].shape[0]:
        raise ValueError(f"ids: {T} tokens exceed the {w['position_embd.weight'].shape[0]} learned positions")
    x = (w["token_embd.weight"][ids] + w["position_embd.weight"][:T]).astype(np.float32)
    act = gelu_tanh if c.ffn_act == "gelu_tanh" else gelu_erf
    for i in range(c.n_layers):
        p = f"blk.{i}."
        h = layernorm(x, w[p + "attn_norm.weight"], w[p + "attn_norm.bias"], c.norm_eps)
        qkv = linear(h, w, p + "attn_qkv")  # [T, 3d]: q, k, v
        q, k, v = (qkv[:, j * d:(j + 1) * d].reshape(T, c.n_heads, c.head_dim) for j in range(3))
        x = x + linear(attention(q, k, v, causal=True), w, p + "attn_output")
        h = layernorm(x, w[p + "ffn_norm.weight"], w[p + "ffn_norm.bias"], c.norm_eps)
        x = x + linear(act(linear(h, w, p + "ffn_up")), w, p + "ffn_down")
    x = layernorm(x, w["output_norm.weight"], w["output_norm.bias"], c.norm_eps)
    head = w["token_embd.weight"] if c.tied_embeddings else w["output.weight"]
    return (x @ head.T).astype(np.float32)
