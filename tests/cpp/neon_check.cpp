// NEON kernels against the scalar reference, on random inputs over many shapes and tails.
// Standalone (no Python): built for aarch64 and run under qemu by run_neon_check.sh. Each kernel
// is called through its public entry point twice, with the active ISA set to generic and then
// to neon, so the dispatch wiring is checked along with the kernel; the quantized GEMMs and the
// activation quantizer are taken from the trait table's generic and neon slots (kernels/traits.h),
// each slot checked to be filled.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/fp16.h"
#include "kernels/gemm_float.h"
#include "kernels/nn.h"
#include "kernels/quant.h"
#include "kernels/traits.h"

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
    const bool same = got[i] == ref[i] || (std::isnan(got[i]) && std::isnan(ref[i]));  // infs, NaNs
    if (!same && !(std::fabs(got[i] - ref[i]) <= atol + rtol * std::fabs(ref[i]))) {
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
  const ActTraits& a8 = act_traits(ActFormat::q8_32);
  if (a8.from_float.neon == nullptr) {
    std::printf("FAIL q8_32 activations: no neon slot in the trait table\n");
    ++g_failed;
  }
  const ActRowFn act_row[2] = {a8.from_float.for_isa(Isa::generic), a8.from_float.for_isa(Isa::neon)};
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1}) {
    const char* tn = dtype_info(t).name;
    const TypeTraits& tt = type_traits(t);
    if (tt.gemm.neon == nullptr) {
      std::printf("FAIL %s: no neon GEMM in the trait table\n", tn);
      ++g_failed;
      continue;
    }
    const GemmRowsFn gemm[2] = {tt.gemm.for_isa(Isa::generic), tt.gemm.for_isa(Isa::neon)};
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
          for (int r = 0; r < 2; ++r) {
            act[r].resize(m * nb);
            for (int64_t i = 0; i < m; ++i) act_row[r](act[r].data() + i * nb, x.data() + i * k, k);
          }
          if (t == DType::q8_0)  // once per shape is enough for the activation quantizer
            expect_equal_bytes(shape("quantize_act_row", "f32", m, k, 1), act[1].data(), act[0].data(),
                               act[0].size() * sizeof(BlockQ8Act));
          // A slice [n0, n) of W's rows into a strided y, as the threaded caller does.
          const int64_t n0 = n > 2 ? 1 : 0, ldy = n + 3;
          std::vector<float> y[2];
          for (int r = 0; r < 2; ++r) {
            y[r].assign(m * ldy, -7.0f);
            gemm[r](y[r].data(), ldy, act[0].data(), w.data(), m, k, n0, n);
          }
          expect_close(shape("gemm", tn, m, k, n), y[1].data(), y[0].data(), m * ldy, 1e-4f,
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

void check_softmax() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {1, 3, 4, 7, 8, 15, 49, 576, 1031, 2500, 49152}) {
    const int64_t rows = 6;
    std::vector<float> x = randn(rows * n, 8.0f);
    // Row 1: large magnitudes; 2: all -inf; 3: some -inf; 4: a NaN at the end (in the tail); 5: +inf.
    for (int64_t i = 0; i < n; ++i) x[n + i] *= 1000.0f, x[2 * n + i] = -inf;
    for (int64_t i = 0; i < n; i += 2) x[3 * n + i] = -inf;
    x[5 * n - 1] = nan;
    x[5 * n + n / 2] = inf;
    std::vector<float> y[2];
    both([&](int r) {
      y[r].assign(rows * n, -7.0f);
      softmax_rows(y[r].data(), x.data(), n, 0, rows);
    });
    expect_close("softmax_rows n=" + std::to_string(n), y[1].data(), y[0].data(), rows * n, 1e-5f, 1e-30f);
    // in place, on a sub-range of rows
    std::vector<float> z[2];
    both([&](int r) {
      z[r] = x;
      softmax_rows(z[r].data(), z[r].data(), n, 1, 4);
    });
    expect_close("softmax_rows in place n=" + std::to_string(n), z[1].data(), z[0].data(), rows * n, 1e-5f, 1e-30f);
  }
}

void check_norms() {
  for (int64_t n : {1, 3, 4, 17, 64, 576, 1031}) {
    const int64_t rows = 4;
    std::vector<float> x = randn(rows * n, 3.0f);
    for (int64_t i = 0; i < n; ++i) x[i] += 100.0f;  // |mean| >> std for layernorm
    const std::vector<float> w = randn(n), b = randn(n);
    std::vector<float> y[2];
    both([&](int r) {
      y[r].assign(rows * n, -7.0f);
      rmsnorm_rows(y[r].data(), x.data(), w.data(), 1e-5f, n, 1, rows);
    });
    expect_close("rmsnorm_rows n=" + std::to_string(n), y[1].data(), y[0].data(), rows * n, 1e-5f, 1e-6f);
    for (const float* bias : {b.data(), (const float*)nullptr}) {
      both([&](int r) {
        y[r] = x;  // in place
        layernorm_rows(y[r].data(), y[r].data(), w.data(), bias, 1e-5f, n, 0, rows);
      });
      expect_close(std::string("layernorm_rows n=") + std::to_string(n) + (bias ? " bias" : ""), y[1].data(),
                   y[0].data(), rows * n, 1e-4f, 1e-4f);
    }
  }
}

void check_activations() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {1, 2, 3, 4, 5, 9, 37, 1000}) {
    std::vector<float> x = randn(n, 6.0f), up = randn(n);
    const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, 20.0f, -20.0f, inf, -inf, nan};
    for (int64_t i = 0; i < n && i < 9; ++i) x[n - 1 - i] = special[i];
    for (int64_t i0 : {int64_t(0), n / 3}) {
      const std::string sz = " n=" + std::to_string(n) + " i0=" + std::to_string(i0);
      std::vector<float> y[2];
      both([&](int r) {
        y[r].assign(n, -7.0f);
        silu_range(y[r].data(), x.data(), i0, n);
      });
      expect_close("silu_range" + sz, y[1].data(), y[0].data(), n, 1e-5f, 1e-30f);
      both([&](int r) {
        y[r] = x;  // in place
        swiglu_range(y[r].data(), y[r].data(), up.data(), i0, n);
      });
      expect_close("swiglu_range" + sz, y[1].data(), y[0].data(), n, 1e-5f, 1e-30f);
      for (bool tanh_approx : {true, false}) {
        both([&](int r) {
          y[r].assign(n, -7.0f);
          gelu_range(y[r].data(), x.data(), tanh_approx, i0, n);
        });
        expect_close(std::string("gelu_range") + (tanh_approx ? " tanh" : " erf") + sz, y[1].data(), y[0].data(),
                     n, 1e-5f, 1e-30f);
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
  check_softmax();
  check_norms();
  check_activations();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
