"""Time the sampler per token on a real model's next-token logits: the default filters
(temperature 0.8, top-k 40, top-p 0.95, min-p 0.05), temperature alone (the OpenAI API's default),
top-p alone, and greedy; median of --rounds blocks of 200 draws. --pythonpath runs another build's
ninestep (e.g. a copy of python/ before a change) for a side-by-side figure.

    python bench/sampler.py [--models smollm2-135m gemma3-270m] [--rounds 5] [--pythonpath DIR]"""
import argparse
import statistics
import sys
import time

PATHS = {
    "defaults": dict(),
    "temperature 1": dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0),
    "top-p 0.9": dict(temperature=1.0, top_k=0, top_p=0.9, min_p=0.0),
    "greedy": dict(temperature=0.0),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pythonpath", help="import ninestep from here")
    a = ap.parse_args(argv)
    if a.pythonpath:
        sys.path.insert(0, a.pythonpath)
    import numpy as np

    import ninestep
    from ninestep import hub
    from ninestep.sampling import Sampler, SamplingParams

    print(f"ninestep from {ninestep.__file__}; isa {ninestep.cpu_info()['isa']}")
    print("| model | vocabulary | path | us per token |\n|---|---:|---|---:|")
    for name in a.models:
        with ninestep.load(hub.path(name), n_ctx=256, n_threads=2) as m:
            ids = m.tokenizer.encode("The history of the Roman Empire began when")
            x = np.ascontiguousarray(m.logits(ids)[-1], dtype=np.float32)
        for path, kw in PATHS.items():
            s = Sampler(SamplingParams(**kw), seed=1)
            for _ in range(20):
                s(x)
            times = []
            for _ in range(a.rounds):
                t = time.perf_counter()
                for _ in range(200):
                    s(x)
                times.append((time.perf_counter() - t) / 200)
            print(f"| {name} | {x.size} | {path} | {statistics.median(times) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
