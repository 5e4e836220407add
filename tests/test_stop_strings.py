"""Stop strings on the real model: a stop that spans two or three tokens ends the generation at the
right character, streamed and not, and nothing of it is returned or streamed."""
import pytest

import ninestep
from helpers.models import smollm2_path

PROMPT = "Here is a list of three fruits, one per line:\n1."
N = 48


@pytest.fixture(scope="module")
def model():
    with ninestep.load(smollm2_path(), n_ctx=256) as m:
        yield m


@pytest.fixture(scope="module")
def greedy(model):
    """The greedy continuation and the text each of its tokens ends at."""
    c = model.generate(PROMPT, max_new_tokens=N, temperature=0, ignore_eos=True)
    ends, dec = [], model.tokenizer.stream_decoder()
    text = ""
    for t in c.tokens:
        text += dec.push(t)
        ends.append(len(text))
    assert text == c.text and len(set(ends)) > 20
    return c.text, ends


def _spanning(text, ends, parts):
    """Stops that span `parts` tokens: from the last char of one token's text to the first of the
    token `parts - 1` later; only those occurring first at that place."""
    out = []
    for i in range(len(ends) - parts):
        a, b = ends[i] - 1, ends[i + parts - 2] + 1
        if a < 0 or ends[i + parts - 2] >= ends[i + parts - 1] or ends[i - 1 if i else 0] >= ends[i]:
            continue
        s = text[a:b]
        if text.find(s) == a and s.strip():
            out.append((s, a))
    return out


def _run(model, stop, stream):
    kw = dict(max_new_tokens=N, temperature=0, stop=stop, ignore_eos=True)
    if not stream:
        c = model.generate(PROMPT, **kw)
        return c.text, c
    s = model.generate(PROMPT, stream=True, **kw)
    pieces = list(s)
    assert "".join(pieces) == s.completion.text
    return "".join(pieces), s.completion


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("parts", [2, 3])
def test_stop_spanning_tokens_ends_at_its_first_character(model, greedy, stream, parts):
    text, ends = greedy
    cases = _spanning(text, ends, parts)
    assert len(cases) >= 5
    for stop, at in cases[:4]:
        got, c = _run(model, stop, stream)
        assert (got, c.finish_reason) == (text[:at], "stop"), f"stop {stop!r}"


@pytest.mark.parametrize("stream", [False, True])
def test_newline_stop_after_a_period(model, greedy, stream):
    # the example: ".\n" split over two tokens must still stop
    text, ends = greedy
    stop = next(s for s, _ in _spanning(text, ends, 2) if "\n" in s)
    got, c = _run(model, stop, stream)
    assert c.finish_reason == "stop" and got == text[:text.find(stop)]


@pytest.mark.parametrize("stream", [False, True])
def test_the_earliest_of_several_stops_wins_and_a_missing_one_changes_nothing(model, greedy, stream):
    text, ends = greedy
    (s1, a1), (s2, a2) = _spanning(text, ends, 2)[1:3]
    got, c = _run(model, [s2, "never in the text \x00", s1], stream)
    assert got == text[:min(a1, a2)] and c.finish_reason == "stop"
    got, c = _run(model, "never in the text \x00", stream)
    assert got == text and c.finish_reason == "length"
