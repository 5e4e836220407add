"""Benchmark operands, the same for every run."""
import numpy as np


def operands(m, k, n):
    """x [m, k] and w [n, k], float32, the same for every run."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((n, k), dtype=np.float32)
