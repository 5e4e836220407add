"""Perplexity, chunked as llama-perplexity chunks it: the windows and scored positions against a
direct NumPy computation from model.logits, and the figure against llama-perplexity's own on the
same text (tests/data/perplexity_llama_cpp.json, made by the command recorded in it)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ninestep
from helpers.models import smollm2_path

DATA = Path(__file__).resolve().parent / "data"
LICENSES = [Path("/usr/share/common-licenses/GPL-3"), Path("/usr/share/common-licenses/Apache-2.0")]
TEXT = ("The lighthouse stood on the rocks at the edge of the bay. Every night its lamp turned, and the "
        "ships that passed far out at sea saw it and knew where the land was. ") * 6


@pytest.fixture(scope="module")
def model():
    with ninestep.load(smollm2_path(), n_ctx=512) as m:
        yield m


def direct(model, ids, ctx, stride):
    """-log p of the second half of each window, from model.logits, written out plainly."""
    bos = model.tokenizer.bos_id if model.tokenizer.add_bos else None
    nll = []
    for start in range(0, len(ids) - ctx + 1, stride):
        w = list(ids[start:start + ctx])
        if bos is not None:
            w[0] = bos
        logits = model.logits(w).astype(np.float64)
        for j in range(ctx // 2, ctx - 1):
            row = logits[j]
            nll.append(np.log(np.exp(row - row.max()).sum()) + row.max() - row[w[j + 1]])
    return nll


@pytest.mark.parametrize("ctx, stride", [(32, None), (32, 16), (48, 7)])
def test_windows_and_scored_tokens_match_a_direct_computation(model, ctx, stride):
    ids = model.tokenizer.encode(TEXT)
    r = model.perplexity(TEXT, ctx=ctx, stride=stride)
    want = direct(model, ids, ctx, stride or ctx)
    n_windows = (len(ids) - ctx) // (stride or ctx) + 1
    assert (r.windows, r.scored_tokens, r.text_tokens) == (n_windows, n_windows * (ctx - ctx // 2 - 1), len(ids))
    assert r.stride == (stride or ctx) and r.ctx == ctx
    assert r.perplexity == pytest.approx(math.exp(np.mean(want)), rel=1e-9)
    assert r.nll == pytest.approx(np.mean(want), rel=1e-9)


def test_a_repeated_text_is_predictable(model):
    # windows of 128: the scored half repeats the ~37-token sentence already in the window (measured 1.14)
    r = model.perplexity(TEXT, ctx=128)
    assert 1.0 < r.perplexity < 1.5 and r.tokens_per_second > 0


@pytest.mark.parametrize("kw, msg", [
    (dict(ctx=2), "ctx: must be >= 4"), (dict(ctx=1024), "ctx: 1024 is more than the model's n_ctx 512"),
    (dict(ctx=32, stride=33), "stride: must be <= ctx"), (dict(ctx=32, stride=0), "stride: must be >= 1"),
    (dict(ctx=True), "ctx: expected an int"),
])
def test_bad_arguments_name_themselves(model, kw, msg):
    with pytest.raises(ValueError, match=msg):
        model.perplexity(TEXT, **kw)


def test_text_shorter_than_a_window_and_non_text(model):
    with pytest.raises(ValueError, match="fewer than one window of ctx 512"):
        model.perplexity("Too short.", ctx=512)
    with pytest.raises(ValueError, match="text: expected a str"):
        model.perplexity(b"bytes")


def _licenses():
    if not all(p.is_file() for p in LICENSES):
        pytest.skip("needs /usr/share/common-licenses (Debian's base-files)")
    return "".join(p.read_text() for p in LICENSES)


def test_agrees_with_llama_perplexity_within_half_a_percent(model):
    golden = json.loads((DATA / "perplexity_llama_cpp.json").read_text())
    text = _licenses()
    ids = model.tokenizer.encode(text)
    assert len(ids) // 512 == golden["chunks_in_text"]  # llama.cpp's tokenizer made as many 512-token chunks
    for case in golden["runs"]:
        if not case["chunks"]:  # the whole text: ~20 s on a quiet machine; README has it, NINESTEP_SLOW=1 checks it
            if not os.environ.get("NINESTEP_SLOW"):
                continue
            ppl = model.perplexity(text, ctx=512).perplexity
        else:  # llama-perplexity --chunks N: the first N windows
            ppl = math.exp(np.mean(direct(model, ids[:case["chunks"] * 512], 512, 512)))
        assert abs(ppl / case["ppl"] - 1) < 0.005, (n, ppl, case["ppl"])


def test_cli_perplexity_prints_the_figure_and_speed(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT)
    r = subprocess.run([sys.executable, "-m", "ninestep", "perplexity", "-m", "smollm2-135m", "-c", "64", str(f)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("perplexity: ") and "windows of 64, stride 64" in r.stdout
    assert "tokens/s" in r.stderr and "windows, perplexity so far" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xffdef")
    r = subprocess.run([sys.executable, "-m", "ninestep", "perplexity", str(bad)], capture_output=True, text=True,
                       timeout=300, env={**os.environ})
    assert r.returncode == 2 and f"{bad}: not valid UTF-8 at byte offset 3" in r.stderr
