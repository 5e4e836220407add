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
        self._forward = _CoreForward(config, tensors, weights)
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
        return self._run(ids, batch_size, normalize, progress)

    def embed_ids(self, ids, *, batch_size=32, normalize=None, progress=False):
        """As embed() for token-id lists run as given (the folder's [CLS] ... [SEP] are not added;
        tokenize() gives them): float32 [len(ids), dim]. Each list needs 1 to max_seq_length ids of
        the vocabulary; nothing is truncated."""
        batch_size = positive_int(batch_size, "batch_size")
        if normalize is not None:
            normalize = flag(normalize, "normalize")
        progress = flag(progress, "progress")
        if not isinstance(ids, (list, tuple)) or not ids:
            raise ValueError("ids: expected a non-empty list of token-id lists")
        V = self.config.vocab_size
        out = []
        for i, row in enumerate(ids):
            if isinstance(row, np.ndarray):
                row = row.tolist()
            if not isinstance(row, (list, tuple)) or not row:
                raise ValueError(f"ids[{i}]: expected a non-empty list of token ids")
            if not all(type(t) is int for t in row):
                raise ValueError(f"ids[{i}]: expected ints (token ids)")
            bad = next((t for t in row if not 0 <= t < V), None)
            if bad is not None:
                raise ValueError(f"ids[{i}]: token id {bad} is outside the vocabulary [0, {V})")
            if len(row) > self.max_seq_length:
                raise ValueError(f"ids[{i}]: {len(row)} tokens exceed max_seq_length {self.max_seq_length}")
            out.append(list(row))
        return self._run(out, batch_size, normalize, progress)

    def _run(self, ids, batch_size, normalize, progress):
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        bar = _Progress(len(ids)) if progress else None
        with self._lock:
            if self._closed:
                raise RuntimeError("this EncoderModel is closed")
            for s, e in _batches(ids, batch_size):
                batch = ids[s:e]
                lengths = [len(b) for b in batch]
                hidden = self._forward(np.fromiter((t for b in batch for t in b), np.int32, sum(lengths)), lengths)
                out[s:e] = self.pooling.pool(hidden, lengths, normalize)
                if bar:
                    bar.update(e)
        if bar:
            bar.close()
        return out


MAX_BATCH_TOKENS = 8192  # rows per C++ call: bounds its scratch (~14 KB a row for MiniLM) whatever batch_size is


def _batches(ids, batch_size):
    """[(start, end)) runs of at most batch_size texts and MAX_BATCH_TOKENS tokens (a longer text alone)."""
    out, s, n = [], 0, 0
    for i, r in enumerate(ids):
        if i > s and (i - s == batch_size or n + len(r) > MAX_BATCH_TOKENS):
            out.append((s, i))
            s, n = i, 0
        n += len(r)
    out.append((s, len(ids)))
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


class _CoreForward:
    """The BERT forward pass in C++ (cpp/model/bert.cpp): one call per batch of packed sentences."""

    def __init__(self, config, tensors, kind):
        from . import _core
        from .engine import _tensor, config_dict

        c = config
        names = ["token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.weight",
                 "token_embd_norm.bias"]
        for i in range(c.n_layers):
            for n in ("attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down",
                      "layer_output_norm"):
                names += [f"blk.{i}.{n}.weight", f"blk.{i}.{n}.bias"]
        ts = {}
        for name in names:
            if name not in tensors:
                raise ValueError(f"tensors: {name!r} is missing from the model")
            t = tensors[name]
            if name.startswith("blk.") and name.endswith(".weight") and "_norm." not in name:
                t = _matrix(t, kind)       # a projection: as stored or converted to `weights`
            else:
                t = np.ascontiguousarray(_f32(t))  # embeddings, norms and biases are read as f32
            ts[name] = _tensor(name, t)
        self.weights = _core.EncoderWeights(config_dict(c), ts)
        self.encoder = _core.Encoder(self.weights)
        self.d = c.d_model

    def __call__(self, ids, lengths):
        """ids int32 [N] (sentences packed), lengths [n] -> last hidden states float32 [N, d]."""
        out = np.empty((len(ids), self.d), dtype=np.float32)
        self.encoder.run(ids, np.asarray(lengths, dtype=np.int64), out)
        return out
