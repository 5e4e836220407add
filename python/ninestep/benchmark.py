"""Prefill and decode speed of a loaded model (used by `ninestep bench` and the scripts in bench/)."""
import statistics

import ninestep
from .busy import busy_processes, cpu_load

_TEXT = ("The history of computing is a story of people finding faster ways to do arithmetic. "
         "From the abacus to mechanical calculators, from vacuum tubes to transistors, each step "
         "made machines smaller, cheaper and quicker, and each step changed what people asked of them. ")


# Short requests of different kinds, one per concurrent stream (bench/serve.py, bench/batch_profile.py).
STREAM_PROMPTS = ["Tell me a story about a dragon.", "Explain how a bicycle works.", "Write a poem about the sea.",
                  "Describe the city of Paris.", "What is photosynthesis?", "List some facts about the moon.",
                  "How do computers add numbers?", "Tell me about the history of tea."]


def prompt_ids(tokenizer, n):
    """Exactly n token ids of ordinary English text."""
    ids = []
    while len(ids) < n:
        ids += tokenizer.encode(_TEXT, add_special=False)
    return ids[:n]


def prefill_seconds(model, ids):
    model.reset()
    c = model.generate(ids, max_new_tokens=1, temperature=0, ignore_eos=True)
    return c.stats.prefill_seconds


def decode_tokens_per_second(model, n_new, prompt="Once upon a time"):
    model.reset()
    c = model.generate(prompt, max_new_tokens=n_new, temperature=0, ignore_eos=True)
    return c.stats.decode_tokens_per_second


def bench_model(model, prompt_tokens=512, new_tokens=128, rounds=3, busy=0):
    """Medians over `rounds` of prefill tokens/s (a prompt_tokens prompt, fresh cache) and decode
    tokens/s (new_tokens greedy tokens after a short prompt, end-of-sequence ignored). With busy=N,
    N busy-loop processes (ninestep.busy) compete for the CPU from before the warm-up to the end."""
    ids = prompt_ids(model.tokenizer, prompt_tokens)
    pre, dec = [], []
    with busy_processes(busy):
        load = cpu_load()
        prefill_seconds(model, ids[:16])  # warm-up: page in weights, spin up threads
        for _ in range(rounds):
            pre.append(prompt_tokens / prefill_seconds(model, ids))
            dec.append(decode_tokens_per_second(model, new_tokens))
    info = ninestep.cpu_info()
    return {"prefill_tps": statistics.median(pre), "decode_tps": statistics.median(dec),
            "prefill_all": pre, "decode_all": dec, "threads": info["threads"], "isa": info["isa"],
            "busy": busy, "load": load}
