"""Every GGUF `tokenizer.ggml.pre` rule (ninestep/tokenizer/gguf_pre.py) against HF `tokenizers`
(live) built with the same rule: a Sequence of Split(regex, "isolated") steps then ByteLevel, with
the regexes written here as llama.cpp's src/llama-vocab.cpp lists them (or, where llama.cpp
rewrote an upstream tokenizer.json pattern for its regex engine, the upstream one it quotes).
Checked piece by piece and, with SmolLM2's 49k byte-level vocabulary and merges, id by id."""
import json
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import pre_tokenizers

from ninestep.tokenizer import Tokenizer
from ninestep.tokenizer.gguf_pre import _CJK, _DEEPSEEK_LETTERS, GGUF_PRE

GOLDENS = Path(__file__).parent / "goldens" / "tokenizer"
HF_JSON = json.loads((GOLDENS / "smollm2" / "tokenizer.json").read_text(encoding="utf-8"))
CORPUS = json.loads((GOLDENS / "gguf_goldens.json").read_text(encoding="utf-8"))["corpus"] + [
    "don't DON'T can't I'M we'LL", "\x1c\x1d\x1e\x1f \x85 x\u2028y", "1 12 123 1234 12345 123456 1234567",
    "a  b   c\t\td \n\n e", "x!!! ??? ...y", "naïve—résumé… «quoted» „German“", "ABCdef ABC Def aBC",
    "<sentinel:12> IMGIMGABZ ok", "日本語のテキストです。中文，还有한국어!", "\u0964 \u06d4 \u060c test",
]

GPT2_LLAMA_CPP = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3_UPSTREAM = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_UPSTREAM = LLAMA3_UPSTREAM.replace(r"\p{N}{1,3}", r"\p{N}")
UP, LO = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
C = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
KU, KL = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]"
DIGITS = "DIGITS"  # HF Digits(individual_digits=True), what SmolLM2 / StarCoder's tokenizer.json use

# name -> the reference steps (one representative name per table row; the row test below checks
# that every other name of the row gets the same rule)
REFERENCE = {
    "gpt-2": [GPT2_LLAMA_CPP],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2_LLAMA_CPP, r"\p{N}+", "[0-9][0-9][0-9]"],
    "llama-bpe": [LLAMA3_UPSTREAM],
    "dbrx": [LLAMA3_UPSTREAM],
    "glm4": [LLAMA3_UPSTREAM],
    "qwen2": [QWEN2_UPSTREAM],
    "qwen35": [r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "deepseek-llm": ["[\r\n]", _DEEPSEEK_LETTERS, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", _CJK, r"\p{N}+"],
    "deepseek-coder": ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK, r"\p{N}"],
    "deepseek-v3": [r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
                    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2_LLAMA_CPP, "[0-9][0-9][0-9]"],
    "smollm": [DIGITS, GPT2_LLAMA_CPP],
    "bloom": [" ?[^(\\s|.,!?…。，、।۔،)]+"],
    "viking": [" ?[^(\\s|.,!?…。，、।۔،)]+", r"\p{N}"],
    "tekken": [rf"[^\r\n\p{{L}}\p{{N}}]?{UP}*{LO}+|[^\r\n\p{{L}}\p{{N}}]?{UP}+{LO}*|\p{{N}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n/]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "gpt-4o": [rf"[^\r\n\p{{L}}\p{{N}}]?{UP}*{LO}+{C}|[^\r\n\p{{L}}\p{{N}}]?{UP}+{LO}*{C}|\p{{N}}{{1,3}}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "chameleon": ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", r"\p{N}",
                  r"[\p{P}!-/:-@\[-`{-~]", GPT2_LLAMA_CPP],
    "kimi-k2": [rf"[\p{{Han}}]+|[^\r\n\p{{L}}\p{{N}}]?{KU}*{KL}+{C}|[^\r\n\p{{L}}\p{{N}}]?{KU}+{KL}*{C}|\p{{N}}{{1,3}}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "seed-coder": [r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
                   r"|\s+(?!\S)|\s+"],
    "bailingmoe": [r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]"
                   r"|\s+(?!\S)|\s+"],
    "exaone-moe": [r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"],
    "minicpm5": [r"\p{N}{1,3}", r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+"],
}
IGNORE_MERGES = {"llama-bpe", "glm4", "tekken", "minicpm5"}


def _hf_steps(name):
    steps = [pre_tokenizers.Digits(individual_digits=True) if r == DIGITS else pre_tokenizers.Split(Regex(r), "isolated")
             for r in REFERENCE[name]]
    return steps + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]


@lru_cache(maxsize=None)
def _hf_base(ignore_merges):
    j = dict(HF_JSON, normalizer=None, model=dict(HF_JSON["model"], ignore_merges=ignore_merges))
    return HFTokenizer.from_str(json.dumps(j))


def _hf_tokenizer(name):
    hf = _hf_base(name in IGNORE_MERGES)
    hf.pre_tokenizer = pre_tokenizers.Sequence(_hf_steps(name))
    return hf


@lru_cache(maxsize=None)
def _ours(name):
    return Tokenizer.from_gguf_metadata({**_meta(name), "tokenizer.ggml.add_bos_token": False})


def _meta(name):
    """SmolLM2's vocabulary as GGUF metadata, with the pre-tokenizer `name`."""
    return {**_base_meta(), "tokenizer.ggml.pre": name}


@lru_cache(maxsize=None)
def _base_meta():
    vocab = HF_JSON["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    control = {a["id"] for a in HF_JSON["added_tokens"] if a["special"]}
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": [3 if i in control else 1 for i in range(len(tokens))],
            "tokenizer.ggml.merges": [" ".join(m) if isinstance(m, list) else m for m in HF_JSON["model"]["merges"]],
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_pieces_match_hf(name):
    ours = _ours(name)
    theirs = pre_tokenizers.Sequence(_hf_steps(name))
    table = ours._model.table
    bad = []
    for s in CORPUS:
        want = [p for p, _ in theirs.pre_tokenize_str(s)]
        got = [p.encode("utf-8").decode("latin-1").translate(table) for p in ours._pre(s)]
        if got != want:
            bad.append((s, got, want))
    assert not bad, f"{name}: {len(bad)} of {len(CORPUS)} strings split differently, first: {bad[0]}"


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_ids_match_hf(name):
    ours, theirs = _ours(name), _hf_tokenizer(name)
    bad = [s for s in CORPUS if ours.encode(s) != theirs.encode(s).ids]
    assert not bad, f"{name}: {len(bad)} of {len(CORPUS)} differ, first: {bad[0]!r}"


def test_every_table_row_is_checked():
    # names sharing a rule in llama.cpp share it here; each distinct rule has a reference above
    rules = {id(r) for r in GGUF_PRE.values()}
    checked = {id(GGUF_PRE[n]) for n in REFERENCE}
    assert rules == checked
    for n in ("gpt2", "mpt", "olmo", "jais"):
        assert GGUF_PRE[n] is GGUF_PRE["gpt-2"]
    for n in ("starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"):
        assert GGUF_PRE[n] is GGUF_PRE["smollm"]
    for n in ("llama3", "falcon3", "pixtral"):
        assert GGUF_PRE[n] is GGUF_PRE["llama-bpe"]
    assert GGUF_PRE["stablelm2"] is GGUF_PRE["qwen2"] and GGUF_PRE["poro-chat"] is GGUF_PRE["bloom"]
    assert GGUF_PRE["chatglm-bpe"] is GGUF_PRE["dbrx"] and GGUF_PRE["llama4"] is GGUF_PRE["gpt-4o"]


def test_unknown_pre_tokenizer_names_itself_and_the_supported():
    with pytest.raises(ValueError, match=r"'nonesuch-7b'.*supported: .*deepseek-coder.*qwen2.*tekken"):
        Tokenizer.from_gguf_metadata(_meta("nonesuch-7b"))


@pytest.mark.parametrize("name,bos", [("llama-bpe", True), ("tekken", True), ("qwen2", False), ("gpt-2", False)])
def test_add_bos_default_follows_llama_cpp(name, bos):
    # without tokenizer.ggml.add_bos_token, llama.cpp adds BOS for the Llama 3 family and tekken
    tok = Tokenizer.from_gguf_metadata(_meta(name))
    assert (tok.encode("hi")[:1] == [1]) == bos
    assert tok.add_bos == bos and not _ours(name).add_bos  # the GGUF key, when present, wins


FRAGMENTS = ["'s", "'S", "'ll", "'Re", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\x1f", "\x85", "0", "12",
             "123", "1234", "١", "²", "a", "Z", "Ab", "aB", "é", "ß", "ǅ", "я", "Я", "中", "日本", "ア", "한", "ا", "😀",
             "\u200d", "\u0301", "e\u0301", "_", "-", "...", "$", "+", "<", "`", "!", "，", "。", "\u0964", "/", "(",
             "<sentinel:3>", "IMGIMGABZ", "    "]
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(exclude_categories=["Cs"]), max_size=5)),
                 max_size=12).map("".join)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=TEXTS)
def test_pieces_match_hf_fuzz(name, s):
    ours = _ours(name)
    want = [p for p, _ in _hf_pre(name).pre_tokenize_str(s)]
    assert [p.encode("utf-8").decode("latin-1").translate(ours._model.table) for p in ours._pre(s)] == want


@lru_cache(maxsize=None)
def _hf_pre(name):
    return pre_tokenizers.Sequence(_hf_steps(name))
