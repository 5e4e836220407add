"""Shared set-up of the pytest-benchmark suites: the thread count."""
import os

import pytest

import ninestep

# ninestep's threads; match OPENBLAS_NUM_THREADS so both sides get the same cores
THREADS = int(os.environ.get("NINESTEP_BENCH_THREADS", "2"))


@pytest.fixture(autouse=True)
def bench_threads():
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(THREADS)
    yield
    ninestep.set_num_threads(before)
