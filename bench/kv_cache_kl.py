"""What an f16 or q8_0 KV cache changes: KL(f32 cache || other cache) of the next-token
distributions, teacher-forced over the token ids of each model's committed golden file (real text,
a few hundred tokens), plus top-1 agreement and each cache's KL against the reference logits of
the golden file (HF transformers on the same GGUF, top-128 buckets: see tests/goldens/metrics.py).

    python bench/kv_cache_kl.py [--models smollm2-135m,gemma3-270m,qwen2.5-coder-0.5b] [--threads 2]
                                [--json bench/results/kv_cache_kl.json]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import ninestep  # noqa: E402
from ninestep import hub  # noqa: E402
from goldens import metrics  # noqa: E402

GOLDENS = {"smollm2-135m": "smollm2_goldens.npz", "gemma3-270m": "gemma3_goldens.npz",
           "qwen2.5-coder-0.5b": "qwen2_goldens.npz"}


def full_kl(ref_logits, logits):
    # mean over positions of KL(ref || cand) over the whole vocabulary, in nats
    p, q = metrics.log_softmax(ref_logits), metrics.log_softmax(logits)
    return float(np.mean(np.sum(np.exp(p) * (p - q), axis=-1)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(GOLDENS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench/results/kv_cache_kl.json")
    a = ap.parse_args(argv)
    rows, out = [], []
    for name in a.models.split(","):
        golden = dict(np.load(ROOT / "tests" / "goldens" / GOLDENS[name]))
        ids = golden["ids"].tolist()
        logits = {}
        for kv in ("f32", "f16", "q8_0"):
            with ninestep.load(hub.path(name), n_ctx=len(ids), n_threads=a.threads, kv_cache=kv) as m:
                logits[kv] = m.logits(ids)
        ref = logits["f32"]
        for kv in ("f32", "f16", "q8_0"):
            r = {"model": name, "kv_cache": kv, "tokens": len(ids),
                 "kl_vs_f32": full_kl(ref, logits[kv]) if kv != "f32" else 0.0,
                 "max_kl_vs_f32": float(np.max(np.sum(np.exp(metrics.log_softmax(ref)) * (
                     metrics.log_softmax(ref) - metrics.log_softmax(logits[kv])), axis=-1))),
                 "top1_vs_f32": float(np.mean(ref.argmax(-1) == logits[kv].argmax(-1))),
                 "kl_vs_reference": float(metrics.mean_kl(golden, logits[kv])),
                 "top1_vs_reference": float(metrics.top1_agreement(golden, logits[kv]))}
            out.append(r)
            ref_kl = f"{r['kl_vs_reference']:.5f} | {100 * r['top1_vs_reference']:.2f}%"
            rows.append(f"| {name} | {kv} | {r['tokens']} | {r['kl_vs_f32']:.2e} | {r['max_kl_vs_f32']:.2e} | "
                        f"{100 * r['top1_vs_f32']:.2f}% | {ref_kl} |")
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"\nteacher-forced over each golden file's ids, {a.threads} threads, isa {ninestep.cpu_info()['isa']}")
    print("| model | KV cache | tokens | mean KL vs f32 cache (nats) | max KL | top-1 = f32's | KL vs reference | top-1 vs reference |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    path = ROOT / a.json if not Path(a.json).is_absolute() else Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threads": a.threads, "results": out, "command": " ".join(sys.argv)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
