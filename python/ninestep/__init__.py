"""ninestep: run transformer language models on the CPU from Python.

C++ kernels (SIMD chosen at run time, OpenMP threads) do the arithmetic; Python reads model
files, tokenizes, samples and streams.
"""
import os as _os

# Threads wait at a barrier between the phases of each step. Spinning briefly (rather than GOMP's
# default ~300k spins) keeps a step fast on an idle machine without collapsing when the cores are
# shared. Set before the OpenMP runtime starts; a user's own setting wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from . import _core  # noqa: E402
from . import ops
from .errors import FormatError
from .generate import Completion, GenerationStats
from .model import Model, load
from .tensor import QuantizedTensor, quantize

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by every kernel and the forward pass (default: the cores this process may use)."""
    from ._checks import positive_int

    _core.set_num_threads(positive_int(n, "n"))


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_isa(name: str) -> None:
    """Force the kernel variant: 'generic', 'avx2', 'avx512' or 'neon'. Raises ValueError if this
    CPU or build lacks it. The environment variable NINESTEP_ISA does the same at import."""
    _core.set_isa(name)


def cpu_info() -> dict:
    """{'isa': in use, 'supported': ISAs this build and CPU can run, 'compiled': ISAs in this
    build, 'threads': threads in use}."""
    return {
        "isa": _core.active_isa(),
        "supported": list(_core.supported_isas()),
        "compiled": list(_core.compiled_isas()),
        "threads": _core.get_num_threads(),
    }


__all__ = ["Completion", "GenerationStats", "Model", "load", "FormatError", "QuantizedTensor", "quantize", "ops", "cpu_info", "get_num_threads", "set_isa", "set_num_threads"]
