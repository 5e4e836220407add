"""Hugging Face safetensors files and model folders, read zero-copy over mmap.

A safetensors file is a little-endian uint64 header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}), then the
data; offsets count from the end of the header. Like the GGUF reader, nothing in the header is
trusted: lengths, dtypes, shapes and offsets are checked, and damage raises FormatError.

Tensor names are mapped to the GGUF names (HF llama / mistral / qwen2 layout) so the forward
pass sees one naming whatever the source; `hf_names` keeps the originals.
"""
import json
import os
import re
import struct
from typing import NamedTuple

from .._checks import path_arg
from ..errors import FormatError
from ..tensor import QuantizedTensor
from .mapped import MappedFile

MAX_HEADER = 100 << 20  # the safetensors library's own cap on the JSON header

# dtype -> (bytes per element, NumPy dtype for a view or None when there is none)
DTYPES = {
    "F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2"),
    "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
    "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"), "BOOL": (1, "?"),
    "F8_E4M3": (1, None), "F8_E5M2": (1, None),
}

_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)")


def gguf_name(hf_name):
    """HF llama/mistral/qwen2 tensor name -> GGUF name, or None if it has no GGUF counterpart."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    m = _LAYER_RE.fullmatch(hf_name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"blk.{int(m.group(1))}.{_LAYER_NAMES[m.group(2)]}"
    return None


class TensorEntry(NamedTuple):
    name: str
    dtype: str  # safetensors dtype: 'F32', 'BF16', ...
    shape: tuple
    offset: int  # absolute byte offset in the file
    nbytes: int


class SafetensorsFile(MappedFile):
    """One .safetensors file, memory-mapped. Views stay valid after close() while you hold them."""

    def __init__(self, path):
        super().__init__(path, 8, "header length")

    def _fail(self, message, field, offset):
        raise FormatError(message, path=self.path, field=field, offset=offset)

    def _parse(self, size):
        (n,) = struct.unpack_from("<Q", self._bytes, 0)
        if n > size - 8 or n > MAX_HEADER:
            self._fail(f"header length {n} exceeds the {size - 8} bytes after it (or {MAX_HEADER})", "header length", 0)
        try:
            header = json.loads(self._bytes[8:8 + n].tobytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            self._fail(f"header is not UTF-8: {e.reason}", "header", 8 + e.start)
        except json.JSONDecodeError as e:
            self._fail(f"header is not valid JSON: {e.msg}", "header", 8 + e.pos)
        if not isinstance(header, dict):
            self._fail("header is not a JSON object", "header", 8)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            self._fail("__metadata__ must map strings to strings", "__metadata__", 8)
        self.metadata = meta
        self.data_offset = 8 + n
        self.tensors = {name: self._entry(name, info, size - self.data_offset) for name, info in header.items()}
        ordered = sorted(self.tensors.values(), key=lambda t: t.offset)
        for a, b in zip(ordered, ordered[1:]):
            if a.offset + a.nbytes > b.offset:
                self._fail(f"tensor data of {a.name!r} and {b.name!r} overlap", f"tensor {b.name!r} data_offsets", b.offset)

    def _entry(self, name, info, data_size):
        field = f"tensor {name!r}"
        if not isinstance(info, dict):
            self._fail("entry is not a JSON object", field, 8)
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            self._fail(f"unknown dtype {dtype!r}", field + " dtype", 8)
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            self._fail(f"shape {shape!r} is not a list of non-negative integers", field + " shape", 8)
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            self._fail(f"data_offsets {offsets!r} are not within the {data_size}-byte data section",
                       field + " data_offsets", 8)
        nbytes = DTYPES[dtype][0]
        for d in shape:
            nbytes *= d
        if nbytes != offsets[1] - offsets[0]:
            self._fail(f"{dtype} {shape} needs {nbytes} bytes, data_offsets {offsets} hold {offsets[1] - offsets[0]}",
                       field + " data_offsets", self.data_offset + offsets[0])
        return TensorEntry(name, dtype, tuple(shape), self.data_offset + offsets[0], nbytes)

    def tensor(self, name):
        """Zero-copy view: an ndarray (F32, F16, integer types), a QuantizedTensor for 2-d BF16,
        a uint16 array of bfloat16 bit patterns for BF16 of other ranks."""
        if name not in self.tensors:
            raise KeyError(f"{self.path}: no tensor named {name!r}")
        t = self.tensors[name]
        np_dtype = DTYPES[t.dtype][1]
        if np_dtype is None:
            raise FormatError(f"tensor {name!r} has dtype {t.dtype}, which ninestep cannot read",
                              path=self.path, field=f"tensor {name!r} dtype", offset=t.offset)
        view = self._bytes[t.offset:t.offset + t.nbytes].view(np_dtype).reshape(t.shape)
        if t.dtype == "BF16" and view.ndim == 2 and view.size:
            return QuantizedTensor.from_bf16(view)
        return view



def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}", path=path, field=what,
                          offset=getattr(e, "pos", getattr(e, "start", None))) from None


class HFFolder:
    """A Hugging Face model folder: config.json, safetensors weights (one file or shards),
    tokenizer files if present. `tensors` maps GGUF names (or the HF name, for tensors without
    a GGUF counterpart) to zero-copy views."""

    def __init__(self, path):
        self.path = path_arg(path)
        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"{self.path}: not a model folder")
        self.config = _load_json(self._file("config.json", required=True), "config.json")
        if not isinstance(self.config, dict):
            raise FormatError("config.json is not a JSON object", path=self._file("config.json"), field="config.json")
        self.tokenizer_json = self._file("tokenizer.json")
        self.tokenizer_config = self._file("tokenizer_config.json")
        self.files, self.tensors, self.hf_names = [], {}, {}
        try:
            shards, weight_map = self._shards()
            for shard in shards:
                self._add(SafetensorsFile(os.path.join(self.path, shard)), weight_map)
        except BaseException:
            self.close()
            raise

    def _file(self, name, required=False):
        p = os.path.join(self.path, name)
        if os.path.isfile(p):
            return p
        if required:
            raise FileNotFoundError(f"{self.path}: no {name}")
        return None

    def _shards(self):
        """-> (shard file names, the index's weight_map or None for a single file)."""
        if self._file("model.safetensors"):
            return ["model.safetensors"], None
        index = self._file("model.safetensors.index.json")
        if index is None:
            raise FileNotFoundError(f"{self.path}: no model.safetensors or model.safetensors.index.json")
        content = _load_json(index, "index")
        weight_map = content.get("weight_map") if isinstance(content, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise FormatError("no weight_map object", path=index, field="weight_map")
        shards = sorted(set(weight_map.values()), key=str)
        for s in shards:
            # a shard is a plain file name in this folder: never a path that leaves it
            if not isinstance(s, str) or os.path.basename(s) != s or s in ("", ".", "..") or not self._file(s):
                raise FormatError(f"shard {s!r} is not a file in the model folder", path=index, field="weight_map")
        return shards, weight_map

    def _add(self, st, weight_map):
        self.files.append(st)
        from .hf_encoders import map_tensor  # BERT / GPT-2 names (and GPT-2's transposed Conv1D weights)

        for hf in st.tensors:
            name, t = map_tensor(self.config.get("model_type"), hf, st, gguf_name)
            if name in self.tensors:
                raise FormatError(f"tensor {hf!r} appears twice in the folder", path=st.path, field=f"tensor {hf!r}")
            self.tensors[name] = t
            self.hf_names[name] = hf
        for hf, shard in (weight_map or {}).items():
            if shard == os.path.basename(st.path) and hf not in st.tensors:
                raise FormatError(f"index lists {hf!r} in this shard, which does not hold it",
                                  path=st.path, field=f"tensor {hf!r}")

    def model_config(self):
        """ModelConfig from config.json and the tokenizer files."""
        from ..config import ModelConfig

        tok_cfg = _load_json(self.tokenizer_config, "tokenizer_config.json") if self.tokenizer_config else None
        tok = _load_json(self.tokenizer_json, "tokenizer.json") if self.tokenizer_json else None
        return ModelConfig.from_hf(self.config, tokenizer_config=tok_cfg, tokenizer_json=tok)

    def close(self):
        for f in self.files:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_folder(path):
    """Opens a Hugging Face model folder (see HFFolder)."""
    return HFFolder(path)
