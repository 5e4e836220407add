"""`ninestep embed`: JSON lines and .npy output equal model.embed; bad input exits 2 with a message."""
import io
import json
from pathlib import Path

import numpy as np

import ninestep
from ninestep.cli import main

HERE = Path(__file__).parent
TINY = str(HERE / "data" / "tiny-bert")
TEXTS = ["Hello, world!", "A man is eating food.", "Café crème"]


def test_json_lines_from_file(tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["embed", "-m", TINY, str(f)]) == 0
    out, err = capsys.readouterr()
    got = np.array([json.loads(line) for line in out.splitlines()], dtype=np.float32)
    with ninestep.load(TINY) as m:
        np.testing.assert_allclose(got, m.embed(TEXTS), atol=1e-6)
    assert "embed: 3/3 texts" in err  # progress is on in the CLI


def test_npy_from_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(TEXTS)))
    out = tmp_path / "e.npy"
    assert main(["embed", "-m", TINY, "-", "-o", str(out), "--no-normalize", "-q", "-b", "2"]) == 0
    assert capsys.readouterr().err == ""
    with ninestep.load(TINY) as m:
        np.testing.assert_allclose(np.load(out), m.embed(TEXTS, normalize=False), atol=1e-6)


def test_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("one\n\nthree\n"))
    assert main(["embed", "-m", TINY]) == 2
    assert "line 2 is empty" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["embed", "-m", TINY]) == 2
    assert "no lines" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("word " * 100))
    assert main(["embed", "-m", TINY, "--no-truncate"]) == 2
    assert "exceed the model's 64 positions" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert main(["embed", "-m", str(tmp_path / "nowhere"), "-q"]) == 2
    assert "not found" in capsys.readouterr().err
