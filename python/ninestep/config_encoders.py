"""ModelConfig for the LayerNorm / learned-position family: BERT (encoder) and GPT-2 (decoder).

Both use LayerNorm with biases, learned absolute positions (`position_embd.weight`) and a GELU
MLP with biases. BERT: bidirectional attention, post-norm (LayerNorm after each residual add),
token-type embeddings, GELU erf, no head. GPT-2: causal, pre-norm, fused QKV, GELU tanh, tied head.
"""
# HF `hidden_act` / `activation_function` -> the schema's ffn_act. The rest of what sets the family
# apart (learned positions, LayerNorm, token types, post-norm, causal or not) is the architecture's
# own file (cpp/model/bert.cpp, gpt2.cpp), not a flag.
_GELU = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def _gelu(name, key):
    if name not in _GELU:
        raise ValueError(f"{key}: activation {name!r} is not supported (supported: {', '.join(_GELU)})")
    return _GELU[name]


def _getter(c, where):
    def get(key, default=None):
        v = c.get(key, default)
        if v is None:
            raise ValueError(f"{key}: missing from {where}")
        return v
    return get


def bert_from_hf(cls, c):
    """From a BertModel config.json (model_type 'bert')."""
    get = _getter(c, "config.json")
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type: {c['position_embedding_type']!r} is not supported (only 'absolute')")
    if c.get("is_decoder") or c.get("add_cross_attention"):
        raise ValueError("is_decoder: a BERT decoder (causal or cross-attention) is not supported")
    d_model, n_heads = get("hidden_size"), get("num_attention_heads")
    return cls(
        architecture="bert", n_layers=get("num_hidden_layers"), d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads,
        head_dim=d_model // n_heads if type(d_model) is int and type(n_heads) is int and n_heads else 0,
        d_ff=get("intermediate_size"), vocab_size=get("vocab_size"), norm_eps=get("layer_norm_eps", 1e-12),
        rope_theta=10000.0, rope_style="neox", context_length=get("max_position_embeddings"),
        tied_embeddings=False, has_qkv_bias=True, ffn_act=_gelu(get("hidden_act", "gelu"), "hidden_act"))


def gpt2_from_hf(cls, c, eos_id=None):
    """From a GPT2LMHeadModel / GPT2Model config.json (model_type 'gpt2')."""
    get = _getter(c, "config.json")
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("reorder_and_upcast_attn", False)):
        if c.get(key, want) != want:
            raise ValueError(f"{key}: {c[key]!r} is not supported (only {want})")
    d_model, n_heads = get("n_embd"), get("n_head")
    return cls(
        architecture="gpt2", n_layers=get("n_layer"), d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads,
        head_dim=d_model // n_heads if type(d_model) is int and type(n_heads) is int and n_heads else 0,
        d_ff=c.get("n_inner") or (4 * d_model if type(d_model) is int else 0), vocab_size=get("vocab_size"),
        norm_eps=get("layer_norm_epsilon", 1e-5), rope_theta=10000.0, rope_style="neox",
        context_length=get("n_positions"), tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        bos_id=c.get("bos_token_id"), eos_id=eos_id if eos_id is not None else c.get("eos_token_id"),
        has_qkv_bias=True, ffn_act=_gelu(get("activation_function", "gelu_new"), "activation_function"))


def gpt2_from_gguf(cls, meta, names):
    """From a GGUF file of architecture 'gpt2' (llama.cpp's names)."""
    get = _getter(meta, "the GGUF metadata")
    tokens = meta.get("tokenizer.ggml.tokens") or []
    d_model, n_heads = get("gpt2.embedding_length"), get("gpt2.attention.head_count")
    return cls(
        architecture="gpt2", n_layers=get("gpt2.block_count"), d_model=d_model, n_heads=n_heads, n_kv_heads=n_heads,
        head_dim=d_model // n_heads if type(d_model) is int and type(n_heads) is int and n_heads else 0,
        d_ff=get("gpt2.feed_forward_length"), vocab_size=meta.get("gpt2.vocab_size") or len(tokens) or None,
        norm_eps=get("gpt2.attention.layer_norm_epsilon"), rope_theta=10000.0, rope_style="neox",
        context_length=get("gpt2.context_length"), tied_embeddings="output.weight" not in set(names),
        bos_id=meta.get("tokenizer.ggml.bos_token_id"), eos_id=meta.get("tokenizer.ggml.eos_token_id"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        has_qkv_bias=True, ffn_act="gelu_tanh")
