"""The `ninestep` command, run as users run it (python -m ninestep) in a subprocess."""
import re
import subprocess
import sys

import pytest

from helpers.models import smollm2_path


def ninestep(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ninestep", *args], capture_output=True, text=True,
                          input=stdin, timeout=300)


@pytest.fixture(scope="module", autouse=True)
def _model_installed():
    smollm2_path()  # skips (or fails under CI) without the default model


def test_run_prints_paris():
    r = ninestep("run", "-n", "12", "--temp", "0", "The capital of France is")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The capital of France is")
    assert "Paris" in r.stdout


def test_run_chat_verbose_reports_speed_on_stderr():
    r = ninestep("run", "--chat", "-n", "16", "--temp", "0", "-v", "What is 2 + 2?")
    assert r.returncode == 0, r.stderr
    assert "4" in r.stdout
    assert "tok/s" in r.stderr and "tok/s" not in r.stdout


def test_chat_repl_keeps_history_in_the_kv_cache():
    r = ninestep("chat", "-n", "24", "--temp", "0", "-v", stdin="My name is Ada.\nWhat is my name?\n\n")
    assert r.returncode == 0, r.stderr
    cached = [int(m) for m in re.findall(r"\((\d+) cached\)", r.stderr)]
    assert len(cached) == 2 and cached[0] == 0
    assert cached[1] > 30  # the second turn re-reads only what the first did not leave in the cache


def test_info_describes_the_model():
    r = ninestep("info")
    assert r.returncode == 0, r.stderr
    for text in ("llama", "layers 30", "q4_1", "q8_0", "byte-level BPE", "<|im_start|>", "isa"):
        assert text in r.stdout


def test_bench_prints_both_speeds():
    r = ninestep("bench", "--prompt-tokens", "32", "--new-tokens", "8", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    assert "prefill:" in r.stdout and "decode:" in r.stdout and "tokens/s" in r.stdout


@pytest.mark.parametrize("args, text", [
    (("run", "-m", "/no/such/model.gguf", "hi"), "/no/such/model.gguf"),
    (("run", "--temp", "-1", "hi"), "temperature"),
    (("run", "-n", "-5", "hi"), "max_new_tokens"),
])
def test_errors_are_one_line_and_exit_2(args, text):
    r = ninestep(*args)
    assert r.returncode == 2
    assert text in r.stderr and "Traceback" not in r.stderr
