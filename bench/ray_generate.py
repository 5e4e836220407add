"""Rows/s of a Ray Data Generate job on a local cluster, side by side with the same rows through
`model.generate` in this process (no Ray).

    python bench/ray_generate.py [--model NAME|PATH] [--rows 200] [--new-tokens 32] [--batch-size 25]
                                 [--configs 1x2,2x1] [--n-seq 8] [--cpus 2] [--rounds 1] [--json OUT]

A config AxC is A actors of C CPUs each (ActorPoolStrategy(size=A), num_cpus=C, so n_threads=C).
Each job is timed from map_batches to the last row materialized, actors' model loading included
(what a user waits for); "in-process" is model.generate over the same batches with --cpus threads.
Prompts are one-turn chats (the instruct model's template), greedy, with --new-tokens at most;
rows/s and generated tokens/s are printed. Configs run alternately within each round.
"""
import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np

THINGS = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Peru", "Egypt", "Chile",
          "the moon", "a cat", "the ocean", "Python", "a violin", "winter", "bread", "a river", "Mars", "jazz"]
FORMS = ["What is the capital of {t}?", "Tell me one fact about {t}.", "Write a haiku about {t}.",
         "Explain {t} to a child.", "List three words that rhyme with {t}.", "Why is {t} interesting?",
         "Describe {t} in one sentence.", "What is {i} + {j}?"]


def prompts(n):
    return [FORMS[(k // len(THINGS) + k) % len(FORMS)].format(t=THINGS[k % len(THINGS)], i=k, j=3 * k + 1)
            for k in range(n)]


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown"


def ray_job(model, texts, args, actors, cpus):
    import ray.data
    from ninestep.ray import Generate

    ds = ray.data.from_items([{"prompt": t} for t in texts]).materialize()
    kwargs = dict(max_new_tokens=args.new_tokens, temperature=0, n_seq=args.n_seq)
    t0 = time.perf_counter()
    out = ds.map_batches(Generate, fn_constructor_args=(model,), fn_constructor_kwargs=kwargs,
                         batch_size=args.batch_size, num_cpus=cpus,
                         compute=ray.data.ActorPoolStrategy(size=actors)).take_all()
    dt = time.perf_counter() - t0
    assert len(out) == len(texts)
    return dt, int(sum(r["completion_tokens"] for r in out))


def in_process(model, texts, args):
    import ninestep
    from ninestep.ray import Generate

    t0 = time.perf_counter()
    g = Generate(model, max_new_tokens=args.new_tokens, temperature=0, n_seq=args.n_seq, n_threads=args.cpus)
    tokens = 0
    for s in range(0, len(texts), args.batch_size):
        part = np.empty(len(texts[s:s + args.batch_size]), dtype=object)
        part[:] = texts[s:s + args.batch_size]
        tokens += int(g({"prompt": part})["completion_tokens"].sum())
    dt = time.perf_counter() - t0
    g.model.close()
    ninestep.set_num_threads(args.cpus)
    return dt, tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--n-seq", type=int, default=8)
    ap.add_argument("--configs", default="1x2,2x1", help="AxC: A actors of C CPUs, comma-separated")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (and in-process threads)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-in-process", action="store_true")
    ap.add_argument("--json", help="write every sample here")
    args = ap.parse_args()

    import ray
    import ray.data
    from ninestep.loader import resolve

    model = str(resolve(args.model))  # assembled once here, not by every actor
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    texts = prompts(args.rows)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    names = [f"ray {a} actor{'s' if a > 1 else ''} x {c} CPU" for a, c in configs] + \
            ([] if args.no_in_process else [f"in-process, {args.cpus} threads"])
    samples = {n: [] for n in names}
    for r in range(args.rounds):
        order = list(range(len(names)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            if i < len(configs):
                dt, tokens = ray_job(model, texts, args, *configs[i])
            else:
                dt, tokens = in_process(model, texts, args)
            samples[names[i]].append({"seconds": dt, "tokens": tokens})
            print(f"  round {r + 1} {names[i]}: {dt:.1f} s, {args.rows / dt:.2f} rows/s, {tokens / dt:.1f} tok/s",
                  flush=True)
    ray.shutdown()
    print(f"\n{args.rows} rows, <= {args.new_tokens} new tokens, batch {args.batch_size}, n_seq {args.n_seq}; "
          f"CPU: {cpu_name()}; Ray {ray.__version__}")
    for n in names:
        best = min(samples[n], key=lambda s: s["seconds"])
        print(f"{n:28s} {args.rows / best['seconds']:7.2f} rows/s  {best['tokens'] / best['seconds']:7.1f} tok/s "
              f"(best of {len(samples[n])}, {best['seconds']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "cpu": cpu_name(), "ray": ray.__version__, "samples": samples}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
