"""A/B of two ninestep builds on the K-quant matmul at the real models' Q6_K ffn_down shapes:
decode GEMV (hot: one matrix repeated; cold: rotating copies totalling 256 MB, streamed from DRAM)
and the 512-row prefill GEMM. The builds run in alternating subprocesses (a shared machine's load
drifts; alternation spreads it over both), medians over all of each build's calls.

    python bench/kquant_ab.py --before /path/to/before/python --after python [--runs 6] [--threads 2]

Each path is a directory holding the `ninestep` package (with its _core*.so)."""
import argparse
import json
import statistics
import sys

from ab_builds import add_ab_arguments, alternate, time_calls

CASES = [("Gemma ffn_down", "gemma3-270m", "blk.0.ffn_down.weight", 2048, 640),  # (label, hub name, tensor, k, n)
         ("Qwen ffn_down", "qwen2.5-coder-0.5b", "blk.0.ffn_down.weight", 4864, 896)]


def worker(threads, calls):
    """One build, in this process: {case/mode: [seconds per call]} as JSON on stdout."""
    import numpy as np

    import ninestep
    from ninestep import QuantizedTensor, hub, ops
    from ninestep.formats.gguf import GGUFFile

    ninestep.set_num_threads(threads)
    rng = np.random.default_rng(0)
    res = {}
    for label, model, name, k, n in CASES:
        f = GGUFFile(hub.path(model))
        t = f.tensors[name]
        assert t.kind == "q6_k" and t.shape == (n, k), (t.kind, t.shape)
        q = QuantizedTensor(np.array(f.raw(name)).reshape(n, -1), "q6_k", (n, k))
        f.close()
        copies = [QuantizedTensor(q.data.copy(), "q6_k", q.shape) for _ in range(256 * 2**20 // q.nbytes + 1)]
        x1 = rng.standard_normal((1, k)).astype(np.float32)
        x512 = rng.standard_normal((512, k)).astype(np.float32)
        for mode, fn, reps in (("1x%dx%d hot" % (k, n), lambda i: ops.matmul(x1, q), calls),
                               ("1x%dx%d cold" % (k, n), lambda i: ops.matmul(x1, copies[i % len(copies)]), calls),
                               ("512x%dx%d" % (k, n), lambda i: ops.matmul(x512, q), max(3, calls // 10))):
            res[f"{label} q6_k {mode}"] = time_calls(fn, reps, warm=2)
        del copies
    json.dump(res, sys.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ab_arguments(ap, runs=6)
    ap.add_argument("--calls", type=int, default=200, help="GEMV calls per run (prefill: a tenth)")
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.threads, a.calls)
    times = alternate(__file__, [("before", a.before), ("after", a.after)], a.runs, a.threads,
                      ["--worker", "--before", "-", "--after", "-", "--calls", str(a.calls), "--threads", str(a.threads)])
    print(f"| case | before median | after median | after / before | before best | after best |\n"
          f"|---|---:|---:|---:|---:|---:|")
    for case in times["before"]:
        b, f = statistics.median(times["before"][case]), statistics.median(times["after"][case])
        print(f"| {case} | {b * 1e6:.0f} µs | {f * 1e6:.0f} µs | {f / b:.2f} | "
              f"{min(times['before'][case]) * 1e6:.0f} µs | {min(times['after'][case]) * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
