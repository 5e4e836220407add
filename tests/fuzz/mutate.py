"""Byte-level mutations of a seed file, as hypothesis strategies: overwrite bytes, plant boundary
integers over length/count/offset fields, insert, delete, truncate. Positions favour the header
(where every length and offset lives) but can land anywhere."""
import struct

from hypothesis import strategies as st

U64 = [0, 1, 2, 7, 8, 31, 32, 255, 256, 4095, 4096, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**62,
       2**63 - 1, 2**63, 2**64 - 1]
U32 = [v for v in U64 if v < 2**32]


def mutations(size, header):
    pos = st.one_of(st.integers(0, max(header - 1, 0)), st.integers(0, size - 1))
    one = st.one_of(
        st.tuples(st.just("byte"), pos, st.integers(0, 255)),
        st.tuples(st.just("u64"), pos, st.sampled_from(U64)),
        st.tuples(st.just("u32"), pos, st.sampled_from(U32)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("cut"), pos, st.just(0)),
    )
    # a third of the cases overwrite only tensor data, so damaged weights also reach the model
    data = st.tuples(st.sampled_from(["byte", "u32", "u64"]), st.integers(header, size - 8), st.integers(0, 2**32 - 1))
    return st.one_of(st.lists(one, min_size=1, max_size=6), st.lists(one, min_size=1, max_size=6),
                     st.lists(data.map(lambda m: (m[0], m[1], m[2] % 256 if m[0] == "byte" else m[2])),
                              min_size=1, max_size=4))


def apply(seed, muts):
    b = bytearray(seed)
    for kind, p, v in muts:
        p = min(p, len(b))
        if kind == "byte" and p < len(b):
            b[p] = v
        elif kind in ("u64", "u32"):
            packed = struct.pack("<Q" if kind == "u64" else "<I", v)
            b[p:p + len(packed)] = packed
        elif kind == "insert":
            b[p:p] = v
        elif kind == "delete":
            del b[p:p + v]
        elif kind == "cut":
            del b[p:]
    return bytes(b)
