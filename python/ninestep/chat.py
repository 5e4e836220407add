"""Chat templates: messages -> prompt text, rendered exactly as HF transformers'
`apply_chat_template(..., tokenize=False)` does (same Jinja sandbox, flags and helpers)."""
import json
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

# names a message's reasoning may come under; HF copies it to the first two for templates
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def apply_chat_template(template, messages, add_generation_prompt=True, **extra):
    """Render `template` (a Jinja chat template) for `messages` (a list of {'role', 'content'}
    dicts). `extra` becomes template variables (bos_token, eos_token, tools, documents, ...)."""
    if not isinstance(template, str):
        raise ValueError(f"template: expected a str, got {type(template).__name__}")
    chat = _aliased(_plain(_validated(messages)))
    tools = _plain(extra.pop("tools", None))
    documents = _plain(extra.pop("documents", None))
    try:
        return _compile(template).render(messages=chat, tools=tools, documents=documents,
                                         add_generation_prompt=bool(add_generation_prompt), **_plain(extra))
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"template: syntax error at line {e.lineno}: {e.message}") from None
    except jinja2.TemplateError as e:  # raise_exception() in the template, sandbox violations
        raise ValueError(f"chat template: {e.message}") from None


def _validated(messages):
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"messages: expected a list of dicts with 'role' and 'content', got {type(messages).__name__}")
    if not messages:
        raise ValueError("messages: the conversation is empty; give at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}]: expected a dict with 'role' and 'content', got {type(m).__name__}")
        if not isinstance(m.get("role"), str):
            raise ValueError(f"messages[{i}]: 'role' must be a str, got {m.get('role')!r}")
        if "content" not in m:
            raise ValueError(f"messages[{i}] (role {m['role']!r}): missing 'content'")
        c = m["content"]
        # None is allowed for assistant turns that only carry tool_calls; lists are content blocks
        if not (isinstance(c, (str, list)) or (c is None and "tool_calls" in m)):
            raise ValueError(f"messages[{i}] (role {m['role']!r}): 'content' must be a str or a list of "
                             f"blocks, got {type(c).__name__}")
    return messages


def _plain(value):
    # Like HF: the template sees only JSON-like data, never the caller's objects.
    if value is None or type(value) in (str, int, float, bool):
        return value
    for typ in (bool, str, int, float):
        if isinstance(value, typ):
            return typ(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item"):  # NumPy scalars
        return _plain(value.item())
    return f"<{type(value).__name__}>"


def _aliased(chat):
    out = []
    for m in chat:
        r = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
        out.append({"thinking": r, **m, "reasoning_content": r} if r is not None else m)
    return out


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for HF's masks; it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Jinja's own tojson HTML-escapes; HF's keeps text as is
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


class _Namespace(jinja2.utils.Namespace):
    """namespace() that refuses underscore names, as HF's sandbox does."""

    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attributes may not start with '_': {name!r}")


class _Dict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


@lru_cache(maxsize=16)
def _compile(template):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now,
                       dict=_Dict(), namespace=_Namespace)
    return env.from_string(template)
