"""A short, readable NumPy forward pass of a BERT encoder (BertModel, MiniLM) and the
sentence-transformers pooling after it: the yardstick the C++ encoder is tested against.

Float32 weights in (a dict keyed by GGUF names, as formats/hf_encoders.py maps them), float32
hidden states out. Per layer (post-norm):
    x = LN(x + out(attention(q(x), k(x), v(x))))      attention: every token sees every token
    x = LN(x + down(gelu_erf(up(x))))
after x = LN(token_embd[ids] + position_embd[0..T) + token_types[types]).
"""
import numpy as np

from .reference import linear, softmax


def layernorm(x, w, b, eps):
    # x [T, d], w/b [d]; statistics in float64 so the yardstick adds no rounding of its own
    x64 = x.astype(np.float64)
    mu = x64.mean(-1, keepdims=True)
    var = np.square(x64 - mu).mean(-1, keepdims=True)
    return ((x64 - mu) / np.sqrt(var + eps)).astype(np.float32) * w + b


def erf(x):
    """erf in float64, |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit); NumPy has none."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    p = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    r = 1.0 - t * np.exp(p)
    return np.where(x >= 0, r, -r)


def gelu_erf(x):
    # x * Phi(x): HF "gelu" (BERT)
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + erf(x64 / np.sqrt(2.0)))).astype(np.float32)


def gelu_tanh(x):
    # HF "gelu_new" (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x64 + 0.044715 * x64 ** 3)))).astype(np.float32)


def attention(q, k, v, causal):
    # q/k/v [T, H, hd] -> [T, H*hd]; causal: query t sees keys 0..t, else all T keys
    T, H, hd = q.shape
    scores = q.transpose(1, 0, 2) @ k.transpose(1, 2, 0) / np.float32(np.sqrt(hd))  # [H, T, T]
    if causal:
        scores = np.where(np.tri(T, T, dtype=bool), scores, -np.inf)
    return (softmax(scores) @ v.transpose(1, 0, 2)).transpose(1, 0, 2).reshape(T, H * hd)


def forward(config, weights, ids, token_types=None):
    """ids [T] (one sentence, [CLS] ... [SEP] included) -> last hidden states float32 [T, d_model]."""
    c, w = config, weights
    ids = np.asarray(ids)
    T = len(ids)
    if T > w["position_embd.weight"].shape[0]:
        raise ValueError(f"ids: {T} tokens exceed the {w['position_embd.weight'].shape[0]} learned positions")
    types = np.zeros(T, dtype=np.int64) if token_types is None else np.asarray(token_types)
    x = w["token_embd.weight"][ids] + w["position_embd.weight"][:T] + w["token_types.weight"][types]
    x = layernorm(x.astype(np.float32), w["token_embd_norm.weight"], w["token_embd_norm.bias"], c.norm_eps)
    act = gelu_erf if c.ffn_act == "gelu_erf" else gelu_tanh
    for i in range(c.n_layers):
        p = f"blk.{i}."
        q, k, v = (linear(x, w, p + n).reshape(T, c.n_heads, c.head_dim) for n in ("attn_q", "attn_k", "attn_v"))
        h = linear(attention(q, k, v, causal=False), w, p + "attn_output")
        x = layernorm(x + h, w[p + "attn_output_norm.weight"], w[p + "attn_output_norm.bias"], c.norm_eps)
        h = linear(act(linear(x, w, p + "ffn_up")), w, p + "ffn_down")
        x = layernorm(x + h, w[p + "layer_output_norm.weight"], w[p + "layer_output_norm.bias"], c.norm_eps)
    return x


def embed(config, weights, batch_ids, pooling):
    """Sentence embeddings float32 [n, dim] of a list of id lists, pooled by `pooling` (a Pooling)."""
    return np.stack([pooling(forward(config, weights, ids)) for ids in batch_ids]).astype(np.float32)
