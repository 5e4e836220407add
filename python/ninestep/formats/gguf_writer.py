"""GGUF v3 writer: metadata (typed where Python types are ambiguous) and tensors.

Python values map to GGUF types as gguf-py maps them: bool -> bool, int -> int32 (int64 or
uint64 if it does not fit), float -> float32, str -> string, list -> array of the common element
type. Wrap a value in Typed(value, type) to choose: Typed(7, "uint32"),
Typed([0.5, 1.0], ("array", "float64")). A type is a value type name, ("array", element type
name), or for an array of arrays ("array", [type of each element]) -- the same descriptors
GGUFFile.metadata_types reports, so a file's metadata can be written back exactly.
"""
import os
import struct
from typing import NamedTuple

import numpy as np

from ..tensor import QuantizedTensor
from . import quant
from .gguf import _FORMATS, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, TYPE_IDS

_INT_RANGES = [("int32", -2**31, 2**31), ("int64", -2**63, 2**63), ("uint64", 0, 2**64)]
_NP_KINDS = {dt: name for name, dt in quant.PLAIN_DTYPES.items() if name != "bf16"}  # uint16 is ambiguous


class Typed(NamedTuple):
    value: object
    type: object  # descriptor: "uint32", ("array", "float32"), ("array", [("array", "int8"), ...])


class RawTensor(NamedTuple):
    """Bytes of any ggml type, written as they are (e.g. a Q6_K tensor from GGUFFile.raw)."""
    kind: str
    shape: tuple  # NumPy order
    data: np.ndarray  # uint8


def _int_type(values, key):
    lo, hi = min(values), max(values)
    for name, a, b in _INT_RANGES:
        if a <= lo and hi < b:
            return name
    raise ValueError(f"metadata[{key!r}]: integer {lo if lo < 0 else hi} does not fit in 64 bits")


def _infer(value, key):
    """Python value -> GGUF type descriptor."""
    if isinstance(value, Typed):
        return value.type
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, np.generic) and value.dtype.name in _FORMATS:
        return value.dtype.name
    if isinstance(value, int):
        return _int_type([value], key)
    if isinstance(value, float):
        return "float32"
    if isinstance(value, str):
        return "string"
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.name in _FORMATS:
        return ("array", value.dtype.name)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return ("array", "string")
        if all(isinstance(v, (list, tuple, np.ndarray)) for v in value):
            return ("array", [_infer(v, key) for v in value])
        if all(isinstance(v, bool) for v in value):
            return ("array", "bool")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ("array", _int_type(value, key))
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return ("array", "float32")
        raise ValueError(f"metadata[{key!r}]: list mixes element types; wrap it in Typed(value, type)")
    raise ValueError(f"metadata[{key!r}]: cannot store a {type(value).__name__} in GGUF")


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _encode(value, desc, key):
    """-> bytes of the value (without its type id)."""
    if isinstance(value, Typed):
        value = value.value
    if desc == "string":
        if not isinstance(value, str):
            raise ValueError(f"metadata[{key!r}]: expected a str for type string, got {type(value).__name__}")
        return _string(value)
    if isinstance(desc, tuple) and len(desc) == 2 and desc[0] == "array":
        etype, items = desc[1], list(value)
        if isinstance(etype, list):  # array of arrays, one descriptor per element
            if len(etype) != len(items):
                raise ValueError(f"metadata[{key!r}]: {len(items)} elements but {len(etype)} element types")
            body = b"".join(_encode(v, d, key) for v, d in zip(items, etype))
            return struct.pack("<IQ", TYPE_IDS["array"], len(items)) + body
        if etype == "string":
            body = b"".join(_encode(v, "string", key) for v in items)
        elif etype in _FORMATS:
            body = b"".join(_encode(v, etype, key) for v in items)
        else:
            raise ValueError(f"metadata[{key!r}]: unknown array element type {etype!r}")
        return struct.pack("<IQ", TYPE_IDS[etype], len(items)) + body
    if desc not in _FORMATS:
        raise ValueError(f"metadata[{key!r}]: unknown GGUF value type {desc!r}")
    if desc == "bool":
        value = bool(value)
    try:
        return struct.pack(_FORMATS[desc], value)
    except struct.error as e:
        raise ValueError(f"metadata[{key!r}]: {value!r} does not fit {desc}: {e}") from None


def _type_id(desc):
    return TYPE_IDS["array" if isinstance(desc, tuple) else desc]


def _tensor_parts(name, t):
    """-> (ggml type, NumPy-order shape, contiguous data array)."""
    if isinstance(t, QuantizedTensor):
        return quant.BY_NAME[t.kind], t.shape, t.data
    if isinstance(t, RawTensor):
        if t.kind not in quant.BY_NAME:
            raise ValueError(f"tensors[{name!r}]: unknown ggml type {t.kind!r}")
        kind, shape = quant.BY_NAME[t.kind], tuple(int(s) for s in t.shape)
        data = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
        if shape and all(s > 0 for s in shape) and shape[-1] % kind.block == 0:
            need = int(np.prod(shape)) // kind.block * kind.nbytes
            if data.size != need:
                raise ValueError(f"tensors[{name!r}]: {data.size} bytes, {t.kind} {shape} needs {need}")
        return kind, shape, data
    if isinstance(t, np.ndarray) and t.dtype.newbyteorder("<") in _NP_KINDS:
        return quant.BY_NAME[_NP_KINDS[t.dtype.newbyteorder("<")]], t.shape, np.ascontiguousarray(t, t.dtype.newbyteorder("<"))
    raise ValueError(f"tensors[{name!r}]: expected a float32/float16 array, a QuantizedTensor or a RawTensor, "
                     f"got {getattr(t, 'dtype', type(t).__name__)}")


def write_gguf(path, metadata, tensors, alignment=DEFAULT_ALIGNMENT):
    """Writes a GGUF v3 file. metadata: key -> value (or Typed); tensors: name -> ndarray (float32,
    float16, or float64 / int8..int64), QuantizedTensor or RawTensor, written in the given order,
    each padded to `alignment`."""
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment: must be a positive power of two, got {alignment!r}")
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict key -> value, got {type(metadata).__name__}")
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors: expected a dict name -> tensor, got {type(tensors).__name__}")
    metadata = dict(metadata)
    if "general.alignment" in metadata:
        a = metadata["general.alignment"]
        if (a.value if isinstance(a, Typed) else a) != alignment:
            raise ValueError(f"metadata['general.alignment'] is {a!r} but alignment is {alignment}")
    elif alignment != DEFAULT_ALIGNMENT:
        metadata["general.alignment"] = Typed(alignment, "uint32")

    header = [MAGIC, struct.pack("<IQQ", 3, len(tensors), len(metadata))]
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata: keys must be str, got {key!r}")
        desc = _infer(value, key)
        header += [_string(key), struct.pack("<I", _type_id(desc)), _encode(value, desc, key)]

    parts, offset = [], 0
    for name, t in tensors.items():
        kind, shape, data = _tensor_parts(name, t)
        if not 1 <= len(shape) <= MAX_DIMS or min(shape) <= 0:
            raise ValueError(f"tensors[{name!r}]: shape {shape} must have 1..{MAX_DIMS} positive dims")
        if shape[-1] % kind.block:
            raise ValueError(f"tensors[{name!r}]: row length {shape[-1]} is not a multiple of {kind.block}")
        dims = tuple(reversed(shape))
        header += [_string(name), struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, kind.id, offset)]
        parts.append(data)
        offset += -(-data.nbytes // alignment) * alignment

    head = b"".join(header)
    with open(os.fspath(path), "wb") as f:
        f.write(head)
        f.write(bytes(-len(head) % alignment))
        for data in parts:
            f.write(data.data if data.flags.c_contiguous else data.tobytes())
            f.write(bytes(-data.nbytes % alignment))
