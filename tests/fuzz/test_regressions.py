"""Inputs the fuzzers found that escaped as something other than ValueError, kept as fixed cases."""
import json
import shutil
from pathlib import Path

import pytest

from fuzz import readers
from ninestep.config import ModelConfig
from ninestep.formats.safetensors import SafetensorsFile
from ninestep.tokenizer import Tokenizer

DATA = Path(__file__).parent.parent / "data"
SPM_META = json.loads((DATA.parent / "goldens" / "tokenizer" / "goldens.json").read_text(encoding="utf-8"))["spm"]["meta"]


def test_safetensors_dtype_of_a_non_string_type(tmp_path):
    # found by test_fuzz_safetensors_file: {"dtype": []} raised TypeError (unhashable list)
    src = (DATA / "tiny-llama" / "model.safetensors").read_bytes()
    n = int.from_bytes(src[:8], "little")
    header = json.loads(src[8:8 + n])
    header["lm_head.weight"]["dtype"] = []
    h = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(h).to_bytes(8, "little") + h + src[8 + n:])
    with pytest.raises(ValueError, match="dtype"):
        SafetensorsFile(path)


@pytest.mark.parametrize("changed, field", [
    ({"rope_parameters": True}, "rope_parameters"),     # found: AttributeError 'bool' has no 'get'
    ({"rope_scaling": [1]}, "rope_scaling"),
    ({"hidden_size": "64"}, "hidden_size"),              # str // int: TypeError
    ({"num_attention_heads": 4.0}, "num_attention_heads"),
])
def test_hf_config_fields_of_the_wrong_json_type(tmp_path, changed, field):
    folder = tmp_path / "m"
    shutil.copytree(DATA / "tiny-llama", folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, **changed)))
    with pytest.raises(ValueError, match=field):
        readers.use_model(folder)


@pytest.mark.parametrize("meta, key", [
    ({"general.architecture": "llama", "llama.embedding_length": "64", "llama.attention.head_count": 4}, "embedding_length"),
    ({"general.architecture": "llama", "llama.embedding_length": 64, "llama.attention.head_count": [4]}, "head_count"),
    ({"general.architecture": "llama", "llama.embedding_length": 64, "llama.attention.head_count": 4,
      "tokenizer.ggml.tokens": 7}, "tokenizer.ggml.tokens"),
])
def test_gguf_config_fields_of_the_wrong_type(meta, key):
    with pytest.raises(ValueError, match=key):
        ModelConfig.from_gguf(meta, [])


@pytest.mark.parametrize("changed, key", [
    ({"tokenizer.ggml.token_type": [None]}, "token_type"),  # found: int(None) TypeError
    ({"tokenizer.ggml.scores": [None]}, "scores"),          # found: float(None) TypeError
    ({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.merges": [], "tokenizer.ggml.pre": [None]}, "pre"),
])
def test_tokenizer_metadata_of_the_wrong_type(changed, key):
    with pytest.raises(ValueError, match=key):
        Tokenizer.from_gguf_metadata(dict(SPM_META, **changed))


def test_safetensors_tensors_at_odd_offsets_load_and_agree(tmp_path):
    # found under UBSan by test_fuzz_safetensors_file: a float32 tensor at an odd file offset was
    # read through a misaligned float*. Now the loader copies such tensors; the kernels refuse them.
    import numpy as np

    import ninestep

    src_dir = DATA / "tiny-llama"
    src = (src_dir / "model.safetensors").read_bytes()
    n = int.from_bytes(src[:8], "little")
    folder = tmp_path / "odd"
    shutil.copytree(src_dir, folder)
    # one more header byte (JSON allows trailing spaces) moves every tensor to an odd offset
    (folder / "model.safetensors").write_bytes((n + 1).to_bytes(8, "little") + src[8:8 + n] + b" " + src[8 + n:])
    ids = [1, 5, 9, 3]
    with ninestep.load(src_dir, n_ctx=16) as a, ninestep.load(folder, n_ctx=16) as b:
        np.testing.assert_array_equal(a.logits(ids), b.logits(ids))
