"""Generated text through ninestep and HF `tokenizers` (live): same ids, lossless round trip,
streaming joins to decode(). Uses the committed SmolLM2 tokenizer.json (Digits + ByteLevel)."""
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from ninestep.tokenizer import Tokenizer
from ninestep.tokenizer.pretokenize import bytes_to_unicode

TOKENIZER_JSON = Path(__file__).parent / "goldens" / "tokenizer" / "smollm2" / "tokenizer.json"
SPM_META = json.loads((TOKENIZER_JSON.parent.parent / "goldens.json").read_text(encoding="utf-8"))["spm"]["meta"]

TOK = Tokenizer.from_hf(TOKENIZER_JSON)
HF = HFTokenizer.from_file(str(TOKENIZER_JSON))
SPM = Tokenizer.from_gguf_metadata(SPM_META)
SPM_HF_JSON = TOKENIZER_JSON.parent.parent / "spm_hf" / "tokenizer.json"
SPM_HF, HF_SPM = Tokenizer.from_hf(SPM_HF_JSON), HFTokenizer.from_file(str(SPM_HF_JSON))

UNSPELLABLE = {b for b, c in bytes_to_unicode().items() if TOK.token_to_id(c) is None}

# Pieces that hit the split rules' edges, mixed with arbitrary code points.
FRAGMENTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "'s", "'S", "'ll", "'LL", "'re", "'Re",
             "'ve", "'m", "'d", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "0", "7", "12", "١", "²",
             "a", "Z", "é", "ß", "я", "中", "ا", "😀", "👍🏽", "\u200d", "\ufe0f", "e\u0301", "_", "-", "...",
             "$"]
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS),
                           st.text(st.characters(exclude_categories=["Cs"]), max_size=6)),
                 max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_ids_match_hf(s):
    assert TOK.encode(s) == HF.encode(s).ids


@settings(max_examples=200, deadline=None)
@given(texts)
def test_sentencepiece_tokenizer_json_ids_match_hf(s):
    ids = HF_SPM.encode(s).ids
    assert SPM_HF.encode(s) == ids
    assert SPM_HF.decode(ids) == HF_SPM.decode(ids, skip_special_tokens=False)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_ids_match_hf_any_unicode(s):
    assert TOK.encode(s) == HF.encode(s).ids


@settings(max_examples=200, deadline=None)
@given(texts)
def test_roundtrip_and_stream(s):
    # SmolLM2 has no token for a few bytes (0x04, 0xF1, ...): HF drops those chars, so do we
    assume(all(b not in UNSPELLABLE for b in s.encode("utf-8")))
    for tok in (TOK, SPM):
        ids = tok.encode(s, add_special=False)
        assert tok.decode(ids) == s
        d = tok.stream_decoder()
        assert "".join([d.push(i) for i in ids]) + d.flush() == s


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 1), max_size=12), st.booleans())
def test_decode_and_stream_match_hf_on_any_ids(ids, skip):
    want = HF.decode(ids, skip_special_tokens=skip)
    assert TOK.decode(ids, skip_special=skip) == want
    d = TOK.stream_decoder(skip_special=skip)
    pieces = [d.push(i) for i in ids]
    assert "".join(pieces) + d.flush() == want


@pytest.mark.parametrize("tok", [TOK, SPM], ids=["bytelevel", "sentencepiece"])
def test_stream_holds_partial_characters(tok):
    # a 4-byte emoji split over byte tokens comes out whole, once
    s = "x😀y中"
    ids = tok.encode(s, add_special=False)
    d = tok.stream_decoder()
    out = [d.push(i) for i in ids] + [d.flush()]
    assert "".join(out) == s and all("\ufffd" not in p for p in out)


def test_letters_newer_than_hf_unicode_split_as_hf():
    # regex knows Unicode 17 letters/digits that HF's Oniguruma does not (unicode_compat.py)
    for s in ["\U000323b0's", "a\u088fb", "\U00011de0 1 \U00011de1x", "x\ua7ce's"]:
        assert TOK.encode(s) == HF.encode(s).ids
