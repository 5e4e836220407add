import numpy as np

from .. import _core
from .._checks import f32_array, out_array, shape_str
from ..tensor import MATMUL_KINDS, QuantizedTensor


def _weight(w, kinds=MATMUL_KINDS, needs="matmul"):
    """(raw array, kind, N, K) for a float32/float16 array or a QuantizedTensor whose kind is in
    `kinds` (those with the C++ kernel `needs`)."""
    if isinstance(w, QuantizedTensor):
        if w.kind not in kinds:
            raise ValueError(f"w: no {needs} kernel for kind {w.kind!r} (kinds with one: {', '.join(kinds)})")
        return w.kernel_data(), w.kind, w.shape[0], w.shape[1]
    if isinstance(w, np.ndarray):
        kinds = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}
        if w.dtype not in kinds:
            raise ValueError(f"w: expected float32, float16 or a QuantizedTensor, got {w.dtype} with shape "
                             f"{shape_str(w)} (wrap bfloat16 bits with QuantizedTensor.from_bf16)")
        if w.ndim != 2:
            raise ValueError(f"w: expected a 2-d array [N, K], got shape {shape_str(w)}")
        if not w.flags.c_contiguous:
            raise ValueError(f"w: array must be C-contiguous (shape {shape_str(w)})")
        if w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"w: empty weight matrix, shape {shape_str(w)}")
        return w, kinds[w.dtype], w.shape[0], w.shape[1]
    raise ValueError(f"w: expected a NumPy array or QuantizedTensor, got {type(w).__name__}")


def matmul(x, w, *, out=None, packed=False):
    """x @ w.T: x float32 [M, K]; w float32 / float16 [N, K] or a QuantizedTensor of any kind in
    tensor.MATMUL_KINDS (the C++ type table's: bf16, q8_0, q4_0, q4_1, q5_0, q5_1, ...); -> float32 [M, N].

    With quantized w, each row of x is first quantized to the kind's activation format (8-bit
    blocks of 32 with one scale each for the 32-element kinds, as llama.cpp does) and the products
    are integer dot products. A kind without a kernel raises ValueError naming it.

    packed=True multiplies through a copy of w packed as a loaded model packs its matrices for
    batches (cpp/kernels/quant_packed.h; where this machine has a packed kernel for the kind,
    else as packed=False); the results are the same bits either way."""
    data, kind, n, k = _weight(w)
    f32_array(x, "x", ndim=2)
    if x.shape[1] != k:
        raise ValueError(f"x: shape {shape_str(x)} does not match w [N={n}, K={k}]: x needs K={k} columns")
    out = out_array(out, "out", (x.shape[0], n))
    _core.matmul(out, x, data, kind, n, k, packed)
    return out
