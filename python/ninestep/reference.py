"""A short, readable NumPy forward pass of the decoders the engine runs: the Llama family (Llama,
SmolLM2, Mistral, Qwen2) and Gemma 3.

The yardstick the C++ model is tested against: float32 weights in, float32 logits out, no fusion;
an optional KV cache (a dict the caller keeps) lets bench/ time NumPy decoding fairly. Weights are a
dict keyed by GGUF names (token_embd.weight, blk.{i}.attn_q.weight, ...), matrices [out, in]; config
needs n_layers, n_heads, n_kv_heads, head_dim, norm_eps, rope_theta, rope_style ('norm' | 'neox') and
tied_embeddings (d_model, d_ff and vocab_size follow from the weights). Gemma 3's extras are read when
present: sliding_window (+ sliding_window_pattern, rope_theta_local), attn_scale, embd_scale,
ffn_act 'gelu_tanh', and the weights attn_q_norm / attn_k_norm / post_attention_norm / post_ffw_norm.
"""
import numpy as np


def rmsnorm(x, w, eps):
    # x [T, d], w [d]; mean of squares in float64 so the yardstick adds no rounding of its own
    ms = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps)).astype(np.float32) * w


def linear(x, w, name):
    # x [T, in], w[name.weight] [out, in], optional w[name.bias] [out] (Qwen2 q/k/v) -> [T, out]
    y = x @ w[name + ".weight"].T
    return y + w[name + ".bias"] if name + ".bias" in w else y


def rope(x, theta, style, start=0):
    """x [T, n_heads, head_dim] at positions start..start+T-1: rotate pairs of dims by pos * theta^(-2i/head_dim).
    'norm' pairs (2i, 2i+1) (GGUF llama, whose Q/K rows llama.cpp's converter permuted);
    'neox' pairs (i, i + head_dim/2) (HF checkpoints, Qwen2)."""
    T, _, d = x.shape
    inv_freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [d/2]
    angle = np.arange(start, start + T, dtype=np.float64)[:, None] * inv_freq  # [T, d/2]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]  # [T, 1, d/2]
    first, second = (slice(0, d, 2), slice(1, d, 2)) if style == "norm" else (slice(0, d // 2), slice(d // 2, d))
    a, b = x[..., first], x[..., second]
    out = np.empty_like(x)
    out[..., first] = a * cos - b * sin
    out[..., second] = a * sin + b * cos
    return out


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def attention(q, k, v, window=0, scale=None):
    # q [T, H, hd], k/v [S, H_kv, hd] -> [T, H*hd]; causal: query t is position S-T+t and sees keys
    # 0..S-T+t (with a window, only the last `window` of them); query head h reads KV head h // (H/H_kv)
    T, H, hd = q.shape
    S = k.shape[0]
    k, v = (np.repeat(t, H // k.shape[1], axis=1) for t in (k, v))
    scale = np.float32(1 / np.sqrt(hd) if not scale else scale)
    scores = q.transpose(1, 0, 2) @ k.transpose(1, 2, 0) * scale  # [H, T, S]
    visible = np.tri(T, S, S - T, dtype=bool)
    if window:
        visible &= ~np.tri(T, S, S - T - window, dtype=bool)
    scores = np.where(visible, scores, -np.inf)
    out = softmax(scores) @ v.transpose(1, 0, 2)  # [H, T, hd]
    return out.transpose(1, 0, 2).reshape(T, H * hd)


def silu(x):
    # x * sigmoid(x), with sigmoid written via tanh so large negative x cannot overflow exp
    return x * (0.5 + 0.5 * np.tanh(0.5 * x))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))


def mlp(x, w, p, act=silu):
    # gated FFN, SwiGLU (silu) or GeGLU (gelu_tanh): down(act(gate(x)) * up(x)); x [T, d] -> [T, d]
    return linear(act(linear(x, w, p + "ffn_gate")) * linear(x, w, p + "ffn_up"), w, p + "ffn_down")


def layer_settings(c, i):
    """(window, RoPE base) of layer i: windowed unless the config's pattern makes it global."""
    window, pattern = getattr(c, "sliding_window", 0) or 0, getattr(c, "sliding_window_pattern", 0) or 0
    if not window or (pattern and (i + 1) % pattern == 0):
        return 0, c.rope_theta
    return window, getattr(c, "rope_theta_local", 0) or c.rope_theta


def post(x, w, name, eps):
    # an optional norm on a block's output before the residual add (Gemma's post-norms)
    return rmsnorm(x, w[name], eps) if name in w else x


def forward(config, weights, ids, cache=None):
    """ids [T] -> logits float32 [T, vocab]. Without `cache` the ids are positions 0..T-1; with a
    dict `cache` (start with {}) they continue after the positions it holds, and it is extended."""
    c, w = config, weights
    T = len(ids)
    start = len(cache[0][0]) if cache else 0
    x = w["token_embd.weight"][np.asarray(ids)].astype(np.float32)  # [T, d]
    x = x * np.float32(getattr(c, "embd_scale", 1.0) or 1.0)
    act = gelu_tanh if getattr(c, "ffn_act", "silu") == "gelu_tanh" else silu
    eps = c.norm_eps
    for i in range(c.n_layers):
        p = f"blk.{i}."
        window, theta = layer_settings(c, i)
        h = rmsnorm(x, w[p + "attn_norm.weight"], eps)
        q = linear(h, w, p + "attn_q").reshape(T, c.n_heads, c.head_dim)
        k = linear(h, w, p + "attn_k").reshape(T, c.n_kv_heads, c.head_dim)
        v = linear(h, w, p + "attn_v").reshape(T, c.n_kv_heads, c.head_dim)
        q, k = post(q, w, p + "attn_q_norm.weight", eps), post(k, w, p + "attn_k_norm.weight", eps)  # QK-norm
        q, k = rope(q, theta, c.rope_style, start), rope(k, theta, c.rope_style, start)
        if cache is not None:
            if i in cache:
                k, v = np.concatenate([cache[i][0], k]), np.concatenate([cache[i][1], v])
            cache[i] = (k, v)
        a = linear(attention(q, k, v, window, getattr(c, "attn_scale", 0)), w, p + "attn_output")
        x = x + post(a, w, p + "post_attention_norm.weight", eps)
        f = mlp(rmsnorm(x, w[p + "ffn_norm.weight"], eps), w, p, act)
        x = x + post(f, w, p + "post_ffw_norm.weight", eps)
    x = rmsnorm(x, w["output_norm.weight"], c.norm_eps)
    head = w["token_embd.weight"] if c.tied_embeddings else w["output.weight"]  # [vocab, d]
    return (x @ head.T).astype(np.float32)


def generate_greedy(config, weights, ids, n):
    """The n ids greedy decoding appends to ids (the whole prefix is recomputed each step)."""
    ids = list(ids)
    for _ in range(n):
        ids.append(int(np.argmax(forward(config, weights, ids)[-1])))
    return ids[-n:] if n else []


def load(path):
    """(config, float32 weights) of a .gguf file or HF folder, read with ninestep's readers."""
    from .loader import open_model
    from .tensor import QuantizedTensor, bf16_to_f32

    config, _, tensors, close = open_model(path)
    try:
        weights = {n: t.dequantize() if isinstance(t, QuantizedTensor) else
                   bf16_to_f32(t) if t.dtype == np.uint16 else np.array(t, dtype=np.float32)
                   for n, t in tensors.items()}
    finally:
        close()
    return config, weights
