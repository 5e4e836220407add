"""Every code block of README.md carries a marker: `<!-- readme-test: run -->` blocks are executed
here (bash lines through the real `ninestep` command, Python blocks in a fresh interpreter), and a
following `<!-- readme-test: output -->` block is what they must print (`...` matches anything);
`<!-- readme-test: output contains "X" -->` is for sampled output; `<!-- readme-test: skip (why) -->` says why a block is not run (installs, builds, timings)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ninestep
from helpers.models import smollm2_path

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r'<!-- readme-test: (run|output(?: contains "[^"]+")?|skip \(.+\)) -->')


def blocks():
    """[(marker, language, text, line)] for every fenced block, in order."""
    lines = README.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            k = start - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            m = MARKER.fullmatch(lines[k].strip()) if k >= 0 else None
            out.append((m.group(1) if m else None, lang, "\n".join(lines[start + 1:j]) + "\n", start + 1))
            i = j + 1
        else:
            i += 1
    return out


def runnable():
    bs = blocks()
    cases = []
    for n, (marker, lang, text, line) in enumerate(bs):
        if marker == "run":
            nxt = bs[n + 1] if n + 1 < len(bs) and (bs[n + 1][0] or "").startswith("output") else None
            want = None if nxt is None else nxt[2] if nxt[0] == "output" else re.search('"(.+)"', nxt[0]).group(1)
            cases.append(pytest.param(lang, text, want, nxt is not None and nxt[0] != "output", id=f"line{line}-{lang}"))
    return cases


def test_every_block_is_marked():
    unmarked = [line for marker, _, _, line in blocks() if marker is None]
    assert unmarked == [], f"README.md blocks at lines {unmarked} need a <!-- readme-test: ... --> marker"
    bs = blocks()
    for n, (marker, _, _, line) in enumerate(bs):
        if marker.startswith("output"):
            assert n > 0 and bs[n - 1][0] == "run", f"output block at line {line} follows no run block"


def _commands(text):
    """The `ninestep ...` parts of each line; `pip install` parts are the install the suite runs from."""
    cmds = []
    for line in text.splitlines():
        line = line.split("  # ")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in (p.strip() for p in line.split("&&")):
            if part.startswith("pip install"):
                continue
            assert "ninestep" in part, f"a README run block may only run ninestep (and pip install): {part!r}"
            cmds.append(part)
    return cmds


def _matches(got, want):
    pattern = ".*?".join(re.escape(piece) for piece in want.rstrip("\n").split("..."))
    return re.fullmatch(pattern, got.rstrip("\n"), re.S) is not None


@pytest.mark.parametrize("lang, text, want, contains", runnable())
def test_readme_block_runs_and_prints_what_it_claims(lang, text, want, contains, tmp_path):
    smollm2_path()
    env = {k: v for k, v in os.environ.items() if k != "NINESTEP_MODEL"}
    src = str(Path(ninestep.__file__).resolve().parents[1])  # the ninestep this test imported
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    if lang == "bash":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "ninestep").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ninestep "$@"\n')
        (bindir / "ninestep").chmod(0o755)
        env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
        got = ""
        for cmd in _commands(text):
            r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True, env=env,
                               timeout=600, cwd=tmp_path)
            assert r.returncode == 0, f"{cmd}: {r.stderr}"
            assert "Traceback" not in r.stderr
            got += r.stdout
    else:
        assert lang == "python"
        (tmp_path / "block.py").write_text(text)
        r = subprocess.run([sys.executable, "block.py"], capture_output=True, text=True, env=env, timeout=600,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        got = r.stdout
    if contains:
        assert want in got, f"README claims the output contains {want!r}, but the block printed:\n{got}"
    elif want is not None:
        assert _matches(got, want), f"README claims:\n{want}\nbut the block printed:\n{got}"


def test_the_first_command_answers_for_every_seed():
    # the README's first command samples (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05) with a
    # random seed; measured 20 of 20 seeds name Paris (the question alone: 17-20 of 40)
    import ninestep

    text = next(t for m, lang, t, _ in blocks() if m == "run" and lang == "bash")
    question = re.search(r'ninestep run "([^"]+)"', text).group(1)
    with ninestep.load(smollm2_path()) as m:
        answers = [m.chat([{"role": "user", "content": question}], seed=s, max_new_tokens=40).text for s in range(12)]
    assert all("Paris" in a for a in answers), answers
