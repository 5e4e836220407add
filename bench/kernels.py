"""Every kernel against its NumPy equivalent at SmolLM2-135M's shapes, side by side in one run.

    python bench/kernels.py [--threads 2] [--rounds 31] [--json bench/results/kernels.json]

For each op the two implementations alternate in short blocks (5 calls of A, 5 of B, repeated) so
drift on a shared machine hits both alike, with a pause before each block so neither thread pool is still
spinning from the other's calls when a timed call starts (OpenBLAS's idle workers spin for ~0.1 s
and would take the second core from ninestep's threads). The table shows medians and the ratio
NumPy time / ninestep time (> 1: ninestep is faster). Quantized matmuls are compared with NumPy's float32 matmul of the same
(dequantized) matrix: the work a float engine would do for that layer."""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def cases(rng):
    import numpy as np

    import ninestep
    from ninestep import ops
    from test_bench_nn import np_attention, np_rmsnorm, np_rope, np_softmax, np_swiglu

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    for m, n in [(1, 1536), (1, 49152), (256, 1536), (512, 1536)]:
        x, w = randn(m, 576), randn(n, 576)
        yield "matmul f32", f"{m}x576x{n}", lambda x=x, w=w: ops.matmul(x, w), lambda x=x, w=w: x @ w.T
    for kind in ("q4_1", "q8_0"):
        for m, n in [(1, 1536), (1, 49152), (512, 1536)]:
            x, q = randn(m, 576), ninestep.quantize(randn(n, 576), kind)
            wd = q.dequantize()
            yield f"matmul {kind} (NumPy: f32)", f"{m}x576x{n}", lambda x=x, q=q: ops.matmul(x, q), lambda x=x, w=wd: x @ w.T
    x = randn(64, 49152) * 4
    yield "softmax", "64x49152", lambda: ops.softmax(x), lambda: np_softmax(x)
    for T, S in [(1, 1024), (128, 512), (512, 512)]:
        q, k, v = randn(T, 9, 64), randn(S, 3, 64), randn(S, 3, 64)
        yield "attention 9/3 heads D=64", f"T={T} S={S}", lambda q=q, k=k, v=v: ops.attention(q, k, v), \
            lambda q=q, k=k, v=v: np_attention(q, k, v)
    x, w = randn(512, 576), randn(576)
    yield "rmsnorm", "512x576", lambda: ops.rmsnorm(x, w), lambda: np_rmsnorm(x, w)
    xr, pos = randn(512, 9, 64), np.arange(512, dtype=np.int32)
    yield "rope (norm)", "512x9x64", lambda: ops.rope(xr, pos, 100000.0), lambda: np_rope(xr, pos, 100000.0)
    g, u = randn(512, 1536), randn(512, 1536)
    yield "swiglu", "512x1536", lambda: ops.swiglu(g, u), lambda: np_swiglu(g, u)


BLOCK = 5
IDLE = 0.2  # seconds; OpenBLAS workers spin ~2^28 cycles (~0.1 s) after a call by default


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fmt(s):
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9, help="blocks per side")
    ap.add_argument("--json", default="bench/results/kernels.json")
    a = ap.parse_args(argv)
    # both sides get the same thread count (OpenBLAS reads its variable when NumPy loads)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import numpy as np

    import ninestep

    ninestep.set_num_threads(a.threads)
    rows, out = [], []
    for op, shape, ours, theirs in cases(np.random.default_rng(0)):
        for _ in range(3):  # warm-up
            ours(), theirs()
        t_ours, t_np = [], []
        for _ in range(a.rounds):
            for fn, times in ((ours, t_ours), (theirs, t_np)):
                time.sleep(IDLE)  # let the other side's idle workers stop spinning
                fn()  # the block's first call wakes this side's threads; not timed
                times.extend(timed(fn) for _ in range(BLOCK))
        mo, mn = statistics.median(t_ours), statistics.median(t_np)
        rows.append(f"| {op} | {shape} | {fmt(mo)} | {fmt(mn)} | {mn / mo:.2f}x |")
        out.append({"op": op, "shape": shape, "ninestep_s": mo, "numpy_s": mn, "ratio": mn / mo})
        print(rows[-1], file=sys.stderr)
    info = ninestep.cpu_info()
    print(f"\n{a.threads} threads, isa {info['isa']}, median of {a.rounds} alternating blocks of {BLOCK} calls, NumPy {np.__version__}")
    print("| op | shape | ninestep | NumPy | NumPy / ninestep |\n|---|---|---:|---:|---:|")
    print("\n".join(rows))
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threads": a.threads, "isa": info["isa"], "rounds": a.rounds, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
