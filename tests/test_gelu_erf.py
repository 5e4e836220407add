"""The vectorised erf-GELU (activation_avx2.cpp / _neon.cpp, BERT's GELU) against math.erf in
float64, at every ISA: relative error < 2e-6 over the whole float range that does not underflow,
the tail x << 0 included (where the result is x/2 erfc(|x|/sqrt 2), a tiny number, whose
conditioning adds x^2 * 1.2e-7: the float32 argument itself is only that exact)."""
import math

import numpy as np
import pytest

from ninestep import ops


def exact(x):
    x = x.astype(np.float64)
    return np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])


def test_relative_error_everywhere(isa):
    x = np.concatenate([np.linspace(-13, 13, 200_003), np.geomspace(1e-30, 1e3, 2001), -np.geomspace(1e-30, 13, 2001),
                        np.arange(-8, 8, 0.125)]).astype(np.float32)
    want = exact(x)
    got = ops.gelu(x, approximate="none").astype(np.float64)
    big = np.abs(want) > 1e-30  # below that the float32 result is subnormal
    rel = np.abs(got[big] - want[big]) / np.abs(want[big])
    # x < 0: rounding z = |x| / sqrt 2 to float32 alone moves erfc(z) by ~2 z^2 * 6e-8 = x^2 * 6e-8
    bound = 2e-6 + 1.2e-7 * x[big].astype(np.float64) ** 2 * (x[big] < 0)
    assert np.all(rel <= bound), (rel.max(), x[big][np.argmax(rel / bound)])
    assert np.all(np.abs(got[~big] - want[~big]) < 1e-30)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33])
def test_tails_and_specials(isa, n):
    x = np.resize(np.array([-np.inf, -1e30, -20.0, -0.0, 0.0, 1e-40, 20.0, 1e30, np.inf], np.float32), n)
    got = ops.gelu(x, approximate="none")
    want = exact(np.where(np.isinf(x), 0, x))
    want = np.where(x == np.inf, np.inf, want)
    fin = ~np.isinf(x)
    np.testing.assert_allclose(got[fin], want[fin], rtol=2e-6, atol=1e-37)
    assert np.all(got[x == np.inf] == np.inf)
    assert np.isnan(ops.gelu(np.full(n, np.nan, np.float32), approximate="none")).all()
