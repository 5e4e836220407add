"""A/B of two ninestep builds on the decode GEMV (one activation row) at the real models' weights:
every weight type the three GGUFs use, at their own shapes, streamed from DRAM (rotating copies
totalling --mb MB, as a decode step meets them) and hot (one matrix repeated, in cache). The builds
run in alternating subprocesses (a shared machine's load drifts; alternation spreads it over both);
the table has medians over all of each build's calls as weight GB/s (10^9 bytes/s).

    python bench/gemv_ab.py --before /path/to/before/python --after python [--runs 4] [--threads 2]
    python bench/gemv_ab.py --after python            # one build only

Each path is a directory holding the `ninestep` package (with its _core*.so)."""
import argparse
import json
import statistics
import sys

from ab_builds import add_ab_arguments, alternate, time_calls

CASES = [  # (label, hub name, tensor)
    ("smol ffn_gate", "smollm2-135m", "blk.0.ffn_gate.weight"),
    ("smol ffn_down", "smollm2-135m", "blk.0.ffn_down.weight"),
    ("smol attn_q", "smollm2-135m", "blk.0.attn_q.weight"),
    ("smol lm_head", "smollm2-135m", "token_embd.weight"),
    ("gemma ffn_gate", "gemma3-270m", "blk.0.ffn_gate.weight"),
    ("gemma attn_output", "gemma3-270m", "blk.0.attn_output.weight"),
    ("gemma ffn_down", "gemma3-270m", "blk.0.ffn_down.weight"),
    ("qwen ffn_gate", "qwen2.5-coder-0.5b", "blk.0.ffn_gate.weight"),
    ("qwen ffn_down", "qwen2.5-coder-0.5b", "blk.0.ffn_down.weight"),
    ("qwen lm_head", "qwen2.5-coder-0.5b", "output.weight"),
]


def worker(threads, calls, mb, match):
    import numpy as np

    import ninestep
    from ninestep import QuantizedTensor, hub, ops
    from ninestep.formats.gguf import GGUFFile

    ninestep.set_num_threads(threads)
    rng = np.random.default_rng(0)
    res = {}
    for label, model, name in CASES:
        if match not in label:
            continue
        f = GGUFFile(hub.path(model))
        t = f.tensors[name]
        n, k = t.shape
        raw = np.array(f.raw(name)).reshape(n, -1)
        f.close()
        ncopy = max(2, mb * 2**20 // raw.nbytes + 1)
        copies = [QuantizedTensor(raw.copy(), t.kind, (n, k)) for _ in range(ncopy)]
        x = rng.standard_normal((1, k)).astype(np.float32)
        key = f"{label} {t.kind} {n}x{k}"
        for mode, pick in (("cold", lambda i: copies[i % ncopy]), ("hot", lambda i: copies[0])):
            reps = calls if raw.nbytes < 8 * 2**20 else max(10, calls // 10)
            ts = time_calls(lambda i: ops.matmul(x, pick(i)), reps, warm=3)
            res[f"{key} {mode}"] = [raw.nbytes / s / 1e9 for s in ts]
        del copies
    json.dump(res, sys.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ab_arguments(ap, runs=4, before_required=False)
    ap.add_argument("--calls", type=int, default=300, help="GEMV calls per case and run (big matrices: a tenth)")
    ap.add_argument("--mb", type=int, default=256, help="MB of rotating copies for the cold case")
    ap.add_argument("--match", default="", help="only the cases whose label contains this text")
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.threads, a.calls, a.mb, a.match)
    builds = [("before", a.before), ("after", a.after)] if a.before else [("after", a.after)]
    gbs = alternate(__file__, builds, a.runs, a.threads, ["--worker", "--after", "-", "--calls", str(a.calls), "--mb",
                                                          str(a.mb), "--threads", str(a.threads), "--match", a.match])
    if a.before:
        print("| case | before GB/s | after GB/s | after / before |\n|---|---:|---:|---:|")
        for case in gbs["before"]:
            b, f = statistics.median(gbs["before"][case]), statistics.median(gbs["after"][case])
            print(f"| {case} | {b:.2f} | {f:.2f} | {f / b:.2f} |")
    else:
        print("| case | GB/s median | GB/s best |\n|---|---:|---:|")
        for case, v in gbs["after"].items():
            print(f"| {case} | {statistics.median(v):.2f} | {max(v):.2f} |")


if __name__ == "__main__":
    main()
