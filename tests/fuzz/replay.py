"""Reproduces one fuzz input in a fresh subprocess (for a suspected crash: a segfault or an abort
takes the whole pytest run down, this shows it alone with its exit status):
    python tests/fuzz/replay.py tests/fuzz/last/gguf        # a GGUF file
    python tests/fuzz/replay.py tests/fuzz/last/hf_folder   # an HF folder
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def replay(path):
    """(returncode, stdout + stderr) of reading `path` in a child process."""
    path = Path(path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from fuzz import readers; from pathlib import Path; "
            "p = Path(sys.argv[2]); print(readers.read_safetensors_folder(p) if p.is_dir() else readers.read_gguf(p))")
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code, str(HERE.parent), str(path)],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


if __name__ == "__main__":
    rc, out = replay(sys.argv[1])
    print(out, end="")
    print(f"exit status {rc}")
    sys.exit(rc != 0)
