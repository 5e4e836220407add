"""Decode speed and where a decode step's time goes: greedy tokens after a short prompt, tokens/s
(median of --rounds) and, with NINESTEP_PROFILE=1 set by this script, the engine's per-phase wall
time per token (thread 0's view, barriers included) plus the time outside the C++ step.

    python bench/decode_profile.py [--model smollm2-135m] [--threads 2] [--tokens 128] [--rounds 3]"""
import argparse
import os
import statistics
import time

os.environ.setdefault("NINESTEP_PROFILE", "1")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    import ninestep
    from ninestep import hub

    path = a.model if os.path.exists(a.model) else hub.path(a.model)
    model = ninestep.load(path, n_ctx=1024, n_threads=a.threads)
    ids = model.tokenizer.encode("Once upon a time")
    speeds, prof_tok = [], None
    for r in range(a.rounds + 1):
        model.reset()
        before = dict(model._engine.profile())
        c = model.generate(ids, max_new_tokens=a.tokens, temperature=0, ignore_eos=True)
        after = dict(model._engine.profile())
        if r == 0:
            continue  # warm-up
        speeds.append(c.stats.new_tokens / c.stats.decode_seconds)
        per = {k: (after[k] - before.get(k, 0.0)) / (c.stats.new_tokens + 1) for k in after}
        per["(step wall)"] = c.stats.decode_seconds / c.stats.new_tokens
        prof_tok = per
    print(f"{a.model}: decode {statistics.median(speeds):.1f} tok/s (median of {a.rounds}: "
          f"{', '.join(f'{s:.1f}' for s in speeds)}), {a.threads} threads, load {os.getloadavg()[0]:.2f}")
    if prof_tok:
        for k, v in prof_tok.items():
            print(f"  {k:>14}: {v * 1e3:6.3f} ms/token")


if __name__ == "__main__":
    main()
