"""Writes tests/goldens/kquant_golden.npz: K-quant blocks made by ggml itself.

    python tests/goldens/make_kquant_golden.py [--lib .../build/bin/libggml-base.so]

gguf-py cannot quantize Q4_K, Q5_K or Q6_K, so the reference bytes come from ggml's own reference
quantizers (quantize_row_q4_K_ref, _q5_K_ref, _q6_K_ref: what llama-quantize writes without an
importance matrix) and its activation quantizer quantize_row_q8_K_ref, called through ctypes on
libggml-base from a llama.cpp build. The inputs are stored next to the outputs, so the test needs
neither ggml nor this script. ggml leaves a Q8_K block's bsums unset when the block is all zero;
the output buffers start zeroed, so those bsums are 0 (what ninestep writes)."""
import argparse
import ctypes
from pathlib import Path

import numpy as np

LLAMA = Path("/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp")
OUT = Path(__file__).with_name("kquant_golden.npz")
QK_K = 256
BLOCK_BYTES = {"q4_k": 144, "q5_k": 176, "q6_k": 210, "q8_k": 292}
FUNCS = {"q4_k": "quantize_row_q4_K_ref", "q5_k": "quantize_row_q5_K_ref", "q6_k": "quantize_row_q6_K_ref",
         "q8_k": "quantize_row_q8_K_ref"}


def inputs(rng, k=512):
    """Rows of k floats that stress the searches: Gaussian at several scales, heavy tails, zeros,
    constants, exact ties, one outlier, all-positive / all-negative, tiny (fp16-subnormal scales),
    sparse blocks and real-looking weights from a Laplace distribution."""
    rows = [rng.standard_normal(k), 0.02 * rng.standard_normal(k), 30 * rng.standard_normal(k),
            rng.standard_t(2, k), np.zeros(k), np.full(k, 1.5), np.round(rng.standard_normal(k) * 4) / 4,
            np.linspace(-1, 1, k), rng.uniform(0, 1e-3, k), -np.abs(rng.standard_normal(k)),
            1e-6 * rng.standard_normal(k), rng.laplace(0, 0.05, k)]
    r = rng.standard_normal(k)
    r[40] = 300.0
    rows.append(r)
    r = np.zeros(k)
    r[rng.choice(k, 9, replace=False)] = rng.standard_normal(9)
    rows.append(r)
    r = rng.standard_normal(k)
    r[:QK_K] = 0.0  # one all-zero block, one normal
    rows.append(r)
    r = rng.standard_normal(k)
    r[5], r[77] = -4.0, 4.0  # equal magnitudes: the first one sets the sign of Q8_K's scale
    rows.append(r)
    return np.array(rows, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=str(LLAMA / "build/bin/libggml-base.so"))
    a = ap.parse_args()
    lib = ctypes.CDLL(a.lib)
    x = inputs(np.random.default_rng(20261201))
    n, k = x.shape
    out = {"x": x}
    for kind, name in FUNCS.items():
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = None
        dst = np.zeros((n, k // QK_K * BLOCK_BYTES[kind]), dtype=np.uint8)
        for i in range(n):
            row = np.ascontiguousarray(x[i])
            fn(row.ctypes.data, dst[i].ctypes.data, k)
        out[kind] = dst
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {n} rows of {k} from {a.lib}")


if __name__ == "__main__":
    main()
