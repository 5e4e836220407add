"""The continuous-batching scheduler on SmolLM2: batches give each request the text it gets alone,
prompt chunks share a step with decodes, prefixes are reused, n > 1 copies its prompt, cancellation
frees the sequence, logprobs are the model's, and the engine interface refuses bad items."""
import numpy as np
import pytest

import ninestep
from helpers.models import smollm2_path
from ninestep.generate import Request
from ninestep.sampling import Sampler, SamplingParams
from ninestep.scheduler import Scheduler

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Water boils at", "The first president of the United States",
           "Photosynthesis is the process", "1, 2, 3, 4,", "Shakespeare wrote", "The largest planet in the solar system is"]


@pytest.fixture(scope="module")
def model():
    with ninestep.load(smollm2_path(), n_ctx=1024, n_seq=4) as m:
        yield m


def greedy_request(model, ids, n_new, **kw):
    return Request(ids, Sampler(SamplingParams(temperature=0)), max_new_tokens=n_new, tokenizer=model.tokenizer,
                   stop_ids={model.config.eos_id}, **kw)


def test_a_batch_gives_each_prompt_its_text_alone(model):
    alone = []
    for p in PROMPTS:
        model.reset()  # each prompt read whole, as in the batch
        alone.append(model.generate(p, max_new_tokens=12, temperature=0).text)
    model.reset()
    batch = model.generate(PROMPTS, max_new_tokens=12, temperature=0)  # 8 prompts through 4 sequences
    assert [c.text for c in batch] == alone
    assert all(isinstance(c, ninestep.Completion) for c in batch)


def test_decodes_keep_flowing_while_a_long_prompt_is_chunked(model):
    model.reset()
    sched = Scheduler(model._engine, budget=32)
    short = greedy_request(model, model.tokenizer.encode("Once upon a time"), 20)
    long_ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 20)[:200]
    long = greedy_request(model, long_ids, 4)
    sched.submit(short)
    while not short.tokens:
        sched.step()
    sched.submit(long)
    seen = []
    while long.prefilling:
        before = len(short.tokens)
        sched.step()
        seen.append((len(short.tokens) - before, long.pos))
    # every step of the long prompt's prefill also decoded the short request, in chunks of <= 31 tokens
    assert len(seen) >= 200 // 31 and all(d == 1 for d, _ in seen[:-1])
    assert all(b - a <= 31 for (_, a), (_, b) in zip(seen, seen[1:]))
    while sched.busy:
        sched.step()
    assert short.tokens == model.generate("Once upon a time", max_new_tokens=20, temperature=0).tokens
    assert long.tokens == model.generate(long_ids, max_new_tokens=4, temperature=0).tokens


def test_a_prompt_extending_a_finished_one_reuses_its_prefix(model):
    model.reset()
    first = model.generate("The capital of France is", max_new_tokens=6, temperature=0)
    ids = model.tokenizer.encode("The capital of France is") + first.tokens
    second = model.generate(ids + model.tokenizer.encode(" And Italy?", add_special=False), max_new_tokens=6,
                            temperature=0)
    assert second.stats.cached_tokens >= len(ids) - 1
    model.reset()
    fresh = model.generate(ids + model.tokenizer.encode(" And Italy?", add_special=False), max_new_tokens=6,
                           temperature=0)
    assert fresh.stats.cached_tokens == 0 and fresh.tokens == second.tokens


def test_n_runs_the_prompt_once_and_copies_it(model):
    model.reset()
    cs = model.generate("Write a sentence about cats.", max_new_tokens=16, temperature=0.9, seed=5, n=3)
    assert len(cs) == 3
    assert [c.stats.cached_tokens for c in cs[1:]] == [cs[0].stats.prompt_tokens] * 2  # copied, not re-run
    for j, c in enumerate(cs):  # choice j is seeded with seed + j: the same text as alone
        assert c.tokens == model.generate("Write a sentence about cats.", max_new_tokens=16, temperature=0.9,
                                          seed=5 + j).tokens
    assert len({tuple(c.tokens) for c in cs}) > 1


def test_cancel_frees_the_sequence_at_the_next_step(model):
    model.reset()
    sched = model._scheduler
    r = greedy_request(model, model.tokenizer.encode("Tell me a long story."), 200)
    r.ignore_eos = True
    sched.submit(r)
    for _ in range(5):
        sched.step()
    assert any(s.req is r for s in sched.slots) and len(r.tokens) >= 3
    r.cancel()
    sched.step()
    assert r.done and r.finish_reason == "cancelled"
    assert all(s.req is None for s in sched.slots) and not sched.busy
    assert "Paris" in model.generate("The capital of France is", max_new_tokens=6, temperature=0).text


def test_logprobs_are_the_models_log_softmax(model):
    prompt = model.tokenizer.encode("The capital of France is")
    c = model.generate(prompt, max_new_tokens=6, temperature=0, logprobs=3)
    assert len(c.logprobs) == len(c.tokens) == 6
    # the logits the engine gives along the same path (prompt, then one token per step)
    eng = model._engine
    model.reset()
    rows = [eng.step([(0, prompt, 1)])[0][0].copy()]
    rows += [eng.step([(0, [t], 1)])[0][0].copy() for t in c.tokens[:-1]]
    logits = np.array(rows, dtype=np.float64)
    m = logits.max(1, keepdims=True)
    want = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
    model.reset()
    for row, lp, tok in zip(want, c.logprobs, c.tokens):
        assert lp.token == tok and lp.logprob == pytest.approx(row[tok], abs=1e-4)
        assert [lp2 for _, lp2 in lp.top] == pytest.approx(list(np.sort(row)[::-1][:3]), abs=1e-4)
        assert [t for t, _ in lp.top] == list(np.argsort(-row, kind="stable")[:3])
        assert lp.top[0][0] == tok  # greedy picks the most likely
        assert all(a >= b for (_, a), (_, b) in zip(lp.top, lp.top[1:]))
    assert model.generate(prompt, max_new_tokens=2, temperature=0).logprobs is None


def test_presence_penalty_forbids_repeats(model):
    prompt = "1, 2, 1, 2, 1, 2, 1, 2,"
    plain = model.generate(prompt, max_new_tokens=12, temperature=0)
    assert len(set(plain.tokens)) < len(plain.tokens)  # it repeats itself without the penalty
    c = model.generate(prompt, max_new_tokens=12, temperature=0, presence_penalty=100.0)
    assert len(set(c.tokens)) == len(c.tokens)


def test_generate_list_arguments(model):
    with pytest.raises(ValueError, match="n"):
        model.generate("Hi", n=0)
    with pytest.raises(ValueError, match="stream"):
        model.generate(["Hi", "Yo"], stream=True)
    with pytest.raises(ValueError, match="logprobs"):
        model.generate("Hi", logprobs=-1)
    with pytest.raises(ValueError, match=r"prompt\[1\]"):
        model.generate(["Hi", [49152]])


def test_engine_refuses_bad_items(model):
    eng = model._engine
    model.reset()
    with pytest.raises(ValueError, match="items"):
        eng.step([(0, [1], 1), (0, [2], 1)])  # a sequence twice
    with pytest.raises(ValueError):
        eng.step([(eng.n_seq, [1], 1)])
    with pytest.raises(ValueError):
        eng.step([(0, [], 1)])
    with pytest.raises(ValueError):
        eng.step([(0, [eng.vocab_size], 1)])
    with pytest.raises(ValueError):
        eng.step([(0, [1] * (eng.n_ctx + 1), 1)])
    assert eng.seq_len(0) == 0
