"""Generate: text generation over a column of prompts, for `Dataset.map_batches`."""
import numpy as np

from .batch import assigned_cpus, check_free, column_name, texts, with_columns

EXTRAS = ("finish_reason", "prompt_tokens", "completion_tokens")


class Generate:
    """Adds a completion to every row: `ds.map_batches(Generate, fn_constructor_args=(model,),
    fn_constructor_kwargs={...}, batch_size=64, num_cpus=C, compute=ray.data.ActorPoolStrategy(size=N))`.

    model: a .gguf path, a Hugging Face folder or a known name ("smollm2-135m", ...; ninestep.hub);
    None = the default model. Loaded once per actor, memory-mapped.
    chat: None = as `ninestep run` does: a model with a chat template answers each prompt as a
    one-turn chat (with `system` as the system message), stopping at the end of its turn; True
    requires a template; False continues the prompt text as given (what `model.generate` does).
    The sampling arguments are `Model.generate`'s; with a seed every row is sampled with that seed,
    so a row's text does not depend on its neighbours' (temperature=0 is greedy).
    n_threads: None = the CPUs Ray assigned to this actor (its num_cpus), else the CPUs this process
    may use. n_seq: sequences decoded together (a batch's rows run n_seq at a time, one engine step
    for all of them). n_ctx: context per sequence (default min(trained, 4096)).
    Output columns: `output_column` (str) and, with extras=True, finish_reason ("stop", "length",
    "context"), prompt_tokens and completion_tokens (int64).

    Each batch starts from an empty KV cache, so a row's result depends only on the rows of its
    batch: with the AVX2/AVX-512 kernels the rounding of a row's logits depends on what shares its
    engine step (greedy text can differ at near ties); the generic kernels (NINESTEP_ISA=generic)
    give each row the result it gets alone."""

    def __init__(self, model=None, *, prompt_column="prompt", output_column="completion", chat=None, system=None,
                 max_new_tokens=256, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repetition_penalty=1.0,
                 presence_penalty=0.0, frequency_penalty=0.0, seed=None, stop=None, ignore_eos=False,
                 n_threads=None, n_seq=8, n_ctx=None, extras=True):
        import ninestep
        from .._checks import flag, positive_int

        self.prompt_column = column_name(prompt_column, "prompt_column")
        self.output_column = column_name(output_column, "output_column")
        if chat is not None:
            chat = flag(chat, "chat")
        if system is not None and not isinstance(system, str):
            raise ValueError(f"system: expected a str or None, got {type(system).__name__}")
        if system is not None and chat is False:
            raise ValueError("system: a system message needs chat mode (chat=None or True), not chat=False")
        extras = flag(extras, "extras")
        self.outputs = (self.output_column,) + (EXTRAS if extras else ())
        if len(set(self.outputs)) < len(self.outputs):
            raise ValueError(f"output_column: {output_column!r} is also the name of an extra column ({', '.join(EXTRAS)})")
        n_threads = assigned_cpus() if n_threads is None else positive_int(n_threads, "n_threads")
        n_seq = positive_int(n_seq, "n_seq")
        self.model = ninestep.load(model, n_ctx=n_ctx, n_threads=n_threads, n_seq=n_seq)
        try:
            self._setup(chat, system, n_threads, dict(
                max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                frequency_penalty=frequency_penalty, seed=seed, stop=stop, ignore_eos=ignore_eos))
        except BaseException:
            self.model.close()
            raise

    def _setup(self, chat, system, n_threads, params):
        if not hasattr(self.model, "generate"):
            raise ValueError(f"model: {self.model.path} is an encoder (embeddings): use ninestep.ray.Embed for it")
        tok = self.model.tokenizer
        if tok is None:
            raise ValueError(f"model: {self.model.path} has no tokenizer, so it cannot read text prompts")
        has_template = bool(tok.chat_template)
        if chat and not has_template:
            raise ValueError(f"chat: {self.model.path} has no chat template (chat=False continues the prompt text)")
        if system is not None and not has_template:
            raise ValueError(f"system: {self.model.path} has no chat template, so no system message")
        self.chat = has_template if chat is None else chat
        self.system = system
        self.n_threads = n_threads
        self.params = params
        if self.chat:
            self.params["_stop_ids"] = {t for t in (tok.eot_id, tok.eos_id) if t is not None}
        self.model.requests([0], **self.params)  # every sampling argument checked now, not at the first batch

    def __repr__(self):
        return (f"Generate({str(self.model.path)!r}, {'chat' if self.chat else 'raw'}, "
                f"{self.prompt_column!r} -> {self.output_column!r}, n_threads {self.n_threads}, n_seq {self.model.n_seq})")

    def prompt_ids(self, text, row):
        """Token ids of one row's prompt (rendered as a one-turn chat in chat mode)."""
        tok = self.model.tokenizer
        col = self.prompt_column
        try:
            if self.chat:
                messages = ([{"role": "system", "content": self.system}] if self.system is not None else []) + \
                           [{"role": "user", "content": text}]
                ids = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=True), add_special=False)
            else:
                ids = tok.encode(text)
        except ValueError as e:
            raise ValueError(f"{col}: row {row} of this batch: {e}") from None
        if not ids:
            raise ValueError(f"{col}: row {row} of this batch is empty (no tokens to start from)")
        if len(ids) > self.model.n_ctx:
            raise ValueError(f"{col}: row {row} of this batch has {len(ids)} tokens, more than the context of "
                             f"{self.model.n_ctx} (n_ctx)")
        return ids

    def __call__(self, batch):
        prompts = texts(batch, self.prompt_column, "prompt_column")
        check_free(batch, self.outputs)
        ids = [self.prompt_ids(p, i) for i, p in enumerate(prompts)]
        done = []
        if ids:
            self.model.reset()  # a batch's results depend on that batch only
            done = self.model.generate(ids, **self.params)
        new = {self.output_column: _objects([c.text for c in done])}
        if len(self.outputs) > 1:
            new["finish_reason"] = _objects([c.finish_reason for c in done])
            new["prompt_tokens"] = np.array([len(i) for i in ids], dtype=np.int64)
            new["completion_tokens"] = np.array([len(c.tokens) for c in done], dtype=np.int64)
        return with_columns(batch, new)


def _objects(values):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
