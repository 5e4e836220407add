"""Float-weight matmul, ninestep vs NumPy (OpenBLAS sgemm / sgemv), side by side per shape.

    OPENBLAS_NUM_THREADS=2 PYTHONPATH=python python3 -m pytest bench/test_bench_matmul_float.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

Shapes are SmolLM2's (M tokens x K=576 x N): 1536 = FFN width, 49152 = vocabulary (the output head).
Both sides use 2 threads and write into a preallocated output. NumPy has no fast float16 product
(it would convert W on every call), so ninestep's f16 and bf16 rows are measured against the same
NumPy float32 baseline in their group."""
import numpy as np
import pytest

from operands import operands
from ninestep import QuantizedTensor
from ninestep.ops import matmul

SHAPES = [(1, 576, 1536), (1, 576, 49152), (256, 576, 1536), (512, 576, 1536)]


def _ids(shapes):
    return ["x".join(map(str, s)) for s in shapes]


@pytest.mark.parametrize("m,k,n", SHAPES, ids=_ids(SHAPES))
def test_numpy_f32(benchmark, m, k, n):
    x, w = operands(m, k, n)
    out, wt = np.empty((m, n), np.float32), w.T
    benchmark.group = f"matmul {m}x{k}x{n}"
    benchmark(np.matmul, x, wt, out=out)


@pytest.mark.parametrize("kind", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("m,k,n", SHAPES, ids=_ids(SHAPES))
def test_ninestep(benchmark, m, k, n, kind):
    x, w = operands(m, k, n)
    if kind == "f16":
        w = w.astype(np.float16)
    elif kind == "bf16":
        w = QuantizedTensor.from_bf16((w.view(np.uint32) >> 16).astype(np.uint16))
    out = np.empty((m, n), np.float32)
    benchmark.group = f"matmul {m}x{k}x{n}"
    benchmark(matmul, x, w, out=out)
