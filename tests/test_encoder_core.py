"""The C++ BERT encoder (cpp/model/bert.cpp, _core.Encoder) against the NumPy reference
(reference_bert.py) at every ISA: packed sentences of mixed lengths (several GEMM row blocks and
column chunks), F32 / F16 / Q8_0 weights (against the reference on the same rounded weights),
phase-parallel and sentence-parallel runs at several thread counts, and every size the C++ side
is handed checked."""
import contextlib

import numpy as np
import pytest

import ninestep
from ninestep import _core, reference_bert
from ninestep.config import ModelConfig
from ninestep.encoder import _CoreForward
from ninestep.engine import _tensor, config_dict
from ninestep.tensor import quantize

D, H, FF, V, P, L = 64, 4, 256, 97, 300, 2
LENGTHS = [1, 5, 17, 130, 3, 200, 64]  # 420 rows: 4 row blocks of 120; d_ff 256: 2 column chunks


def config(**kw):
    c = dict(architecture="bert", n_layers=L, d_model=D, n_heads=H, n_kv_heads=H, head_dim=D // H, d_ff=FF,
             vocab_size=V, context_length=P, norm_eps=1e-12, ffn_act="gelu_erf", has_qkv_bias=True)
    c.update(kw)
    return ModelConfig(**c)


def random_weights(rng):
    def f(*shape, s=0.2):
        return (rng.standard_normal(shape) * s).astype(np.float32)
    w = {"token_embd.weight": f(V, D, s=1.0), "position_embd.weight": f(P, D, s=0.5), "token_types.weight": f(2, D),
         "token_embd_norm.weight": 1 + f(D), "token_embd_norm.bias": f(D)}
    for i in range(L):
        p = f"blk.{i}."
        for n, (o, k) in {"attn_q": (D, D), "attn_k": (D, D), "attn_v": (D, D), "attn_output": (D, D),
                          "ffn_up": (FF, D), "ffn_down": (D, FF)}.items():
            w[p + n + ".weight"], w[p + n + ".bias"] = f(o, k), f(o)
        for n in ("attn_output_norm", "layer_output_norm"):
            w[p + n + ".weight"], w[p + n + ".bias"] = 1 + f(D), f(D)
    return w


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(7)
    w = random_weights(rng)
    ids = [rng.integers(0, V, n).tolist() for n in LENGTHS]
    return w, ids


def rounded(w, kind):
    """The weights the kernels see for `kind`: projections rounded to f16 / Q8_0, the rest as is."""
    out = dict(w)
    for name, t in w.items():
        if name.startswith("blk.") and name.endswith(".weight") and "_norm." not in name:
            out[name] = t.astype(np.float16).astype(np.float32) if kind == "f16" else \
                quantize(t, "q8_0").dequantize() if kind == "q8_0" else t
    return out


def packed(ids):
    return np.array([t for r in ids for t in r], np.int32), [len(r) for r in ids]


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("act", ["gelu_erf", "gelu_tanh"])
def test_packed_batch_matches_reference(isa, model, kind, act):
    w, ids = model
    c = config(ffn_act=act)
    fwd = _CoreForward(c, w, kind)
    got = fwd(*packed(ids))
    ref_w = rounded(w, kind)
    want = np.concatenate([reference_bert.forward(c, ref_w, r) for r in ids])
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)  # LayerNorm'd states of size ~1


@contextlib.contextmanager
def num_threads(n):
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(n)
    try:
        yield
    finally:
        ninestep.set_num_threads(before)


# 1,164 rows in 14 sentences: at 2-4 threads a sentence-parallel run (at least 256 rows and two
# sentences a thread), cut into chunks of whole sentences that the threads claim.
MANY = [40, 3, 150, 77, 1, 260, 9, 33, 120, 5, 64, 18, 284, 100]


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_sentence_parallel_matches_reference(isa, model, threads):
    w, _ = model
    rng = np.random.default_rng(11)
    ids = [rng.integers(0, V, n).tolist() for n in MANY]
    fwd = _CoreForward(config(), w, None)
    with num_threads(threads):
        got = fwd(*packed(ids))
    want = np.concatenate([reference_bert.forward(config(), w, r) for r in ids])
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)


@pytest.mark.parametrize("lengths", [[2, 2, 250, 290], [290, 250, 2, 2], [300, 300, 300, 300]])
def test_sentence_parallel_edge_chunks(model, lengths):
    """Batches whose chunking gives one chunk (the long sentence last) or one sentence a chunk:
    the same states as one sentence at a time, with no thread left waiting at a barrier."""
    w, _ = model
    rng = np.random.default_rng(5)
    ids = [rng.integers(0, V, n).tolist() for n in lengths]
    fwd = _CoreForward(config(), w, None)
    with num_threads(2):
        together = fwd(*packed(ids))
        alone = np.concatenate([fwd(*packed([r])) for r in ids])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)


def test_each_sentence_sees_only_itself(model):
    w, ids = model
    fwd = _CoreForward(config(), w, None)
    together = fwd(*packed(ids))
    off = 0
    for r in ids:
        np.testing.assert_allclose(together[off:off + len(r)], fwd(*packed([r])), atol=1e-5, rtol=0)
        off += len(r)


def core(w, c=None):
    c = c or config()
    return _core.EncoderWeights(config_dict(c), {k: _tensor(k, v) for k, v in w.items()})


def test_run_checks_every_size(model):
    w, ids = model
    e = _core.Encoder(core(w))
    tok, lens = packed(ids[:2])
    out = np.empty((len(tok), D), np.float32)
    L64 = np.array(lens, np.int64)
    e.run(tok, L64, out)
    cases = [
        ((tok, np.array([1, 4], np.int64), out), "lengths add up to 5, got 6"),
        ((tok, np.array([0, 6], np.int64), out), r"lengths\[0\]: 0 tokens"),
        ((np.zeros(P + 1, np.int32), np.array([P + 1], np.int64), np.empty((P + 1, D), np.float32)),
         r"lengths\[0\]: 301 tokens, expected 1 to 300"),
        ((np.array([0, V, 1, 2, 3, 4], np.int32), L64, out), r"tokens\[1\]: id 97 is outside the vocabulary"),
        ((np.array([0, -1, 1, 2, 3, 4], np.int32), L64, out), r"tokens\[1\]: id -1"),
        ((tok, L64, np.empty((len(tok), D + 1), np.float32)), r"out: expected shape \(6, 64\)"),
        ((tok.astype(np.int64), L64, out), "tokens: expected dtype int32"),
        ((tok, np.array([], np.int64), out), "lengths: no sentences"),
        ((tok, L64, np.empty((len(tok), D), np.float64)), "out: expected dtype float32"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            e.run(*args)


def test_weights_are_checked(model):
    w, _ = model
    with pytest.raises(ValueError, match="'llama' is not an encoder architecture"):
        core(w, config(architecture="llama"))
    with pytest.raises(ValueError, match="missing 'blk.1.ffn_up.bias'"):
        core({k: v for k, v in w.items() if k != "blk.1.ffn_up.bias"})
    with pytest.raises(ValueError, match="unexpected 'pooler.dense.weight'"):
        core(dict(w, **{"pooler.dense.weight": w["blk.0.attn_q.weight"]}))
    with pytest.raises(ValueError, match=r"blk.0.ffn_up.weight'\]: expected shape \(256, 64\)"):
        core(dict(w, **{"blk.0.ffn_up.weight": w["blk.0.ffn_down.weight"]}))
    with pytest.raises(ValueError, match="token_types.weight'.*at least one row"):
        core(dict(w, **{"token_types.weight": np.zeros((0, D), np.float32)}))
    with pytest.raises(ValueError, match="ffn_act: bert runs gelu_erf or gelu_tanh"):
        core(w, config(ffn_act="silu"))
    with pytest.raises(ValueError, match="position_embd.weight'.*expected f32"):
        core(dict(w, **{"position_embd.weight": w["position_embd.weight"].astype(np.float16)}))
    assert "bert" in _core.encoder_architectures() and "bert" not in _core.architectures()
