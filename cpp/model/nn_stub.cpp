// TEMPORARY scalar stand-ins for kernels/nn.h until branch `nn` lands; deleted at that merge.
#include <cmath>

#include "kernels/nn.h"

namespace ninestep {

void rmsnorm_rows(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const float s = float(1.0 / std::sqrt(ss / n + eps));
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = x[r * n + i] * s * w[i];
  }
}

void rope_rows(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
               int64_t t1) {
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t h = 0; h < H; ++h) {
      float* v = x + (t * H + h) * D;
      for (int64_t i = 0; i < D / 2; ++i) {
        const double ang = pos[t] * std::pow(double(theta), -2.0 * i / D);
        const float cs = float(std::cos(ang)), sn = float(std::sin(ang));
        const int64_t a = style == RopeStyle::norm ? 2 * i : i, b = style == RopeStyle::norm ? 2 * i + 1 : i + D / 2;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs - x1 * sn;
        v[b] = x0 * sn + x1 * cs;
      }
    }
}

int64_t attention_items(int64_t T, int64_t Hq) { return Hq * ((T + kAttnTile - 1) / kAttnTile); }

void attention_range(float* out, const float* q, const float* k, const float* v, int64_t kv_stride, int64_t T,
                     int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, int64_t i0,
                     int64_t i1) {
  const int64_t tiles = (T + kAttnTile - 1) / kAttnTile;
  for (int64_t it = i0; it < i1; ++it) {
    const int64_t h = it / tiles, tile = it % tiles, kh = h / (Hq / Hkv);
    for (int64_t t = tile * kAttnTile; t < std::min(T, (tile + 1) * kAttnTile); ++t) {
      const float* qr = q + (t * Hq + h) * D;
      float* o = out + (t * Hq + h) * D;
      for (int64_t i = 0; i < D; ++i) o[i] = 0;
      float mx = -INFINITY, sum = 0;
      const int64_t ns = causal ? S - T + t + 1 : S;
      for (int64_t s = 0; s < ns; ++s) {
        const float* kr = k + s * kv_stride + kh * D;
        const float* vr = v + s * kv_stride + kh * D;
        float dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += qr[i] * kr[i];
        dot *= scale;
        const float nm = std::max(mx, dot), c = std::exp(mx - nm), p = std::exp(dot - nm);
        sum = sum * c + p;
        for (int64_t i = 0; i < D; ++i) o[i] = o[i] * c + p * vr[i];
        mx = nm;
      }
      for (int64_t i = 0; i < D; ++i) o[i] /= sum;
    }
  }
}

void swiglu_range(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace ninestep
