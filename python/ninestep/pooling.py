"""Sentence-transformers pooling read from a model folder: modules.json, 1_Pooling/config.json,
a Normalize module, max_seq_length.

Modes (as sentence-transformers' Pooling, over one sentence's tokens, specials included):
cls (first token), mean, max, mean_sqrt_len_tokens (sum / sqrt(n)), weightedmean (token i weighs
i + 1), lasttoken. Several modes are concatenated in the order given (legacy boolean flags:
cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken). Normalize divides by the L2 norm
(at least 1e-12). A folder without modules.json is pooled as sentence-transformers pools a plain
transformers model: mean, no Normalize.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from .errors import FormatError

MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
           "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
           "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


@dataclass(frozen=True)
class Pooling:
    modes: tuple = ("mean",)
    normalize: bool = False

    def __post_init__(self):
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"modes: expected some of {MODES}, got {self.modes!r}")

    def pool(self, hidden, lengths, normalize=None):
        """hidden float32 [sum(lengths), d] (sentences packed one after another) -> [n, d * len(modes)]."""
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        parts = []
        h64 = None
        for m in self.modes:
            if m == "cls":
                parts.append(hidden[starts])
            elif m == "lasttoken":
                parts.append(hidden[starts + lengths - 1])
            elif m == "max":
                parts.append(np.maximum.reduceat(hidden, starts, axis=0))
            else:
                if h64 is None:
                    h64 = hidden.astype(np.float64)
                if m == "weightedmean":
                    pos = np.arange(len(hidden)) - np.repeat(starts, lengths) + 1.0  # 1..n within each sentence
                    wsum = np.add.reduceat(h64 * pos[:, None], starts, axis=0)
                    parts.append(wsum / (lengths * (lengths + 1) / 2.0)[:, None])
                    continue
                s = np.add.reduceat(h64, starts, axis=0)
                parts.append(s / (lengths if m == "mean" else np.sqrt(lengths))[:, None])
        out = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        out = np.asarray(out, dtype=np.float64)
        if self.normalize if normalize is None else normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def __call__(self, hidden, normalize=None):
        """One sentence's hidden states [T, d] -> [d * len(modes)]."""
        return self.pool(hidden, [len(hidden)], normalize)[0]


def _read(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}", path=path, field=what) from None


def _pooling_config(cfg, path):
    if not isinstance(cfg, dict):
        raise FormatError("expected a JSON object", path=path, field="pooling config")
    mode = cfg.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode) if isinstance(mode, list) else None
        if not modes or any(not isinstance(m, str) or m not in MODES for m in modes):
            raise FormatError(f"pooling_mode {mode!r} is not supported (supported: {', '.join(MODES)})",
                              path=path, field="pooling_mode")
        return modes
    unknown = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and k not in _LEGACY and v]
    if unknown:
        raise FormatError(f"{unknown[0]} is not supported (supported: {', '.join(_LEGACY)})", path=path,
                          field=unknown[0])
    return tuple(m for k, m in _LEGACY.items() if cfg.get(k)) or ("mean",)


def from_folder(folder, d_model):
    """(Pooling, max_seq_length or None) for a sentence-transformers folder (or a plain HF one)."""
    folder = str(folder)
    modules_path = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_path):
        return Pooling(("mean",), False), _max_seq_length(folder)
    modules = _read(modules_path, "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise FormatError("expected a list of module objects", path=modules_path, field="modules.json")
    modes, normalize = None, False
    for i, m in enumerate(modules):
        kind = str(m.get("type", "")).rsplit(".", 1)[-1]
        field = f"modules[{i}].type"
        if kind == "Transformer":
            if i != 0 or m.get("path", "") not in ("", "."):
                raise FormatError("the Transformer module must come first and live in the folder itself",
                                  path=modules_path, field=field)
        elif kind == "Pooling":
            if modes is not None or normalize:
                raise FormatError("a second Pooling module, or one after Normalize", path=modules_path, field=field)
            sub = m.get("path")
            if not isinstance(sub, str) or os.path.isabs(sub) or ".." in sub.split("/"):
                raise FormatError(f"path {sub!r} is not a folder inside the model", path=modules_path, field=field)
            cfg_path = os.path.join(folder, sub, "config.json")
            if not os.path.isfile(cfg_path):
                raise FileNotFoundError(f"{cfg_path}: the Pooling module's config.json is missing")
            cfg = _read(cfg_path, "pooling config")
            modes = _pooling_config(cfg, cfg_path)
            dim = cfg.get("embedding_dimension", cfg.get("word_embedding_dimension", d_model))
            if dim != d_model:
                raise FormatError(f"embedding dimension {dim!r} differs from the model's hidden size {d_model}",
                                  path=cfg_path, field="word_embedding_dimension")
        elif kind == "Normalize":
            normalize = True
        else:
            raise ValueError(f"{modules_path}: module {m.get('type')!r} is not supported "
                             "(supported: Transformer, Pooling, Normalize)")
    return Pooling(modes or ("mean",), normalize), _max_seq_length(folder)


def _max_seq_length(folder):
    """sentence_bert_config.json's max_seq_length, else tokenizer_config.json's model_max_length
    (where sentence-transformers 6 keeps it), else None."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            v = _read(p, name)
            v = v.get(key) if isinstance(v, dict) else None
            if type(v) is int and 0 < v < 1_000_000:  # HF writes a huge number for "no limit"
                return v
    return None


def do_lower_case(folder):
    """sentence_bert_config.json's do_lower_case (sentence-transformers lower-cases the text first)."""
    p = os.path.join(str(folder), "sentence_bert_config.json")
    v = _read(p, "sentence_bert_config.json") if os.path.isfile(p) else {}
    return bool(v.get("do_lower_case", False)) if isinstance(v, dict) else False
