"""Where a batched decode step's time goes, without the server: `model.generate([N prompts])` (greedy,
ignore_eos) for each N of --streams, total decode tokens/s (median of --rounds), the wall time per
engine step inside and outside the C++ call (outside = the scheduler, sampling, stop scanning and
detokenizing of every stream), and with NINESTEP_PROFILE=1 (set here) the engine's per-phase wall
time per step (thread 0's view, barriers included).

    python bench/batch_profile.py [--streams 1 8] [--tokens 64] [--threads 2] [--rounds 3]"""
import argparse
import os
import statistics
import time

os.environ.setdefault("NINESTEP_PROFILE", "1")

from ninestep.benchmark import STREAM_PROMPTS  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    import ninestep
    from ninestep import hub

    path = a.model if os.path.exists(a.model) else hub.path(a.model)
    model = ninestep.load(path, n_ctx=1024, n_threads=a.threads, n_seq=max(a.streams))
    engine = model._engine
    inner = {"seconds": 0.0, "steps": 0}
    step = engine.step

    def timed(batch):
        t = time.perf_counter()
        try:
            return step(batch)
        finally:
            inner["seconds"] += time.perf_counter() - t
            inner["steps"] += 1

    engine.step = timed
    for n in a.streams:
        prompts = [STREAM_PROMPTS[i % len(STREAM_PROMPTS)] for i in range(n)]
        speeds, rows = [], []
        for r in range(a.rounds + 1):
            model.reset()
            inner.update(seconds=0.0, steps=0)
            before = dict(engine.profile())
            t0 = time.perf_counter()
            cs = model.generate(prompts, max_new_tokens=a.tokens, temperature=0, ignore_eos=True)
            wall = time.perf_counter() - t0
            after = dict(engine.profile())
            if r == 0:
                continue  # warm-up
            # decode: from the last first token to the end (every stream decoding), as bench/serve.py
            decode = min(c.stats.decode_seconds for c in cs)
            speeds.append(sum(c.stats.new_tokens - 1 for c in cs) / decode if decode > 0 else 0.0)
            steps = inner["steps"]
            rows.append({"step": inner["seconds"] / steps, "outside": (wall - inner["seconds"]) / steps,
                         **{k: (after[k] - before.get(k, 0.0)) / steps for k in after}})
        mid = rows[len(rows) // 2]
        print(f"{n} streams: decode {statistics.median(speeds):.1f} tok/s total (median of {a.rounds}: "
              f"{', '.join(f'{s:.1f}' for s in speeds)}), {a.threads} threads, load {os.getloadavg()[0]:.2f}")
        print(f"  per step: engine.step {mid['step'] * 1e3:.2f} ms, outside it {mid['outside'] * 1e3:.2f} ms "
              f"(prefill step included)")
        for k, v in sorted(((k, v) for k, v in mid.items() if k not in ("step", "outside")), key=lambda kv: -kv[1]):
            if v > 0:
                print(f"  {k:>14}: {v * 1e3:6.3f} ms/step")


if __name__ == "__main__":
    main()
