"""Argument validation shared by the public functions: every error names the argument."""
import os

import numpy as np


def shape_str(a):
    return "(" + ", ".join(str(s) for s in a.shape) + ("," if a.ndim == 1 else "") + ")"


def f32_array(x, name, ndim=None, min_ndim=None):
    """x must be a C-contiguous float32 ndarray (of rank `ndim`, or at least `min_ndim`)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name}: expected a float32 NumPy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise ValueError(f"{name}: expected dtype float32, got {x.dtype} with shape {shape_str(x)}")
    return _rank_and_layout(x, name, ndim, min_ndim)


def typed_array(x, name, dtype, ndim=None, min_ndim=None):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array of {np.dtype(dtype)}, got {type(x).__name__}")
    if x.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype} with shape {shape_str(x)}")
    return _rank_and_layout(x, name, ndim, min_ndim)


def _rank_and_layout(x, name, ndim, min_ndim):
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {shape_str(x)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got shape {shape_str(x)}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name}: array must be C-contiguous (shape {shape_str(x)}); use np.ascontiguousarray")
    if not x.flags.aligned:
        raise ValueError(f"{name}: array data is not aligned for {x.dtype} (shape {shape_str(x)}); pass a copy")
    return x


def out_array(out, name, shape, dtype=np.float32):
    """`out=` must be a writable C-contiguous array of exactly `shape`; None means allocate."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    typed_array(out, name, dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: array is read-only")
    return out


def path_arg(path, name="path"):
    """A filesystem path (str or os.PathLike) as a str; TypeError naming the argument otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a str or os.PathLike file path, got {type(path).__name__}")
    return os.fspath(path)


def flag(v, name):
    """A bool argument (NumPy bools too): a string such as "no" must not read as True."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {v!r}")
    return bool(v)


def positive_int(v, name, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '>= 1'}, got {v}")
    return int(v)
