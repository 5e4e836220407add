#include "kernels/get_rows.h"

#include <string>

#include "kernels/traits.h"

namespace ninestep {

void get_rows(float* dst, const void* w, DType type, int64_t n, int64_t k, const int64_t* ids, int64_t m,
              const char* what) {
  check_dequantize_kernel(type, what);
  const int64_t rb = dtype_row_bytes(type, k);
  for (int64_t i = 0; i < m; ++i)
    NS_CHECK(ids[i] >= 0 && ids[i] < n, "ids: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                            " is out of range for " + what + " with " + std::to_string(n) + " rows");
  const DequantRowFn row = type_traits(type).dequantize_row;
  for (int64_t i = 0; i < m; ++i) row(dst + i * k, static_cast<const uint8_t*>(w) + ids[i] * rb, k);
}

}  // namespace ninestep
