"""POST /v1/embeddings (OpenAI's shape) for an encoder folder (`ninestep serve -m <BERT folder>`).

Request: `input` (a string, a list of strings, a list of token ids or a list of such lists; at most
2048 inputs), `model` (a string; the loaded model answers whatever it names), `encoding_format`
("float", default, or "base64": little-endian float32 bytes), `dimensions` (accepted only when it
equals the model's dimension: MiniLM-style vectors are not trained to be shortened, so a smaller
value is refused with a 400 rather than silently truncated), `user` (ignored).
Texts over the folder's max_seq_length (256 tokens for all-MiniLM-L6-v2) are truncated as
sentence-transformers does; token-id inputs are run as given (add [CLS] ... [SEP] yourself, as
/tokenize with add_special=true gives them) and refused when longer than max_seq_length.
usage counts the tokens run ([CLS]/[SEP] included).

A decoder model answers /v1/embeddings with a 400 (ninestep does not pool decoder states into
embeddings); an encoder model answers the generation and tokenizer routes with a 400 saying so.
"""
import asyncio
import base64
import json

import numpy as np
from fastapi import Request

from .errors import APIError, bad

MAX_INPUTS = 2048
DECODER_ROUTES = ("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize")


def is_encoder(model):
    from ..encoder import EncoderModel

    return isinstance(model, EncoderModel)


def parse(body, model):
    """(texts or None, ids or None, base64?) from a request body; APIError 400 naming the field."""
    if "input" not in body:
        raise bad("you must provide an 'input' parameter", "input", "missing_required_parameter")
    inp = body["input"]
    model_name = body.get("model")
    if model_name is not None and not isinstance(model_name, str):
        raise bad("'model' must be a string", "model", "invalid_type")
    fmt = body.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ("float", "base64"):
        raise bad(f"'encoding_format' must be 'float' or 'base64', got {json.dumps(fmt)}", "encoding_format",
                  "invalid_value")
    dims = body.get("dimensions")
    if dims is not None:
        if type(dims) is not int or dims < 1:
            raise bad("'dimensions' must be a positive integer", "dimensions", "invalid_type")
        if dims != model.dim:
            raise bad(f"'dimensions': this model gives {model.dim}-dimensional embeddings and cannot shorten them "
                      f"(got {dims})", "dimensions", "invalid_value")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp:
        raise bad("'input' must be a non-empty string, a non-empty list of strings, or token ids", "input",
                  "invalid_type")
    if all(type(t) is int for t in inp):  # one list of token ids
        inp = [inp]
    if len(inp) > MAX_INPUTS:
        raise bad(f"'input' has {len(inp)} items, at most {MAX_INPUTS} are allowed", "input", "invalid_value")
    if all(isinstance(t, str) for t in inp):
        for i, t in enumerate(inp):
            if not t.strip():
                raise bad(f"'input[{i}]' is empty or only whitespace", "input", "invalid_value")
        return inp, None, fmt == "base64"
    if any(isinstance(t, str) for t in inp):  # strings mixed with something else
        i = next(i for i, t in enumerate(inp) if not isinstance(t, str))
        raise bad(f"'input[{i}]' must be a string like the other items, got {type(inp[i]).__name__}", "input",
                  "invalid_type")
    for i, row in enumerate(inp):
        if not isinstance(row, list) or not row or not all(type(t) is int for t in row):
            raise bad(f"'input[{i}]' must be a non-empty string or a non-empty list of token ids (all items of "
                      "one kind)", "input", "invalid_type")
    return None, inp, fmt == "base64"


def encode_vector(v, as_base64):
    if as_base64:
        return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")
    return v.tolist()


def register(app, state, body_of):
    """Adds POST /v1/embeddings and the encoder guard of the decoder routes to `app`."""

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await body_of(request)
        model = state.ready()
        if not is_encoder(model):
            raise bad(f"the model {state.name!r} is a decoder (text generation); /v1/embeddings needs an encoder "
                      "(serve a BERT / sentence-transformers folder)", "model", "model_not_encoder")
        texts, ids, as_b64 = parse(body, model)

        def run():
            if texts is not None:
                runs = model.tokenize(texts)
                return model.embed_ids(runs), sum(len(r) for r in runs)
            return model.embed_ids(ids), sum(len(r) for r in ids)

        try:
            vectors, n_tokens = await asyncio.to_thread(run)
        except ValueError as e:
            raise bad(str(e), "input") from None
        data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, as_b64)}
                for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": state.name,
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    app.add_middleware(_EncoderGuard, state=state)


class _EncoderGuard:
    """Plain ASGI middleware: with an encoder loaded, the generation and tokenizer routes answer a
    400 error body instead of failing inside."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope.get("path") in DECODER_ROUTES and is_encoder(self.state.model)
                and self._authorized(scope)):  # without the key the route itself answers 401
            err = APIError(400, f"the model {self.state.name!r} is an encoder (sentence embeddings): it serves "
                                f"POST /v1/embeddings, not {scope['path']}", code="model_is_encoder")
            payload = json.dumps(err.body()).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope):
        if self.state.api_key is None:
            return True
        headers = dict(scope.get("headers") or [])
        return headers.get(b"authorization", b"") == f"Bearer {self.state.api_key}".encode()
