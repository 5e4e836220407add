import numpy as np

from .. import _core
from .._checks import out_array, shape_str
from ..tensor import DEQUANTIZE_KINDS
from .matmul import _weight


def get_rows(w, ids, *, out=None):
    """Embedding lookup: rows `ids` of w as float32, shape ids.shape + (K,).

    w: float32 / float16 [N, K] or a QuantizedTensor of any kind in tensor.DEQUANTIZE_KINDS (the
    C++ type table's, e.g. a Q5_0 token_embd.weight); each row is dequantized exactly as
    w.dequantize() would. ids: integers in [0, N) (array-like, any shape); one out of range
    raises ValueError naming it."""
    data, kind, n, k = _weight(w, DEQUANTIZE_KINDS, "dequantize")
    idx = np.asarray(ids)
    if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"ids: expected integers, got dtype {idx.dtype} with shape {shape_str(idx)}")
    flat = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
    if out is not None:
        out_array(out, "out", idx.shape + (k,))
    rows = np.empty((flat.size, k), np.float32) if out is None else out.reshape(flat.size, k)
    if flat.size:
        _core.get_rows(rows, data, kind, n, k, flat)
    return rows.reshape(idx.shape + (k,)) if out is None else out
