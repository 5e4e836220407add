"""Writes tests/goldens/ggml_quant_goldens.npz: the bytes ggml's own reference quantizers
(quantize_row_<kind>_ref in libggml-base, built from llama.cpp) write for extreme, awkward and
random rows, and those rows (`<set>_in`; `<set>_<kind>` holds the bytes of its first rows), for q8_0, q4_0, q4_1, q5_0, q5_1.

    python tests/goldens/make_ggml_quant_goldens.py [path/to/libggml-base.so]

(default: the llama.cpp build under /work/peers). The rows come from tests/test_quant.py's
helpers with a fixed seed; the file stores them, so the test reads inputs and bytes and needs
neither llama.cpp nor this script."""
import ctypes
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from test_quant import awkward_weights, extreme_weights  # noqa: E402

DEFAULT_LIB = "/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/libggml-base.so"
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24}


def main(lib_path=DEFAULT_LIB):
    lib = ctypes.CDLL(lib_path)
    rng = np.random.default_rng(20261201)
    sets = {
        "extreme": extreme_weights(rng),
        "awkward": awkward_weights(rng, n=16, k=256),
        "random": (rng.standard_normal((8, 512)) * 10.0 ** rng.integers(-6, 4, (8, 1))).astype(np.float32),
    }
    out = {f"{name}_in": w for name, w in sets.items()}
    for kind, nbytes in BLOCK_BYTES.items():
        f = getattr(lib, f"quantize_row_{kind}_ref")
        for name, w in sets.items():
            if kind in ("q4_1", "q5_1") and name == "extreme":
                w = w[:-1]  # max - min overflows to inf there: (x - min) * 0 is NaN, a cast of NaN
            w = np.ascontiguousarray(w, np.float32)
            q = np.zeros((w.shape[0], w.shape[1] // 32 * nbytes), np.uint8)
            for r in range(w.shape[0]):
                f(w[r].ctypes.data_as(ctypes.c_void_p), q[r].ctypes.data_as(ctypes.c_void_p),
                  ctypes.c_int64(w.shape[1]))
            out[f"{name}_{kind}"] = q
    path = HERE / "ggml_quant_goldens.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:])
