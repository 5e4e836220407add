"""The decoder forward pass in C++: build Weights from a config and a tensor dict, then run a
Session (KV cache inside) one call per step.

    w = load_weights(config, tensors)       # views, never copies, the arrays in `tensors`
    s = Session(w, n_ctx=2048)
    logits = s.forward(prompt_ids)          # [1, vocab]: the last token's
    logits = s.forward([next_id])           # continues at s.n_past
"""
import numpy as np

from . import _core
from ._checks import out_array, positive_int, shape_str
from .tensor import KINDS, QuantizedTensor, bf16_to_f32

# config key -> type; the names the C++ side reads.
CONFIG_KEYS = {
    "n_layers": int, "d_model": int, "n_heads": int, "n_kv_heads": int, "head_dim": int, "d_ff": int,
    "vocab_size": int, "norm_eps": float, "rope_theta": float, "rope_style": str,
    "tied_embeddings": bool, "has_qkv_bias": bool,
}
_FLOAT_KINDS = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def _config_dict(config):
    """A dict of CONFIG_KEYS from a mapping or any object with those attributes (a dataclass)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    out = {}
    for key, typ in CONFIG_KEYS.items():
        v = get(key, None)
        if v is None:
            raise ValueError(f"config: missing {key!r}")
        if typ is bool:
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"config[{key!r}]: expected a bool, got {v!r}")
            v = bool(v)
        elif typ is int:
            v = positive_int(v, f"config[{key!r}]")
        elif typ is float:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v > 0:
                raise ValueError(f"config[{key!r}]: expected a positive number, got {v!r}")
            v = float(v)
        elif v not in ("norm", "neox"):
            raise ValueError(f"config[{key!r}]: expected 'norm' or 'neox', got {v!r}")
        out[key] = v
    if out["n_heads"] % out["n_kv_heads"]:
        raise ValueError(f"config: n_heads {out['n_heads']} is not a multiple of n_kv_heads {out['n_kv_heads']}")
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
    """_core.Weights from `config` (dict or object with CONFIG_KEYS) and `tensors`: GGUF name ->
    QuantizedTensor | float32/float16 array | (raw array, kind, shape). Shapes are NumPy order
    ([out, in] for matrices). The C++ side checks every shape and byte count; arrays are viewed."""
    cfg = _config_dict(config)
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors: expected a dict name -> tensor, got {type(tensors).__name__}")
    return _core.Weights(cfg, {str(k): _tensor(k, v) for k, v in tensors.items()})


class Session:
    """A KV cache of n_ctx positions over `weights`; forward() takes prompts in chunks of
    `chunk` tokens (batched matmuls) and single decode tokens alike."""

    def __init__(self, weights, n_ctx, chunk=512):
        if not isinstance(weights, _core.Weights):
            raise ValueError(f"weights: expected the result of load_weights, got {type(weights).__name__}")
        self._s = _core.Session(weights, positive_int(n_ctx, "n_ctx"), positive_int(chunk, "chunk"))
        self.vocab_size = weights.vocab_size

    @property
    def n_past(self):
        return self._s.n_past

    @property
    def n_ctx(self):
        return self._s.n_ctx

    @property
    def chunk(self):
        return self._s.chunk

    def reset(self):
        self._s.reset()

    def profile(self):
        """Seconds per phase summed over all calls (timed only with NINESTEP_PROFILE=1)."""
        return self._s.profile()

    def forward(self, ids, pos=None, *, all_logits=False, out=None):
        """Runs ids (ints, 1-d) at positions pos.. (default: n_past; smaller rewinds the cache) and
        returns float32 logits [len(ids), vocab] if all_logits else [1, vocab] for the last token."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids: expected a non-empty 1-d sequence of ints, got {ids.dtype} with shape "
                             f"{shape_str(ids)}")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"ids: values must be in [0, {self.vocab_size}), got min {ids.min()} max {ids.max()}")
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        pos = self.n_past if pos is None else positive_int(pos, "pos", allow_zero=True)
        if pos > self.n_past:
            raise ValueError(f"pos: {pos} is past the {self.n_past} cached positions")
        if pos + ids.size > self.n_ctx:
            raise ValueError(f"ids: pos {pos} + {ids.size} tokens exceeds n_ctx {self.n_ctx}")
        out = out_array(out, "out", (ids.size if all_logits else 1, self.vocab_size))
        self._s.forward(ids, pos, out, bool(all_logits))
        return out
