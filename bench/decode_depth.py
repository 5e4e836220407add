"""Decode speed and the share of each forward phase after N tokens of context, per KV cache type.

    NINESTEP_PROFILE=1 python bench/decode_depth.py [--model NAME|PATH] [--depths 0,2048,4096]
                       [--kv-cache f16,f32] [--new-tokens 64] [--rounds 3] [--threads 2]

For each depth a prompt of that many tokens is prefilled (not timed), then --new-tokens greedy
tokens are decoded; tok/s is the median over rounds. With NINESTEP_PROFILE=1 (set it before the
model loads) the phase times of the decode steps alone are summed and printed as shares of the
step, so "attention" is decode attention at that depth."""
import argparse
import os
import statistics
import sys
import time

import ninestep
from ninestep.benchmark import prompt_ids
from ninestep.loader import default_model_path, resolve


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--depths", default="0,2048,4096")
    ap.add_argument("--kv-cache", default="f16,f32")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    path = resolve(a.model) if a.model else default_model_path()
    depths = [int(d) for d in a.depths.split(",")]
    profiling = os.environ.get("NINESTEP_PROFILE", "0") not in ("", "0")
    print(f"model {path.name}, {a.threads} threads, isa {ninestep.cpu_info()['isa']}, {a.new_tokens} new tokens, "
          f"median of {a.rounds}" + ("" if profiling else " (set NINESTEP_PROFILE=1 for phase shares)"))
    print("| kv cache | depth | decode tok/s | attention share | phases (share of decode) |\n|---|---:|---:|---:|---|")
    for kv in a.kv_cache.split(","):
        m = ninestep.load(path, n_ctx=max(depths) + a.new_tokens + 8, n_threads=a.threads, kv_cache=kv)
        for depth in depths:
            ids = prompt_ids(m.tokenizer, depth) if depth else m.tokenizer.encode("Once upon a time")
            rates, phases = [], {}
            for _ in range(a.rounds):
                m.reset()
                m.generate(ids, max_new_tokens=1, temperature=0, ignore_eos=True)  # the prefill, not timed
                before = m._engine.profile()
                last = m.generate(ids + [0], max_new_tokens=a.new_tokens, temperature=0, ignore_eos=True)
                rates.append(last.stats.new_tokens / last.stats.decode_seconds)
                after = m._engine.profile()
                for k in after:
                    phases[k] = phases.get(k, 0.0) + after[k] - before[k]
            total = sum(phases.values())
            share = {k: v / total for k, v in phases.items()} if total > 0 else {}
            att = f"{100 * share['attention']:.1f}%" if share else ""
            detail = ", ".join(f"{k} {100 * v:.1f}%" for k, v in share.items())
            print(f"| {m.kv_cache} | {depth} | {statistics.median(rates):.1f} | {att} | {detail} |", flush=True)
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
