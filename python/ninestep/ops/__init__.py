"""Each kernel on its own, for tests, benchmarks and users who compose their own models.

float32 C-contiguous NumPy arrays in; a new array out unless `out=` is given."""
from .get_rows import get_rows
from .matmul import matmul
from .nn import attention, gelu, layernorm, rmsnorm, rope, silu, softmax, swiglu

__all__ = ["matmul", "get_rows", "softmax", "rmsnorm", "layernorm", "rope", "attention", "silu", "gelu", "swiglu"]
