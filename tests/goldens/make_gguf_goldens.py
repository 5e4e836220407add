"""Writes tests/goldens/<name>_goldens.npz and <name>_greedy.json for the real K-quant GGUFs
(Gemma 3 270M, Qwen2.5-Coder 0.5B) from HF transformers, which loads each GGUF itself (dequantized to
fp32): an implementation independent of ninestep. Needs torch, transformers, gguf, accelerate:
    python3 tests/goldens/make_gguf_goldens.py PATH_TO_GGUF NAME [NAME is gemma3 | qwen2]
The same mixed text as the SmolLM2 goldens (make_smollm2_goldens.TEXT) and a dozen greedy prompts.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from make_smollm2_goldens import TEXT
from metrics import TOP_K, topk_goldens

HERE = Path(__file__).parent
GREEDY_PROMPTS = [
    "The capital of France is",
    "def add(a, b):\n    return",
    "Once upon a time, there was a",
    "The three primary colors are",
    "import numpy as np\n\nx = np.arange(10)\nprint(",
    "Water boils at a temperature of",
    "The first president of the United States was",
    "1, 2, 3, 4, 5,",
    "SELECT * FROM users WHERE",
    "The largest planet in the solar system is",
    "In 1969, the first humans landed on",
    "Roses are red, violets are",
]
GREEDY_TOKENS = 16


def main(path, name):
    path = Path(path)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
    bos = [tok.bos_token_id] if name == "gemma3" else []  # Gemma's GGUF adds BOS; Qwen's does not
    ids = bos + tok(TEXT, add_special_tokens=False).input_ids
    assert len(ids) >= 400, len(ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
    np.savez_compressed(HERE / f"{name}_goldens.npz", ids=np.array(ids, np.int32), **topk_goldens(logits))
    print(f"{len(ids)} tokens, top-{TOP_K} goldens written")
    greedy = []
    for prompt in GREEDY_PROMPTS:
        p_ids = bos + tok(prompt, add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(torch.tensor([p_ids]), max_new_tokens=GREEDY_TOKENS, do_sample=False)
        out = out[0, len(p_ids):].tolist()
        greedy.append({"prompt": prompt, "prompt_ids": p_ids, "output_ids": out, "output_text": tok.decode(out)})
        print(repr(prompt), "->", repr(tok.decode(out)))
    (HERE / f"{name}_greedy.json").write_text(
        "[\n" + ",\n".join(json.dumps(g, ensure_ascii=False) for g in greedy) + "\n]\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
