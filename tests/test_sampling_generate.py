"""What generate() and chat() hand the sampler, checked through the public API on the real model:
the repetition penalty sees the last 64 tokens of prompt + reply, and chat() renders the template
with the generation prompt."""
import numpy as np
import pytest

import ninestep
from helpers.models import smollm2_path

WINDOW = 64  # SamplingParams.penalty_window
PROMPT = ("The old lighthouse keeper climbed the stairs every evening. He lit the lamp, wiped the "
          "glass, and watched the ships pass in the dark. One night a storm came from the north, and the "
          "waves rose higher than the rocks. The keeper stayed awake until dawn, counting the ships that "
          "made it safely into the harbour. In the morning the village thanked him, and he said")


@pytest.fixture(scope="module")
def model():
    # An f32 KV cache: these checks are about the sampler's history, and the comparison below of
    # decode steps with one batched pass is tighter with it (largest miss 0.18 measured; with the
    # default f16 cache 0.51, float rounding amplified by the 8-bit activations).
    with ninestep.load(smollm2_path(), n_ctx=512, kv_cache="f32") as m:
        yield m


def penalised(z, history, penalty):
    z = z.astype(np.float64)
    for t in set(history):
        z[t] = z[t] / penalty if z[t] > 0 else z[t] * penalty
    return z


def off_argmax(model, prompt, new, penalty, rule, eps):
    """Steps j where new[j] is not the argmax (within eps) of the logits penalised by
    rule(ids so far, n_prompt). The logits of the whole sequence come from one fresh batched pass,
    which differs from the decode steps' (the Q8_0 head's GEMV, the decode attention: another float
    order, amplified by the 8-bit activations) at the chosen token by up to ~0.17 on AVX2 and
    ~0.45-0.73 on AVX-512 (measured; over the whole vocabulary by up to 1.3-1.9), so eps = 0.9; a
    wrong window misses the argmax by 4.3-15 (measured), so the wrong rules are checked at eps = 1."""
    seq = list(prompt) + list(new)
    logits = model.logits(seq)
    bad = []
    for j, t in enumerate(new):
        z = penalised(logits[len(prompt) + j - 1], rule(seq[:len(prompt) + j], len(prompt)), penalty)
        if z[t] < z.max() - eps:
            bad.append(j)
    return bad


RULES = {"last 64 of prompt + reply": lambda h, k: h[-WINDOW:], "first 64": lambda h, k: h[:WINDOW],
         "reply only": lambda h, k: h[k:][-WINDOW:], "none": lambda h, k: []}


CASES = [
    (PROMPT, 40, 1.6),  # a long prompt: the window is mostly prompt
    ("List the numbers from one to forty in words, separated by commas:", 100, 1.3),  # the reply outgrows it
]


def test_penalty_covers_the_last_64_tokens_of_prompt_and_reply(model):
    wrong = {name: [] for name in RULES if name != "last 64 of prompt + reply"}
    for prompt, n, penalty in CASES:
        ids = model.tokenizer.encode(prompt)
        got = model.generate(ids, max_new_tokens=n, temperature=0, repetition_penalty=penalty, ignore_eos=True).tokens
        assert len(got) == n
        assert off_argmax(model, ids, got, penalty, RULES["last 64 of prompt + reply"], eps=0.9) == [], prompt
        for name in wrong:
            wrong[name] += off_argmax(model, ids, got, penalty, RULES[name], eps=1.0)
    # each wrong window would have chosen differently somewhere along these very sequences (which
    # case shows it depends on the text the numerics lead to: "reply only" shows in the long
    # prompt's, where the window is mostly prompt)
    for name, steps in wrong.items():
        assert steps, name


def test_sampled_penalty_same_seed_same_text_and_penalty_changes_it(model):
    kw = dict(max_new_tokens=40, seed=123, ignore_eos=True)
    a = model.generate(PROMPT, repetition_penalty=1.5, **kw)
    b = model.generate(PROMPT, repetition_penalty=1.5, **kw)
    c = model.generate(PROMPT, repetition_penalty=1.0, **kw)
    assert a.tokens == b.tokens and a.tokens != c.tokens


def test_chat_prompt_ends_with_the_generation_prompt(model):
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    tok = model.tokenizer
    text = tok.apply_chat_template(messages, add_generation_prompt=True)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tok.encode(text, add_special=False)
    reply = model.chat(messages, temperature=0, max_new_tokens=16)
    assert reply.stats.prompt_tokens == len(ids)  # the generation prompt's tokens are part of the prompt
    # The reply's first token is a near-tie ("The" 24.48 vs "La" 24.14 with this f32 cache; a build
    # without LTO, as the sanitizers', picks "La"): the text is checked for its subject only, and
    # exactly against generate() of the same ids just below.
    assert "France" in reply.text or "Paris" in reply.text, reply.text
    assert reply.tokens == model.generate(ids, temperature=0, max_new_tokens=16, _stop_ids={tok.eot_id, tok.eos_id}).tokens
    assert not reply.text.startswith(("<|im_start|>", "assistant"))
