"""The OpenAI-compatible HTTP routes (FastAPI). Each generation is a set of scheduler Requests run by
the engine thread (worker.py); this side only parses, waits on an asyncio queue and formats."""
import asyncio
import json
import threading
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import params
from .embeddings import is_encoder
from .embeddings import register as register_embeddings
from .errors import APIError, bad
from .worker import QueueFull, Worker


class State:
    """The model (None while loading), its engine thread and the server's settings."""

    def __init__(self, load, name, api_key=None, max_queue=64):
        self._load, self.name, self.api_key, self.max_queue = load, name, api_key, max_queue
        self.model = self.worker = None
        self.load_error = None
        self.started = int(time.time())

    def load(self):
        try:
            model = self._load()
            worker = None if is_encoder(model) else Worker(model, self.max_queue)  # an encoder: no scheduler
            if worker is not None:
                worker.start()
            self.model, self.worker = model, worker
        except Exception as e:  # reported by /health and every route until serve() stops the server
            self.load_error = e

    def ready(self):
        if self.model is None:
            msg = f"model failed to load: {self.load_error}" if self.load_error else "the model is still loading"
            raise APIError(503, msg, code="model_not_ready", headers={"Retry-After": "1"})
        return self.model

    def close(self):
        if self.worker is not None:
            self.worker.shutdown()
        if self.model is not None:
            self.model.close()


def _sse(obj):
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(state):
    app = FastAPI(title="ninestep", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ninestep = state

    @app.exception_handler(APIError)
    async def _api_error(request, e):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e):
        return JSONResponse(APIError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    def auth(request):
        if state.api_key is None:
            return
        got = request.headers.get("authorization", "")
        if got != f"Bearer {state.api_key}":
            raise APIError(401, "Incorrect API key provided" if got else "Missing bearer token (Authorization header)",
                           code="invalid_api_key")

    async def body_of(request):
        auth(request)
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad(f"the body is not valid JSON: {e}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise bad("the body must be a JSON object", code="invalid_json")
        return body

    register_embeddings(app, state, body_of)  # POST /v1/embeddings (server/embeddings.py)

    @app.get("/health")
    async def health():
        if state.model is None:
            status = "error" if state.load_error else "loading"
            return JSONResponse({"status": status}, status_code=503)
        return {"status": "ok"}

    def model_card():
        return {"id": state.name, "object": "model", "created": state.started, "owned_by": "ninestep"}

    @app.get("/v1/models")
    async def models(request: Request):
        auth(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        auth(request)
        if model_id != state.name:
            raise APIError(404, f"The model '{model_id}' does not exist (this server serves '{state.name}')",
                           param="model", code="model_not_found", type_="invalid_request_error")
        return model_card()

    @app.get("/metrics")
    async def metrics(request: Request):
        auth(request)
        from .metrics import render

        return PlainTextResponse(render(state), media_type="text/plain; version=0.0.4")

    @app.post("/tokenize")
    async def tokenize(request: Request):
        body = await body_of(request)
        model = state.ready()
        text, special = body.get("content"), body.get("add_special", False)
        if not isinstance(text, str):
            raise bad("'content' must be a string", "content", "invalid_type")
        if not isinstance(special, bool):
            raise bad("'add_special' must be a boolean", "add_special", "invalid_type")
        try:
            return {"tokens": model.tokenizer.encode(text, add_special=special)}
        except ValueError as e:
            raise bad(str(e), "content") from None

    @app.post("/detokenize")
    async def detokenize(request: Request):
        body = await body_of(request)
        model = state.ready()
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise bad("'tokens' must be a list of token ids", "tokens", "invalid_type")
        bad_id = next((t for t in ids if not 0 <= t < model.config.vocab_size), None)
        if bad_id is not None:
            raise bad(f"'tokens': id {bad_id} is outside the vocabulary [0, {model.config.vocab_size})", "tokens")
        return {"content": model.tokenizer.decode(ids)}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await body_of(request)
        model = state.ready()
        kw = params.sampling(body, chat=False)
        stream, usage = params.stream_options(body)
        echo = params.echo(body, kw, stream)
        given = params.prompts(body)
        prompts = [_encode(model, p, "prompt") for p in given]
        echoes = None
        if echo:  # the prompt as given; token prompts as their text
            echoes = [p if isinstance(p, str) else model.tokenizer.decode(ids) for p, ids in zip(given, prompts)]
        return await _generate(request, model, prompts, kw, stream, usage, chat=False, echoes=echoes)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await body_of(request)
        model = state.ready()
        kw = params.sampling(body, chat=True)
        stream, usage = params.stream_options(body)
        msgs = params.messages(body)
        tok = model.tokenizer
        try:
            text = tok.apply_chat_template(msgs, add_generation_prompt=True)
            ids = tok.encode(text, add_special=False)
        except ValueError as e:
            raise bad(str(e), "messages") from None
        _check_length(model, ids, "messages")
        kw["_stop_ids"] = {t for t in (tok.eot_id, tok.eos_id) if t is not None}
        return await _generate(request, model, [ids], kw, stream, usage, chat=True)

    async def _generate(request, model, prompts, kw, stream, include_usage, chat, echoes=None):
        if kw["max_new_tokens"] is None:
            kw["max_new_tokens"] = model.n_ctx
        try:
            reqs, _ = model.requests(prompts if len(prompts) > 1 else prompts[0], **kw)
        except (ValueError, TypeError) as e:
            msg = str(e)
            name = msg.split(":", 1)[0] if ":" in msg else None
            raise bad(msg, {"max_new_tokens": "max_tokens", "logprobs": "logprobs"}.get(name, name)) from None
        n = kw["n"]
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        try:
            state.worker.submit(reqs, loop, queue)
        except QueueFull as e:
            raise APIError(503, f"the server is busy ({e}); retry later", code="server_busy",
                           headers={"Retry-After": "1"}) from None
        state.worker.requests["chat" if chat else "completions"] += 1
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        fmt = _Format(model, state.name, rid, chat, prompts, n, echoes)
        if stream:
            return StreamingResponse(_stream(reqs, queue, fmt, include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        pending = set(reqs)
        try:
            while pending:
                try:
                    r, _, done = await asyncio.wait_for(queue.get(), 0.25)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return JSONResponse({}, status_code=499)
                    continue
                if done:
                    pending.discard(r)
        finally:
            state.worker.cancel([r for r in reqs if not r.done])
        _raise_failed(reqs)
        return fmt.response(reqs)

    async def _stream(reqs, queue, fmt, include_usage):
        pending = set(reqs)
        try:
            for i in range(len(reqs)):
                if fmt.chat:
                    yield _sse(fmt.chunk(i, {"role": "assistant", "content": ""}, None, None))
                elif fmt.echo(i):
                    yield _sse(fmt.chunk(i, fmt.echo(i), None, None))
            while pending:
                r, pieces, done = await queue.get()
                i = reqs.index(r)
                for text, lps in pieces:
                    if text or lps:
                        yield _sse(fmt.chunk(i, text, lps, None))
                if done:
                    pending.discard(r)
                    if r.finish_reason not in ("stop", "length", "context"):
                        why = "the server is shutting down" if r.finish_reason == "cancelled" else str(r.error)
                        yield _sse(APIError(503 if r.finish_reason == "cancelled" else 500, why).body())
                        return
                    yield _sse(fmt.chunk(i, "" if not fmt.chat else {}, None, _reason(r.finish_reason)))
            if include_usage:
                yield _sse(fmt.usage_chunk(reqs))
            yield "data: [DONE]\n\n"
        finally:
            state.worker.cancel([r for r in reqs if not r.done])

    def _raise_failed(reqs):
        for r in reqs:
            if r.finish_reason == "cancelled":
                raise APIError(503, "the server is shutting down", code="shutting_down")
            if r.finish_reason == "error":
                raise APIError(500, f"generation failed: {r.error}", code="internal_error")

    return app


def _reason(finish):
    """OpenAI's finish_reason: running out of context is "length" there."""
    return "length" if finish == "context" else finish


def _check_length(model, ids, param):
    if len(ids) >= model.n_ctx:
        raise bad(f"This model's maximum context length is {model.n_ctx} tokens. However, your {param} "
                  f"has {len(ids)} tokens, leaving no room for a completion.", param, "context_length_exceeded")


def _encode(model, p, param):
    if isinstance(p, str):
        try:
            ids = model.tokenizer.encode(p)
        except ValueError as e:
            raise bad(str(e), param) from None
    else:
        ids = list(p)
        bad_id = next((t for t in ids if not 0 <= t < model.config.vocab_size), None)
        if bad_id is not None:
            raise bad(f"'{param}': token id {bad_id} is outside the vocabulary [0, {model.config.vocab_size})", param)
    if not ids:
        raise bad(f"'{param}' is empty", param)
    _check_length(model, ids, param)
    return ids


class _Format:
    """OpenAI's response and chunk shapes for one request."""

    def __init__(self, model, name, rid, chat, prompts, n, echoes=None):
        self.tok, self.name, self.id, self.chat = model.tokenizer, name, rid, chat
        self.prompt_tokens = sum(len(p) for p in prompts)
        self.n = n
        self._echoes = echoes  # per prompt: its text before each of its n choices
        self.created = int(time.time())
        self._piece = {}

    def _token(self, t):
        s = self._piece.get(t)
        if s is None:
            s = self._piece[t] = self.tok.decode([t])
        return s

    def echo(self, i):
        """The prompt text choice i starts with ("" without echo)."""
        return self._echoes[i // self.n] if self._echoes else ""

    def logprobs(self, lps, offset=0):
        if lps is None:
            return None
        if self.chat:
            def entry(t, lp):
                s = self._token(t)
                return {"token": s, "logprob": lp, "bytes": list(s.encode("utf-8"))}
            return {"content": [dict(entry(x.token, x.logprob), top_logprobs=[entry(t, lp) for t, lp in x.top])
                                for x in lps]}
        toks = [self._token(x.token) for x in lps]
        offsets, pos = [], offset
        for s in toks:
            offsets.append(pos)
            pos += len(s)
        return {"tokens": toks, "token_logprobs": [x.logprob for x in lps],
                "top_logprobs": [{self._token(t): lp for t, lp in x.top} for x in lps], "text_offset": offsets}

    def _echo_logprobs(self, r, lps):
        """A completion's logprobs with the prompt's tokens before its own (the first one has none)."""
        first = self.logprobs(r.prompt_logprobs)
        toks = [self._token(r.prompt[0])] + first["tokens"]
        offsets = [0]
        for s in toks[:-1]:
            offsets.append(offsets[-1] + len(s))
        own = self.logprobs(lps, offset=offsets[-1] + len(toks[-1]))
        return {"tokens": toks + own["tokens"], "token_logprobs": [None] + first["token_logprobs"] + own["token_logprobs"],
                "top_logprobs": [None] + first["top_logprobs"] + own["top_logprobs"],
                "text_offset": offsets + own["text_offset"]}

    def _head(self, obj):
        return {"id": self.id, "object": obj, "created": self.created, "model": self.name}

    def usage(self, reqs):
        out = sum(len(r.tokens) for r in reqs)
        cached = sum(r.stats.cached_tokens for r in reqs[::self.n])  # the first choice of each prompt
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": out,
                "total_tokens": self.prompt_tokens + out, "prompt_tokens_details": {"cached_tokens": cached}}

    def response(self, reqs):
        choices = []
        for i, r in enumerate(reqs):
            c = r.completion
            lp = self.logprobs(c.logprobs)
            if self.chat:
                choices.append({"index": i, "message": {"role": "assistant", "content": c.text},
                                "logprobs": lp, "finish_reason": _reason(c.finish_reason)})
            else:
                if lp is not None and r.prompt_logprobs is not None:  # echo: the prompt's tokens first
                    lp = self._echo_logprobs(r, c.logprobs)
                choices.append({"index": i, "text": self.echo(i) + c.text, "logprobs": lp,
                                "finish_reason": _reason(c.finish_reason)})
        obj = "chat.completion" if self.chat else "text_completion"
        return dict(self._head(obj), choices=choices, usage=self.usage(reqs))

    def chunk(self, i, delta, lps, finish):
        lp = self.logprobs(lps) if lps else None
        if self.chat:
            if isinstance(delta, str):
                delta = {"content": delta}
            choice = {"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}
            return dict(self._head("chat.completion.chunk"), choices=[choice], usage=None)
        choice = {"index": i, "text": delta, "logprobs": lp, "finish_reason": finish}
        return dict(self._head("text_completion"), choices=[choice], usage=None)

    def usage_chunk(self, reqs):
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return dict(self._head(obj), choices=[], usage=self.usage(reqs))
