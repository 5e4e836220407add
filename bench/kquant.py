"""K-quant matmul at the real models' shapes: decode GEMV in GB/s of weight bytes against this
machine's read bandwidth, prefill-512 in GFLOP/s, NumPy's float32 matmul of the same
(dequantized) matrix alongside.

    python bench/kquant.py [--threads 2] [--rounds 9] [--json bench/results/kquant.json]

The bandwidth is bench/read_bandwidth.c (compiled here with cc): the threads sum a 512 MB buffer
with 256-bit loads in 4 MB steps; its median step is compared with the GEMV's median call, its
best step with the best call. "cold" GEMV rows rotate through copies of the matrix totalling
512 MB (more than the L3, and than a host cache behind a VM's), so every call streams its weights
from DRAM as a decode step does; "hot" rows repeat one matrix (L2/L3-resident). Weights are the
models' own tensors when the GGUFs are on disk, else random ones of the same type and shape.
ninestep and NumPy alternate in blocks of 5 calls with a pause before each block (kernels.py
explains why); medians, and the best call (on a shared machine the median mostly measures how
much CPU the other processes left)."""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bandwidth import compile_probe, read_bandwidth

HERE = Path(__file__).parent
GEMMA, QWEN = "gemma3-270m", "qwen2.5-coder-0.5b"  # ninestep.hub names
# (label, file, tensor, kind, k, n): y [m, n] = x [m, k] @ W^T
CASES = [
    ("Gemma attn_output", GEMMA, "blk.0.attn_output.weight", "q4_k", 1024, 640),
    ("Gemma ffn_down", GEMMA, "blk.0.ffn_down.weight", "q6_k", 2048, 640),
    ("Qwen ffn_down", QWEN, "blk.0.ffn_down.weight", "q6_k", 4864, 896),
    ("Qwen ffn_down", QWEN, "blk.11.ffn_down.weight", "q4_k", 4864, 896),
]
BLOCK, IDLE = 5, 0.2


def weights(label, path, name, kind, k, n, rng):
    import numpy as np

    import ninestep
    from ninestep.formats.gguf import GGUFFile

    from ninestep import hub

    try:
        path = hub.path(path, progress=False)
    except FileNotFoundError:  # its packages are not installed: random weights of the same shape
        path = None
    if path is not None:
        f = GGUFFile(str(path))
        t = f.tensors[name]
        assert t.kind == kind and t.shape == (n, k), (t.kind, t.shape)
        return ninestep.QuantizedTensor(np.array(f.raw(name)).reshape(n, -1), kind, (n, k)), "model"
    return ninestep.quantize(rng.standard_normal((n, k)).astype(np.float32), kind), "random"


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(ours, theirs, rounds):
    for _ in range(2):
        ours(), theirs()
    t_ours, t_np = [], []
    for _ in range(rounds):
        for fn, times in ((ours, t_ours), (theirs, t_np)):
            time.sleep(IDLE)
            fn()
            times.extend(timed(fn) for _ in range(BLOCK))
    return statistics.median(t_ours), statistics.median(t_np), min(t_ours)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9, help="blocks per side")
    ap.add_argument("--json", default="bench/results/kquant.json")
    a = ap.parse_args(argv)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import numpy as np

    import ninestep
    from ninestep import QuantizedTensor, ops

    ninestep.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        bw_best, bw = read_bandwidth(compile_probe(d), a.threads, rounds=3)
    rng = np.random.default_rng(0)
    rows, out = [], []
    for label, path, name, kind, k, n in CASES:
        q, src = weights(label, path, name, kind, k, n, rng)
        wd = q.dequantize()
        x1 = rng.standard_normal((1, k)).astype(np.float32)
        copies = [QuantizedTensor(q.data.copy(), kind, q.shape) for _ in range(max(1, 512 * 2**20 // q.nbytes + 1))]
        wds = [wd.copy() for _ in range(max(1, 512 * 2**20 // wd.nbytes + 1))]
        it, itd = iter(()), iter(())

        def cold():
            nonlocal it
            w = next(it, None)
            if w is None:
                it = iter(copies)
                w = next(it)
            ops.matmul(x1, w)

        def cold_np():
            nonlocal itd
            w = next(itd, None)
            if w is None:
                itd = iter(wds)
                w = next(itd)
            x1 @ w.T

        for mode, ours, theirs in (("hot", lambda: ops.matmul(x1, q), lambda: x1 @ wd.T), ("cold", cold, cold_np)):
            mo, mn, best = alternate(ours, theirs, a.rounds)
            gbs, gbs_best = q.nbytes / mo / 1e9, q.nbytes / best / 1e9
            rows.append(f"| {label} {kind} ({src}) | 1x{k}x{n} {mode} | {mo * 1e6:.0f} µs | {gbs:.1f} GB/s "
                        f"({gbs / bw:.0%}) | {gbs_best:.1f} GB/s ({gbs_best / bw_best:.0%}) | {mn * 1e6:.0f} µs |")
            out.append({"case": f"{label} {kind}", "m": 1, "k": k, "n": n, "mode": mode, "ninestep_s": mo,
                        "ninestep_best_s": best, "numpy_f32_s": mn, "weight_GBps": gbs, "weight_GBps_best": gbs_best,
                        "read_bandwidth_GBps": bw, "read_bandwidth_best_GBps": bw_best})
            print(rows[-1], file=sys.stderr)
        del copies, wds
        x = rng.standard_normal((512, k)).astype(np.float32)
        mo, mn, best = alternate(lambda: ops.matmul(x, q), lambda: x @ wd.T, max(3, a.rounds // 3))
        gf, gf_best = 2 * 512 * k * n / mo / 1e9, 2 * 512 * k * n / best / 1e9
        rows.append(f"| {label} {kind} ({src}) | 512x{k}x{n} | {mo * 1e3:.2f} ms | {gf:.0f} GFLOP/s | "
                    f"{gf_best:.0f} GFLOP/s | {mn * 1e3:.2f} ms ({2 * 512 * k * n / mn / 1e9:.0f} GFLOP/s) |")
        out.append({"case": f"{label} {kind}", "m": 512, "k": k, "n": n, "ninestep_s": mo, "ninestep_best_s": best,
                    "numpy_f32_s": mn, "GFLOPs": gf, "GFLOPs_best": gf_best})
        print(rows[-1], file=sys.stderr)
    info = ninestep.cpu_info()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\n{cpu}, {a.threads} threads, isa {info['isa']}, read bandwidth {bw:.1f} GB/s median, {bw_best:.1f} best "
          f"(bench/read_bandwidth.c), medians of {a.rounds} alternating blocks of {BLOCK} calls, NumPy {np.__version__}")
    print("| weights | m x k x n | ninestep median | weight stream (of bandwidth) / compute | best call | "
          "NumPy f32 (dequantized) |\n|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu": cpu, "threads": a.threads, "isa": info["isa"], "read_bandwidth_GBps": bw,
                                "read_bandwidth_best_GBps": bw_best, "rows": out}, indent=1))


if __name__ == "__main__":
    main()
