"""Ctrl-C during a long prefill or a streaming generation: KeyboardInterrupt comes back promptly
(the C++ step checks for signals between chunks), the KV cache stays consistent with the ids the
model thinks it holds, and the same model then answers exactly as a fresh one."""
import os
import signal
import threading
import time

import pytest

import ninestep
from helpers.models import smollm2_path

N_CTX = 4096


@pytest.fixture(scope="module")
def model():
    with ninestep.load(smollm2_path(), n_ctx=N_CTX) as m:
        yield m


@pytest.fixture(scope="module")
def fresh_greedy():
    """Greedy text of a never-interrupted model (a fresh one per call, so no cache is involved)."""
    def run(prompt, n):
        with ninestep.load(smollm2_path(), n_ctx=N_CTX) as m:
            return m.generate(prompt, max_new_tokens=n, temperature=0).tokens
    return run


@pytest.fixture(autouse=True)
def default_sigint():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _sigint_when(condition, timeout=60.0):
    """A thread that sends SIGINT to this process once condition() holds (polled every 5 ms)."""
    def watch():
        end = time.monotonic() + timeout
        while not condition() and time.monotonic() < end:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _long_prompt(model, n=3000):
    ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog near the river bank. " * 300)
    assert len(ids) >= n
    return ids[:n]


def test_ctrl_c_during_prefill_stops_between_chunks(model, fresh_greedy):
    ids = _long_prompt(model)
    model.reset()
    engine, slots = model._engine, model._scheduler.slots
    chunk = engine.chunk
    held = lambda: max(engine.seq_len(s.index) for s in slots)  # noqa: E731
    # Fire once the first chunk is in the cache: progress, not a guess at the machine's speed.
    watcher = _sigint_when(lambda: held() >= chunk)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.generate(ids, max_new_tokens=1, temperature=0)
    stopped_after = time.perf_counter() - t0
    watcher.join()
    n = held()
    print(f"prefill of {len(ids)} tokens interrupted after {stopped_after:.2f} s at n_past {n}")
    assert chunk <= n < len(ids) and n % chunk == 0  # stopped at a chunk boundary, long before the end
    slot = max(slots, key=lambda s: engine.seq_len(s.index))
    assert slot.ids == ids[:n]                       # Python's view of the cache matches C++'s
    # A prompt extending the cached part reuses it and must answer exactly as a fresh model.
    follow = ids[:n + 40]
    got = model.generate(follow, max_new_tokens=8, temperature=0)
    assert got.stats.cached_tokens == n
    assert got.tokens == fresh_greedy(follow, 8)


def test_ctrl_c_during_streaming_generate(model, fresh_greedy):
    prompt = "Write a long story about a dragon who learns to bake bread."
    started = threading.Event()
    watcher = _sigint_when(started.is_set)
    pieces = []
    with pytest.raises(KeyboardInterrupt):
        with model.generate(prompt, max_new_tokens=400, temperature=0.8, seed=3, stream=True) as s:
            for piece in s:
                pieces.append(piece)
                started.set()
    watcher.join()
    assert pieces and len(pieces) < 400
    assert model.generate(prompt, max_new_tokens=12, temperature=0).tokens == fresh_greedy(prompt, 12)


def test_ctrl_c_in_a_bare_for_loop_releases_the_model(model, fresh_greedy):
    # No with-block: the interrupted stream is dropped with the loop, which must free the model lock.
    prompt = "List the planets of the solar system."
    started = threading.Event()
    watcher = _sigint_when(started.is_set)
    with pytest.raises(KeyboardInterrupt):
        for _ in model.generate(prompt, max_new_tokens=400, temperature=0, stream=True):
            started.set()
    watcher.join()
    assert model.generate(prompt, max_new_tokens=12, temperature=0).tokens == fresh_greedy(prompt, 12)
