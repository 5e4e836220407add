"""QuantizedTensor: a weight matrix stored in GGUF blocks (or bf16), wrapped without copying."""
import numpy as np

from . import _core
from ._checks import f32_array, shape_str

# The C++ type table is the one source of both lists:
# name -> (elements per block, bytes per block, quantized)
KINDS = dict(_core.dtype_table())
# name -> {"matmul", "quantize", "dequantize": whether the kernel exists, "activations": format}
KERNELS = {k: dict(v) for k, v in _core.type_kernels().items()}
QUANT_KINDS = tuple(k for k, v in KINDS.items() if v[2])  # every block-quantized kind C++ knows
BLOCKED_KINDS = QUANT_KINDS + ("bf16",)  # kinds a QuantizedTensor may hold
MATMUL_KINDS = tuple(k for k in KINDS if KERNELS[k]["matmul"])  # ops.matmul takes these
QUANTIZE_KINDS = tuple(k for k in QUANT_KINDS if KERNELS[k]["quantize"])  # quantize() makes these
DEQUANTIZE_KINDS = tuple(k for k in KINDS if KERNELS[k]["dequantize"])  # dequantize() / get_rows read these


def row_bytes(kind, k):
    block, nbytes, _ = KINDS[kind]
    if k <= 0 or k % block:
        raise ValueError(f"shape: row length {k} is not a positive multiple of {block}, the {kind} block size")
    return k // block * nbytes


class QuantizedTensor:
    """A [N, K] weight matrix of `kind` (any of BLOCKED_KINDS: the block-quantized kinds of the C++
    type table, e.g. 'q8_0', 'q4_0', 'q5_0', 'q4_k', and 'bf16') over raw bytes.

    `data` is any C-contiguous NumPy array (an mmapped slice of a GGUF file, say) holding exactly
    N * K / block * block_bytes bytes; it is viewed, never copied. Which kinds ops.matmul,
    dequantize() and ops.get_rows take is in MATMUL_KINDS / DEQUANTIZE_KINDS (from C++ too)."""

    __slots__ = ("data", "kind", "shape")

    def __init__(self, data, kind, shape):
        if kind not in BLOCKED_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(BLOCKED_KINDS)}, got {kind!r}")
        try:
            n, k = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape: expected (N, K), got {shape!r}") from None
        if n <= 0:
            raise ValueError(f"shape: N must be positive, got {shape!r}")
        if not isinstance(data, np.ndarray):
            raise ValueError(f"data: expected a NumPy array of bytes, got {type(data).__name__}")
        if not data.flags.c_contiguous:
            raise ValueError(f"data: array must be C-contiguous (shape {shape_str(data)})")
        need = n * row_bytes(kind, k)
        if data.nbytes != need:
            raise ValueError(f"data: holds {data.nbytes} bytes, {kind} [{n}, {k}] needs {need}")
        self.data = data.reshape(-1).view(np.uint8)
        self.kind = kind
        self.shape = (n, k)

    @classmethod
    def from_bf16(cls, bits):
        """Wraps a uint16 array [N, K] of bfloat16 bit patterns."""
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint16 or bits.ndim != 2:
            raise ValueError("bits: expected a 2-d uint16 array of bfloat16 bit patterns")
        return cls(bits, "bf16", bits.shape)

    @property
    def nbytes(self):
        return self.data.nbytes

    def kernel_data(self):
        """`data`, or an aligned copy when it starts at an odd address (a view at any file offset):
        the kernels load fp16 scales and floats aligned and refuse anything else."""
        return self.data if self.data.ctypes.data % 4 == 0 else self.data.copy()

    def dequantize(self):
        """float32 [N, K] (kinds in DEQUANTIZE_KINDS)."""
        if self.kind not in DEQUANTIZE_KINDS:
            raise ValueError(f"kind: no dequantize kernel for {self.kind!r} (kinds with one: "
                             f"{', '.join(DEQUANTIZE_KINDS)})")
        out = np.empty(self.shape, dtype=np.float32)
        _core.dequantize(out, self.kernel_data(), self.kind, *self.shape)
        return out

    def __repr__(self):
        return f"QuantizedTensor(kind={self.kind!r}, shape={self.shape}, nbytes={self.nbytes})"


def bf16_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 (exact: bf16 is the top half of an f32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def quantize(w, kind):
    """Quantizes float32 w [N, K] (K a multiple of the block size) to GGUF blocks of `kind`, one of
    QUANTIZE_KINDS (the kinds with a C++ quantize row: 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', ...).
    Rounds exactly as ggml's reference quantizer, so the bytes match a GGUF file's."""
    if kind not in QUANTIZE_KINDS:
        raise ValueError(f"kind: ninestep cannot quantize to {kind!r}; expected one of {', '.join(QUANTIZE_KINDS)}")
    f32_array(w, "w", ndim=2)
    n, k = w.shape
    if n == 0:
        raise ValueError(f"w: needs at least one row, got shape {shape_str(w)}")
    out = np.empty((n, row_bytes(kind, k)), dtype=np.uint8)
    _core.quantize(out, w, kind)
    return QuantizedTensor(out, kind, (n, k))
