"""Subprocess side of the damaged-file tests: opens many GGUF files, one JSON line per case.

stdin: {"files": [[case_id, path], ...], "flip_jobs": [{"path": p, "flips": [[case_id, byte, bit], ...]}]}
(each flip is applied to the file in place, probed, then undone). A case prints
{"id", "outcome": "ok" | "FormatError" | exception type name, "message", "field", "offset"}, flushed
before the next case starts: if this process crashes, the parent sees which case did it. Memory
and time per case are capped so a reader that trusts a huge count fails loudly instead of
swapping or hanging.
"""
import json
import os
import resource
import signal
import sys

from ninestep import FormatError, QuantizedTensor
from ninestep.formats import GGUFFile

MEMORY_CAP = 4 << 30  # address space: the 98 MB map plus NumPy, far below what a trusted 2^63 needs
SECONDS_PER_CASE = 20


def _timeout(*_):
    raise TimeoutError("case took too long")


def exercise(path, baseline):
    """Open the file and use everything it claims to hold; tensors whose info differs from the
    undamaged file's (a flipped dim or type that still fits) are dequantized in full."""
    with GGUFFile(path) as g:
        assert isinstance(g.metadata, dict) and len(g.metadata) == len(g.metadata_types)
        for name, info in g.tensors.items():
            assert g.raw(name).nbytes == info.nbytes
            try:
                v = g.tensor(name)
                assert (v.data if isinstance(v, QuantizedTensor) else v).nbytes == info.nbytes
                if baseline.get(name) != info:
                    assert g.dequantize(name).shape == info.shape
            except FormatError as e:  # a type it can't view or dequantize: must say so by name
                assert repr(name) in str(e), str(e)


def probe(case_id, path, baseline):
    signal.alarm(SECONDS_PER_CASE)
    try:
        exercise(path, baseline)
        result = {"outcome": "ok"}
    except FormatError as e:
        result = {"outcome": "FormatError", "message": str(e), "field": e.field, "offset": e.offset, "path": e.path}
    except BaseException as e:  # anything else is a bug the parent reports
        result = {"outcome": type(e).__name__, "message": str(e)}
    finally:
        signal.alarm(0)
    print(json.dumps(dict(result, id=case_id)), flush=True)


def main():
    if not os.environ.get("NINESTEP_SANITIZED"):  # ASan reserves terabytes of address space for its shadow
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    signal.signal(signal.SIGALRM, _timeout)
    job = json.load(sys.stdin)
    for case_id, path in job.get("files", []):
        probe(case_id, path, {})
    for flip_job in job.get("flip_jobs", []):
        flip_each(flip_job["path"], flip_job["flips"])


def flip_each(path, flips):
    with GGUFFile(path) as g:
        baseline = dict(g.tensors)
    with open(path, "r+b") as f:
        for case_id, byte, bit in flips:
            f.seek(byte)
            old = f.read(1)[0]
            f.seek(byte)
            f.write(bytes([old ^ (1 << bit)]))
            f.flush()
            probe(case_id, path, baseline)
            f.seek(byte)
            f.write(bytes([old]))
            f.flush()


if __name__ == "__main__":
    main()
