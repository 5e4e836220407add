import numpy as np
import pytest

from ninestep.sampling import Sampler, SamplingParams


def draws(logits, n=4000, seed=7, history=(), **kw):
    s = Sampler(SamplingParams(**{"top_k": 0, "top_p": 1.0, "min_p": 0.0, **kw}), seed=seed)
    logits = np.asarray(logits, dtype=np.float32)
    return np.bincount([s(logits, list(history)) for _ in range(n)], minlength=len(logits)) / n


def softmax(x):
    e = np.exp(np.asarray(x, np.float64) - np.max(x))
    return e / e.sum()


def test_greedy_is_argmax_first_maximum():
    s = Sampler(SamplingParams(temperature=0), seed=1)
    x = np.array([0.1, 3.0, 3.0, -2.0], dtype=np.float32)
    assert s(x) == 1


def test_greedy_ignores_nan():
    s = Sampler(SamplingParams(temperature=0), seed=1)
    assert s(np.array([np.nan, 1.0, 0.5], dtype=np.float32)) == 1


def test_same_seed_same_tokens_and_different_seed_differs():
    logits = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    a = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0), seed=42)
    b = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0), seed=42)
    c = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0), seed=43)
    sa, sb, sc = ([s(logits) for _ in range(50)] for s in (a, b, c))
    assert sa == sb
    assert sa != sc


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_frequencies_follow_softmax_over_temperature(temperature):
    logits = [1.0, 0.0, -0.5, 0.7, -3.0]
    got = draws(logits, n=20000, temperature=temperature)
    want = softmax(np.array(logits) / temperature)
    assert np.abs(got - want).max() < 0.015


def test_top_k_keeps_the_k_best_renormalised():
    logits = [0.0, 2.0, 1.0, 1.5, -1.0]
    got = draws(logits, n=20000, temperature=1.0, top_k=2)
    want = np.zeros(5)
    want[[1, 3]] = softmax([2.0, 1.5])
    assert np.abs(got - want).max() < 0.015


def test_top_k_one_is_greedy():
    logits = np.random.default_rng(1).normal(size=49152).astype(np.float32)
    s = Sampler(SamplingParams(temperature=1.5, top_k=1, top_p=1.0, min_p=0.0), seed=3)
    assert all(s(logits) == int(np.argmax(logits)) for _ in range(20))


def test_top_p_keeps_smallest_prefix_with_the_mass():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    got = draws(np.log(p), n=20000, temperature=1.0, top_p=0.75)
    assert got[2] == 0 and got[3] == 0
    assert abs(got[0] - 0.5 / 0.8) < 0.015


def test_top_p_over_large_vocabulary_grows_the_candidate_set():
    # a flat distribution: top_p 0.5 must keep about half of the 49152 tokens, far more than 64
    logits = np.zeros(49152, dtype=np.float32)
    s = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0), seed=5)
    seen = {s(logits) for _ in range(3000)}
    assert len(seen) > 2000


def test_min_p_drops_tokens_below_fraction_of_best():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    got = draws(np.log(p), n=20000, temperature=1.0, min_p=0.5)
    assert got[2] == 0 and got[3] == 0
    assert got[1] > 0.3


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    s = Sampler(SamplingParams(temperature=0, repetition_penalty=1.5), seed=0)
    assert s(np.array([2.0, 1.9], dtype=np.float32), [0]) == 1
    assert s(np.array([-1.0, -1.2], dtype=np.float32), [0, 0, 0]) == 1
    assert s(np.array([2.0, 1.9], dtype=np.float32), [1]) == 0


@pytest.mark.parametrize("kw, name", [
    ({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"), ({"min_p": 2.0}, "min_p"), ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"temperature": float("nan")}, "temperature"),
])
def test_bad_parameters_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        SamplingParams(**kw)


def test_history_outside_vocabulary_is_rejected():
    s = Sampler(SamplingParams(temperature=0, repetition_penalty=1.2), seed=0)
    with pytest.raises(ValueError, match="recent"):
        s(np.zeros(10, dtype=np.float32), [10])


@pytest.mark.parametrize("case", ["ties", "nan_first", "all_nan", "all_neg_inf", "inf", "random"])
def test_greedy_fast_path_equals_the_cpp_sampler(case):
    # Greedy without a penalty takes NumPy's argmax; the C++ sampler (reached here through a
    # penalty of 1 + 0 history, which it does not change) is the reference for every edge.
    rng = np.random.default_rng(3)
    x = rng.normal(size=50000).astype(np.float32)
    if case == "ties":
        x[[7, 40000, 123]] = 9.0
    elif case == "nan_first":
        x[[0, 5]] = np.nan
        x[300] = 8.0
    elif case == "all_nan":
        x[:] = np.nan
    elif case == "all_neg_inf":
        x[:] = -np.inf
    elif case == "inf":
        x[[9, 11]] = np.inf
    fast = Sampler(SamplingParams(temperature=0), seed=1)
    ref = Sampler(SamplingParams(temperature=0, repetition_penalty=1.0000001), seed=1)
    assert fast(x) == ref(x, [])


FILTERS = {  # each of the sampler's paths: top-k (+ top-p, min-p), top-p alone, min-p alone, a penalty
    "defaults": dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05),
    "top_k": dict(temperature=1.0, top_k=7, top_p=1.0, min_p=0.0),
    "top_p": dict(temperature=0.7, top_k=0, top_p=0.9, min_p=0.0),
    "min_p": dict(temperature=1.2, top_k=0, top_p=1.0, min_p=0.1),
    "penalty": dict(temperature=0.9, top_k=50, top_p=0.9, min_p=0.0, repetition_penalty=1.3),
}


def edge_logits(case, n):
    x = np.random.default_rng(n).normal(scale=3.0, size=n).astype(np.float32)
    if case == "nan":
        x[::7] = np.nan
    elif case == "ties":
        x[:] = np.round(x)  # many equal values at the k-th place
    elif case == "inf":
        x[[0, n - 1]] = np.inf
    elif case == "flat":
        x[:] = 0.25
    return x


@pytest.mark.parametrize("filters", sorted(FILTERS))
@pytest.mark.parametrize("case", ["random", "nan", "ties", "inf", "flat"])
@pytest.mark.parametrize("n", [1, 3, 31, 1000, 49157])
def test_vector_scans_pick_the_tokens_of_the_scalar_ones(isa, filters, case, n):
    # argmax, the top-k scan, the top-p / min-p filters compare exactly and the weights' exp
    # differs between ISAs in the last bits only (which moves a draw only if it lands that close
    # to a boundary), so every ISA must give the generic scans' tokens for the same seed (the
    # plain-temperature walk sums in blocks and is checked by its frequencies above)
    import ninestep

    x = edge_logits(case, n)
    got = [Sampler(SamplingParams(**FILTERS[filters]), seed=s)(x, [0, n // 2]) for s in range(20)]
    ninestep.set_isa("generic")
    try:
        want = [Sampler(SamplingParams(**FILTERS[filters]), seed=s)(x, [0, n // 2]) for s in range(20)]
    finally:
        ninestep.set_isa(isa)
    assert got == want
    assert all(0 <= t < n and not np.isnan(x[t]) for t in got) or case == "nan" and np.isnan(x).all()


def test_top_p_over_a_flat_large_vocabulary_keeps_the_prefix_by_mass():
    # 20,000 equal logits: top-p 0.5 keeps the best-first prefix holding half the mass, i.e. the
    # 10,000 lowest ids (ties go to the lower id), found by halving rather than sorting them all
    f = draws(np.zeros(20000), n=20000, temperature=1.0, top_p=0.5)
    assert f[:10000].sum() == 1.0
    assert abs(f[:5000].sum() - 0.5) < 0.02  # and uniform within it
