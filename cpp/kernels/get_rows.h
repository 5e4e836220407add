// Embedding lookup: rows of a weight matrix of any type, dequantized to float32.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ninestep {

// dst [m, k] = rows ids[0..m) of w [n, k] (n rows of dtype_row_bytes(type, k) bytes), through the
// type's dequantize row (kernels/traits.h). Fails (ArgError naming `what`) before writing anything
// unless the type has that row and every id is in [0, n). Single-threaded, allocates nothing.
void get_rows(float* dst, const void* w, DType type, int64_t n, int64_t k, const int64_t* ids, int64_t m,
              const char* what);

}  // namespace ninestep
