"""Per-request generation state, stepped by the scheduler: sampler, stop scanner, stream decoder,
logprobs and timings. `Model.generate` and the server both run their requests through it."""
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np


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
class TokenLogprob:
    token: int                  # the chosen token id
    logprob: float              # its log-probability under the model (log-softmax of the raw logits)
    top: List[Tuple[int, float]] = field(default_factory=list)  # the k most likely (id, logprob), best first


@dataclass
class Completion:
    text: str
    tokens: List[int]          # the new token ids (without the end-of-sequence token)
    finish_reason: str         # "stop" (end of sequence or a stop string) or "length"
    stats: GenerationStats = field(default_factory=GenerationStats)
    logprobs: Optional[List[TokenLogprob]] = None   # one per token of `tokens`, when asked for


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


def token_logprob(logits, tok, k):
    """TokenLogprob of `tok` and the top-k alternatives under log_softmax(logits)."""
    x = np.asarray(logits, dtype=np.float64)
    m = np.max(x)
    lse = m + np.log(np.sum(np.exp(x - m)))
    top = []
    if k:
        idx = np.argpartition(-x, k - 1)[:k]
        idx = idx[np.argsort(-x[idx], kind="stable")]
        top = [(int(i), float(x[i] - lse)) for i in idx]
    return TokenLogprob(int(tok), float(x[tok] - lse), top)


class Request:
    """One generation (one choice) from prompt ids to a Completion. The scheduler admits it to a
    sequence of the engine, runs its prompt (`pos` = prompt tokens in the cache), and hands it the
    logits of each step through feed(); the request samples the next token (`next_token`, run by the
    next step) or finishes. Pieces of text it may show (never a part of a possible stop string) queue
    up until take(). cancel() may come from any thread: the scheduler frees the sequence at its next
    step. on_update(request), if set, is called by the stepping thread after every change."""

    def __init__(self, prompt_ids, sampler, *, max_new_tokens, tokenizer=None, stop=(), stop_ids=(),
                 ignore_eos=False, logprobs=None, presence_penalty=0.0, frequency_penalty=0.0, logit_bias=None,
                 group=None, length_reason="length", prompt_logprobs=None):
        self.prompt = list(prompt_ids)
        self.sampler = sampler
        self.max_new_tokens = max_new_tokens
        self.stop, self.stop_ids, self.ignore_eos = tuple(stop), frozenset(stop_ids), ignore_eos
        self.logprobs_k = logprobs            # None: no logprobs; k >= 0: chosen + top-k
        self.presence, self.frequency = float(presence_penalty), float(frequency_penalty)
        self.logit_bias = logit_bias          # None or (token ids, biases) added to every step's logits
        self.group = group                    # requests of one group share a prompt (n > 1)
        self.length_reason = length_reason    # "context" when the context, not max_new_tokens, ends it
        self.decoder = tokenizer.stream_decoder() if tokenizer is not None else _NoText()
        self.stats = GenerationStats(prompt_tokens=len(self.prompt))
        self.pos = 0                          # prompt tokens in the KV cache
        self.next_token = None                # sampled, to be run by the next step
        self.tokens, self.text, self.emitted = [], "", 0
        self.token_logprobs = [] if logprobs is not None else None
        # k: every prompt token after the first gets its logprob and top-k (the whole prompt runs)
        self.prompt_logprobs_k = prompt_logprobs
        self.prompt_logprobs = [] if prompt_logprobs is not None else None
        self.history = list(self.prompt)      # what the repetition penalty looks back on
        self._counts = {}                     # generated token -> times (presence/frequency penalties)
        self.pieces = []                      # [(text, [TokenLogprob])] not taken yet
        self._lp_sent = 0
        self.finish_reason = None
        self.error = None                     # the exception that failed it (finish_reason "error")
        self.done = False
        self.cancelled = False
        self.on_update = None
        self._t_admit = self._t_first = None
        self._lock = threading.Lock()
        if max_new_tokens == 0 and prompt_logprobs is None:
            self._finish("length")

    # -- called by the scheduler (the stepping thread) ---------------------------------------
    def admitted(self, cached):
        self.pos = self.stats.cached_tokens = cached
        self._t_admit = time.perf_counter()

    @property
    def prefilling(self):
        return self.pos < len(self.prompt)

    def score_prompt(self, rows):
        """rows [n, vocab]: the logits after prompt tokens [pos, pos + n) (before pos moves on); each
        gives the logprob of the prompt token it predicts."""
        for j, row in enumerate(rows):
            nxt = self.pos + j + 1
            if nxt < len(self.prompt):
                self.prompt_logprobs.append(token_logprob(row, self.prompt[nxt], self.prompt_logprobs_k))

    def feed(self, logits):
        """The logits after the last token in the cache: sample, scan for stops, queue text."""
        if self._t_first is None:
            self._t_first = time.perf_counter()
            self.stats.prefill_seconds = self._t_first - (self._t_admit or self._t_first)
        if self.max_new_tokens == 0:  # only a prompt to score
            return self._finish("length")
        raw = logits
        if self._counts and (self.presence or self.frequency):
            logits = np.array(logits, dtype=np.float32)
            ids = np.fromiter(self._counts, dtype=np.int64, count=len(self._counts))
            n = np.fromiter(self._counts.values(), dtype=np.float32, count=len(self._counts))
            logits[ids] -= self.frequency * n + self.presence
        if self.logit_bias is not None:
            if logits is raw:
                logits = np.array(logits, dtype=np.float32)
            logits[self.logit_bias[0]] += self.logit_bias[1]
        tok = self.sampler(logits, self.history)
        if tok in self.stop_ids and not self.ignore_eos:
            return self._finish("stop")
        self.tokens.append(tok)
        self.history.append(tok)
        self._counts[tok] = self._counts.get(tok, 0) + 1
        if self.token_logprobs is not None:
            self.token_logprobs.append(token_logprob(raw, tok, self.logprobs_k))
        self.text += self.decoder.push(tok)
        # a stop string can only start at or after `emitted`: anything that could begin one is held back
        cut = min((i for i in (self.text.find(s, self.emitted) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            return self._finish("stop", flush=False)
        safe = len(self.text) - _held_back(self.text[self.emitted:], self.stop)
        if safe > self.emitted:
            self._queue(self.text[self.emitted:safe])
            self.emitted = safe
        if len(self.tokens) >= self.max_new_tokens:
            return self._finish("length")
        self.next_token = tok

    def _queue(self, piece):
        lps = []
        if self.token_logprobs is not None:
            lps = self.token_logprobs[self._lp_sent:]
            self._lp_sent = len(self.token_logprobs)
        with self._lock:
            self.pieces.append((piece, lps))

    def _finish(self, reason, flush=True):
        if self.done:
            return
        if reason == "length":
            reason = self.length_reason
        if flush and reason != "error":
            self.text += self.decoder.flush()
        tail = self.text[self.emitted:]
        if tail or (self.token_logprobs is not None and self._lp_sent < len(self.token_logprobs)):
            self._queue(tail)
            self.emitted = len(self.text)
        now = time.perf_counter()
        self.stats.new_tokens = len(self.tokens)
        if self._t_first is not None:
            self.stats.decode_seconds = now - self._t_first
        self.finish_reason = reason
        self.next_token = None
        self.done = True

    def cancelled_now(self):
        """Finishes a cancelled request (the scheduler calls it when it frees the sequence)."""
        self._finish("cancelled")

    def fail(self, exc):
        self.error = exc
        self._finish("error")

    # -- any thread ----------------------------------------------------------------------------
    def cancel(self):
        self.cancelled = True

    def take(self):
        """The queued (text, logprobs) pieces, emptied."""
        with self._lock:
            out, self.pieces = self.pieces, []
        return out

    @property
    def completion(self):
        return Completion(self.text, list(self.tokens), self.finish_reason or "length", self.stats,
                          list(self.token_logprobs) if self.token_logprobs is not None else None)
