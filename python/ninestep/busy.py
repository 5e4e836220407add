"""Competing load for benchmarks: N busy-loop processes that spin for the duration of a `with` block.

    with busy_processes(1):
        ...  # measure decode beside one process that never sleeps

Each process is a tiny Python interpreter spinning in a loop. They are started before the block and
killed (SIGKILL, then reaped) when it ends, also on an exception or Ctrl-C. Each one also exits by
itself if its parent goes away (it checks its parent pid every ~10 ms), so a benchmark killed with
SIGKILL leaves nothing behind. Used by `ninestep bench --busy N` and bench/compare.py --busy N.
"""
import contextlib
import os
import subprocess
import sys

# The loop checks every 2**16 iterations (~2-5 ms of spinning) that its parent is still the process
# that started it (its pid comes in argv, so a parent that dies before the child got going counts
# too); when the parent dies the process is re-parented and exits.
_SPIN = ("import os, sys\n"
         "p = int(sys.argv[1])\n"
         "while os.getppid() == p:\n"
         "    for _ in range(65536):\n"
         "        pass\n")


def start(n):
    """Start n busy-loop processes; returns their Popen objects (stop them with stop())."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: must be an int >= 0, got {n!r}")
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-S", "-c", _SPIN, str(os.getpid())], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))  # Ctrl-C goes to us, not them
    except BaseException:
        stop(procs)
        raise
    return procs


def stop(procs):
    """Kill and reap every process start() returned (those still alive)."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    for p in procs:
        p.wait()


def alive(procs):
    """How many of procs are still running."""
    return sum(p.poll() is None for p in procs)


@contextlib.contextmanager
def busy_processes(n):
    """A `with` block during which n busy-loop processes compete for the CPU (n = 0: none)."""
    procs = start(n)
    try:
        yield procs
    finally:
        stop(procs)


def cpu_load():
    """The 1-minute load average, or None where the OS has none (printed next to busy figures)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
