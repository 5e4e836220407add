"""Marks for tests that cannot run under .ci/sanitize.sh (it exports NINESTEP_SANITIZED=1)."""
import os

import pytest

# A normal build's operator new throws bad_alloc for an impossible KV cache (a ValueError naming
# n_ctx); AddressSanitizer's aborts the process whatever allocator_may_return_null says.
impossible_allocation = pytest.mark.skipif(bool(os.environ.get("NINESTEP_SANITIZED")),
                                           reason="ASan aborts on an impossible throwing new")
