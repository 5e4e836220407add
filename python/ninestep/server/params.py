"""Request bodies -> checked generation arguments. Unknown fields are ignored (as OpenAI does);
a wrong type or range is a 400 naming the field."""
import math

from .errors import bad

MAX_N = 16


def _num(body, name, default, lo=None, hi=None, integer=False):
    v = body.get(name, default)
    if v is None:
        return default
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not math.isfinite(v):
        raise bad(f"'{name}' must be {'an integer' if integer else 'a number'}, got {v!r}", name, "invalid_type")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise bad(f"'{name}' must be in {rng}, got {v!r}", name, "invalid_value")
    return v


def _logit_bias(body):
    """OpenAI's 'logit_bias': {"token id": bias in [-100, 100]} -> {id: bias} (ids checked later
    against the vocabulary); None when absent or empty."""
    v = body.get("logit_bias")
    if v is None:
        return None
    if not isinstance(v, dict):
        raise bad("'logit_bias' must be an object mapping token ids to numbers", "logit_bias", "invalid_type")
    out = {}
    for key, b in v.items():
        try:
            tok = int(key)
        except ValueError:
            raise bad(f"'logit_bias' keys must be token ids, got {key!r}", "logit_bias", "invalid_type") from None
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or not -100 <= b <= 100:
            raise bad(f"'logit_bias' values must be numbers in [-100, 100], got {b!r} for token {key}", "logit_bias",
                      "invalid_value")
        out[tok] = float(b)
    return out or None


def _bool(body, name, default=False):
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad(f"'{name}' must be a boolean, got {v!r}", name, "invalid_type")
    return v


def _stop(body):
    v = body.get("stop")
    if v is None:
        return None
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or len(v) > 4 or not all(isinstance(s, str) for s in v):
        raise bad("'stop' must be a string or a list of at most 4 strings", "stop", "invalid_type")
    return [s for s in v if s] or None


def sampling(body, chat):
    """generate() keyword arguments from an OpenAI request body."""
    max_tokens = body.get("max_completion_tokens") if chat else None
    name = "max_completion_tokens" if max_tokens is not None else "max_tokens"
    max_tokens = _num(body, name, None if chat else 16, lo=0, integer=True)
    temperature = _num(body, "temperature", 1.0, lo=0, hi=2)
    kw = dict(
        max_new_tokens=max_tokens, temperature=float(temperature),
        top_p=float(_num(body, "top_p", 1.0, lo=0, hi=1)),
        top_k=_num(body, "top_k", 0, lo=0, integer=True),
        min_p=float(_num(body, "min_p", 0.0, lo=0, hi=1)),
        seed=_num(body, "seed", None, integer=True),
        presence_penalty=float(_num(body, "presence_penalty", 0.0, lo=-2, hi=2)),
        frequency_penalty=float(_num(body, "frequency_penalty", 0.0, lo=-2, hi=2)),
        repetition_penalty=float(_num(body, "repetition_penalty", 1.0, lo=0)),
        n=_num(body, "n", 1, lo=1, hi=MAX_N, integer=True),
        stop=_stop(body),
        ignore_eos=_bool(body, "ignore_eos"),  # llama.cpp's server extension: fixed lengths for benchmarks
        logit_bias=_logit_bias(body),
    )
    if kw["repetition_penalty"] <= 0:
        raise bad("'repetition_penalty' must be > 0", "repetition_penalty", "invalid_value")
    if kw["top_p"] <= 0:
        kw["top_p"] = 1e-6  # OpenAI accepts 0: only the most likely token
    if chat:
        lp = _bool(body, "logprobs")
        top = _num(body, "top_logprobs", None, lo=0, hi=20, integer=True)
        if top is not None and not lp:
            raise bad("'top_logprobs' needs 'logprobs': true", "top_logprobs", "invalid_value")
        kw["logprobs"] = (top or 0) if lp else None
    else:
        lp = _num(body, "logprobs", None, lo=0, hi=5, integer=True)
        kw["logprobs"] = lp
        best_of = _num(body, "best_of", None, lo=1, hi=MAX_N, integer=True)
        if best_of is not None and best_of != kw["n"]:
            raise bad("'best_of' other than 'n' is not supported by this server (every choice made is returned)",
                      "best_of", "unsupported_value")
        if body.get("suffix"):
            raise bad("'suffix' (insertion) is not supported by this server", "suffix", "unsupported_value")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise bad("'user' must be a string", "user", "invalid_type")
    return kw


def echo(body, kw, stream):
    """A completion's 'echo': the prompt's text before each choice's; with 'logprobs' the prompt's
    tokens get theirs too (the first none), as OpenAI's legacy completions do, not streamed."""
    e = _bool(body, "echo")
    if e and kw["logprobs"] is not None:
        if stream:
            raise bad("'echo' with 'logprobs' is not supported with 'stream': true by this server",
                      "echo", "unsupported_value")
        kw["_prompt_logprobs"] = kw["logprobs"]
    return e


def stream_options(body):
    stream = _bool(body, "stream")
    opts = body.get("stream_options")
    if opts is None:
        return stream, False
    if not isinstance(opts, dict):
        raise bad("'stream_options' must be an object", "stream_options", "invalid_type")
    if not stream:
        raise bad("'stream_options' is only allowed with 'stream': true", "stream_options", "invalid_value")
    return stream, _bool(opts, "include_usage")


ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def messages(body):
    """The chat's messages as the template takes them: text content, OpenAI's roles ('developer',
    the newer name of 'system', becomes 'system': chat templates know that one)."""
    m = body.get("messages")
    if not isinstance(m, list) or not m:
        raise bad("'messages' must be a non-empty list of messages", "messages", "invalid_type")
    out = []
    for i, msg in enumerate(m):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise bad(f"'messages[{i}]' must be an object with a string 'role'", f"messages[{i}]", "invalid_type")
        if msg["role"] not in ROLES:
            raise bad(f"Invalid value for 'messages[{i}].role': {msg['role']!r}; supported: {', '.join(ROLES)}",
                      f"messages[{i}].role", "invalid_value")
        c = msg.get("content")
        if isinstance(c, list):  # content parts: text only
            try:
                c = "".join(p["text"] for p in c if p.get("type") == "text")
            except (TypeError, KeyError, AttributeError):
                raise bad(f"'messages[{i}].content' parts must be {{'type': 'text', 'text': ...}}",
                          f"messages[{i}].content", "invalid_type") from None
        if c is None:
            if msg["role"] != "assistant":  # an assistant turn may carry tool calls instead
                raise bad(f"Missing required parameter: 'messages[{i}].content'", f"messages[{i}].content",
                          "missing_required_parameter")
            c = ""
        if not isinstance(c, str):
            raise bad(f"'messages[{i}].content' must be a string or a list of text parts",
                      f"messages[{i}].content", "invalid_type")
        out.append({"role": "system" if msg["role"] == "developer" else msg["role"], "content": c})
    return out


def prompts(body):
    """A completion's 'prompt': a string, a list of strings, a list of token ids or a list of such lists."""
    p = body.get("prompt")
    if isinstance(p, str):
        return [p]
    if isinstance(p, list) and p:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return [p]
        if all(isinstance(s, str) for s in p):
            return p
        if all(isinstance(s, list) and s and all(isinstance(t, int) and not isinstance(t, bool) for t in s) for s in p):
            return p
    raise bad("'prompt' must be a string, a list of strings, a list of token ids or a list of such lists",
              "prompt", "invalid_type")
