"""Builds GGUF files byte by byte, so tests can write any field wrong on purpose."""
import struct

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
F32_T, F16_T, Q8_0_T = 0, 1, 8


def string(s, length=None):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def kv(key, vtype, payload):
    """A key/value: key string, value type id, the value's bytes as given."""
    return string(key) + struct.pack("<I", vtype) + payload


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def array(etype, count, body):
    return struct.pack("<IQ", etype, count) + body


def tensor_info(name, dims, ttype, offset, n_dims=None):
    return (string(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
            + b"".join(u64(d) for d in dims) + struct.pack("<IQ", ttype, offset))


def gguf(kvs=(), infos=(), data=b"", version=3, magic=b"GGUF", n_tensors=None, n_kv=None, alignment=32):
    head = (magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(infos))
    return head + bytes(-len(head) % alignment) + data


# a small valid file: two keys, an f32 [8] tensor at 0 and a q8_0 [2, 32] tensor at 32
VALID_KVS = [kv("general.architecture", STRING, string("llama")),
             kv("tokens", ARRAY, array(STRING, 2, string("a") + string("bc")))]
VALID_INFOS = [tensor_info("a", [8], F32_T, 0), tensor_info("b", [32, 2], Q8_0_T, 32)]
VALID_DATA = bytes(32) + (b"\x00\x3c" + bytes(range(32))) * 2 + bytes(28)  # fp16 scale 1.0


def valid():
    return gguf(VALID_KVS, VALID_INFOS, VALID_DATA)
