"""Hugging Face folders through ninestep.load: the safetensors reader, HF names, half-split RoPE
and Q/K/V biases, against logits transformers computed on the same folders."""
import os
from pathlib import Path

import numpy as np
import pytest

import ninestep
from goldens import metrics

DATA = Path(__file__).parent / "data"
GOLDENS = Path(__file__).parent / "goldens"


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_tiny_models_match_transformers(arch, isa):
    golden = np.load(DATA / f"tiny-{arch}" / "goldens.npz")
    with ninestep.load(DATA / f"tiny-{arch}") as m:
        assert m.config.rope_style == "neox"
        logits = m.logits(golden["ids"].tolist())
    np.testing.assert_allclose(logits, golden["logits"], atol=1e-4, rtol=0)


def test_tiny_model_without_tokenizer_says_so():
    with ninestep.load(DATA / "tiny-llama") as m:
        assert m.tokenizer is None
        with pytest.raises(ValueError, match="tokenizer"):
            m.generate("text needs a tokenizer", max_new_tokens=1)
        assert len(m.generate([1, 2, 3], max_new_tokens=3, temperature=0).tokens) == 3


@pytest.mark.parametrize("dtype, env", [("float32", "NINESTEP_HF_FOLDER"), ("bfloat16", "NINESTEP_HF_FOLDER_BF16")])
def test_smollm2_hf_folder_matches_transformers(dtype, env):
    # The folders are too big to commit: make them with tests/goldens/make_hf_folder.py.
    if not os.environ.get(env):
        pytest.skip(f"set {env} to a folder made by tests/goldens/make_hf_folder.py --dtype {dtype}")
    golden = dict(np.load(GOLDENS / f"smollm2_hf_{dtype}_goldens.npz"))
    with ninestep.load(os.environ[env]) as m:
        logits = m.logits(golden["ids"].tolist())
    kl = metrics.mean_kl(golden, logits)
    print(f"SmolLM2 HF folder ({dtype}) ninestep vs transformers: top-1 {metrics.top1_agreement(golden, logits):.4f}, KL {kl:.2e}")
    assert kl <= 1e-6  # README: measured ~1e-8 (f32) and ~4e-9 (bf16)
