"""Memory: no growth over many calls, a closed model refuses use and lets go of its file, and the
resident size while generating stays within the model file + KV cache + a fixed overhead."""
import gc
import json
import os
import shutil
from pathlib import Path

import pytest

import ninestep
from helpers.models import smollm2_path

PAGE = os.sysconf("SC_PAGE_SIZE")
# ASan's shadow memory and quarantine make RSS meaningless (.ci/sanitize.sh sets this)
rss_counts = pytest.mark.skipif(bool(os.environ.get("NINESTEP_SANITIZED")), reason="RSS under a sanitizer")
MB = 1 << 20


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def mapped(path):
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(str(path)) for line in f)


def kv_cache_bytes(config, n_ctx):
    return 2 * config.n_layers * n_ctx * config.n_kv_heads * config.head_dim * 4  # K and V, float32


PROMPTS = ["The capital of France is", "def add(a, b):", "Once upon a time", "Water boils at", "Hello"]


@pytest.fixture
def one_thread():
    """One thread: on a shared 2-core machine barrier waits dominate tiny steps; this test counts bytes."""
    old = ninestep.get_num_threads()
    ninestep.set_num_threads(1)
    yield
    ninestep.set_num_threads(old)


@rss_counts
def test_no_growth_over_300_short_generations(one_thread):
    with ninestep.load(smollm2_path(), n_ctx=256) as m:
        def one(i):
            if i % 10 == 0:  # streams too, some abandoned after the first piece
                s = m.generate(PROMPTS[i % 2], max_new_tokens=3, temperature=0, stream=True)
                next(s, None)
                s.close()
            else:
                c = m.generate(PROMPTS[i % len(PROMPTS)], max_new_tokens=3, temperature=0.7, seed=i)
                assert c.stats.new_tokens <= 3

        for i in range(20):  # warm-up: allocator pools, caches, lazily built tables
            one(i)
        gc.collect()
        before = rss()
        for i in range(300):
            one(i)
        gc.collect()
        grown = rss() - before
    print(f"RSS growth over 300 generate calls: {grown / MB:+.2f} MB")
    assert grown < 5 * MB


@rss_counts
def test_rss_while_generating_is_model_plus_cache_plus_overhead():
    # Measured from before loading, so whatever this process held already (the interpreter, NumPy,
    # earlier tests) is not charged to the model.
    path = smollm2_path()
    n_ctx = 1024
    gc.collect()
    base = rss()
    with ninestep.load(path, n_ctx=n_ctx) as m:
        peak = rss()
        prompt = m.tokenizer.encode("Tell me everything about the history of bread. " * 40)[:600]
        for _ in m.generate(prompt, max_new_tokens=64, temperature=0.8, seed=0, ignore_eos=True, stream=True):
            peak = max(peak, rss())
        budget = os.path.getsize(path) + kv_cache_bytes(m.config, n_ctx) + 100 * MB
    print(f"RSS before load {base / MB:.1f} MB, peak while generating {peak / MB:.1f} MB (+{(peak - base) / MB:.1f}); "
          f"model file {os.path.getsize(path) / MB:.1f} MB, KV cache {kv_cache_bytes(m.config, n_ctx) / MB:.1f} MB, "
          f"budget +{budget / MB:.1f} MB")
    assert peak - base <= budget


def test_with_block_closes_the_model():
    with ninestep.load(smollm2_path(), n_ctx=64) as m:
        assert m.generate("Hi", max_new_tokens=1, temperature=0).stats.new_tokens <= 1
    for use in (lambda: m.generate("Hi", max_new_tokens=1), lambda: m.chat([{"role": "user", "content": "Hi"}]),
                lambda: m.logits([1, 2, 3]), m.reset):
        with pytest.raises(RuntimeError, match="closed"):
            use()
    m.close()  # a second close is a no-op


def test_close_releases_the_file_mapping(tmp_path):
    path = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_path(), path)
    m = ninestep.load(path, n_ctx=64)
    m.generate("Hi", max_new_tokens=2, temperature=0)
    assert mapped(path)
    m.close()
    assert not mapped(path)  # unmapped at close, not at some later garbage collection
    os.remove(path)


def test_a_refused_load_does_not_keep_the_file_mapped(tmp_path):
    # weights that fail the C++ checks (a config promising more layers than the file has)
    folder = tmp_path / "m"
    shutil.copytree(Path(__file__).parent / "data" / "tiny-llama", folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, num_hidden_layers=cfg["num_hidden_layers"] + 1)))
    with pytest.raises(ValueError):
        ninestep.load(folder, n_ctx=16)
    assert not mapped(folder / "model.safetensors")
