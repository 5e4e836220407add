"""Threads that adapt to a busy machine: phases claimed in chunks give bit-identical logits to the
static split at every thread count, also when the thread count changes from step to step (the
tuner's choice); nothing hangs with more threads than cores beside busy processes; the tuner's
decisions on made-up step times; the busy-loop processes of `ninestep bench --busy`."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_forward import GEMMA3, make_model, quantized

import ninestep
from ninestep import _core, busy
from ninestep.engine import Engine, load_weights

VARIANTS = {"llama": dict(d_ff=256), "gemma3": dict(GEMMA3, d_ff=256), "bias-window": dict(has_qkv_bias=True, sliding_window=6)}


def _run(weights, monkeypatch, split, tuning, threads, script):
    """Runs `script` (a list of steps) on a fresh engine made under the given environment."""
    monkeypatch.setenv("NINESTEP_WORK_SPLIT", split)
    monkeypatch.setenv("NINESTEP_THREAD_TUNING", tuning)
    before = ninestep.get_num_threads()
    ninestep.set_num_threads(threads)
    try:
        e = Engine(weights, n_ctx=64, n_seq=4, chunk=8)
        return [np.array(o) for step in script for o in e.step(step)]
    finally:
        ninestep.set_num_threads(before)


def _script(rng):
    a, b, c = rng.integers(0, 100, 19), rng.integers(0, 100, 5), rng.integers(0, 100, 11)
    steps = [[(0, a, 3)], [(1, b, 5), (2, c, 1)]]                 # prefill in pieces of 8 (shared phases)
    for i in range(6):                                            # decode: solo pieces, 1 and 3 sequences
        steps.append([(0, rng.integers(0, 100, 1), 1)] if i % 2 else
                     [(s, rng.integers(0, 100, 1), 1) for s in (0, 1, 2)])
    steps.append([(3, rng.integers(0, 100, 9), 9), (1, rng.integers(0, 100, 1), 1)])  # mixed batch
    return steps


@pytest.mark.parametrize("kind", ["q8_0", "q4_1", "f32"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunked_phases_give_the_static_split_bit_for_bit(rng, monkeypatch, variant, kind, threads):
    config, w = make_model(rng, **VARIANTS[variant])
    tensors, _ = quantized(w, kind)
    weights = load_weights(config, tensors)
    script = _script(rng)
    want = _run(weights, monkeypatch, "static", "off", threads, script)
    for tuning in ("off", "cycle", "on"):  # cycle: decode steps on 1, 2, .. threads in turn
        got = _run(weights, monkeypatch, "dynamic", tuning, threads, script)
        assert len(got) == len(want)
        for g, x in zip(got, want):
            assert np.array_equal(g, x), (tuning, threads)


def test_static_split_matches_the_reference_run(rng, monkeypatch):
    # the static mode is the old split: the same logits as the engine's default, which test_forward checks
    config, w = make_model(rng)
    weights = load_weights(config, w)
    script = _script(rng)
    a = _run(weights, monkeypatch, "static", "off", 2, script)
    b = _run(weights, monkeypatch, "dynamic", "on", 2, script)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.isfinite(x).all() for x in a)


CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import ninestep
    from ninestep import busy
    from ninestep.engine import Engine, load_weights
    from test_forward import make_model
    rng = np.random.default_rng(7)
    config, w = make_model(rng, d_ff=256)
    weights = load_weights(config, w)
    ninestep.set_num_threads(int(sys.argv[1]))
    ids = rng.integers(0, 100, 200)

    def run(split, tuning):
        os.environ["NINESTEP_WORK_SPLIT"], os.environ["NINESTEP_THREAD_TUNING"] = split, tuning
        e = Engine(weights, n_ctx=256, n_seq=1, chunk=16)
        out = [e.step([(0, ids[:8], 1)])[0]]
        out += [e.step([(0, ids[i:i + 1], 1)])[0] for i in range(8, 200)]
        return np.concatenate(out)

    want = run("static", "off")
    with busy.busy_processes(int(sys.argv[2])):
        got = [run("dynamic", t) for t in ("on", "cycle", "off")]
    print("same" if all(np.array_equal(g, want) for g in got) else "DIFFERENT")
""")


@pytest.mark.parametrize("threads,n_busy", [(_core.default_num_threads() + 2, 2), (2, 1), (3, 1)])
def test_more_threads_than_cores_beside_busy_processes_finish(threads, n_busy):
    # 200 decode steps per run on more threads than the machine has room for: a hang fails here by
    # the timeout, a timing-dependent result by the comparison with the static split.
    code = CHILD.format(tests=os.path.dirname(__file__))
    r = subprocess.run([sys.executable, "-c", code, str(threads), str(n_busy)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "same"


# The tuner on made-up step times (seconds per step for each thread count).
def _drive(tuner, times, steps, nmax=2, waited=0.0):
    chosen = []
    for _ in range(steps):
        n = tuner.choose(nmax)
        chosen.append(n)
        tuner.record(n, times[n], waited * times[n])
    return chosen


def test_tuner_keeps_every_thread_on_a_quiet_machine():
    t = _core.ThreadTuner()
    chosen = _drive(t, {1: 1.6e-3, 2: 1.0e-3}, 2000)
    assert t.current == 2
    probes = chosen.count(1)
    assert 0 < probes <= 2 * 12  # a 2-step probe after 128, 256, 512, 1024, ... steps
    assert chosen[-100:].count(2) >= 98


def test_tuner_drops_a_thread_beside_a_busy_process_and_comes_back():
    t = _core.ThreadTuner()
    # busy: 2 threads wait for a descheduled sibling (a third of each step spent waiting) and are slow
    chosen = _drive(t, {1: 1.2e-3, 2: 4.0e-3}, 40, waited=0.35)
    assert t.current == 1
    assert chosen[-20:].count(1) >= 18
    assert chosen.index(1) <= 12  # the wait share triggers the probe early, not after 32 steps
    # the load goes away: a later probe finds 2 threads faster again
    chosen = _drive(t, {1: 1.6e-3, 2: 1.0e-3}, 600)
    assert t.current == 2
    assert chosen[-50:].count(2) >= 48


def test_tuner_off_and_cycle_and_bad_arguments():
    assert _drive(_core.ThreadTuner("off"), {1: 1.0, 2: 9.0, 3: 9.0}, 50, nmax=3) == [3] * 50
    assert _drive(_core.ThreadTuner("cycle"), {1: 1.0, 2: 1.0, 3: 1.0}, 6, nmax=3) == [1, 2, 3, 1, 2, 3]
    assert _drive(_core.ThreadTuner(), {1: 1.0}, 5, nmax=1) == [1] * 5
    with pytest.raises(ValueError, match="mode"):
        _core.ThreadTuner("fast")
    with pytest.raises(ValueError, match="nmax"):
        _core.ThreadTuner().choose(0)


def test_tuner_walks_down_more_than_one_step():
    t = _core.ThreadTuner()
    # four threads: each count below is faster (a machine with one core left)
    _drive(t, {1: 1.0e-3, 2: 2.0e-3, 3: 3.0e-3, 4: 4.0e-3}, 400, nmax=4, waited=0.4)
    assert t.current == 1


# Busy-loop processes.
def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_busy_processes_spin_and_are_stopped():
    with busy.busy_processes(2) as procs:
        assert busy.alive(procs) == 2
        cpu0 = [os.times() for _ in procs]  # noqa: F841 (keep the block non-trivial)
        time.sleep(0.3)
        for p in procs:  # each one uses CPU time (utime in /proc/<pid>/stat) while the block runs
            with open(f"/proc/{p.pid}/stat") as f:
                assert int(f.read().split(")")[-1].split()[11]) > 0
    assert busy.alive(procs) == 0


def test_busy_processes_are_stopped_on_an_exception():
    with pytest.raises(KeyboardInterrupt):
        with busy.busy_processes(1) as procs:
            raise KeyboardInterrupt
    assert busy.alive(procs) == 0


def test_busy_processes_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", "from ninestep import busy; import time\n"
                               "ps = busy.start(1); print(ps[0].pid, flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    assert _running(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


@pytest.mark.parametrize("n", [-1, 1.5, True, "2"])
def test_busy_bad_count_is_refused(n):
    with pytest.raises(ValueError, match="n:"):
        busy.start(n)


def test_bench_busy_option():
    from helpers.models import smollm2_path
    from test_cli import ninestep as cli

    smollm2_path()  # skips (or fails under CI) without the default model
    r = cli("bench", "-m", "smollm2-135m", "--prompt-tokens", "16", "--new-tokens", "4", "--rounds", "1", "--busy", "1")
    assert r.returncode == 0, r.stderr
    assert "busy:    1 competing busy-loop process" in r.stdout and "decode:" in r.stdout
    r = cli("bench", "-m", "smollm2-135m", "--busy", "-1")
    assert r.returncode != 0 and "--busy: must be in [0, 64], got -1" in r.stderr


# The work split itself (the engine's WorkQueue / WorkCursor): every unit of every phase handed out
# exactly once, for any thread count (more threads than cores included), phase sizes from empty to
# more chunks than a home range can number, and threads that give up their core mid-phase.
@pytest.mark.parametrize("split", ["dynamic", "static"])
@pytest.mark.parametrize("threads", [1, 2, 3, 8, 70])
@pytest.mark.parametrize("yield_every", [0, 1, 3])
def test_work_split_hands_out_every_unit_once(split, threads, yield_every):
    rng = np.random.default_rng(threads * 10 + yield_every)
    sizes = [0, 1, 2, 7, 64, 1000, 0, 3, 200000] + [int(x) for x in rng.integers(0, 5000, 40)]
    for align in (1, 4, 64):
        counts = _core.work_split_counts(sizes, threads, align, yield_every, split)
        assert [len(c) for c in counts] == sizes
        for p, c in enumerate(counts):
            assert all(v == 1 for v in c), (split, threads, align, p, sizes[p], sorted(set(c)))


def test_work_split_bad_arguments():
    with pytest.raises(ValueError, match="threads"):
        _core.work_split_counts([1], 0)
    with pytest.raises(ValueError, match="sizes"):
        _core.work_split_counts([-1], 2)
    with pytest.raises(ValueError, match="split"):
        _core.work_split_counts([1], 2, split="fast")
