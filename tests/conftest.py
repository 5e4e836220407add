import os

import numpy as np
import pytest

import ninestep
from ninestep import _core

SUPPORTED_ISAS = list(_core.supported_isas())
ALL_ISAS = ["generic", "avx2", "avx512", "neon"]


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Runs the test once per ISA, restoring the default after; an ISA this CPU or build cannot run
    is reported as skipped (so a report shows what was not checked here), never silently dropped."""
    if request.param not in SUPPORTED_ISAS:
        where = "this build" if request.param not in _core.compiled_isas() else "this CPU"
        pytest.skip(f"{request.param} kernels cannot run on {where} (supported: {', '.join(SUPPORTED_ISAS)})")
    before = _core.active_isa()
    ninestep.set_isa(request.param)
    try:
        yield request.param
    finally:
        ninestep.set_isa(before)


@pytest.fixture
def rng(request):
    # a stable seed per test so failures reproduce
    seed = abs(hash(request.node.nodeid)) % (2**32) if os.environ.get("NINESTEP_RANDOM_SEEDS") else 1234
    return np.random.default_rng(seed)
