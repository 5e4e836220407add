"""Config + float32 weights (GGUF names) for ninestep.reference from an HF folder
(config.json + *.safetensors), with a minimal safetensors reader so tests need no extra dependency.
Kept apart so tests can swap it for ninestep.formats later.
"""
import json
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
HF_LAYER_TO_GGUF = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    """{name: float32 array}; file = u64 header size, JSON header {name: {dtype, shape, data_offsets}}, data."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    out = {}
    for name, info in json.loads(raw[8 : 8 + n]).items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = raw[8 + n + begin : 8 + n + end]
        if info["dtype"] == "BF16":  # bf16 is the top half of an f32
            arr = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, DTYPES[info["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out


def gguf_name(hf_name):
    if hf_name in HF_TO_GGUF:
        return HF_TO_GGUF[hf_name]
    _, _, i, rest = hf_name.split(".", 3)  # model.layers.{i}.{module}.{weight|bias}
    module, kind = rest.rsplit(".", 1)
    return f"blk.{i}.{HF_LAYER_TO_GGUF[module]}.{kind}"


def load_hf(folder):
    """-> (config, weights) in the form reference.forward takes; RoPE is neox (HF keeps Q/K unpermuted)."""
    folder = Path(folder)
    hf = json.loads((folder / "config.json").read_text())
    weights = {}
    for f in sorted(folder.glob("*.safetensors")):
        weights.update({gguf_name(k): v for k, v in read_safetensors(f).items()})
    n_heads = hf["num_attention_heads"]
    config = SimpleNamespace(
        n_layers=hf["num_hidden_layers"],
        d_model=hf["hidden_size"],
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads", n_heads),
        head_dim=hf.get("head_dim") or hf["hidden_size"] // n_heads,
        d_ff=hf["intermediate_size"],
        vocab_size=hf["vocab_size"],
        norm_eps=hf["rms_norm_eps"],
        # transformers >= 5 writes rope_parameters; older folders have rope_theta at the top
        rope_theta=(hf.get("rope_parameters") or {}).get("rope_theta", hf.get("rope_theta", 10000.0)),
        rope_style="neox",
        tied_embeddings="output.weight" not in weights,
        # Mistral windows every layer (Qwen2 names a window but has use_sliding_window false)
        sliding_window=(hf.get("sliding_window") or 0) if hf.get("use_sliding_window", True) else 0,
    )
    return config, weights
