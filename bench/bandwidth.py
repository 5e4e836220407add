"""The decode roofline of this machine for a GGUF model: how fast decode could be if every step
only read its bytes at the machine's read bandwidth, and how close ninestep's decode comes.

    python bench/bandwidth.py [--model PATH|NAME] [--threads 2] [--depth 0] [--kv-bytes 4]
                              [--rounds 5] [--no-decode] [--json bench/results/bandwidth.json]

Read bandwidth: bench/read_bandwidth.c (compiled here with cc), T threads sum a 512 MB buffer
with 256-bit loads in 4 MB steps, each timed on its own; the median step is the figure (the best
step is printed too). Bytes per decode token: every tensor of the file once, except the token
embedding table, of which a step reads one row unless the model has no output.weight (then the
table is the tied LM head and is read whole), plus the KV cache at --depth positions
(2 x layers x kv_dim x depth x --kv-bytes). Decode: ninestep greedy tokens after a short prompt
(as bench/compare.py). The probe and the decode alternate, --rounds pairs, so a host whose
bandwidth drifts moves both sides of a pair alike; the fraction of the roofline is the median of
the pairs' fractions (each pair's decode over the roofline at that pair's probe)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def read_bandwidth(exe, threads, mb=512, rounds=1):
    """(best, median) read bandwidth in GB/s (10^9 bytes/s) of `threads` threads, by the probe `exe`
    (compile_probe)."""
    out = subprocess.run([str(exe), str(mb), str(rounds), str(threads)], check=True, capture_output=True, text=True)
    best, median = map(float, out.stdout.split())
    return best, median


def compile_probe(folder):
    exe = Path(folder) / "rb"
    subprocess.run(["cc", "-O2", "-mavx2", "-fopenmp", str(HERE / "read_bandwidth.c"), "-o", str(exe)], check=True)
    return exe


def bytes_per_token(path, depth=0, kv_bytes=4):
    """(weight bytes, KV-cache bytes) one decode step reads from the GGUF at `path`."""
    from ninestep.formats.gguf import GGUFFile

    f = GGUFFile(path)
    try:
        tensors = f.tensors
        weights = 0
        for name, t in tensors.items():
            if name == "token_embd.weight" and "output.weight" in tensors:
                weights += t.nbytes // t.shape[0]  # one row looked up
            else:
                weights += t.nbytes
        arch = f.metadata["general.architecture"]
        n_layers = int(f.metadata[f"{arch}.block_count"])
        n_head = int(f.metadata[f"{arch}.attention.head_count"])
        n_kv = int(f.metadata.get(f"{arch}.attention.head_count_kv", n_head))
        d = int(f.metadata[f"{arch}.embedding_length"])
        head_dim = int(f.metadata.get(f"{arch}.attention.key_length", d // n_head))
    finally:
        f.close()
    return weights, 2 * n_layers * n_kv * head_dim * depth * kv_bytes


def decode_speed(model, ids, new_tokens=64):
    """ninestep's greedy decode tokens/s after the prompt `ids`."""
    model.reset()
    c = model.generate(ids, max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
    return c.stats.new_tokens / c.stats.decode_seconds


def main(argv=None):
    import ninestep
    from compare import _cpu_name as cpu_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="GGUF file or ninestep.hub name (default: the default model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=0, help="positions already in the KV cache")
    ap.add_argument("--kv-bytes", type=float, default=4.0, help="bytes per cached K/V element (f32: 4, f16: 2)")
    ap.add_argument("--rounds", type=int, default=5, help="probe / decode pairs")
    ap.add_argument("--no-decode", action="store_true", help="print the roofline only")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    path = ninestep.loader.resolve(a.model) if a.model else ninestep.loader.default_model_path()
    path = str(path)

    from ninestep.benchmark import prompt_ids

    wbytes, kvbytes = bytes_per_token(path, a.depth, a.kv_bytes)
    total = wbytes + kvbytes
    model = None
    if not a.no_decode:
        model = ninestep.load(path, n_ctx=max(1024, a.depth + 128), n_threads=a.threads)
        ids = prompt_ids(model.tokenizer, max(a.depth, 16))
        decode_speed(model, ids, 16)  # warm-up
    probes, speeds = [], []
    with tempfile.TemporaryDirectory() as d:
        exe = compile_probe(d)
        for r in range(a.rounds):
            probes.append(read_bandwidth(exe, a.threads))
            if model is not None:
                speeds.append(decode_speed(model, ids))
                print(f"  pair {r + 1}: read {probes[-1][1]:.1f} GB/s, decode {speeds[-1]:.1f} tok/s = "
                      f"{speeds[-1] * total / (probes[-1][1] * 1e9):.0%} of that roofline", flush=True)
    if model is not None:
        model.close()
    median = statistics.median(p[1] for p in probes)
    best = max(p[0] for p in probes)
    roof = median * 1e9 / total
    print(f"{os.path.basename(path)}, {a.threads} threads, {cpu_name()}, {time.strftime('%Y-%m-%d')}")
    print(f"read bandwidth: median {median:.1f} GB/s over {a.rounds} probes (best step {best:.1f})")
    print(f"bytes per decode token: {wbytes / 1e6:.1f} MB weights + {kvbytes / 1e6:.1f} MB KV cache "
          f"(depth {a.depth})")
    print(f"roofline: {roof:.0f} tok/s at the median bandwidth ({best * 1e9 / total:.0f} at the best step)")
    result = dict(model=os.path.basename(path), threads=a.threads, cpu=cpu_name(), read_gbs_median=median,
                  read_gbs_best=best, read_gbs_probes=[p[1] for p in probes], weight_bytes=wbytes, kv_bytes=kvbytes,
                  depth=a.depth, roofline_tok_s=roof)
    if speeds:
        med = statistics.median(speeds)
        frac = statistics.median(s * total / (p[1] * 1e9) for s, p in zip(speeds, probes))
        print(f"ninestep decode: {med:.1f} tok/s (median of {a.rounds}), {med * total / 1e9:.1f} GB/s; "
              f"median of the pairs' fractions: {frac:.0%} of the roofline")
        result.update(decode_tok_s=speeds, decode_fraction=frac)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
