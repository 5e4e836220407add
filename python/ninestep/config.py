"""ModelConfig: one dataclass describing a model, whatever file it came from.

Its engine fields are the C++ schema (cpp/model/config.h, exported as `_core.config_schema()`); the
fields below `_PY_FIELDS` are the tokenizer-side ones only Python reads. The readers (from_gguf,
from_hf) fill both.
"""
import dataclasses
import math
from typing import Optional

from . import _core
from .tokenizer.core import find_eot

# GGUF stores llama-family Q/K rows permuted so RoPE rotates adjacent pairs (2i, 2i+1) ('norm');
# qwen2 and gemma3 GGUFs keep the HF order, which rotates (i, i + head_dim/2) ('neox'), as every HF
# folder does.
_GGUF_ROPE_STYLE = {"llama": "norm", "qwen2": "neox", "gemma3": "neox"}
_HF_ARCHS = ("llama", "mistral", "qwen2")
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_PY_FIELDS = [("bos_id", Optional[int], None), ("eos_id", Optional[int], None), ("eot_id", Optional[int], None),
              ("add_bos", bool, False)]
_POSITIVE = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab_size", "context_length")


class _ModelConfigBase:
    def __post_init__(self):
        for f in _POSITIVE:
            v = getattr(self, f)
            if type(v) is not int or v <= 0:
                raise ValueError(f"{f}: expected a positive integer, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads: {self.n_kv_heads} does not divide n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim: RoPE needs an even head_dim, got {self.head_dim}")
        for f in ("norm_eps", "rope_theta", "embd_scale"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{f}: expected a positive finite number, got {v!r}")
            setattr(self, f, float(v))
        if self.rope_style not in ("norm", "neox"):
            raise ValueError(f"rope_style: expected 'norm' or 'neox', got {self.rope_style!r}")
        for f in ("sliding_window", "sliding_window_pattern"):
            if type(getattr(self, f)) is not int or getattr(self, f) < 0:
                raise ValueError(f"{f}: expected an integer >= 0, got {getattr(self, f)!r}")
        for f in ("bos_id", "eos_id", "eot_id"):
            v = getattr(self, f)
            if v is not None and (type(v) is not int or not 0 <= v < self.vocab_size):
                raise ValueError(f"{f}: expected a token id in [0, {self.vocab_size}), got {v!r}")

    @property
    def stop_ids(self):
        """Token ids that end generation: end of text and end of turn."""
        return sorted({i for i in (self.eos_id, self.eot_id) if i is not None})

    @classmethod
    def from_gguf(cls, metadata, tensor_names):
        """From a GGUF file's metadata dict and its tensor names (GGUFFile.metadata, .tensors)."""
        arch = metadata.get("general.architecture")
        if arch not in _GGUF_ROPE_STYLE:
            raise ValueError(f"architecture: {arch!r} is not supported (supported: {', '.join(_GGUF_ROPE_STYLE)})")
        if arch not in _core.architectures():
            raise ValueError(f"architecture: {arch!r} has no engine (engine architectures: "
                             f"{', '.join(_core.architectures())})")

        def get(key, default=None):
            v = metadata.get(f"{arch}.{key}", default)
            if v is None:
                raise ValueError(f"{arch}.{key}: missing from the GGUF metadata")
            return v

        scaling = metadata.get(f"{arch}.rope.scaling.type", "none")
        if scaling != "none":
            raise ValueError(f"{arch}.rope.scaling.type: {scaling!r} RoPE scaling is not supported")
        d_model = _int(get("embedding_length"), f"{arch}.embedding_length")
        n_heads = _int(get("attention.head_count"), f"{arch}.attention.head_count")
        head_dim = get("attention.key_length", d_model // n_heads if n_heads else 0)
        rope_dims = metadata.get(f"{arch}.rope.dimension_count", head_dim)
        if rope_dims != head_dim:
            raise ValueError(f"{arch}.rope.dimension_count: partial RoPE ({rope_dims} of {head_dim} dims) is not supported")
        tokens = metadata.get("tokenizer.ggml.tokens") or []
        if not isinstance(tokens, list):
            raise ValueError(f"tokenizer.ggml.tokens: expected an array of strings, got {type(tokens).__name__}")
        vocab = metadata.get(f"{arch}.vocab_size") or len(tokens) or None
        names = set(tensor_names)
        eos = metadata.get("tokenizer.ggml.eos_token_id")
        return cls(
            architecture=arch,
            n_layers=get("block_count"),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=get("attention.head_count_kv", n_heads),
            head_dim=head_dim,
            d_ff=get("feed_forward_length"),
            vocab_size=vocab,
            norm_eps=get("attention.layer_norm_rms_epsilon"),
            rope_theta=get("rope.freq_base", 10000.0),
            rope_style=_GGUF_ROPE_STYLE[arch],
            context_length=get("context_length"),
            tied_embeddings="output.weight" not in names,
            bos_id=metadata.get("tokenizer.ggml.bos_token_id"),
            eos_id=eos,
            eot_id=metadata.get("tokenizer.ggml.eot_token_id",
                                find_eot(lambda t: tokens.index(t) if t in tokens else None, eos)),
            # llama.cpp's default: SentencePiece vocabularies add BOS, byte-level BPE ones don't
            add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", metadata.get("tokenizer.ggml.model") == "llama")),
            has_qkv_bias="blk.0.attn_q.bias" in names,
            **_gguf_arch_fields(arch, metadata, d_model, get),
        )

    @classmethod
    def from_hf(cls, config_json, tokenizer_config=None, tokenizer_json=None):
        """From a Hugging Face config.json dict, plus tokenizer_config.json / tokenizer.json dicts."""
        c = config_json
        if not isinstance(c, dict):
            raise ValueError(f"config.json: expected a JSON object, got {type(c).__name__}")
        arch = c.get("model_type")
        if arch not in _HF_ARCHS:
            raise ValueError(f"architecture: model_type {arch!r} is not supported (supported: {', '.join(_HF_ARCHS)})")
        # transformers 5 moved rope_theta (and the scaling type) into rope_parameters
        for key in ("rope_scaling", "rope_parameters"):
            if c.get(key) is not None and not isinstance(c[key], dict):
                raise ValueError(f"{key}: expected a JSON object, got {c[key]!r}")
        rope = c.get("rope_parameters") or {}
        for key in ("rope_scaling", "rope_parameters"):
            kind = c.get(key) and (c[key].get("rope_type") or c[key].get("type"))
            if kind not in (None, "default"):
                raise ValueError(f"{key}: RoPE type {kind!r} is not supported")

        def get(key, default=None):
            v = c.get(key, default)
            if v is None:
                raise ValueError(f"{key}: missing from config.json")
            return v

        d_model, n_heads = _int(get("hidden_size"), "hidden_size"), _int(get("num_attention_heads"), "num_attention_heads")
        tokens_by_text = _hf_token_ids(tokenizer_json, tokenizer_config)
        eos = c.get("eos_token_id")
        if isinstance(eos, list):  # several stop tokens: the first is end of text
            eos = eos[0] if eos else None
        return cls(
            architecture=arch,
            n_layers=get("num_hidden_layers"),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=get("num_key_value_heads", n_heads),
            head_dim=c.get("head_dim") or (d_model // n_heads if n_heads else 0),
            d_ff=get("intermediate_size"),
            vocab_size=get("vocab_size"),
            norm_eps=get("rms_norm_eps"),
            rope_theta=get("rope_theta", rope.get("rope_theta", 10000.0)),
            rope_style="neox",
            context_length=get("max_position_embeddings"),
            tied_embeddings=bool(c.get("tie_word_embeddings", False)),
            bos_id=c.get("bos_token_id"),
            eos_id=eos,
            eot_id=find_eot(tokens_by_text.get, eos),
            add_bos=_hf_add_bos(tokenizer_config, tokenizer_json),
            has_qkv_bias=arch == "qwen2" or bool(c.get("attention_bias", False)),
            # Mistral windows every layer; Qwen2 folders name a window but switch it off
            sliding_window=(c.get("sliding_window") or 0) if c.get("use_sliding_window", True) else 0,
        )



ModelConfig = dataclasses.make_dataclass(
    "ModelConfig",
    [(name, _TYPES[typ], dataclasses.field(default=default)) for name, typ, default, _ in _core.config_schema()]
    + [(name, typ, dataclasses.field(default=default)) for name, typ, default in _PY_FIELDS],
    bases=(_ModelConfigBase,))
ModelConfig.__module__ = __name__
ModelConfig.__doc__ = "A model's hyperparameters: " + "; ".join(
    f"{name} ({doc})" for name, _, _, doc in _core.config_schema())

def _gguf_arch_fields(arch, metadata, d_model, get):
    """The config fields an architecture sets beyond the Llama ones, from its GGUF metadata and the
    facts its GGUF converter leaves out (as llama.cpp hard-codes them too)."""
    if arch != "gemma3":
        return {}
    n_layers = get("block_count")
    n_heads = get("attention.head_count")
    return dict(
        sliding_window=_int(get("attention.sliding_window"), "gemma3.attention.sliding_window"),
        sliding_window_pattern=6,  # five local layers, then one global
        rope_theta_local=metadata.get("gemma3.rope.freq_base_swa", 10000.0),
        embd_scale=math.sqrt(d_model),
        ffn_act="gelu_tanh",
        # scores scale by query_pre_attn_scalar^-0.5: head_dim, except the 27B's d_model / n_heads
        attn_scale=1.0 / math.sqrt(d_model // n_heads) if n_layers == 62 else 0.0,
    )


def _int(v, key):
    """An integer field read from a file, before arithmetic on it (the dataclass checks the rest)."""
    if type(v) is not int:
        raise ValueError(f"{key}: expected an integer, got {v!r}")
    return v


def _hf_token_ids(tokenizer_json, tokenizer_config):
    """Special token text -> id, from tokenizer.json's added_tokens and tokenizer_config.json's
    added_tokens_decoder."""
    ids = {}
    tokenizer_json = tokenizer_json if isinstance(tokenizer_json, dict) else {}
    tokenizer_config = tokenizer_config if isinstance(tokenizer_config, dict) else {}
    added = tokenizer_config.get("added_tokens_decoder")
    for t in tokenizer_json.get("added_tokens") if isinstance(tokenizer_json.get("added_tokens"), list) else []:
        if isinstance(t, dict) and isinstance(t.get("content"), str) and type(t.get("id")) is int:
            ids[t["content"]] = t["id"]
    for i, t in (added if isinstance(added, dict) else {}).items():
        if isinstance(t, dict) and isinstance(t.get("content"), str) and str(i).isdigit():
            ids.setdefault(t["content"], int(i))
    return ids


def _hf_add_bos(tokenizer_config, tokenizer_json):
    """tokenizer_config.json's add_bos_token if set; otherwise whether tokenizer.json's
    post-processor puts a special token in front of a single sequence."""
    if isinstance(tokenizer_config, dict) and isinstance(tokenizer_config.get("add_bos_token"), bool):
        return tokenizer_config["add_bos_token"]
    post = tokenizer_json.get("post_processor") if isinstance(tokenizer_json, dict) else None
    post = post if isinstance(post, dict) else {}
    processors = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for p in processors if isinstance(processors, list) else []:
        single = p.get("single") if isinstance(p, dict) and p.get("type") == "TemplateProcessing" else None
        if single and isinstance(single, list):
            return isinstance(single[0], dict) and "SpecialToken" in single[0]
    return False
