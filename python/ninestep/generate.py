"""The generation loop: prefill, sample, decode, stop rules, streaming pieces and timings."""
import time
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class GenerationStats:
    prompt_tokens: int = 0     # tokens in the prompt
    cached_tokens: int = 0     # of those, reused from the KV cache
    new_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def prefill_tokens_per_second(self):
        n = self.prompt_tokens - self.cached_tokens
        return n / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self):
        return self.new_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def __str__(self):
        return (f"prompt {self.prompt_tokens} tokens ({self.cached_tokens} cached), "
                f"prefill {self.prefill_tokens_per_second:.1f} tok/s; "
                f"{self.new_tokens} new tokens, decode {self.decode_tokens_per_second:.1f} tok/s")


@dataclass
class Completion:
    text: str
    tokens: List[int]          # the new token ids (without the end-of-sequence token)
    finish_reason: str         # "stop" (end of sequence or a stop string) or "length"
    stats: GenerationStats = field(default_factory=GenerationStats)


class Stream:
    """Iterator of text pieces (always whole UTF-8 characters); `.completion` once it ends.
    Closing it early (break + close(), or garbage collection) leaves the model usable."""

    def __init__(self, gen):
        self._gen = gen
        self.completion: Optional[Completion] = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.completion = stop.value
            raise

    def close(self):
        self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _NoText:
    """Stands in for the stream decoder of a model without a tokenizer: ids only, no text."""

    def push(self, tok):
        return ""

    def flush(self):
        return ""


def _held_back(text, stops):
    """Length of the longest suffix of `text` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


def run(session, tokenizer, prompt_ids, sampler, *, max_new_tokens, stop=(), stop_ids=(), ignore_eos=False):
    """Generator of text pieces; returns the Completion. `session` is the model's KV session
    (prefill / step / n_cached), already validated arguments."""
    stats = GenerationStats(prompt_tokens=len(prompt_ids))
    history = list(prompt_ids)
    tokens, text, emitted = [], "", 0
    decoder = tokenizer.stream_decoder() if tokenizer is not None else _NoText()
    finish, cut = "length", -1
    if max_new_tokens == 0:
        return Completion("", [], finish, stats)
    t0 = time.perf_counter()
    logits, stats.cached_tokens = session.prefill(prompt_ids)
    stats.prefill_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        while True:
            tok = sampler(logits, history)
            if tok in stop_ids and not ignore_eos:
                finish = "stop"
                break
            tokens.append(tok)
            history.append(tok)
            text += decoder.push(tok)
            # a stop string can only start at or after `emitted`: anything that could begin one is held back
            cut = min((i for i in (text.find(s, emitted) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
                break
            safe = len(text) - _held_back(text[emitted:], stop)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
            if len(tokens) >= max_new_tokens:
                break
            logits = session.step(tok)
        if cut < 0:
            text += decoder.flush()
    finally:
        stats.new_tokens = len(tokens)
        stats.decode_seconds = time.perf_counter() - t0
    if len(text) > emitted:
        yield text[emitted:]
    return Completion(text, tokens, finish, stats)
