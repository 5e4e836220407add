"""EncoderModel: sentence embeddings from a BERT folder (all-MiniLM-L6-v2 and the like).

    model = ninestep.load(folder)                 # a BERT folder gives an EncoderModel
    vectors = model.embed(["first text", "second text"], batch_size=32)   # float32 [2, 384]

Texts are tokenized with the folder's WordPiece tokenizer and cut to max_seq_length (the folder's
sentence-transformers setting, 256 for MiniLM) unless truncate=False; every batch runs as packed
rows (the sentences one after another, no padding), each sentence attending only to its own
tokens; the folder's pooling (modules.json, 1_Pooling) and Normalize make the vectors.
"""
import sys
import threading
import time

import numpy as np

from ._checks import flag, positive_int
from .pooling import do_lower_case, from_folder
from .tensor import QuantizedTensor, bf16_to_f32, quantize

WEIGHT_KINDS = ("f32", "f16", "q8_0")


class EncoderModel:
    """A loaded encoder. Use ninestep.load(folder); close() (or a with-block) releases the file."""

    def __init__(self, path, config, tokenizer, tensors, closer=None, *, weights=None, max_seq_length=None):
        from .tokenizer.wordpiece import WordPieceTokenizer

        if config.architecture != "bert":
            raise ValueError(f"architecture: {config.architecture!r} is not an encoder ninestep runs (supported: bert)")
        if tokenizer is None:
            raise ValueError(f"{path}: an encoder folder needs its tokenizer.json")
        if not isinstance(tokenizer, WordPieceTokenizer):
            raise ValueError(f"{path}: tokenizer.json is {tokenizer.kind}, a BERT encoder needs WordPiece")
        if weights is not None and weights not in WEIGHT_KINDS:
            raise ValueError(f"weights: expected one of {WEIGHT_KINDS} or None (as stored), got {weights!r}")
        self.path, self.config, self.tokenizer = path, config, tokenizer
        self.pooling, folder_max = from_folder(path, config.d_model)
        limit = folder_max or config.context_length
        if max_seq_length is not None:
            limit = positive_int(max_seq_length, "max_seq_length")
        if limit > config.context_length:
            limit = config.context_length
        self.max_seq_length = limit
        self.lower_case = do_lower_case(path)
        self.dim = config.d_model * len(self.pooling.modes)
        self._forward = _OpsForward(config, tensors, weights)
        self._lock = threading.Lock()
        self._closer, self._closed = closer, False

    def __repr__(self):
        c = self.config
        return (f"EncoderModel({str(self.path)!r}, {c.architecture}, {c.n_layers} layers, dim {self.dim}, "
                f"pooling {'+'.join(self.pooling.modes)}{' + normalize' if self.pooling.normalize else ''}, "
                f"max_seq_length {self.max_seq_length})")

    def close(self):
        if not self._closed:
            self._closed = True
            self._forward = None
            if self._closer:
                self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def tokenize(self, texts, *, truncate=True):
        """The token ids embed() runs for each text ([CLS] ... [SEP], cut to max_seq_length)."""
        texts = _texts(texts)
        truncate = flag(truncate, "truncate")
        out = []
        for i, t in enumerate(texts):
            if self.lower_case:
                t = t.lower()
            ids = self.tokenizer.encode(t, max_length=self.max_seq_length if truncate else None)
            if len(ids) > self.config.context_length:
                raise ValueError(f"texts[{i}]: {len(ids)} tokens exceed the model's {self.config.context_length} "
                                 "positions (truncate=False)")
            out.append(ids)
        return out

    def embed(self, texts, *, batch_size=32, normalize=None, truncate=True, progress=False):
        """float32 [len(texts), dim]: one embedding per text (a single str counts as a list of one).
        normalize: None = as the folder says (a Normalize module), True/False to force it.
        truncate: cut texts to max_seq_length tokens (default) or raise for one over the model's
        positions. progress: a progress line on stderr."""
        batch_size = positive_int(batch_size, "batch_size")
        if normalize is not None:
            normalize = flag(normalize, "normalize")
        progress = flag(progress, "progress")
        ids = self.tokenize(texts, truncate=truncate)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        bar = _Progress(len(ids)) if progress else None
        with self._lock:
            if self._closed:
                raise RuntimeError("this EncoderModel is closed")
            for s in range(0, len(ids), batch_size):
                batch = ids[s:s + batch_size]
                lengths = [len(b) for b in batch]
                hidden = self._forward(np.fromiter((t for b in batch for t in b), np.int32, sum(lengths)), lengths)
                out[s:s + len(batch)] = self.pooling.pool(hidden, lengths, normalize)
                if bar:
                    bar.update(s + len(batch))
        if bar:
            bar.close()
        return out


def _texts(texts):
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"texts: expected a list of str, got {type(texts).__name__}")
    if not texts:
        raise ValueError("texts: is empty (nothing to embed)")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}]: expected a str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"texts[{i}]: is empty or only whitespace (nothing to embed)")
    return texts


class _Progress:
    def __init__(self, n):
        self.n, self.t0 = n, time.perf_counter()

    def update(self, done):
        dt = time.perf_counter() - self.t0
        sys.stderr.write(f"\rembed: {done}/{self.n} texts, {done / dt if dt > 0 else 0:.1f}/s")
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


def _f32(t):
    if isinstance(t, QuantizedTensor):
        return t.dequantize()
    return bf16_to_f32(t) if t.dtype == np.uint16 else np.asarray(t, dtype=np.float32)


def _matrix(t, kind):
    """A weight matrix [out, in] as the kernels take it: as stored (kind None) or converted."""
    if kind is None:
        if isinstance(t, np.ndarray) and t.dtype == np.float16:
            return np.ascontiguousarray(t)
        return t if isinstance(t, QuantizedTensor) and t.kind != "bf16" else np.ascontiguousarray(_f32(t))
    w = _f32(t)
    if kind == "f32":
        return np.ascontiguousarray(w)
    if kind == "f16":
        return w.astype(np.float16)
    return quantize(np.ascontiguousarray(w), kind)


class _OpsForward:
    """The BERT forward pass over packed rows, one C++ kernel call per step (ninestep.ops)."""

    def __init__(self, config, tensors, kind):
        c = self.c = config

        def get(name):
            if name not in tensors:
                raise ValueError(f"tensors: {name!r} is missing from the model")
            return tensors[name]

        self.tok = _f32(get("token_embd.weight"))          # [vocab, d]
        self.pos = _f32(get("position_embd.weight"))       # [context, d]
        self.types = _f32(get("token_types.weight"))       # [n_types, d]
        for name, t, rows in (("token_embd.weight", self.tok, c.vocab_size), ("position_embd.weight", self.pos,
                                                                            c.context_length)):
            if t.shape != (rows, c.d_model):
                raise ValueError(f"tensors[{name!r}]: expected shape ({rows}, {c.d_model}), got {t.shape}")
        self.emb_norm = (_f32(get("token_embd_norm.weight")), _f32(get("token_embd_norm.bias")))
        self.layers = []
        for i in range(c.n_layers):
            p = f"blk.{i}."
            qkv = np.concatenate([_f32(get(p + n + ".weight")) for n in ("attn_q", "attn_k", "attn_v")])
            L = {"qkv": _matrix(qkv, kind or _stored_kind(get(p + "attn_q.weight"))),
                 "qkv_b": np.concatenate([_f32(get(p + n + ".bias")) for n in ("attn_q", "attn_k", "attn_v")])}
            for n in ("attn_output", "ffn_up", "ffn_down"):
                L[n] = _matrix(get(p + n + ".weight"), kind)
                L[n + "_b"] = _f32(get(p + n + ".bias"))
            for n in ("attn_output_norm", "layer_output_norm"):
                L[n] = (_f32(get(p + n + ".weight")), _f32(get(p + n + ".bias")))
            self.layers.append(L)

    def __call__(self, ids, lengths):
        """ids int32 [N] (sentences packed), lengths [n] -> last hidden states float32 [N, d]."""
        from . import ops

        def mm(x, w):
            # quantized weights are widened to f32 for the call (cheap beside a batch's GEMM): 8-bit
            # activation blocks, llama.cpp's way, cost MiniLM 0.002 of cosine on short texts
            return ops.matmul(x, w.dequantize() if isinstance(w, QuantizedTensor) else w)

        c = self.c
        d, H, hd = c.d_model, c.n_heads, c.head_dim
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = self.tok[ids] + self.pos[positions] + self.types[0]
        x = ops.layernorm(np.ascontiguousarray(x, dtype=np.float32), *self.emb_norm, c.norm_eps)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        act = "none" if c.ffn_act == "gelu_erf" else "tanh"
        att = np.empty((len(ids), d), dtype=np.float32)
        for L in self.layers:
            qkv = mm(x, L["qkv"])
            qkv += L["qkv_b"]
            q, k, v = (np.ascontiguousarray(qkv[:, j * d:(j + 1) * d]).reshape(-1, H, hd) for j in range(3))
            for s, e in zip(starts[:-1], starts[1:]):
                ops.attention(q[s:e], k[s:e], v[s:e], causal=False, out=att[s:e].reshape(-1, H, hd))
            h = mm(att, L["attn_output"])
            h += L["attn_output_b"]
            h += x
            x = ops.layernorm(h, *L["attn_output_norm"], c.norm_eps)
            u = mm(x, L["ffn_up"])
            u += L["ffn_up_b"]
            u = ops.gelu(u, approximate=act)
            h = mm(u, L["ffn_down"])
            h += L["ffn_down_b"]
            h += x
            x = ops.layernorm(h, *L["layer_output_norm"], c.norm_eps)
        return x


def _stored_kind(t):
    """The kind to give a fused matrix built from float copies of stored ones."""
    if isinstance(t, QuantizedTensor):
        return t.kind if t.kind != "bf16" else "f32"
    return "f16" if t.dtype == np.float16 else "f32"
