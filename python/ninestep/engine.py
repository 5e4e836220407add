"""The forward pass in C++: build Weights from a config and a tensor dict, then run an Engine (a KV
cache of many sequences) one call per step, or a Session (one sequence) one call per chunk.

    w = load_weights(config, tensors)       # views, never copies, the arrays in `tensors`
    e = Engine(w, n_ctx=2048, n_seq=8)
    a, b = e.step([(0, prompt_ids, 1), (1, [tok], 1)])   # [1, vocab] each: a prefill and a decode
    s = Session(w, n_ctx=2048)
    logits = s.forward(prompt_ids)          # [1, vocab]: the last token's
    logits = s.forward([next_id])           # continues at s.n_past
"""
import numpy as np

from . import _core
from ._checks import out_array, positive_int, shape_str
from .tensor import KINDS, QuantizedTensor, bf16_to_f32

# The engine's config fields, declared once in C++ (cpp/model/config.h): (name, type, default, doc).
SCHEMA = tuple(_core.config_schema())
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_FLOAT_KINDS = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def config_dict(config):
    """The engine's config dict (every SCHEMA field) from a mapping or an object with those attributes
    (a ModelConfig); missing or None fields take the schema's default. Types are checked here, ranges
    by the C++ side (ValueError naming the field)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    out = {}
    for key, typ, default, _ in SCHEMA:
        v = get(key, None)
        if v is None:
            v = default
        want = _TYPES[typ]
        if want is bool:
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"config[{key!r}]: expected a bool, got {v!r}")
        elif want is int:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"config[{key!r}]: expected an int, got {v!r}")
        elif want is float:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ValueError(f"config[{key!r}]: expected a number, got {v!r}")
        elif not isinstance(v, str):
            raise ValueError(f"config[{key!r}]: expected a str, got {v!r}")
        out[key] = want(v)
    return out


def _tensor(name, t):
    """(array, kind, shape) for a QuantizedTensor, a float32/float16 array, bfloat16 bits (uint16, as
    the readers hand them out) or such a tuple."""
    if isinstance(t, np.ndarray) and t.dtype == np.uint16:
        t = QuantizedTensor.from_bf16(t) if t.ndim == 2 else (t, "bf16", t.shape)
    if isinstance(t, QuantizedTensor):
        return t.kernel_data(), t.kind, t.shape
    if isinstance(t, np.ndarray):
        if t.dtype not in _FLOAT_KINDS:
            raise ValueError(f"tensors[{name!r}]: expected float32/float16/bfloat16 bits or a QuantizedTensor, "
                             f"got {t.dtype} with shape {shape_str(t)}")
        t = (t, _FLOAT_KINDS[t.dtype], t.shape)
    if not isinstance(t, tuple) or len(t) != 3:
        raise ValueError(f"tensors[{name!r}]: expected (array, kind, shape), got {type(t).__name__}")
    data, kind, shape = t
    if not isinstance(data, np.ndarray):
        raise ValueError(f"tensors[{name!r}]: expected a NumPy array, got {type(data).__name__}")
    if kind not in KINDS:
        raise ValueError(f"tensors[{name!r}]: kind {kind!r} is not one of {', '.join(KINDS)}")
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1 and kind in ("f16", "bf16"):
        # norms and biases are read as float32 by the row kernels; they are tiny, so convert
        raw = np.ascontiguousarray(data)
        data = raw.view(np.float16).astype(np.float32) if kind == "f16" else bf16_to_f32(raw.view(np.uint16))
        kind = "f32"
    if not data.flags.c_contiguous:
        raise ValueError(f"tensors[{name!r}]: array must be C-contiguous (shape {shape_str(data)})")
    if data.ctypes.data % 4:
        # a file may put a tensor at any offset; the kernels load floats and fp16 scales aligned
        data = data.copy()
    return data, kind, shape


def load_weights(config, tensors):
    """_core.Weights from `config` (dict or object with the SCHEMA fields) and `tensors`: GGUF name ->
    QuantizedTensor | float32/float16 array | (raw array, kind, shape). Shapes are NumPy order
    ([out, in] for matrices). The C++ side checks every shape and byte count; arrays are viewed."""
    cfg = config_dict(config)
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors: expected a dict name -> tensor, got {type(tensors).__name__}")
    return _core.Weights(cfg, {str(k): _tensor(k, v) for k, v in tensors.items()})


KV_CACHE_TYPES = ("auto", "f16", "q8_0", "f32")


def kv_cache_type(v, name="kv_cache"):
    """The KV cache element type: "f16" (half the memory of f32), "q8_0" (8-bit blocks of 32 with
    an f16 scale: 34 bytes per 32 values; head sizes that are multiples of 32) or "f32"; "auto" (the
    default) is f16 for quantized weights and f32 for float (f32 / f16 / bf16) weights."""
    if not isinstance(v, str) or v not in KV_CACHE_TYPES:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, KV_CACHE_TYPES))}, got {v!r}")
    return v


def _seq(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}: expected a sequence id (int), got {v!r}")
    return int(v)


class Engine:
    """A KV cache of `n_seq` sequences of up to `n_ctx` positions each over `weights`, and the step
    that extends any of them at once: prompt chunks and single decode tokens mixed in one batch, so
    the matmuls read each weight once for all of them. At most `chunk` tokens run per parallel
    region; a longer step runs in pieces (Ctrl-C stops between pieces)."""

    def __init__(self, weights, n_ctx, n_seq=1, chunk=512, kv_cache="auto"):
        if not isinstance(weights, _core.Weights):
            raise ValueError(f"weights: expected the result of load_weights, got {type(weights).__name__}")
        self._e = _core.Engine(weights, positive_int(n_ctx, "n_ctx"), positive_int(n_seq, "n_seq"),
                               positive_int(chunk, "chunk"), kv_cache_type(kv_cache))
        self.vocab_size = weights.vocab_size
        self._out = np.empty((0, self.vocab_size), np.float32)

    n_ctx = property(lambda self: self._e.n_ctx)
    n_seq = property(lambda self: self._e.n_seq)
    chunk = property(lambda self: self._e.chunk)
    kv_cache = property(lambda self: self._e.kv_cache)

    def seq_len(self, seq):
        """Positions of sequence `seq` held in the cache."""
        return self._e.seq_len(_seq(seq, "seq"))

    def truncate(self, seq, n):
        """Keep the first n positions of sequence `seq` (0 frees it)."""
        self._e.truncate(_seq(seq, "seq"), positive_int(n, "n", allow_zero=True))

    def copy(self, src, dst, n):
        """Sequence `dst` becomes the first n positions of `src`."""
        self._e.copy(_seq(src, "src"), _seq(dst, "dst"), positive_int(n, "n", allow_zero=True))

    def profile(self):
        """Seconds per phase summed over all steps (timed only with NINESTEP_PROFILE=1)."""
        return self._e.profile()

    def step(self, batch):
        """batch: [(seq, ids, n_logits), ...]; each sequence is extended by its ids from its current
        length on, and gets the logits of its last n_logits tokens (0, 1 or len(ids)). Returns one
        float32 array [n_logits, vocab] per item: views of one buffer, valid until the next step."""
        if not isinstance(batch, (list, tuple)) or not batch:
            raise ValueError("batch: expected a non-empty list of (seq, ids, n_logits)")
        items, chunks, rows = np.empty((len(batch), 3), np.int64), [], 0
        counts = []  # n_logits per item (Python ints)
        for i, item in enumerate(batch):
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise ValueError(f"batch[{i}]: expected (seq, ids, n_logits), got {item!r}")
            seq, ids, n_logits = item
            # A decode token as the scheduler passes it ([int]) is checked without NumPy: the same
            # rule as _ids (an int in [0, vocab)), a few microseconds less per step.
            if type(ids) is list and len(ids) == 1 and type(ids[0]) is int and 0 <= ids[0] < self.vocab_size:
                size = 1
            else:
                ids = _ids(ids, f"batch[{i}] ids", self.vocab_size)
                size = ids.size
            n_logits = positive_int(n_logits, f"batch[{i}] n_logits", allow_zero=True)
            if n_logits > size:
                raise ValueError(f"batch[{i}]: n_logits {n_logits} exceeds its {size} tokens")
            items[i] = (_seq(seq, f"batch[{i}] seq"), size, n_logits)
            chunks.append(ids)
            counts.append(n_logits)
            rows += n_logits
        if self._out.shape[0] < rows:
            self._out = np.empty((max(rows, 2 * self._out.shape[0]), self.vocab_size), np.float32)
        out = self._out[:rows]
        if len(chunks) == 1:
            flat = np.asarray(chunks[0], np.int32)
        else:
            flat = np.concatenate([np.asarray(c, np.int32) for c in chunks])
        self._e.step(flat, items, out)
        views, end = [], 0
        for n in counts:
            views.append(out[end:end + n])
            end += n
        return views


def _ids(ids, name, vocab_size):
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name}: expected a non-empty 1-d sequence of ints, got {ids.dtype} with shape "
                         f"{shape_str(ids)}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"{name}: values must be in [0, {vocab_size}), got min {ids.min()} max {ids.max()}")
    return np.ascontiguousarray(ids, dtype=np.int32)


class Session:
    """One sequence: an Engine with n_seq=1. forward() takes prompts in chunks of `chunk` tokens
    (batched matmuls) and single decode tokens alike."""

    def __init__(self, weights, n_ctx, chunk=512, kv_cache="auto"):
        self._engine = Engine(weights, n_ctx, 1, chunk, kv_cache)
        self.vocab_size = self._engine.vocab_size

    @property
    def n_past(self):
        return self._engine.seq_len(0)

    n_ctx = property(lambda self: self._engine.n_ctx)
    chunk = property(lambda self: self._engine.chunk)
    kv_cache = property(lambda self: self._engine.kv_cache)

    def reset(self):
        self._engine.truncate(0, 0)

    def profile(self):
        """Seconds per phase summed over all calls (timed only with NINESTEP_PROFILE=1)."""
        return self._engine.profile()

    def forward(self, ids, pos=None, *, all_logits=False, out=None):
        """Runs ids (ints, 1-d) at positions pos.. (default: n_past; smaller rewinds the cache) and
        returns float32 logits [len(ids), vocab] if all_logits else [1, vocab] for the last token."""
        ids = _ids(ids, "ids", self.vocab_size)
        pos = self.n_past if pos is None else positive_int(pos, "pos", allow_zero=True)
        if pos > self.n_past:
            raise ValueError(f"pos: {pos} is past the {self.n_past} cached positions")
        if pos + ids.size > self.n_ctx:
            raise ValueError(f"ids: pos {pos} + {ids.size} tokens exceeds n_ctx {self.n_ctx}")
        out = out_array(out, "out", (ids.size if all_logits else 1, self.vocab_size))
        self._engine.truncate(0, pos)
        items = np.array([[0, ids.size, out.shape[0]]], np.int64)
        self._engine._e.step(ids, items, out)
        return out
