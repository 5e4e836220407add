"""Quantized matmul vs NumPy float32 (OpenBLAS) on the same matrix, side by side per group.

    OPENBLAS_NUM_THREADS=2 PYTHONPATH=python python3 -m pytest bench/test_bench_matmul_quant.py \\
        --benchmark-only --benchmark-columns=min,median,mean,rounds

Shapes are SmolLM2-135M's: the LM head (Q8_0 [49152, 576]), an FFN matrix ([1536, 576]) for one
decoded token and for a 512-token prefill. Each group holds NumPy and ninestep (best ISA, 2
threads unless NINESTEP_BENCH_THREADS says otherwise) for one shape and kind; the ratio of
their medians is the figure to report."""

import numpy as np
import pytest

import ninestep
from operands import operands
from ninestep import ops

SHAPES = [(1, 576, 49152), (1, 576, 1536), (512, 576, 1536)]  # (M, K, N)


@pytest.mark.parametrize("kind", ["q4_1", "q8_0"])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_ninestep(benchmark, m, k, n, kind):
    x, w = operands(m, k, n)
    t = ninestep.quantize(w, kind)
    out = np.empty((m, n), np.float32)
    benchmark.group = f"{m}x{k}x{n} {kind}"
    benchmark.extra_info.update(isa=ninestep.cpu_info()["isa"], weight_mb=t.nbytes / 1e6)
    benchmark(ops.matmul, x, t, out=out)


@pytest.mark.parametrize("kind", ["q4_1", "q8_0"])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_numpy_f32(benchmark, m, k, n, kind):
    x, w = operands(m, k, n)
    out = np.empty((m, n), np.float32)
    benchmark.group = f"{m}x{k}x{n} {kind}"
    benchmark.extra_info.update(weight_mb=w.nbytes / 1e6)
    benchmark(np.matmul, x, w.T, out=out)
