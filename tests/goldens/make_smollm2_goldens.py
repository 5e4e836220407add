"""Writes tests/goldens/smollm2_goldens.npz and smollm2_greedy.json from HF transformers.

transformers loads the SmolLM2 Q4_1 GGUF itself (dequantized to fp32, Q/K rows un-permuted), so it is
an implementation independent of ninestep. Needs torch, transformers, gguf, accelerate (never test deps):
    python3 tests/goldens/make_smollm2_goldens.py
"""
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from load_gguf_for_reference import smollm2_path
from metrics import TOP_K, topk_goldens

HERE = Path(__file__).parent

# Mixed text: prose, code, a ChatML exchange, numbers, non-English (>= 450 tokens).
TEXT = """The history of the printing press begins in the middle of the fifteenth century, when Johannes \
Gutenberg combined movable metal type, oil-based ink and a wooden press adapted from wine making. \
Within fifty years, presses were running in more than two hundred European cities, and the price of \
a book fell so far that ordinary merchants could own a small library.

def fibonacci(n: int) -> list[int]:
    \"\"\"Return the first n Fibonacci numbers.\"\"\"
    seq = [0, 1]
    while len(seq) < n:
        seq.append(seq[-1] + seq[-2])
    return seq[:n]

for i, value in enumerate(fibonacci(10)):
    print(f"{i:2d}: {value}")

<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
How many days are there in a leap year, and why do we need them?<|im_end|>
<|im_start|>assistant
A leap year has 366 days instead of 365. The Earth takes about 365.2422 days to orbit the Sun, so \
every four years we add February 29 to keep the calendar aligned with the seasons. Years divisible \
by 100 are skipped unless they are also divisible by 400, which is why 2000 was a leap year but 1900 \
was not.<|im_end|>

Quarterly results: revenue rose 12.5% to $4,218,000, operating costs were 3,097,250, and the margin \
improved from 21.3% to 26.6%. The table below lists 1, 2, 3, 5, 8, 13, 21, 34, 55 and 89.

La vie est belle quand le soleil brille sur Paris. Der schnelle braune Fuchs springt über den faulen \
Hund. El conocimiento es poder, y la curiosidad es el motor del aprendizaje. 東京は日本の首都です。

SELECT name, COUNT(*) AS orders FROM customers JOIN orders ON customers.id = orders.customer_id \
GROUP BY name HAVING COUNT(*) > 3 ORDER BY orders DESC;

In conclusion, small language models can be surprisingly capable when they are trained on carefully \
filtered data, and they run comfortably on an ordinary laptop without any special hardware."""

GREEDY_PROMPTS = [
    "The capital of France is",
    "def add(a, b):\n    return",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, there was a",
]
GREEDY_TOKENS = 12


def main():
    path = smollm2_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()

    ids = tok(TEXT, add_special_tokens=False).input_ids
    assert len(ids) >= 450, len(ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
    np.savez_compressed(HERE / "smollm2_goldens.npz", ids=np.array(ids, np.int32), **topk_goldens(logits))
    print(f"{len(ids)} tokens, top-{TOP_K} goldens written")

    greedy = []
    for prompt in GREEDY_PROMPTS:
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        with torch.no_grad():  # stops early (EOS included) if the model ends the text
            out = model.generate(torch.tensor([p_ids]), max_new_tokens=GREEDY_TOKENS, do_sample=False)
        out = out[0, len(p_ids):].tolist()
        greedy.append({"prompt": prompt, "prompt_ids": p_ids, "output_ids": out, "output_text": tok.decode(out)})
        print(repr(prompt), "->", repr(tok.decode(out)))
    (HERE / "smollm2_greedy.json").write_text("[\n" + ",\n".join(json.dumps(g, ensure_ascii=False) for g in greedy) + "\n]\n")


if __name__ == "__main__":
    main()
