import os

import numpy as np
import pytest

import ninestep
from ninestep import _core

SUPPORTED_ISAS = list(_core.supported_isas())


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs the test once per ISA this CPU and build support, restoring the default after."""
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
