"""The multi-sequence engine: a batch of sequences in one step gives each the logits it gets alone;
truncate, copy and the KV slots; sliding windows across pieces; bad items are refused by name."""
import os

import numpy as np
import pytest
from test_forward import GEMMA3, make_model, quantized, ref_logits

import ninestep
from ninestep.engine import Engine, Session, load_weights


def _alone(weights, ids, **kw):
    return Session(weights, n_ctx=64, **kw).forward(ids, all_logits=True)


@pytest.mark.parametrize("variant", [dict(), GEMMA3, dict(sliding_window=6, has_qkv_bias=True)])
def test_mixed_batch_equals_each_sequence_alone(isa, rng, variant):
    config, w = make_model(rng, **variant)
    tensors, _ = quantized(w, "q8_0")
    weights = load_weights(config, tensors)
    prompts = [rng.integers(0, 100, n) for n in (9, 3, 17, 1)]
    alone = [_alone(weights, p) for p in prompts]
    e = Engine(weights, n_ctx=64, n_seq=6)
    # step 1: four prompts of different lengths, in sequences 5, 0, 2, 3
    seqs = [5, 0, 2, 3]
    out = e.step([(s, p[:-1], len(p) - 1) if len(p) > 1 else (s, p, 1) for s, p in zip(seqs, prompts)])
    for o, a, p in zip(out, alone, prompts):
        np.testing.assert_allclose(o, a[: max(len(p) - 1, 1)], rtol=2e-4, atol=2e-4)
    # step 2: three continue by their last prompt token (decode rows), mixed with a new prompt
    new = rng.integers(0, 100, 6)
    out = e.step([(5, prompts[0][-1:], 1), (1, new, 1), (2, prompts[2][-1:], 1), (0, prompts[1][-1:], 1)])
    np.testing.assert_allclose(out[0], alone[0][-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[1], _alone(weights, new)[-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[2], alone[2][-1:], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out[3], alone[1][-1:], rtol=2e-4, atol=2e-4)
    assert [e.seq_len(s) for s in range(6)] == [3, 6, 17, 1, 0, 9]


def test_engine_matches_reference_with_windows_across_pieces(rng):
    # chunk 4: the 30-token prompt runs in 8 pieces, the window (5 keys) cutting into every later one
    config, w = make_model(rng, **GEMMA3)
    weights = load_weights(config, w)
    ids = rng.integers(0, 100, 30)
    want = ref_logits(config, w, ids)
    e = Engine(weights, n_ctx=32, n_seq=2, chunk=4)
    got = e.step([(1, ids, len(ids))])[0]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_truncate_and_copy_reuse_a_prefix(rng):
    config, w = make_model(rng, **GEMMA3)
    weights = load_weights(config, w)
    a, b = rng.integers(0, 100, 12), rng.integers(0, 100, 5)
    e = Engine(weights, n_ctx=32, n_seq=3)
    e.step([(0, a, 0)])
    e.copy(0, 2, 8)  # sequence 2 starts from a[:8]
    got = e.step([(2, b, len(b))])[0]
    np.testing.assert_allclose(got, _alone(weights, np.concatenate([a[:8], b]))[8:], rtol=2e-4, atol=2e-4)
    e.truncate(0, 4)
    got = e.step([(0, b, 1)])[0]
    np.testing.assert_allclose(got, _alone(weights, np.concatenate([a[:4], b]))[-1:], rtol=2e-4, atol=2e-4)
    assert (e.seq_len(0), e.seq_len(1), e.seq_len(2)) == (9, 0, 13)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_eight_decodes_in_one_step_use_every_thread_the_same(rng, threads):
    config, w = make_model(rng, n_heads=6, n_kv_heads=3)
    weights = load_weights(config, w)
    prompts = [rng.integers(0, 100, 20 + 3 * i) for i in range(8)]
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        e = Engine(weights, n_ctx=64, n_seq=8)
        e.step([(i, p[:-1], 0) for i, p in enumerate(prompts)])
        out = e.step([(i, p[-1:], 1) for i, p in enumerate(prompts)])
    finally:
        ninestep.set_num_threads(before)
    for o, p in zip(out, prompts):
        np.testing.assert_allclose(o, _alone(weights, p)[-1:], rtol=2e-4, atol=2e-4)


def test_bad_items_are_refused_by_name(rng):
    config, w = make_model(rng)
    e = Engine(load_weights(config, w), n_ctx=8, n_seq=2)
    cases = [
        ([], "batch"),
        ([(2, [1], 1)], "sequence 2"),
        ([(0, [1], 1), (0, [2], 1)], "twice"),
        ([(0, [], 1)], "ids"),
        ([(0, [100], 1)], r"\[0, 100\)"),
        ([(0, [1, 2], 3)], "n_logits"),
        ([(0, [1] * 9, 1)], "n_ctx"),
        ([(-1, [1], 1)], "sequence"),
        ([(0, [1])], "batch"),
        ([(True, [1], 1)], "seq"),
    ]
    for batch, match in cases:
        with pytest.raises(ValueError, match=match):
            e.step(batch)
    assert (e.seq_len(0), e.seq_len(1)) == (0, 0)  # nothing ran
    with pytest.raises(ValueError, match="n"):
        e.copy(0, 1, 3)  # sequence 0 holds nothing yet
    with pytest.raises(ValueError, match="sequence 5"):
        e.truncate(5, 0)
    with pytest.raises(ValueError, match="n_seq"):
        Engine(load_weights(config, w), n_ctx=8, n_seq=0)


@pytest.mark.parametrize("kind", ["q4_1", "q4_0", "q8_0", "q5_0", "q5_1"])
def test_packed_matrices_change_no_bits(rng, monkeypatch, kind):
    # Loading packs the 32-element quantized matrices for batched steps (cpp/kernels/quant_packed.h)
    # where this machine has the kernel; NINESTEP_PACK=off keeps the GGUF rows alone. Prompt pieces
    # and batched decode rows give the same bits either way.
    config, w = make_model(rng)
    tensors, _ = quantized(w, kind)
    prompts = [rng.integers(0, 100, n) for n in (9, 3, 17)]

    def run():
        weights = load_weights(config, tensors)
        assert (weights.packed_bytes > 0) == (ninestep._core.packs(kind) and "NINESTEP_PACK" not in os.environ)
        e = Engine(weights, n_ctx=64, n_seq=3)
        first = e.step([(s, p, len(p)) for s, p in enumerate(prompts)])
        return first + e.step([(s, p[:1], 1) for s, p in enumerate(prompts)])

    packed = run()
    monkeypatch.setenv("NINESTEP_PACK", "off")
    for a, b in zip(packed, run()):
        np.testing.assert_array_equal(a, b)
