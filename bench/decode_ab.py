"""A/B of two ninestep builds on whole-model decode (and, with --prefill, a 512-token prefill): each
build loads the model in its own subprocesses, the builds alternating run by run (bench/ab_builds.py)
so a shared machine's drifting load falls on both alike. Prints each build's median tok/s and the
median of the run-by-run ratios.

    python bench/decode_ab.py --before /path/to/before/python --after python [--model smollm2-135m]
                              [--runs 8] [--tokens 64] [--threads 2] [--prefill]

Each path is a directory holding the `ninestep` package (with its _core*.so)."""
import argparse
import json
import os
import statistics
import sys

from ab_builds import add_ab_arguments, alternate


def worker(model_name, threads, tokens, prefill):
    """One build, in this process: {"decode": [tok/s of each of 3 generations]} (and "prefill")."""
    import ninestep
    from ninestep import hub
    from ninestep.benchmark import decode_tokens_per_second, prefill_seconds, prompt_ids

    path = model_name if os.path.exists(model_name) else hub.path(model_name)
    model = ninestep.load(path, n_ctx=1024, n_threads=threads)
    decode_tokens_per_second(model, 8)  # warm-up
    res = {"decode": [decode_tokens_per_second(model, tokens) for _ in range(3)]}
    if prefill:
        ids = prompt_ids(model.tokenizer, 512)
        res["prefill"] = [len(ids) / prefill_seconds(model, ids) for _ in range(2)]
    print(json.dumps(res))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_ab_arguments(ap, runs=8)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prefill", action="store_true", help="also a 512-token prefill per run")
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.model, a.threads, a.tokens, a.prefill)
    wargs = ["--worker", "--model", a.model, "--tokens", str(a.tokens), "--threads", str(a.threads),
             "--before", "-", "--after", "-"] + (["--prefill"] if a.prefill else [])
    got = alternate(__file__, [("before", a.before), ("after", a.after)], a.runs, a.threads, wargs)
    for case in got["after"]:
        b, f = got["before"][case], got["after"][case]
        per = len(b) // a.runs
        runs_b = [statistics.median(b[i * per:(i + 1) * per]) for i in range(a.runs)]
        runs_f = [statistics.median(f[i * per:(i + 1) * per]) for i in range(a.runs)]
        ratio = statistics.median(y / x for x, y in zip(runs_b, runs_f))
        print(f"{a.model} {case}, {a.threads} threads: before {statistics.median(b):.1f} tok/s, after "
              f"{statistics.median(f):.1f} tok/s; after / before median of {a.runs} run pairs {ratio:.3f}x "
              f"(runs before {', '.join(f'{x:.0f}' for x in runs_b)}; after {', '.join(f'{x:.0f}' for x in runs_f)})")


if __name__ == "__main__":
    main()
