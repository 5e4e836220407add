"""Perplexity of a text, chunked as llama.cpp's `llama-perplexity` chunks it, so figures compare.

The text is tokenized once (with BOS if the model adds one). Window i covers tokens
[i*stride, i*stride + ctx); its first token is replaced by BOS when the model adds BOS (as
llama-perplexity does); each window runs on a fresh context and scores only its second half: the
logits at positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1, so every scored token has at
least ctx/2 tokens before it. stride defaults to ctx (llama-perplexity's chunks, n_tokens // ctx
windows); stride = ctx/2 scores almost every token once. Perplexity = exp(mean negative log-likelihood).
"""
import math
import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Perplexity:
    perplexity: float
    nll: float            # mean negative log-likelihood (nats per token)
    scored_tokens: int
    text_tokens: int
    windows: int
    ctx: int
    stride: int
    seconds: float

    @property
    def tokens_per_second(self):
        """Tokens run through the model per second (windows x ctx / seconds)."""
        return self.windows * self.ctx / self.seconds if self.seconds > 0 else 0.0

    def __str__(self):
        return (f"perplexity {self.perplexity:.4f} over {self.scored_tokens} scored tokens ({self.text_tokens} in the "
                f"text, {self.windows} windows of {self.ctx}, stride {self.stride}); "
                f"{self.seconds:.1f} s, {self.tokens_per_second:.1f} tokens/s")


def _positive(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}: expected an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{name}: must be >= 1, got {v}")
    return int(v)


def perplexity(model, text, *, ctx=512, stride=None, progress=False):
    """Scores `text` (a str) with `model`; progress=True draws a bar on stderr. Returns a Perplexity."""
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    ctx = _positive(ctx, "ctx")
    stride = ctx if stride is None else _positive(stride, "stride")
    if ctx < 4:
        raise ValueError(f"ctx: must be >= 4 (half of each window is scored), got {ctx}")
    if ctx > model.n_ctx:
        raise ValueError(f"ctx: {ctx} is more than the model's n_ctx {model.n_ctx}; load it with n_ctx >= {ctx}")
    if stride > ctx:
        raise ValueError(f"stride: must be <= ctx ({ctx}), got {stride}")
    tok = model.tokenizer
    if tok is None:
        raise ValueError("text: this model has no tokenizer")
    try:
        ids = tok.encode(text)
    except ValueError as e:
        raise ValueError(f"text: {e}") from None
    if len(ids) < ctx:
        raise ValueError(f"text: {len(ids)} tokens, fewer than one window of ctx {ctx} tokens "
                         f"(a longer text, or a window of at most {len(ids)} tokens: ctx / -c)")
    bos = tok.bos_id if tok.add_bos and tok.bos_id is not None else None
    n_windows = (len(ids) - ctx) // stride + 1
    first = ctx // 2
    nll, count = 0.0, 0
    bar = _Bar(n_windows, progress)
    t0 = time.perf_counter()
    for i in range(n_windows):
        window = list(ids[i * stride:i * stride + ctx])
        if bos is not None:
            window[0] = bos
        logits = model.logits(window)[first:ctx - 1].astype(np.float64)  # [ctx - 1 - first, vocab]
        targets = np.asarray(window[first + 1:ctx])
        top = logits.max(axis=1)
        logz = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        nll += float((logz - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
        bar.update(i + 1, math.exp(nll / count), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    bar.end()
    return Perplexity(math.exp(nll / count), nll / count, count, len(ids), n_windows, ctx, stride, seconds)


class _Bar:
    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()

    def update(self, done, ppl, seconds):
        if not self.enabled:
            return
        bar = "#" * (done * 30 // self.total)
        line = f"[{bar:<30}] {done}/{self.total} windows, perplexity so far {ppl:.4f}, {seconds:.0f} s"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def end(self):
        if self.tty:
            print(file=sys.stderr, flush=True)
