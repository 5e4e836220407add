"""Tokenizer fuzz: arbitrary text (surrogates included) and arbitrary id lists through the
byte-level BPE (SmolLM2's tokenizer.json) and SentencePiece tokenizers, and tokenizers built from
damaged GGUF metadata. Text round-trips where it must; only ValueError may come out."""
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fuzz.conftest import fuzz_settings
from ninestep.tokenizer import Tokenizer
from ninestep.tokenizer.pretokenize import bytes_to_unicode

GOLD = Path(__file__).parent.parent / "goldens" / "tokenizer"
BPE = Tokenizer.from_hf(GOLD / "smollm2" / "tokenizer.json")
SPM_META = json.loads((GOLD / "goldens.json").read_text(encoding="utf-8"))["spm"]["meta"]
SPM = Tokenizer.from_gguf_metadata(SPM_META)
# bytes SmolLM2's vocabulary has no token for (as in HF, they are dropped): text using them is lossy
UNSPELLABLE = {b for b, c in bytes_to_unicode().items() if BPE.token_to_id(c) is None}
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>"]

texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(SPECIALS + [" ", "\n", "  ", "\t"])),
                 max_size=10).map("".join)
id_lists = st.lists(st.one_of(st.integers(-3, 50000), st.integers(-2**70, 2**70), st.booleans(), st.floats(),
                              st.text(max_size=2), st.none()), max_size=12)


def _is_utf8(s):
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@fuzz_settings(200)
@given(texts)
def test_fuzz_encode_decode_round_trip(s):
    for tok, lossless in ((BPE, True), (SPM, False)):
        try:
            ids = tok.encode(s, add_special=False)
        except ValueError:
            assert not _is_utf8(s)  # only text that cannot be UTF-8 may be refused
            continue
        assert all(type(i) is int and 0 <= i < tok.vocab_size for i in ids)
        text = tok.decode(ids)
        if lossless and not UNSPELLABLE & set(s.encode("utf-8")):
            # byte-level BPE has no normalizer: every string it can spell comes back exactly
            assert text == s
        stream = tok.stream_decoder()
        assert "".join(stream.push(i) for i in ids) + stream.flush() == text


@fuzz_settings(200)
@given(id_lists)
def test_fuzz_decode_arbitrary_ids(ids):
    for tok in (BPE, SPM):
        try:
            out = tok.decode(ids)
        except (ValueError, TypeError):
            assert not all(type(i) is int and 0 <= i < tok.vocab_size for i in ids)
            continue
        assert isinstance(out, str)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(),
                                     st.text(max_size=6)),
                           lambda v: st.lists(v, max_size=4), max_leaves=8)


@fuzz_settings(100)
@given(st.dictionaries(st.sampled_from(sorted(SPM_META) + ["tokenizer.ggml.merges", "tokenizer.ggml.pre"]),
                       json_values, min_size=1, max_size=3),
       st.sampled_from(["llama", "gpt2", None]))
def test_fuzz_tokenizer_from_damaged_metadata(changed, model):
    meta = dict(SPM_META, **changed)
    if model == "gpt2":  # a byte-level vocabulary needs merges; keep whatever the draw gave
        meta["tokenizer.ggml.model"] = "gpt2"
        meta.setdefault("tokenizer.ggml.merges", [])
    try:
        tok = Tokenizer.from_gguf_metadata(meta)
    except ValueError:
        return
    for s in ("hello world", "<s> a</s>", "ü 12"):
        ids = tok.encode(s)
        assert all(0 <= i < tok.vocab_size for i in ids)
        tok.decode(ids)
