// NEON K-quant kernels (Q4_K, Q5_K, Q6_K GEMM against 32-element activation blocks; Q8_K activations) against the scalar reference,
// through the trait table with the active ISA set to generic and then neon. Standalone: built for
// aarch64 and run under qemu by run_neon_check.sh.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/isa.h"
#include "kernels/quant_k.h"
#include "kernels/traits.h"

using namespace ninestep;

namespace {

int g_passed = 0, g_failed = 0;
std::mt19937 g_rng(4321);

std::vector<float> randn(int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(g_rng);
  return v;
}

void record(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// Activation rows of format f at one ISA.
std::vector<uint8_t> act_rows(Isa isa, ActFormat f, const std::vector<float>& x, int64_t m, int64_t k) {
  set_active_isa(isa);
  const ActTraits& a = act_traits(f);
  const int64_t rb = act_row_bytes(f, k);
  std::vector<uint8_t> out(m * rb);
  for (int64_t i = 0; i < m; ++i) a.from_float.get()(out.data() + i * rb, x.data() + i * k, k);
  return out;
}

void check_activations() {
  for (int64_t k : {256, 768, 4864}) {
    std::vector<float> x = randn(3 * k, 2.0f);
    for (int64_t i = 0; i < 256; ++i) x[k + i] = 0.0f;  // an all-zero block
    x[2 * k + 7] = -9.0f, x[2 * k + 100] = 9.0f;         // equal magnitudes: the first sets the sign
    const std::vector<uint8_t> g = act_rows(Isa::generic, ActFormat::q8_k, x, 3, k), n = act_rows(Isa::neon, ActFormat::q8_k, x, 3, k);
    record(g == n, "q8_k activations k=" + std::to_string(k));
  }
}

void check_gemm(DType t) {
  const char* tn = dtype_info(t).name;
  const TypeTraits& tt = type_traits(t);
  for (int64_t k : {256, 1024, 4864}) {
    for (int64_t m : {1, 2, 5, 33}) {
      for (int64_t n : {1, 5, 13, 37}) {
        const std::vector<float> wf = randn(n * k), x = randn(m * k);
        std::vector<uint8_t> w(n * dtype_row_bytes(t, k));
        quantize_rows(w.data(), wf.data(), t, n, k);
        // random scale bytes in one row: damaged blocks must not crash or differ between ISAs
        if (n > 2)
          for (int64_t o = 0; o < 16; ++o) w[dtype_row_bytes(t, k) + 4 + o] = (uint8_t)g_rng();
        // |x| . |W[j]| per output: the float rounding scale (the ISAs sum the same integers in another order)
        std::vector<float> wd(n * k);
        dequantize_rows(wd.data(), w.data(), t, n, k);
        std::vector<double> mag(m * n, 0.0);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t c = 0; c < k; ++c) mag[i * n + j] += std::fabs((double)x[i * k + c] * wd[j * k + c]);
        std::vector<float> y[2];
        for (int r = 0; r < 2; ++r) {
          const Isa isa = r ? Isa::neon : Isa::generic;
          const std::vector<uint8_t> a = act_rows(isa, tt.act, x, m, k);
          y[r].assign(m * n, 0.0f);
          set_active_isa(isa);
          tt.gemm.get()(y[r].data(), n, a.data(), w.data(), m, k, 0, n);
        }
        bool ok = true;
        for (int64_t i = 0; i < m * n && ok; ++i) {
          const bool same = y[0][i] == y[1][i] || (std::isnan(y[0][i]) && std::isnan(y[1][i]));
          const double tol = 1e-4 + 1e-5 * mag[i];  // inf / NaN from damaged scales: any value
          if (!same && std::isfinite(tol) && !(std::fabs((double)y[1][i] - y[0][i]) <= tol)) {
            std::printf("  [%lld] neon %.9g generic %.9g\n", (long long)i, y[1][i], y[0][i]);
            ok = false;
          }
        }
        record(ok, std::string("gemm ") + tn + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
                       " n=" + std::to_string(n));
      }
    }
  }
}

}  // namespace

int main() {
  check_activations();
  for (DType t : {DType::q4_k, DType::q5_k, DType::q6_k}) check_gemm(t);
  std::printf("neon_check_k: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
