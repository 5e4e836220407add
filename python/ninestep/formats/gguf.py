"""GGUF reader: metadata and zero-copy tensor views over an mmap.

Layout (GGUF v2/v3, little-endian): magic "GGUF", uint32 version, uint64 tensor count, uint64
metadata count, the metadata (key string, uint32 value type, value), the tensor infos (name,
uint32 n_dims, uint64 dims[n_dims] innermost first, uint32 ggml type, uint64 offset), padding to
`general.alignment` (default 32), then the data section that the tensor offsets point into.

Nothing in the header is trusted: every count and length is checked against the bytes left
before anything is allocated or looped over, so a damaged file raises FormatError (naming the
file, the field and the byte offset) instead of hanging, allocating or crashing.
"""
import struct
from typing import NamedTuple

import numpy as np

from .. import _core
from ..errors import FormatError
from ..tensor import MATMUL_KINDS, QUANT_KINDS, QuantizedTensor
from . import quant
from .mapped import MappedFile

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # ggml's limit
MAX_NESTING = 8  # arrays of arrays deeper than this are refused (no real file comes close)

# value type id -> (name, struct format or None for string/array)
VALUE_TYPES = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"),
    4: ("uint32", "<I"), 5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<B"),
    8: ("string", None), 9: ("array", None), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}
TYPE_IDS = {name: i for i, (name, _) in VALUE_TYPES.items()}
_FORMATS = {name: fmt for name, fmt in VALUE_TYPES.values() if fmt is not None}
_NP_SCALARS = {name: np.dtype(fmt) for name, fmt in _FORMATS.items()}
# block-quantized kinds viewed as they are stored: those with a C++ matmul kernel (the type table's)
_KERNEL_KINDS = tuple(k for k in QUANT_KINDS if k in MATMUL_KINDS)


class TensorInfo(NamedTuple):
    name: str
    kind: str  # ggml type name: 'f32', 'q4_1', ...
    shape: tuple  # NumPy order: GGUF dims reversed, so a matrix is (rows, cols)
    offset: int  # absolute byte offset in the file
    nbytes: int


class _Cursor:
    """Reads little-endian fields from the mapped header, checking every length first."""

    def __init__(self, buf, path):
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    def fail(self, message, field, offset=None):
        raise FormatError(message, path=self.path, field=field, offset=self.pos if offset is None else offset)

    def need(self, n, field):
        if n > self.size - self.pos:
            self.fail(f"truncated: needs {n} bytes, {self.size - self.pos} left in the file", field)

    def scalar(self, fmt, size, field):
        self.need(size, field)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def u32(self, field):
        return self.scalar("<I", 4, field)

    def u64(self, field):
        return self.scalar("<Q", 8, field)

    def string(self, field):
        return self.strings(1, field)[0]

    def strings(self, n, field):
        """n length-prefixed UTF-8 strings, decoded in C++ (vocabularies hold 100k+ of them)."""
        out, pos, status, at = _core.gguf_strings(self.buf, self.pos, n)
        if status == 3:
            self.fail("string is not valid UTF-8", field, at)
        if status:
            left = self.size - at
            self.fail(f"truncated: string length needs 8 bytes, {left} left" if status == 1 else
                      f"truncated: string of {struct.unpack_from('<Q', self.buf, at)[0]} bytes, {left - 8} left "
                      "in the file", field, at)
        self.pos = pos
        return out

    def count(self, min_item_bytes, field):
        """An element count, refused if that many items of at least min_item_bytes can't fit."""
        start = self.pos
        n = self.u64(field)
        if n * min_item_bytes > self.size - self.pos:
            self.fail(f"count {n} cannot fit in the {self.size - self.pos} bytes left", field, start)
        return n


def _value_type(cur, field):
    start = cur.pos
    t = cur.u32(field)
    if t not in VALUE_TYPES:
        cur.fail(f"unknown value type {t}", field, start)
    return VALUE_TYPES[t][0]


def _read_value(cur, vtype, field, depth=0):
    """-> (python value, type descriptor). A descriptor is a type name, or for arrays
    ('array', element type name), or for arrays of arrays ('array', [descriptor per element])."""
    if vtype == "string":
        return cur.string(field), "string"
    if vtype == "array":
        if depth >= MAX_NESTING:
            cur.fail(f"arrays nested deeper than {MAX_NESTING}", field)
        etype = _value_type(cur, field)
        if etype == "string":
            return cur.strings(cur.count(8, field), field), ("array", "string")
        if etype == "array":
            n = cur.count(12, field)
            items = [_read_value(cur, "array", field, depth + 1) for _ in range(n)]
            return [v for v, _ in items], ("array", [d for _, d in items])
        dt = _NP_SCALARS[etype]
        start = cur.pos
        n = cur.count(dt.itemsize, field)
        a = np.frombuffer(cur.buf, dt, n, cur.pos)
        cur.pos += n * dt.itemsize
        if etype == "bool" and n and a.max() > 1:
            cur.fail("bool array holds a value other than 0 or 1", field, start)
        return (a.astype(bool) if etype == "bool" else a).tolist(), ("array", etype)
    start = cur.pos
    v = cur.scalar(_FORMATS[vtype], _NP_SCALARS[vtype].itemsize, field)
    if vtype == "bool":
        if v > 1:
            cur.fail(f"bool value {v} is neither 0 nor 1", field, start)
        v = bool(v)
    return v, vtype


class GGUFFile(MappedFile):
    """A GGUF file, memory-mapped. Tensor views stay valid after close() as long as you hold them."""

    def __init__(self, path):
        super().__init__(path, 1, "magic")

    def _parse(self, size):
        cur = _Cursor(memoryview(self._bytes), self.path)
        cur.need(4, "magic")
        magic = bytes(cur.buf[0:4])
        if magic != MAGIC:
            cur.fail(f"not a GGUF file (magic {magic!r}, expected {MAGIC!r})", "magic", 0)
        cur.pos = 4
        self.version = cur.u32("version")
        if self.version not in (2, 3):
            hint = " (a big-endian file?)" if self.version in (2 << 24, 3 << 24) else ""
            cur.fail(f"unsupported GGUF version {self.version}{hint} (supported: 2, 3)", "version", 4)
        # the smallest tensor info is a name length, n_dims, one dim, type, offset: 32 bytes;
        # the smallest key/value is a key length, a value type and a 1-byte value: 13 bytes
        n_tensors = cur.count(32, "tensor_count")
        n_kv = cur.count(13, "metadata_kv_count")

        self.metadata, self.metadata_types = {}, {}
        for i in range(n_kv):
            start = cur.pos
            key = cur.string(f"metadata key #{i}")
            if key in self.metadata:
                cur.fail(f"duplicate metadata key {key!r}", key, start)
            value, desc = _read_value(cur, _value_type(cur, key), key)
            self.metadata[key], self.metadata_types[key] = value, desc

        self.alignment = self._alignment(cur)
        infos = [self._tensor_info(cur, i) for i in range(n_tensors)]
        self.data_offset = -(-cur.pos // self.alignment) * self.alignment
        self.tensors = self._place(cur, infos)

    def _alignment(self, cur):
        if "general.alignment" not in self.metadata:
            return DEFAULT_ALIGNMENT
        a, t = self.metadata["general.alignment"], self.metadata_types["general.alignment"]
        if t not in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64") or a <= 0 or a & (a - 1):
            cur.fail(f"alignment must be a power of two, got {a!r} ({t})", "general.alignment")
        return a

    def _tensor_info(self, cur, i):
        start = cur.pos
        name = cur.string(f"tensor #{i} name")
        field = f"tensor {name!r}"
        dims_at = cur.pos
        n_dims = cur.u32(field + " n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            cur.fail(f"n_dims is {n_dims}, expected 1..{MAX_DIMS}", field + " n_dims", dims_at)
        cur.need(8 * n_dims, field + " dims")
        dims = struct.unpack_from(f"<{n_dims}Q", cur.buf, cur.pos)
        n = 1
        for d in dims:
            if d == 0:
                cur.fail(f"dimension of size 0 in {list(dims)}", field + " dims")
            n *= d
        if n >= 2**63:  # more elements than any file or int64 index could hold
            cur.fail(f"dims {list(dims)} overflow: {n} elements", field + " dims")
        cur.pos += 8 * n_dims
        type_at = cur.pos
        type_id = cur.u32(field + " type")
        if type_id not in quant.TYPES:
            cur.fail(f"unknown ggml type {type_id}", field + " type", type_at)
        t = quant.TYPES[type_id]
        if dims[0] % t.block:
            cur.fail(f"row length {dims[0]} is not a multiple of the {t.name} block size {t.block}",
                     field + " dims", dims_at)
        offset_at = cur.pos
        rel = cur.u64(field + " offset")
        nbytes = n // t.block * t.nbytes
        return name, t.name, tuple(reversed(dims)), rel, nbytes, start, offset_at

    def _place(self, cur, infos):
        """Checks names, alignment, bounds and overlap; -> name -> TensorInfo (absolute offsets)."""
        data_size = len(self._bytes) - self.data_offset
        tensors = {}
        for name, kind, shape, rel, nbytes, start, offset_at in infos:
            field = f"tensor {name!r}"
            if name in tensors:
                cur.fail(f"duplicate tensor name {name!r}", field, start)
            if rel % self.alignment:
                cur.fail(f"data offset {rel} is not a multiple of the alignment {self.alignment}",
                         field + " offset", offset_at)
            if rel + nbytes > data_size:
                cur.fail(f"data [{rel}, {rel + nbytes}) runs past the data section "
                         f"({max(data_size, 0)} bytes from offset {self.data_offset})", field + " offset", offset_at)
            tensors[name] = TensorInfo(name, kind, shape, self.data_offset + rel, nbytes)
        ordered = sorted(tensors.values(), key=lambda t: t.offset)
        for a, b in zip(ordered, ordered[1:]):
            if a.offset + a.nbytes > b.offset:
                cur.fail(f"tensor data of {a.name!r} and {b.name!r} overlap", f"tensor {b.name!r} offset",
                         next(i[6] for i in infos if i[0] == b.name))
        return tensors

    def _info(self, name):
        if name not in self.tensors:
            raise KeyError(f"{self.path}: no tensor named {name!r}")
        return self.tensors[name]

    def raw(self, name):
        """The tensor's bytes as a read-only uint8 view (no copy)."""
        t = self._info(name)
        return self._bytes[t.offset:t.offset + t.nbytes]

    def tensor(self, name):
        """Zero-copy view: an ndarray for f32/f16 (and other plain types), a QuantizedTensor for
        every block-quantized kind with a C++ matmul kernel (tensor.MATMUL_KINDS: q8_0, q4_0, q4_1,
        q5_0, q5_1, ...) and for 2-d bf16 (shape (rows, K); a 1-d tensor is one row). Other kinds
        raise FormatError; dequantize() reads those it knows."""
        t = self._info(name)
        raw = self.raw(name)
        if t.kind in _KERNEL_KINDS or (t.kind == "bf16" and len(t.shape) == 2):
            k = t.shape[-1]
            return QuantizedTensor(raw, t.kind, (int(np.prod(t.shape)) // k, k))
        if t.kind in quant.PLAIN_DTYPES:
            return raw.view(quant.PLAIN_DTYPES[t.kind]).reshape(t.shape)
        raise FormatError(f"tensor {name!r} has type {t.kind}, which has no direct view (no ninestep matmul "
                          f"kernel; kinds with one: {', '.join(_KERNEL_KINDS)}); use dequantize()",
                          path=self.path, field=f"tensor {name!r} type", offset=t.offset)

    def dequantize(self, name):
        """The tensor as a new float32 array of its shape."""
        t = self._info(name)
        if t.kind not in quant.DEQUANTIZABLE:
            raise FormatError(f"tensor {name!r} has type {t.kind}, which ninestep cannot dequantize",
                              path=self.path, field=f"tensor {name!r} type", offset=t.offset)
        return quant.dequantize(self.raw(name), t.kind, int(np.prod(t.shape))).reshape(t.shape)

    def __repr__(self):
        return f"GGUFFile({self.path!r}, version={self.version}, {len(self.metadata)} keys, {len(self.tensors)} tensors)"
