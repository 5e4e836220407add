"""Two ninestep builds side by side on a shared machine: each build runs in its own subprocesses
(PYTHONPATH = the directory holding its `ninestep` package), the builds alternating run by run so
the machine's drifting load falls on both alike. Used by gemv_ab.py and kquant_ab.py."""
import argparse
import json
import os
import subprocess
import sys
import time


def add_ab_arguments(ap, runs, before_required=True):
    """The arguments every A/B script takes: the two builds, the runs per build, the threads, and
    --worker (the script run as one build's subprocess)."""
    ap.add_argument("--before", required=before_required, default=None)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=runs, help="subprocesses per build, alternating")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def alternate(script, builds, runs, threads, worker_argv):
    """Runs `python script *worker_argv` `runs` times per build, in alternating order (reversed on
    odd runs). builds: [(side, pythonpath)]; each worker prints {case: [samples]} as JSON. Returns
    {side: {case: [samples of every run]}}."""
    got = {side: {} for side, _ in builds}
    for r in range(runs):
        for side, path in builds if r % 2 == 0 else builds[::-1]:
            env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads))
            out = subprocess.run([sys.executable, script, *worker_argv], env=env, check=True, capture_output=True,
                                 text=True).stdout
            for case, samples in json.loads(out).items():
                got[side].setdefault(case, []).extend(samples)
    return got


def time_calls(fn, reps, warm):
    """fn(0) .. fn(warm - 1) untimed, then the seconds of each of fn(0) .. fn(reps - 1)."""
    for i in range(warm):
        fn(i)
    ts = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        ts.append(time.perf_counter() - t0)
    return ts
