"""Damaged GGUF files: each must raise FormatError (naming file, field, offset) or load a file
that is still valid. Cases run in one subprocess per batch (helpers/gguf_probe.py) so a crash,
hang or runaway allocation shows up as a failed case instead of taking pytest down."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from helpers import gguf_bytes as B
from helpers.models import smollm2_path

import ninestep
from ninestep.formats import GGUFFile, Typed, write_gguf

PROBE = os.path.join(os.path.dirname(__file__), "helpers", "gguf_probe.py")
KV0, KV1 = B.VALID_KVS
INFO_A, INFO_B = B.VALID_INFOS


def _with_kv(*kvs):
    return B.gguf([KV0, *kvs], B.VALID_INFOS, B.VALID_DATA)


def _with_infos(*infos, data=B.VALID_DATA):
    return B.gguf(B.VALID_KVS, infos, data)


def _nested(depth):
    body = B.array(B.U8, 0, b"")
    for _ in range(depth):
        body = B.array(B.ARRAY, 1, body)
    return body


# case -> (file bytes, substring of FormatError.field)
CASES = {
    "empty file": (b"", "magic"),
    "magic only": (b"GGUF", "version"),
    "wrong magic": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, magic=b"GGML"), "magic"),
    "version 1": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, version=1), "version"),
    "version 0": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, version=0), "version"),
    "version 4": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, version=4), "version"),
    "big-endian version 3": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, version=3 << 24), "version"),
    "tensor count 1e18": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, n_tensors=10**18), "tensor_count"),
    "kv count 2^64-1": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, n_kv=2**64 - 1), "metadata_kv_count"),
    "kv count one too many": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, n_kv=3), ""),
    "tensor count one too many": (B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, n_tensors=3), "tensor"),
    "key length 2^63": (B.gguf([B.string("k", length=2**63) + B.u32(B.U8) + b"\0"]), "metadata key #0"),
    "key length 2^64-1": (B.gguf([KV0, B.string("k", length=2**64 - 1)]), "metadata key #1"),
    "key not utf-8": (B.gguf([B.string(b"\xff\xfe") + B.u32(B.U8) + b"\0"]), "metadata key #0"),
    "duplicate key": (_with_kv(KV1, KV0), "general.architecture"),
    "string value length 2^63": (_with_kv(B.kv("x", B.STRING, B.string("abc", length=2**63))), "x"),
    "string value not utf-8": (_with_kv(B.kv("x", B.STRING, B.string(b"a\xc3("))), "x"),
    "unknown value type": (_with_kv(B.kv("x", 13, bytes(8))), "x"),
    "value type 2^32-1": (_with_kv(B.kv("x", 2**32 - 1, bytes(8))), "x"),
    "bool value 2": (_with_kv(B.kv("x", B.BOOL, b"\x02")), "x"),
    "scalar truncated at end of file": (B.gguf([KV0, B.kv("x", B.U64, b"\1\2")], alignment=1), "x"),
    "array count 1e18 of uint8": (_with_kv(B.kv("x", B.ARRAY, B.array(B.U8, 10**18, b""))), "x"),
    "array count 1e18 of strings": (_with_kv(B.kv("x", B.ARRAY, B.array(B.STRING, 10**18, b""))), "x"),
    "array count 1e18 of arrays": (_with_kv(B.kv("x", B.ARRAY, B.array(B.ARRAY, 10**18, b""))), "x"),
    "inner array count 1e18": (_with_kv(B.kv("x", B.ARRAY, B.array(B.ARRAY, 1, B.array(B.U32, 10**18, b"")))), "x"),
    "string in array length 2^62": (_with_kv(B.kv("x", B.ARRAY, B.array(B.STRING, 2, B.string("a") + B.string("b", length=2**62)))), "x"),
    "array element type unknown": (_with_kv(B.kv("x", B.ARRAY, B.array(99, 1, bytes(8)))), "x"),
    "bool array value 2": (_with_kv(B.kv("x", B.ARRAY, B.array(B.BOOL, 2, b"\x01\x02"))), "x"),
    "arrays nested 100 deep": (_with_kv(B.kv("x", B.ARRAY, _nested(100))), "x"),
    "alignment 0": (_with_kv(B.kv("general.alignment", B.U32, B.u32(0))), "general.alignment"),
    "alignment 48": (_with_kv(B.kv("general.alignment", B.U32, B.u32(48))), "general.alignment"),
    "alignment negative": (_with_kv(B.kv("general.alignment", B.I32, struct.pack("<i", -32))), "general.alignment"),
    "alignment a string": (_with_kv(B.kv("general.alignment", B.STRING, B.string("32"))), "general.alignment"),
    "alignment 2^40 pushes data past the end": (_with_kv(B.kv("general.alignment", B.U64, B.u64(2**40))), "tensor 'a'"),
    "tensor name length 2^63": (_with_infos(B.string("a", length=2**63)), "tensor #0 name"),
    "tensor name not utf-8": (_with_infos(INFO_A, B.tensor_info(b"\x80", [8], B.F32_T, 64)), "tensor #1 name"),
    "duplicate tensor name": (_with_infos(INFO_A, B.tensor_info("a", [8], B.F32_T, 32)), "tensor 'a'"),
    "dim of 0": (_with_infos(B.tensor_info("a", [8, 0], B.F32_T, 0)), "tensor 'a' dims"),
    "dims overflow int64": (_with_infos(B.tensor_info("a", [2**32, 2**32], B.F32_T, 0)), "tensor 'a' dims"),
    "dims overflow uint64": (_with_infos(B.tensor_info("a", [2**63, 2**63, 4], B.F32_T, 0)), "tensor 'a' dims"),
    "dims too big for the data": (_with_infos(B.tensor_info("a", [2**20, 2**20], B.F32_T, 0)), "tensor 'a' offset"),
    "five dims": (_with_infos(B.tensor_info("a", [8, 1, 1, 1, 1], B.F32_T, 0)), "tensor 'a' n_dims"),
    "no dims": (_with_infos(B.tensor_info("a", [], B.F32_T, 0)), "tensor 'a' n_dims"),
    "n_dims 2^32-1": (_with_infos(B.tensor_info("a", [8], B.F32_T, 0, n_dims=2**32 - 1)), "tensor 'a' n_dims"),
    "unknown tensor type": (_with_infos(B.tensor_info("a", [8], 99, 0)), "tensor 'a' type"),
    "removed tensor type 4": (_with_infos(B.tensor_info("a", [32], 4, 0)), "tensor 'a' type"),
    "row not a multiple of the block": (_with_infos(B.tensor_info("b", [33, 2], B.Q8_0_T, 0)), "tensor 'b' dims"),
    "offset not aligned": (_with_infos(INFO_A, B.tensor_info("b", [32, 2], B.Q8_0_T, 36)), "tensor 'b' offset"),
    "offset past the end": (_with_infos(INFO_A, B.tensor_info("b", [32, 2], B.Q8_0_T, 2**40)), "tensor 'b' offset"),
    "offset + size wraps 2^64": (_with_infos(INFO_A, B.tensor_info("b", [32, 2], B.Q8_0_T, 2**64 - 32)), "tensor 'b' offset"),
    "size runs past the end": (_with_infos(INFO_A, B.tensor_info("b", [32, 3], B.Q8_0_T, 32)), "tensor 'b' offset"),
    "tensors at the same offset": (_with_infos(INFO_A, B.tensor_info("b", [32, 2], B.Q8_0_T, 0)), "offset"),
    "tensors overlap partly": (_with_infos(B.tensor_info("a", [16], B.F32_T, 0), INFO_B), "tensor 'b' offset"),
    "data section cut short": (B.valid()[:-40], "tensor 'b' offset"),
}


def _run_probe(job, timeout=240):
    """Runs the probe; -> {case id: result}. A crash names the case that was running."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ninestep.__file__)), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, PROBE], input=json.dumps(job), capture_output=True, text=True,
                          timeout=timeout, env=env)
    results = {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    ids = [c[0] for c in job.get("files", [])] + [f[0] for j in job.get("flip_jobs", []) for f in j["flips"]]
    missing = [i for i in ids if i not in results]
    assert proc.returncode == 0 and not missing, (
        f"probe died (exit {proc.returncode}) at case {missing[:1]}: {proc.stderr[-2000:]}")
    return results


def _assert_format_error(r, path, field):
    assert r["outcome"] == "FormatError", f"{r['id']}: {r}"
    assert r["path"] == str(path) and str(path) in r["message"]
    assert field in (r["field"] or ""), f"{r['id']}: field {r['field']!r}, expected {field!r}: {r['message']}"
    assert isinstance(r["offset"], int), r


def test_crafted_damaged_files(tmp_path):
    paths = {}
    for i, (name, (data, _)) in enumerate(CASES.items()):
        paths[name] = tmp_path / f"case{i}.gguf"
        paths[name].write_bytes(data)
    valid = B.valid()
    (tmp_path / "valid.gguf").write_bytes(valid)
    (tmp_path / "v2.gguf").write_bytes(B.gguf(B.VALID_KVS, B.VALID_INFOS, B.VALID_DATA, version=2))
    # every prefix of a valid file: the header's fields cut anywhere, the data cut short
    for n in range(len(valid)):
        paths[f"prefix {n}"] = tmp_path / f"prefix{n}.gguf"
        paths[f"prefix {n}"].write_bytes(valid[:n])
    # random bytes overwritten anywhere in the header and tensor infos
    rng = np.random.default_rng(7)
    header_end = len(valid) - len(B.VALID_DATA)
    for i in range(300):
        damaged = bytearray(valid)
        for at in rng.integers(0, header_end, rng.integers(1, 4)):
            damaged[at] = rng.choice([0, 0xFF, 0x80, 0x7F, int(rng.integers(256))])
        paths[f"random bytes {i}"] = tmp_path / f"random{i}.gguf"
        paths[f"random bytes {i}"].write_bytes(bytes(damaged))
    results = _run_probe({"files": [[k, str(p)] for k, p in paths.items()]
                          + [["valid", str(tmp_path / "valid.gguf")], ["v2", str(tmp_path / "v2.gguf")]]})

    assert results["valid"]["outcome"] == results["v2"]["outcome"] == "ok", (results["valid"], results["v2"])
    for name, (_, field) in CASES.items():
        _assert_format_error(results[name], paths[name], field)
    for i in range(300):
        r = results[f"random bytes {i}"]
        assert r["outcome"] in ("ok", "FormatError"), r
    with GGUFFile(tmp_path / "valid.gguf") as g:
        b = g.tensors["b"]
    for n in range(len(valid)):
        r = results[f"prefix {n}"]
        if n >= b.offset + b.nbytes:  # only the trailing padding is gone: still a valid file
            assert r["outcome"] == "ok", r
        else:
            _assert_format_error(r, paths[f"prefix {n}"], "")


def test_crafted_errors_name_offset(tmp_path):
    """Spot checks that the offset is the byte where the bad field starts."""
    cases = {
        "wrong magic": 0, "version 1": 4, "tensor count 1e18": 8, "kv count 2^64-1": 16,
        "key length 2^63": 24, "unknown value type": 24 + len(KV0) + 8 + 1,
    }
    for name, offset in cases.items():
        path = tmp_path / "f.gguf"
        path.write_bytes(CASES[name][0])
        with pytest.raises(ninestep.FormatError) as e:
            GGUFFile(path)
        assert e.value.offset == offset, (name, str(e.value))
        assert isinstance(e.value, ValueError) and f"offset {offset}" in str(e.value)


def _tensor_info_start(data, first_name):
    """Byte where the tensor infos begin: the length-prefixed name of the first tensor."""
    at = data.find(struct.pack("<Q", len(first_name)) + first_name.encode())
    assert at > 0
    return at


def _flips(rng, prefix, regions, counts):
    out = []
    for (lo, hi), n in zip(regions, counts):
        out += [[f"{prefix} byte {b} bit {k}", int(b), int(k)]
                for b, k in zip(rng.integers(lo, hi, n), rng.integers(0, 8, n))]
    return out


def test_bit_flips_in_real_header(tmp_path):
    """Random bit flips in the real file's header: the fixed fields, the metadata and the tensor
    infos; plus many more on a copy with the vocabulary cut to 256 entries, where the metadata
    structure (not token text) is most of the header, so flips hit lengths and types often."""
    real = smollm2_path()
    rng = np.random.default_rng(20261129)
    with GGUFFile(real) as g:
        head = open(real, "rb").read(g.data_offset)
        copy = tmp_path / "real.gguf"
        copy.write_bytes(open(real, "rb").read())
        first = next(iter(g.tensors))
        slim = tmp_path / "slim.gguf"
        meta = {k: Typed(v[:256] if k.startswith("tokenizer.ggml.") and isinstance(v, list) else v,
                         g.metadata_types[k]) for k, v in g.metadata.items()}
        write_gguf(slim, meta, {n: g.tensor(n) for n in g.tensors})
        slim_head = open(slim, "rb").read(4096 * 8)
    infos = _tensor_info_start(head, first)
    slim_infos = _tensor_info_start(slim_head, first)
    with GGUFFile(slim) as s:
        slim_end = s.data_offset
    jobs = [
        {"path": str(copy), "flips": _flips(rng, "real", [(0, 24), (24, infos), (infos, len(head))], [6, 8, 16])},
        {"path": str(slim), "flips": _flips(rng, "slim", [(0, 24), (24, slim_infos), (slim_infos, slim_end)], [30, 90, 120])},
    ]
    results = _run_probe({"flip_jobs": jobs})
    bad = {i: r for i, r in results.items() if r["outcome"] not in ("ok", "FormatError")}
    assert not bad, bad
    outcomes = [r["outcome"] for r in results.values()]
    # the flips must actually exercise both paths
    assert outcomes.count("FormatError") > 50 and outcomes.count("ok") > 10, outcomes
