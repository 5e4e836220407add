import os
import subprocess
import sys

import pytest

import ninestep


def test_cpu_info_reports_isa_and_threads():
    info = ninestep.cpu_info()
    assert info["isa"] in info["supported"]
    assert info["supported"][0] == "generic"
    assert info["threads"] >= 1


def test_set_num_threads_round_trip():
    before = ninestep.get_num_threads()
    try:
        ninestep.set_num_threads(1)
        assert ninestep.get_num_threads() == 1
    finally:
        ninestep.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -3])
def test_set_num_threads_rejects_bad(bad):
    with pytest.raises(ValueError, match="n"):
        ninestep.set_num_threads(bad)


def test_set_isa_rejects_unknown():
    with pytest.raises(ValueError, match="isa"):
        ninestep.set_isa("sse9")


def _import_with_isa(value):
    env = dict(os.environ, NINESTEP_ISA=value)
    return subprocess.run([sys.executable, "-c", "import ninestep; print(ninestep.cpu_info()['isa'])"],
                          env=env, capture_output=True, text=True)


def test_env_forces_each_supported_isa():
    for name in ninestep.cpu_info()["supported"]:
        r = _import_with_isa(name)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == name


def test_env_forcing_missing_isa_is_an_error():
    info = ninestep.cpu_info()
    missing = [n for n in ("avx2", "avx512", "neon") if n not in info["supported"]]
    for name in missing + ["bogus"]:
        r = _import_with_isa(name)
        assert r.returncode != 0
        assert name in r.stderr
