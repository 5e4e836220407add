// NEON kernels against the scalar reference, on random inputs over many shapes and tails.
// Standalone (no Python): built for aarch64 and run under qemu by run_neon_check.sh. Each kernel
// is called through its public entry point twice, with the active ISA set to generic and then
// to neon, so the dispatch wiring is checked along with the kernel.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/fp16.h"
#include "kernels/gemm_float.h"
#include "kernels/quant.h"

using namespace ninestep;

namespace {

int g_passed = 0, g_failed = 0;
std::mt19937 g_rng(1234);

std::vector<float> randn(int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(g_rng);
  return v;
}

// Records one case: every got[i] within atol + rtol * |ref[i]| (NaNs must match).
void expect_close(const std::string& what, const float* got, const float* ref, int64_t n, float rtol, float atol) {
  for (int64_t i = 0; i < n; ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(ref[i]);
    if (!both_nan && !(std::fabs(got[i] - ref[i]) <= atol + rtol * std::fabs(ref[i]))) {
      std::printf("FAIL %s: [%lld] neon %.9g, generic %.9g\n", what.c_str(), (long long)i, got[i], ref[i]);
      ++g_failed;
      return;
    }
  }
  ++g_passed;
}

void expect_equal_bytes(const std::string& what, const void* got, const void* ref, size_t n) {
  if (std::memcmp(got, ref, n) != 0) {
    std::printf("FAIL %s: bytes differ\n", what.c_str());
    ++g_failed;
  } else {
    ++g_passed;
  }
}

// Runs f once per ISA, generic first; f(isa_index) writes that run's outputs.
template <class F>
void both(F f) {
  set_active_isa(Isa::generic);
  f(0);
  set_active_isa(Isa::neon);
  f(1);
}

std::string shape(const char* op, const char* type, int64_t m, int64_t k, int64_t n) {
  return std::string(op) + " " + type + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
         " n=" + std::to_string(n);
}

const int64_t kMs[] = {1, 3, 5, 37};
const int64_t kKs[] = {32, 64, 96, 160, 576, 1536, 4128};
const int64_t kNs[] = {1, 3, 7, 13, 33};

void check_quant() {
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1}) {
    const char* tn = dtype_info(t).name;
    for (int64_t k : kKs) {
      const int64_t nb = k / QK;
      for (int64_t n : kNs) {
        const std::vector<float> wf = randn(n * k);
        std::vector<uint8_t> w(n * dtype_row_bytes(t, k));
        quantize_rows(w.data(), wf.data(), t, n, k);
        for (int64_t m : kMs) {
          // Activations with outliers and an all-zero block, as real hidden states have.
          std::vector<float> x = randn(m * k);
          x[0] = 40.0f;
          if (nb > 1) std::fill(x.begin() + QK, x.begin() + 2 * QK, 0.0f);
          std::vector<BlockQ8Act> act[2];
          both([&](int r) {
            act[r].resize(m * nb);
            for (int64_t i = 0; i < m; ++i) quantize_act_row(act[r].data() + i * nb, x.data() + i * k, k);
          });
          if (t == DType::q8_0)  // once per shape is enough for the activation quantizer
            expect_equal_bytes(shape("quantize_act_row", "f32", m, k, 1), act[1].data(), act[0].data(),
                               act[0].size() * sizeof(BlockQ8Act));
          // A slice [n0, n) of W's rows into a strided y, as the threaded caller does.
          const int64_t n0 = n > 2 ? 1 : 0, ldy = n + 3;
          std::vector<float> y[2];
          both([&](int r) {
            y[r].assign(m * ldy, -7.0f);
            qgemm_rows(y[r].data(), ldy, act[0].data(), w.data(), t, m, k, n0, n);
          });
          expect_close(shape("qgemm_rows", tn, m, k, n), y[1].data(), y[0].data(), m * ldy, 1e-4f,
                       1e-4f * std::sqrt((float)k));
        }
      }
    }
  }
}

void check_gemm_float() {
  const int64_t ms[] = {1, 2, 3, 4, 5, 7, 13};
  const int64_t ks[] = {1, 3, 32, 67, 256, 257, 600, 4128};
  const int64_t ns[] = {1, 3, 17, 33};
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    for (int64_t k : ks) {
      for (int64_t n : ns) {
        const std::vector<float> wf = randn(n * k);
        std::vector<uint16_t> w16(n * k);
        for (int64_t e = 0; e < n * k; ++e) {
          uint32_t bits;
          std::memcpy(&bits, &wf[e], 4);
          w16[e] = t == DType::f16 ? f32_to_fp16(wf[e]) : (uint16_t)(bits >> 16);
        }
        const void* w = t == DType::f32 ? (const void*)wf.data() : (const void*)w16.data();
        for (int64_t m : ms) {
          const std::vector<float> x = randn(m * k);
          const int64_t n0 = n > 2 ? 1 : 0, ldy = n + 3;
          std::vector<float> y[2];
          both([&](int r) {
            y[r].assign(m * ldy, -7.0f);
            gemm_float_rows(y[r].data(), ldy, x.data(), w, t, m, k, n0, n);
          });
          expect_close(shape("gemm_float_rows", dtype_info(t).name, m, k, n), y[1].data(), y[0].data(), m * ldy,
                       1e-5f, 2e-6f * k);
        }
      }
    }
  }
}

}  // namespace

int main() {
  if (!isa_compiled(Isa::neon) || !isa_cpu_has(Isa::neon)) {
    std::printf("neon tier not available in this build\n");
    return 2;
  }
  check_quant();
  check_gemm_float();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
