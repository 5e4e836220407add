"""Chat templates against HF transformers' apply_chat_template(..., tokenize=False) goldens."""
import json
from pathlib import Path

import pytest

from ninestep.chat import apply_chat_template
from ninestep.tokenizer import Tokenizer

GOLDENS = Path(__file__).parent / "goldens" / "tokenizer"
G = json.loads((GOLDENS / "goldens.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_hf(GOLDENS / "smollm2" / "tokenizer.json")


@pytest.mark.parametrize("i", range(len(G["chat"])))
def test_matches_hf(tok, i):
    c = G["chat"][i]
    assert tok.apply_chat_template(c["messages"], add_generation_prompt=c["add_generation_prompt"]) == c["text"]
    assert apply_chat_template(tok.chat_template, c["messages"], c["add_generation_prompt"]) == c["text"]


def test_template_variables_and_helpers():
    t = ("{{ bos_token }}{% for m in messages %}{{ m.content | tojson }}{% endfor %}"
         "{% if add_generation_prompt %}[gen]{% endif %}{{ strftime_now('%Y') | length }}")
    out = apply_chat_template(t, [{"role": "user", "content": "<b>é\"</b>"}], bos_token="<s>")
    assert out == '<s>"<b>é\\"</b>"[gen]4'  # HF's tojson: no HTML escaping, no ASCII escaping


def test_trim_and_lstrip_blocks_and_loopcontrols():
    t = "  {% for m in messages %}\n{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role }}\n  {% endfor %}\n"
    msgs = [{"role": "a", "content": ""}, {"role": "b", "content": ""}]
    assert apply_chat_template(t, msgs) == "a\n"


def test_raise_exception_becomes_value_error():
    t = "{% if messages[0].role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}"
    with pytest.raises(ValueError, match="roles must alternate"):
        apply_chat_template(t, [{"role": "assistant", "content": "x"}])


def test_sandbox_blocks_python_internals():
    with pytest.raises(ValueError):
        apply_chat_template("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}",
                            [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError):
        apply_chat_template("{% set ns = namespace(_x=1) %}", [{"role": "user", "content": "x"}])


@pytest.mark.parametrize("messages, match", [
    ("hi", "messages: expected a list"),
    ([], "empty"),
    (["hi"], r"messages\[0\]: expected a dict"),
    ([{"content": "x"}], r"messages\[0\]: 'role'"),
    ([{"role": "user"}], r"messages\[0\].*missing 'content'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": 5}], r"messages\[1\].*'content' must be"),
])
def test_bad_messages(tok, messages, match):
    with pytest.raises(ValueError, match=match):
        tok.apply_chat_template(messages)


def test_no_template():
    meta = G["spm"]["meta"]
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer.from_gguf_metadata(meta).apply_chat_template([{"role": "user", "content": "x"}])


def test_bad_template_syntax():
    with pytest.raises(ValueError, match="syntax error"):
        apply_chat_template("{% for %}", [{"role": "user", "content": "x"}])
