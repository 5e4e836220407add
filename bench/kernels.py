"""Every kernel against its NumPy equivalent at SmolLM2-135M's shapes, side by side in one run.

    python bench/kernels.py [--threads 2] [--rounds 31] [--json bench/results/kernels.json] [--match q5_0]

For each op the two implementations alternate in short blocks (5 calls of A, 5 of B, repeated) so
drift on a shared machine hits both alike, with a pause before each block so neither thread pool is still
spinning from the other's calls when a timed call starts (OpenBLAS's idle workers spin for ~0.1 s
and would take the second core from ninestep's threads), then WARM seconds of untimed calls of the
side about to be timed: after the pause a VM's idle vCPUs are the host's, and the first calls
measured how late it hands the second one back (T=1 S=1024 attention: ~30 us a call back to back,
0.3-1.3 ms after a 0.2 s pause), not the kernel. The table shows medians and the ratio
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
            yield f"matmul {kind} (NumPy: f32)", f"{m}x576x{n}", lambda x=x, q=q: ops.matmul(x, q), lambda x=x, w=wd: x @ w.T, \
                q.nbytes
    # Gemma 3 270M (d 640, FFN 2048) and Qwen2.5-0.5B (d 896, FFN 4864, vocab 151936) shapes: Q5_0
    # holds most of both models' weights (Qwen's 151936 x 896 embeddings too, looked up by
    # get_rows). Q4_0 beside it at the same shapes, to compare weight bytes per second.
    for kind in ("q5_0", "q4_0", "q5_1"):
        for m, k, n in [(1, 640, 2048), (1, 896, 4864), (1, 4864, 896), (1, 896, 151936), (512, 640, 2048),
                        (512, 896, 4864)]:
            if kind == "q5_1" and n == 151936:
                continue
            x, q = randn(m, k), ninestep.quantize(randn(n, k), kind)
            wd = q.dequantize()
            yield f"matmul {kind} (NumPy: f32)", f"{m}x{k}x{n}", lambda x=x, q=q: ops.matmul(x, q), \
                lambda x=x, w=wd: x @ w.T, q.nbytes
    emb = ninestep.quantize(randn(151936, 896), "q5_0")
    ids = rng.integers(0, 151936, 512)
    emb_f = emb.dequantize()
    yield "get_rows q5_0 (NumPy: f32 take)", "512 of 151936x896", lambda: ops.get_rows(emb, ids), \
        lambda: emb_f[ids]
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
WARM = 0.02  # seconds of untimed calls before each timed block


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
    ap.add_argument("--match", default="", help="only the rows whose 'op shape' contains this text")
    a = ap.parse_args(argv)
    # both sides get the same thread count (OpenBLAS reads its variable when NumPy loads)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import numpy as np

    import ninestep

    ninestep.set_num_threads(a.threads)
    rows, out = [], []
    for op, shape, ours, theirs, *wbytes in cases(np.random.default_rng(0)):
        if a.match not in f"{op} {shape}":
            continue
        for _ in range(3):  # warm-up
            ours(), theirs()
        t_ours, t_np = [], []
        for _ in range(a.rounds):
            for fn, times in ((ours, t_ours), (theirs, t_np)):
                time.sleep(IDLE)  # let the other side's idle workers stop spinning
                warm_end = time.perf_counter() + WARM
                fn()  # wakes this side's threads (and the VM's vCPUs); not timed
                while time.perf_counter() < warm_end:
                    fn()
                times.extend(timed(fn) for _ in range(BLOCK))
        mo, mn = statistics.median(t_ours), statistics.median(t_np)
        gbs = f"{wbytes[0] / mo / 1e9:.1f}" if wbytes else ""  # weight bytes streamed per second by ninestep
        rows.append(f"| {op} | {shape} | {fmt(mo)} | {fmt(mn)} | {mn / mo:.2f}x | {gbs} |")
        out.append({"op": op, "shape": shape, "ninestep_s": mo, "numpy_s": mn, "ratio": mn / mo,
                    "weight_bytes": wbytes[0] if wbytes else None})
        print(rows[-1], file=sys.stderr)
    info = ninestep.cpu_info()
    print(f"\n{a.threads} threads, isa {info['isa']}, median of {a.rounds} alternating blocks of {BLOCK} calls "
          f"(each after a {IDLE} s pause and {WARM * 1e3:.0f} ms of untimed calls), NumPy {np.__version__}")
    print("| op | shape | ninestep | NumPy | NumPy / ninestep | ninestep weight GB/s |\n|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threads": a.threads, "isa": info["isa"], "rounds": a.rounds, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
