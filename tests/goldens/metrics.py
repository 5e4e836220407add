"""Compact golden distributions (top-k log-probs + the tail's mass) and the figures computed from them.

KL(ref || cand) is taken over K+1 buckets: the reference's top-k ids, and everything else lumped into
one tail bucket, so a 49k-entry distribution is stored in ~1 KB per position and the KL is still exact
for those buckets (a lower bound of the full-vocabulary KL).
"""
import numpy as np

TOP_K = 128


def log_softmax(logits):
    # logits [T, V] -> float64 log-probs [T, V]
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))


def tail_log_mass(logp, top_ids):
    # log of the probability outside top_ids, summed directly (1 - sum(top) would cancel)
    outside = np.ones(logp.shape, dtype=bool)
    np.put_along_axis(outside, top_ids, False, axis=-1)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(logp) * outside, axis=-1))


def topk_goldens(logits, k=TOP_K):
    """Full reference logits [T, V] -> {'top_ids' int32 [T, k] (most likely first),
    'top_logprobs' float32 [T, k], 'tail_logprob' float64 [T]}."""
    logp = log_softmax(logits)
    top = np.argsort(-logp, axis=-1, kind="stable")[:, :k]
    return {
        "top_ids": top.astype(np.int32),
        "top_logprobs": np.take_along_axis(logp, top, axis=-1).astype(np.float32),
        "tail_logprob": tail_log_mass(logp, top),
    }


def top1_agreement(goldens, cand_logits):
    """Fraction of positions where the candidate's argmax is the reference's most likely id."""
    return float(np.mean(np.argmax(cand_logits, axis=-1) == goldens["top_ids"][:, 0]))


def kl_per_position(goldens, cand_logits):
    """KL(ref || cand) [T] over the reference's top-k buckets plus one tail bucket."""
    top = goldens["top_ids"].astype(np.int64)
    logp = goldens["top_logprobs"].astype(np.float64)
    logp_tail = np.asarray(goldens["tail_logprob"], dtype=np.float64)
    logq_all = log_softmax(cand_logits)
    logq = np.take_along_axis(logq_all, top, axis=-1)
    logq_tail = tail_log_mass(logq_all, top)
    with np.errstate(invalid="ignore"):  # an empty reference tail contributes 0 (0 * log 0 = 0)
        tail = np.where(np.isneginf(logp_tail), 0.0, np.exp(logp_tail) * (logp_tail - logq_tail))
    return np.sum(np.exp(logp) * (logp - logq), axis=-1) + tail


def mean_kl(goldens, cand_logits):
    return float(np.mean(kl_per_position(goldens, cand_logits)))
