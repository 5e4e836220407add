"""Writes safetensors files by hand (the format is an 8-byte header length, a JSON header, the
data), so tests need no safetensors package and can damage any part on purpose."""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}


def header_for(tensors):
    """name -> ndarray (uint16 arrays are written as BF16) -> (header dict, data bytes)."""
    header, chunks, at = {}, [], 0
    for name, a in tensors.items():
        dtype = "BF16" if a.dtype == np.uint16 else _DTYPES[a.dtype]
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        chunks.append(b)
        at += len(b)
    return header, b"".join(chunks)


def raw(header, data, length=None):
    """File bytes for a header (dict, or str/bytes taken as they are) and data."""
    h = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    h += b" " * (-len(h) % 8)  # the official writer pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def write(path, tensors, metadata=None):
    header, data = header_for(tensors)
    if metadata is not None:
        header["__metadata__"] = metadata
    path.write_bytes(raw(header, data))
