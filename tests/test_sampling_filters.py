"""The sampler's distribution against a NumPy reference of the same pipeline, at several temperatures
and with the default filters combined (top-k 40, top-p 0.95, min-p 0.05), plus the penalty.

Pipeline (as cpp/kernels/sample.cpp documents it, HF order): repetition penalty on the logits,
weights exp((z - max) / T), top-k by logit, top-p over the kept weights (smallest best-first prefix
holding top_p of their total), min-p (weight >= min_p x the best weight), renormalise, draw.
Each test draws N times with a fixed seed, so it is deterministic; the bound is 5 standard
deviations of a binomial frequency per token, and no token outside the reference's support."""
import numpy as np
import pytest

from ninestep.sampling import Sampler, SamplingParams

N = 20000


def reference(logits, temperature, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, recent=()):
    z = np.asarray(logits, np.float64).copy()
    for t in set(recent):
        z[t] = z[t] / repetition_penalty if z[t] > 0 else z[t] * repetition_penalty
    w = np.exp((z - z.max()) / temperature)
    order = np.lexsort((np.arange(len(z)), -z))  # best first, ties by lower id
    keep = order[:top_k] if 0 < top_k < len(z) else order
    if top_p < 1.0:
        cum = np.cumsum(w[keep])
        keep = keep[:int(np.searchsorted(cum, top_p * cum[-1])) + 1]
    if min_p > 0:
        keep = keep[w[keep] >= min_p * w[keep].max()]
    p = np.zeros(len(z))
    p[keep] = w[keep] / w[keep].sum()
    return p


def frequencies(logits, seed=11, recent=(), **kw):
    s = Sampler(SamplingParams(**kw), seed=seed)
    logits = np.asarray(logits, dtype=np.float32)
    return np.bincount([s(logits, list(recent)) for _ in range(N)], minlength=len(logits)) / N


def assert_matches(got, want):
    outside = np.flatnonzero((want == 0) & (got > 0))
    assert outside.size == 0, f"drew tokens {outside[:10]} that the reference removes"
    sigma = np.sqrt(np.maximum(want * (1 - want), 1e-12) / N)
    z = np.abs(got - want) / sigma
    worst = int(np.argmax(z))
    assert z[worst] < 5, f"token {worst}: frequency {got[worst]:.4f}, reference {want[worst]:.4f} ({z[worst]:.1f} sigma)"


# 120 tokens, logits falling off smoothly with a little jitter: every filter cuts somewhere at some T
LOGITS = (-0.12 * np.arange(120) + np.random.default_rng(5).normal(0, 0.05, 120)).astype(np.float32)[
    np.random.default_rng(6).permutation(120)]
DEFAULTS = dict(top_k=40, top_p=0.95, min_p=0.05)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 3.0])
def test_default_filters_combined_follow_the_reference(temperature):
    want = reference(LOGITS, temperature, **DEFAULTS)
    assert_matches(frequencies(LOGITS, temperature=temperature, **DEFAULTS), want)


@pytest.mark.parametrize("temperature", [0.3, 3.0])
@pytest.mark.parametrize("filters", [dict(top_k=40), dict(top_k=40, top_p=0.95), dict(top_p=0.95),
                                     dict(min_p=0.05), dict(top_k=40, min_p=0.05), dict(top_p=0.95, min_p=0.05)])
def test_each_filter_path_applies_the_temperature(temperature, filters):
    kw = {**dict(top_k=0, top_p=1.0, min_p=0.0), **filters}
    want = reference(LOGITS, temperature, **kw)
    assert_matches(frequencies(LOGITS, temperature=temperature, **kw), want)


def test_the_reference_is_sensitive_to_temperature_under_the_filters():
    # the bars above could not pass by accident: the three temperatures differ by far more than 5 sigma
    a, b, c = (reference(LOGITS, t, **DEFAULTS) for t in (0.3, 1.0, 3.0))
    sigma = np.sqrt(np.maximum(b * (1 - b), 1e-12) / N)
    assert (np.abs(a - b) / sigma).max() > 50 and (np.abs(c - b) / sigma).max() > 50
    assert (a > 0).sum() < (b > 0).sum() < (c > 0).sum() <= 40  # the filters keep more as T grows


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_penalty_with_filters_follows_the_reference(temperature):
    logits = LOGITS + 3.0  # positive logits are divided by the penalty, negative ones multiplied
    recent = list(np.argsort(-logits)[:6]) * 3 + [100, 7]  # the best tokens, repeated, penalised once each
    kw = dict(DEFAULTS, repetition_penalty=1.8)
    want = reference(logits, temperature, recent=recent, **kw)
    assert_matches(frequencies(logits, recent=recent, temperature=temperature, **kw), want)
    plain = reference(logits, temperature, **DEFAULTS)
    assert (np.abs(want - plain) / np.sqrt(np.maximum(plain * (1 - plain), 1e-12) / N)).max() > 20  # it matters


def test_large_vocabulary_defaults_at_low_and_high_temperature():
    logits = np.random.default_rng(9).normal(0, 2.0, 49152).astype(np.float32)
    for t in (0.4, 2.5):
        want = reference(logits, t, **DEFAULTS)
        got = frequencies(logits, temperature=t, **DEFAULTS)
        assert_matches(got, want)
