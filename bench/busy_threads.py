"""Decode speed beside N busy processes: ninestep at its default thread setting and at fixed thread
counts, optionally another build of ninestep (an A/B against main) and llama-bench, alternating.

    python bench/busy_threads.py [--busy 0,1] [--rounds 5] [--new-tokens 128]
                                 [--base /path/with/ninestep/package] [--llama-bench PATH]

Every sample is a fresh process (so a build's _core*.so can be swapped by PYTHONPATH) that loads
the model, warms up and times --new-tokens greedy tokens after a short prompt (end-of-sequence
ignored); the busy-loop processes (ninestep.busy) run for the whole of each --busy setting, llama-bench
samples see the same load. The order of the configurations rotates every round; prints medians, the
samples and the 1-minute load average before each round.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from ninestep.busy import busy_processes, cpu_load  # noqa: E402

CHILD = """
import sys, json, ninestep
model = ninestep.load(sys.argv[1], n_ctx=512, n_threads=int(sys.argv[2]) if sys.argv[2] != '0' else None)
n = int(sys.argv[3])
model.generate("Once upon a time", max_new_tokens=16, temperature=0, ignore_eos=True)  # warm-up
tps = []
for _ in range(2):
    model.reset()
    c = model.generate("Once upon a time", max_new_tokens=n, temperature=0, ignore_eos=True)
    tps.append(c.stats.decode_tokens_per_second)
print(json.dumps(max(tps)))
"""


def ninestep_sample(pythonpath, model, threads, n, env_extra):
    env = dict(os.environ, PYTHONPATH=pythonpath, **env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(threads), str(n)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def llama_sample(exe, model, threads, n):
    out = subprocess.run([exe, "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(n), "-r", "1", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)[0]["avg_ts"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="GGUF (default: SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("--busy", default="0,1", help="comma-separated busy-process counts (default: 0,1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", default="0,1,2", help="ninestep thread settings; 0 = default (default: 0,1,2)")
    ap.add_argument("--base", help="PYTHONPATH of another ninestep build to compare at its default setting")
    ap.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH"), help="llama-bench binary")
    ap.add_argument("--llama-threads", default="1,2")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from ninestep.loader import default_model_path, resolve

    model = resolve(a.model) if a.model else default_model_path()
    mine = str(HERE.parent / "python")
    configs = []
    for t in a.threads.split(","):  # fixed counts: the thread tuner off (NINESTEP_THREAD_TUNING=off)
        label = "ninestep default" if t == "0" else f"ninestep -t {t} fixed"
        env = {} if t == "0" else {"NINESTEP_THREAD_TUNING": "off"}
        configs.append((label, lambda t=t, env=env: ninestep_sample(mine, model, t, a.new_tokens, env)))
    if a.base:
        configs.append(("base default", lambda: ninestep_sample(a.base, model, "0", a.new_tokens, {})))
    if a.llama_bench:
        for t in a.llama_threads.split(","):
            configs.append((f"llama-bench -t {t}", lambda t=t: llama_sample(a.llama_bench, model, t, a.new_tokens)))
    results = {}
    for busy in [int(b) for b in a.busy.split(",")]:
        samples = {name: [] for name, _ in configs}
        loads = []
        with busy_processes(busy):
            for r in range(a.rounds):
                loads.append(cpu_load())
                order = configs[r % len(configs):] + configs[:r % len(configs)]
                for name, run in order:
                    samples[name].append(run())
                print(f"busy {busy} round {r + 1}/{a.rounds} (load {loads[-1]:.2f}): "
                      + ", ".join(f"{n} {v[-1]:.1f}" for n, v in samples.items()), file=sys.stderr, flush=True)
        med = {n: statistics.median(v) for n, v in samples.items()}
        results[busy] = {"medians": med, "samples": samples, "loads": loads}
        best = max(v for n, v in med.items() if n.startswith("ninestep -t"))
        print(f"\n--busy {busy}: decode {a.new_tokens} tok/s, median of {a.rounds} alternating rounds, "
              f"1-min load {min(loads):.2f}-{max(loads):.2f} before the rounds")
        for n, v in med.items():
            extra = f"  ({v / best:.2f}x best fixed ninestep)" if n.startswith(("ninestep", "base")) else ""
            print(f"  {n:22s} {v:7.1f}{extra}")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": str(model), "results": results, "argv": sys.argv}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
