"""WordPiece (BERT / MiniLM) tokenizer against HF `tokenizers` (live), on all-MiniLM-L6-v2's
tokenizer.json (a copy is committed as tests/goldens/minilm_tokenizer.json) and the tiny BERT's
trained one (tests/data/make_tiny_encoders.py); truncation as sentence-transformers does it."""
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from ninestep.tokenizer import Tokenizer
from ninestep.tokenizer.wordpiece import WordPieceTokenizer

HERE = Path(__file__).parent
MINILM_JSON = HERE / "goldens" / "minilm_tokenizer.json"
TINY_JSON = HERE / "data" / "tiny-bert" / "tokenizer.json"

CORPUS = [
    "Hello, World!", "hello world", "HELLO WORLD", "", " ", "   \t\n  ", "a", "A.", "...", "?!", "x" * 99,
    "Café résumé naïve façade Ångström piñata jalapeño crème brûlée", "Müller Straße Ärger Öl Übermut",
    "ΣΊΣΥΦΟΣ ΟΔΥΣΣΕΥΣ σοφός", "İstanbul ǅungla ß ﬁne ﬀ Ⅻ ①②③ ½ ² ㎏", "Привет, мир! Ёлка", "Ωmega µ Å K",
    "東京は日本の首都です。", "北京欢迎你，上海也欢迎你！", "한국어 텍스트 ひらがな カタカナ ｶﾀｶﾅ", "𠀀𪚥𫝀 CJK extensions 丽",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Tiếng Việt có dấu",
    "3.14159 and 1,000,000 dollars $5 €10 £3 ¥100 50% #1 @user", "2024-02-29T13:37:00Z +1 (555) 123-4567",
    "<a href=\"x\">link</a> & &amp; {json: [1, 2]} a|b ~c ^d `e` _f_ =g+h*i/j\\k",
    "supercalifragilisticexpialidocious " * 3, "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 100, "a" * 101, "ab" * 60, "zxqvbnmkjhgfdsa wqpxlz frobnicate blorft", "xxxxxxxxxxxxxxxxxxxxyyyyyyy",
    "tab\there\nnewline\r\nCR\rvt\x0bff\x0c", "nul\x00bell\x07esc\x1b del\x7f", "zero\u200bwidth\u200djoiner\ufeffbom",
    "repl\ufffdchar soft\u00adhyphen", "nel\u0085next nbsp\u00a0x ideo\u3000space en\u2002em\u2003 line\u2028para\u2029",
    "private\ue000use", "combining e\u0301 a\u0308 n\u0303 o\u0338", "[CLS] hi [SEP] [MASK] [unk] [PAD]x",
    "[cls] lower-case specials", "emoji 😀🎉🚀👍🏽 👨‍👩‍👧 and ™ © ® ° ± × ÷", "don't I'm you're they've it's we'd",
    "naïve co-operate e-mail U.S.A. ... !!! ??? -- --- *** ###", "¿Qué? ¡Sí! «guillemets» „quotes“ ‘single’ — – …",
    "Zürich—München–Köln", "Mr. O'Neil's 2nd-floor flat; it's £1,250/month (bills incl.)",
    "def f(x):\n    return x ** 2  # square", "SELECT * FROM t WHERE a >= 3 AND b <> 'x';",
    "ALLCAPSWORD MixedCaseWord camelCaseWord snake_case_word kebab-case-word", "1st 2nd 3rd 4th 100th",
    "the the the the the", "word " * 300,
]


def random_texts(n, seed):
    """Texts drawn from a pool that mixes ASCII, accents, CJK, punctuation, controls and spaces."""
    pool = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     .,;:!?'\"()[]{}-_$%&*#@/\\|~^`+=<>"
            "éèêëàâäôöûüçñåøßÉÀÖÜŒæ" "東京日本首都北京欢迎你한국ひらカタ" "\t\n\r\x00\x07\u200b\u00a0\u3000\u0301\u0308\ufffd"
            "¿¡«»—–…€£¥°±×÷😀ΣσςΑαЁё")
    rnd = random.Random(seed)
    return ["".join(rnd.choice(pool) for _ in range(rnd.randint(0, 80))) for _ in range(n)]


def hf_tokenizer(path, max_length=None):
    h = HFTokenizer.from_file(str(path))
    h.no_padding()
    if max_length is None:
        h.no_truncation()
    else:
        h.enable_truncation(max_length)
    return h


@pytest.fixture(scope="module", params=["minilm", "tiny-bert"])
def pair(request):
    path = MINILM_JSON if request.param == "minilm" else TINY_JSON
    return Tokenizer.from_hf(path), hf_tokenizer(path)


def check_same(tok, hf, text):
    ids = tok.encode(text)
    assert ids == hf.encode(text).ids, text
    assert tok.encode(text, add_special=False) == hf.encode(text, add_special_tokens=False).ids, text
    assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False), text
    assert tok.decode(ids, skip_special=True) == hf.decode(ids), text
    s = tok.stream_decoder()
    assert "".join(s.push(i) for i in ids) + s.flush() == tok.decode(ids)


def test_kind_and_specials(pair):
    tok, hf = pair
    assert isinstance(tok, WordPieceTokenizer) and tok.kind == "WordPiece"
    assert tok.vocab_size == hf.get_vocab_size()
    assert tok.encode("") == [hf.token_to_id("[CLS]"), hf.token_to_id("[SEP]")]
    assert tok.n_special == 2 and tok.is_special(hf.token_to_id("[SEP]"))


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_matches_hf(pair, text):
    check_same(*pair, text)


def test_random_texts_match_hf(pair):
    tok, hf = pair
    for text in random_texts(400, seed=7):
        check_same(tok, hf, text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=60))
def test_any_text_matches_hf(text):
    tok, hf = _minilm()
    assert tok.encode(text) == hf.encode(text).ids


_CACHE = {}


def _minilm():
    if not _CACHE:
        _CACHE["t"] = (Tokenizer.from_hf(MINILM_JSON), hf_tokenizer(MINILM_JSON))
    return _CACHE["t"]


@pytest.mark.parametrize("max_length", [3, 4, 16, 256])
def test_truncation_matches_hf(max_length):
    tok = Tokenizer.from_hf(MINILM_JSON)
    hf = hf_tokenizer(MINILM_JSON, max_length)
    for text in CORPUS + random_texts(50, seed=3):
        ids = tok.encode(text, max_length=max_length)
        assert ids == hf.encode(text).ids, text
        assert len(ids) <= max_length
        assert tok.encode(text, add_special=False, max_length=max_length) == \
            hf.encode(text, add_special_tokens=False).ids


def test_bad_arguments():
    tok = Tokenizer.from_hf(MINILM_JSON)
    for bad in (0, 2, -1, 2.5, "8", True):
        with pytest.raises(ValueError, match="max_length"):
            tok.encode("hello", max_length=bad)
    with pytest.raises(ValueError, match="text"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="text"):
        tok.encode("lone \ud800 surrogate")


def variant(tmp_path, edit):
    j = json.loads(MINILM_JSON.read_text(encoding="utf-8"))
    edit(j)
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(j), encoding="utf-8")
    return p


@pytest.mark.parametrize("edit, match", [
    (lambda j: j.update(normalizer={"type": "NFC"}), "normalizer 'NFC'"),
    (lambda j: j.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer 'Whitespace'"),
    (lambda j: j.update(pre_tokenizer=None), "pre_tokenizer None"),
    (lambda j: j.update(decoder={"type": "ByteLevel"}), "decoder 'ByteLevel'"),
    (lambda j: j["model"].update(unk_token="[NOPE]"), "unk_token"),
    (lambda j: j["model"].update(vocab=[]), "vocab"),
    (lambda j: j["model"].update(type="WordLevel"), "WordLevel"),
])
def test_unsupported_tokenizer_json(tmp_path, edit, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer.from_hf(variant(tmp_path, edit))


def test_options_match_hf(tmp_path):
    """BertNormalizer flags other than MiniLM's: no lowercase (accents kept), no CJK padding, no cleaning."""
    for opts in ({"lowercase": False}, {"lowercase": False, "strip_accents": True}, {"handle_chinese_chars": False},
                 {"clean_text": False}, {"strip_accents": False}):
        p = variant(tmp_path, lambda j: j["normalizer"].update(opts))
        tok, hf = Tokenizer.from_hf(p), hf_tokenizer(p)
        for text in CORPUS[:40] + random_texts(40, seed=5):
            assert tok.encode(text) == hf.encode(text).ids, (opts, text)
