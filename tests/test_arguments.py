"""Every public function with wrong types and values: ValueError or TypeError naming the argument,
never a crash or an error from deep inside (C++ is only reached with checked arguments)."""
import numpy as np
import pytest

import ninestep
from ninestep import ops
from ninestep.formats import write_gguf
from ninestep.formats.gguf import GGUFFile
from ninestep.formats.safetensors import SafetensorsFile, open_folder
from helpers.models import smollm2_path

F = np.ones((2, 32), np.float32)
V = np.ones(32, np.float32)
BAD = [None, "x", 1.5, [1, 2], object(), np.ones((2, 32), np.float64), np.ones((2, 32), np.int32),
       np.ones((32, 2), np.float32).T]


def check(call, name):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    assert name in str(e.value), f"{e.value!r} does not name {name!r}"


@pytest.fixture(scope="module")
def model():
    with ninestep.load(smollm2_path(), n_ctx=64) as m:
        yield m


# -- ops ----------------------------------------------------------------------------------------
OPS = {
    "matmul": (lambda **a: ops.matmul(**a), dict(x=F, w=np.ones((4, 32), np.float32))),
    "softmax": (lambda **a: ops.softmax(**a), dict(x=F)),
    "rmsnorm": (lambda **a: ops.rmsnorm(**a), dict(x=F, weight=V)),
    "layernorm": (lambda **a: ops.layernorm(**a), dict(x=F, weight=V, bias=V)),
    "rope": (lambda **a: ops.rope(**a), dict(x=np.ones((2, 2, 8), np.float32), positions=np.arange(2, dtype=np.int32))),
    "attention": (lambda **a: ops.attention(**a), dict(q=np.ones((2, 2, 8), np.float32), k=np.ones((2, 1, 8), np.float32),
                                                      v=np.ones((2, 1, 8), np.float32))),
    "silu": (lambda **a: ops.silu(**a), dict(x=F)),
    "gelu": (lambda **a: ops.gelu(**a), dict(x=F)),
    "swiglu": (lambda **a: ops.swiglu(**a), dict(gate=F, up=F)),
}
OP_CASES = [(op, arg, i) for op, (_, good) in OPS.items() for arg in good for i in range(len(BAD))]


@pytest.mark.parametrize("op, arg, i", OP_CASES)
def test_ops_reject_bad_arrays(op, arg, i):
    fn, good = OPS[op]
    bad = BAD[i]
    if arg == "bias" and bad is None:
        return  # bias=None is allowed
    check(lambda: fn(**dict(good, **{arg: bad})), arg)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("out", [np.ones((1, 1), np.float32), np.ones((2, 32), np.float64), "x",
                                 np.ones((2, 32), np.float32)[:, ::-1]])
def test_ops_reject_bad_out(op, out):
    fn, good = OPS[op]
    check(lambda: fn(**good, out=out), "out")


@pytest.mark.parametrize("op, kw, name", [
    ("rmsnorm", {"eps": -1.0}, "eps"), ("rmsnorm", {"eps": float("nan")}, "eps"), ("rmsnorm", {"eps": "x"}, "eps"),
    ("layernorm", {"eps": None}, "eps"), ("rope", {"theta": 0.0}, "theta"), ("rope", {"theta": "x"}, "theta"),
    ("rope", {"style": "sideways"}, "style"), ("rope", {"style": 3}, "style"), ("rope", {"style": ["norm"]}, "style"),
    ("rope", {"positions": np.array([-1, 0], np.int32)}, "positions"),
    ("rope", {"positions": np.arange(3, dtype=np.int32)}, "positions"),
    ("attention", {"scale": "x"}, "scale"), ("attention", {"scale": float("inf")}, "scale"),
    ("attention", {"causal": "yes"}, "causal"), ("gelu", {"approximate": "maybe"}, "approximate"),
    ("gelu", {"approximate": ["tanh"]}, "approximate"),
    ("matmul", {"w": np.ones((4, 31), np.float32)}, "x"), ("swiglu", {"up": np.ones((2, 31), np.float32)}, "up"),
])
def test_ops_reject_bad_values(op, kw, name):
    fn, good = OPS[op]
    check(lambda: fn(**dict(good, **kw)), name)


@pytest.mark.parametrize("kind", ["q2_k", "bf16", None, ["q8_0"], 8])
def test_quantize_bad_kind(kind):
    check(lambda: ninestep.quantize(F, kind), "kind")


@pytest.mark.parametrize("w", BAD + [np.ones((0, 32), np.float32), np.ones((2, 31), np.float32)])
def test_quantize_bad_w(w):
    check(lambda: ninestep.quantize(w, "q8_0"), "w")


@pytest.mark.parametrize("args, name", [
    ((np.zeros((2, 34), np.uint8), "q8_0", (2, 33)), "shape"), ((np.zeros((2, 34), np.uint8), "q9", (2, 32)), "kind"),
    ((np.zeros((2, 33), np.uint8), "q8_0", (2, 32)), "data"), (("x", "q8_0", (2, 32)), "data"),
    ((np.zeros((2, 34), np.float32), "q8_0", (2, 32)), "data"), ((np.zeros((2, 34), np.uint8), "q8_0", "2x32"), "shape"),
    ((np.zeros((2, 34), np.uint8), "q8_0", (-2, 32)), "shape"),
])
def test_quantized_tensor_checks(args, name):
    check(lambda: ninestep.QuantizedTensor(*args), name)


# -- module-level -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, -1, 1.5, "2", None, True, 2**70])
def test_set_num_threads(n):
    check(lambda: ninestep.set_num_threads(n), "n")


@pytest.mark.parametrize("name", ["sse9", "", None, 3, ["avx2"]])
def test_set_isa(name):
    check(lambda: ninestep.set_isa(name), "isa")


@pytest.mark.parametrize("kw, name", [({"n_ctx": 0}, "n_ctx"), ({"n_ctx": "big"}, "n_ctx"), ({"n_ctx": 2.5}, "n_ctx"),
                                      ({"n_ctx": 2**70}, "n_ctx"), ({"n_threads": 0}, "n_threads"),
                                      ({"n_threads": "2"}, "n_threads")])
def test_load_bad_options(kw, name):
    check(lambda: ninestep.load(smollm2_path(), **kw), name)


@pytest.mark.parametrize("path", [3, 2.5, ["a.gguf"], object()])
def test_load_bad_path_type(path):
    check(lambda: ninestep.load(path), "path")


def test_load_not_a_model(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"not a gguf file at all")
    with pytest.raises(ninestep.FormatError, match="magic"):
        ninestep.load(p)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ninestep.load(tmp_path)  # a folder without config.json


# -- Model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, name", [
    ({"max_new_tokens": "5"}, "max_new_tokens"), ({"max_new_tokens": 2.0}, "max_new_tokens"),
    ({"max_new_tokens": None}, "max_new_tokens"), ({"temperature": "hot"}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"temperature": None}, "temperature"),
    ({"top_k": 1.5}, "top_k"), ({"top_k": "3"}, "top_k"), ({"top_p": "x"}, "top_p"), ({"top_p": float("nan")}, "top_p"),
    ({"min_p": -0.1}, "min_p"), ({"min_p": 1.5}, "min_p"), ({"min_p": "x"}, "min_p"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"), ({"repetition_penalty": "x"}, "repetition_penalty"),
    ({"repetition_penalty": float("inf")}, "repetition_penalty"), ({"seed": 1.5}, "seed"), ({"seed": "7"}, "seed"),
    ({"stop": 3}, "stop"), ({"stop": [3]}, "stop"), ({"stop": [None]}, "stop"),
    ({"ignore_eos": "no"}, "ignore_eos"), ({"stream": "yes"}, "stream"),
])
def test_generate_bad_options(model, kw, name):
    check(lambda: model.generate("Hi", **kw), name)


def test_generate_unknown_option(model):
    check(lambda: model.generate("Hi", max_tokens=3), "max_tokens")


@pytest.mark.parametrize("prompt, name", [
    (None, "prompt"), (3, "prompt"), (b"bytes", "prompt"), ([1.5, 2.0], "prompt"), (["a", "b"], "prompt"),
    ([[1, 2]], "prompt"), ([2**70], "prompt"), ([True, False], "prompt"), (np.array([1.5]), "prompt"),
    ({"a": 1}, "prompt"), ("\ud800 lone surrogate", "prompt"),
])
def test_generate_bad_prompts(model, prompt, name):
    check(lambda: model.generate(prompt, max_new_tokens=1), name)


@pytest.mark.parametrize("ids", [None, [], [1.5], [-1], [49152], [[1]], np.zeros((2, 2), np.int32), [1] * 65])
def test_logits_bad_ids(model, ids):
    check(lambda: model.logits(ids), "ids")


@pytest.mark.parametrize("messages", [None, "hi", [{"role": "user"}], [{"content": "hi"}], ["hi"], [3],
                                      [{"role": "user", "content": 3}], [{"role": 3, "content": "hi"}]])
def test_chat_bad_messages(model, messages):
    check(lambda: model.chat(messages, max_new_tokens=1), "messages")


def test_model_still_works_after_bad_calls(model):
    assert "Paris" in model.generate("The capital of France is", max_new_tokens=6, temperature=0).text


# -- Tokenizer ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [None, 3, b"bytes", ["a"], "\udcff"])
def test_encode_bad_text(model, text):
    check(lambda: model.tokenizer.encode(text), "text")


@pytest.mark.parametrize("ids", [None, 3, "abc", [1.5], [-1], [49152], [2**70], [[1]], [None], [True]])
def test_decode_bad_ids(model, ids):
    check(lambda: model.tokenizer.decode(ids), "ids")


def test_encode_bad_add_special(model):
    check(lambda: model.tokenizer.encode("hi", add_special="yes"), "add_special")


# -- file readers -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [GGUFFile, SafetensorsFile, open_folder])
@pytest.mark.parametrize("path", [None, 3, 2.5, ["a"]])
def test_readers_bad_path_type(cls, path):
    check(lambda: cls(path), "path")


def test_readers_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        GGUFFile(tmp_path / "missing.gguf")
    for cls in (GGUFFile, SafetensorsFile):
        with pytest.raises(IsADirectoryError):
            cls(tmp_path)


def test_reader_methods_bad_names(tmp_path):
    p = tmp_path / "t.gguf"
    write_gguf(p, {"a": 1}, {"w": F})
    with GGUFFile(p) as f:
        for get in (f.tensor, f.raw, f.dequantize):
            with pytest.raises(KeyError, match="nope"):
                get("nope")


@pytest.mark.parametrize("kw, name", [({"metadata": {"a": object()}}, "metadata"), ({"metadata": "x"}, "metadata"),
                                      ({"tensors": {"w": "x"}}, "tensors"), ({"tensors": "x"}, "tensors"),
                                      ({"alignment": 3}, "alignment")])
def test_write_gguf_bad_arguments(tmp_path, kw, name):
    args = dict(path=tmp_path / "o.gguf", metadata={"a": 1}, tensors={"w": F})
    check(lambda: write_gguf(**dict(args, **kw)), name)


def _misaligned(a):
    """A copy of `a` whose data starts one byte past an aligned address (as a file view can)."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("op, arg", [(op, arg) for op, (_, good) in OPS.items() for arg in good])
def test_ops_reject_misaligned_arrays(op, arg):
    fn, good = OPS[op]
    check(lambda: fn(**dict(good, **{arg: _misaligned(good[arg])})), arg)


def test_misaligned_quantized_weights_are_copied_for_the_kernels():
    # a QuantizedTensor may view a file at any offset: Python hands the kernels an aligned copy,
    # and the C++ side refuses misaligned bytes on its own
    rng = np.random.default_rng(0)
    q = ninestep.quantize(rng.standard_normal((4, 32)).astype(np.float32), "q4_1")
    odd = ninestep.QuantizedTensor(_misaligned(q.data), "q4_1", q.shape)
    np.testing.assert_array_equal(ops.matmul(F, odd), ops.matmul(F, q))
    np.testing.assert_array_equal(odd.dequantize(), q.dequantize())
    with pytest.raises(ValueError, match="aligned"):
        ninestep._core.dequantize(np.empty(q.shape, np.float32), odd.data, "q4_1", *q.shape)
