"""SentencePiece BPE (GGUF tokenizer.ggml.model = llama) against the `sentencepiece` library's
own ids and decoding, recorded for a tiny byte-fallback model by make_goldens.py."""
import json
from pathlib import Path

import pytest

from ninestep.tokenizer import Tokenizer

G = json.loads((Path(__file__).parent / "goldens" / "tokenizer" / "goldens.json").read_text(encoding="utf-8"))
SPM = G["spm"]
CORPUS = G["corpus"]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_gguf_metadata(SPM["meta"])


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_ids_match_sentencepiece(tok, i):
    assert tok.encode(CORPUS[i], add_special=False) == SPM["ids"][i]


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_decode_matches_sentencepiece(tok, i):
    assert tok.decode(SPM["ids"][i]) == SPM["decoded"][i]


def test_bos_and_byte_fallback(tok):
    ids = tok.encode("hello 中")
    assert ids[0] == tok.bos_id == 1 and tok.eos_id == 2
    byte_ids = [i for i in ids if tok.id_to_token(i).startswith("<0x")]
    assert [tok.id_to_token(i) for i in byte_ids] == ["<0xE4>", "<0xB8>", "<0xAD>"]  # 中 is not a piece
    assert tok.decode(ids) == "<s> hello 中" and tok.decode(ids, skip_special=True) == "hello 中"


def test_control_tokens_in_text(tok):
    # as HF/llama.cpp: control tokens split out; the dummy prefix starts each text segment
    ids = tok.encode("a</s>b", add_special=False)
    assert ids == tok.encode("a", add_special=False) + [2] + tok.encode("b", add_special=False)
    assert tok.is_special(2) and not tok.is_special(ids[0])


def test_invalid_byte_runs_become_one_replacement_per_byte(tok):
    # HF ByteFallback: a run of byte pieces that is not valid UTF-8 turns into U+FFFD per byte
    b = {int(t[3:5], 16): i for i, t in enumerate(SPM["meta"]["tokenizer.ggml.tokens"]) if t.startswith("<0x")}
    ids = [b[0xE4], b[0xB8], tok.token_to_id("▁a"), b[0xE4], b[0xB8], b[0xAD]]
    assert tok.decode(ids) == "\ufffd\ufffd a中"
    d = tok.stream_decoder()
    assert [d.push(i) for i in ids] + [d.flush()] == ["", "", "\ufffd\ufffd a", "", "", "", "中"]


def test_scores_required(tok):
    meta = dict(SPM["meta"])
    del meta["tokenizer.ggml.scores"]
    with pytest.raises(ValueError, match="scores"):
        Tokenizer.from_gguf_metadata(meta)


# ---- the same model as a Llama-2 style tokenizer.json (rank BPE + byte_fallback + Metaspace) ----

SPM_HF_JSON = Path(__file__).parent / "goldens" / "tokenizer" / "spm_hf" / "tokenizer.json"


def test_tokenizer_json_matches_hf_tokenizers():
    from tokenizers import Tokenizer as HFTokenizer

    theirs = HFTokenizer.from_file(str(SPM_HF_JSON))
    ours = Tokenizer.from_hf(SPM_HF_JSON)
    assert (ours.bos_id, ours.add_bos) == (1, True)  # no tokenizer_config: BOS from the post-processor
    for s in CORPUS + ["a</s>b", "</s> b", "<s>x", " x", "  ", "中文", "<unk>"]:
        ids = theirs.encode(s).ids
        assert ours.encode(s) == ids, s
        for skip in (False, True):
            assert ours.decode(ids, skip_special=skip) == theirs.decode(ids, skip_special_tokens=skip), s
        d = ours.stream_decoder()
        assert "".join([d.push(i) for i in ids]) + d.flush() == theirs.decode(ids, skip_special_tokens=False)
