// The walk over decode-shaped attention items (see attention_decode.cpp) shared by the ISA kernels
// (attention_decode_avx2.cpp, attention_decode_avx512.cpp): item (g, j) is KV head g's key block
// j of n_split; its T * group queries go in passes of up to Rows, each pass one call
//   attend[nq](st, qr, last, kh, vh, row_bytes, lo, hi, D, scale)
// with st[i] [D + 2] the query's softmax state in part, qr[i] [D] the query, last[i] the last key
// it sees, kh / vh the head's first K / V row (rows row_bytes apart) and the block's keys [lo, hi).
//
// Everything here has internal linkage (an unnamed namespace), so each ISA file keeps its own copy.
// With external linkage decode_split_range<4, Keys> had the same mangled name in both files (GCC
// mangles each file's unnamed namespace alike, and gave instantiations over its Keys templates weak
// external symbols): the linker kept one, and the AVX-512 entry ran the AVX2 kernels.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>

#include "core/dtype.h"
#include "core/threads.h"
#include "kernels/attention_scalar.h"

namespace ninestep {
namespace {

// How far ahead (in keys) the decode kernels ask for K / V rows as they walk a block, and how many
// of the next item's first rows the walk below asks for before an item starts.
constexpr int64_t kDecodePrefetchKeys = 32;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The pieces of a pass (attend[nq] below) that do not depend on the ISA.
// Its start: each query's state zeroed, running max -inf and sum 0; returns the end of the keys
// any of the NQ queries sees in [lo, hi).
template <int NQ>
int64_t start_pass(float* const* st, float* m, float* l, const int64_t* last, int64_t lo, int64_t hi, int64_t D) {
  int64_t hi_all = lo;
  for (int i = 0; i < NQ; ++i) {
    std::fill(st[i], st[i] + D, 0.0f);
    m[i] = kNegInf, l[i] = 0.0f;
    hi_all = std::max(hi_all, std::min(hi, last[i] + 1));
  }
  return hi_all;
}
// Its end: each query's running max and sum after its D outputs.
template <int NQ>
void end_pass(float* const* st, const float* m, const float* l, int64_t D) {
  for (int i = 0; i < NQ; ++i) st[i][D] = m[i], st[i][D + 1] = l[i];
}
// The K / V rows (head_bytes each) of the n keys kDecodePrefetchKeys past key b0, when they are
// before hi_all. The hardware prefetcher does not follow strided rows ([S, Hkv, D] arrays of
// ops.attention) and starts late on the head-major cache's contiguous ones: SmolLM2 at depth 4096,
// f16, decoded 47-52 tok/s without this, 54-61 with it (16-64 keys ahead did alike; per key inside
// the score passes was slower).
inline void prefetch_keys_ahead(const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t head_bytes,
                                int64_t b0, int64_t n, int64_t hi_all) {
  if (b0 + kDecodePrefetchKeys + n > hi_all) return;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t ahead = (b0 + kDecodePrefetchKeys + j) * row_bytes;
    for (int64_t b = 0; b < head_bytes; b += 64) {
      __builtin_prefetch(kg + ahead + b, 0, 3);
      __builtin_prefetch(vg + ahead + b, 0, 3);
    }
  }
}
// kr[jj]: the K row of key b0 + jj; keys from hi_all on repeat the last one (their scores are masked).
template <int KJ>
void key_rows(const uint8_t** kr, const uint8_t* kg, int64_t row_bytes, int64_t b0, int64_t hi_all) {
  for (int jj = 0; jj < KJ; ++jj) kr[jj] = kg + std::min<int64_t>(b0 + jj, hi_all - 1) * row_bytes;
}

using DecodeAttendFn = void (*)(float* const* st, const float* const* qr, const int64_t* last, const uint8_t* kh,
                                const uint8_t* vh, int64_t row_bytes, int64_t lo, int64_t hi, int64_t D, float scale);

// attend: [Rows + 1] kernels by the pass's query count (attend[0] unused).
template <int Rows, DType KT>
void for_decode_items(const DecodeAttendFn* attend, float* part, const float* q, const uint8_t* k, const uint8_t* v,
                      int64_t row_bytes, int64_t hs, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                      float scale, bool causal, int64_t n_split, int64_t i0, int64_t i1) {
  // query i of KV head g: token i / group, head g * group + i % group
  const int64_t group = Hq / Hkv, rows = T * group;
  const DTypeInfo& info = dtype_info(KT);
  const int64_t head_bytes = D / info.block_elems * info.block_bytes;
  auto head = [&](const uint8_t* c, int64_t g) {  // heads start on a block
    return c + g * hs / info.block_elems * info.block_bytes;
  };
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t g = item / n_split;
    int64_t lo, hi;
    split_range(S, int(n_split), int(item % n_split), &lo, &hi, 16);
    if (item + 1 < i1) {  // the next item's first rows, which its own walk never asks for ahead
      int64_t lo2, hi2;
      split_range(S, int(n_split), int((item + 1) % n_split), &lo2, &hi2, 16);
      const uint8_t* k2 = head(k, (item + 1) / n_split) + lo2 * row_bytes;
      const uint8_t* v2 = head(v, (item + 1) / n_split) + lo2 * row_bytes;
      const int64_t n2 = std::min<int64_t>(kDecodePrefetchKeys, hi2 - lo2);
      for (int64_t r = 0; r < n2; ++r)
        for (int64_t b = 0; b < head_bytes; b += 64) {
          __builtin_prefetch(k2 + r * row_bytes + b, 0, 3);
          __builtin_prefetch(v2 + r * row_bytes + b, 0, 3);
        }
    }
    for (int64_t i0r = 0; i0r < rows; i0r += Rows) {
      const int nq = int(std::min<int64_t>(Rows, rows - i0r));
      float* st[Rows];
      const float* qr[Rows];
      int64_t last[Rows];
      for (int i = 0; i < nq; ++i) {
        const int64_t t = (i0r + i) / group, h = g * group + (i0r + i) % group;
        st[i] = part + (item * rows + i0r + i) * (D + 2);
        qr[i] = q + (t * Hq + h) * D;
        last[i] = causal ? S - T + t : S - 1;
      }
      attend[nq](st, qr, last, head(k, g), head(v, g), row_bytes, lo, hi, D, scale);
    }
  }
}

template <DType KT, template <DType, int> class Keys, size_t... N>
constexpr std::array<DecodeAttendFn, sizeof...(N) + 1> decode_kernels(std::index_sequence<N...>) {
  return {nullptr, Keys<KT, int(N) + 1>::run...};
}

// attention_split_range's contract (nn.h) with an ISA's kernels: Keys<KT, nq>::run attends a pass of
// nq <= Rows queries over a cache of type KT.
template <int Rows, template <DType, int> class Keys>
void decode_split_range(float* part, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                        int64_t hs, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                        bool causal, int64_t n_split, int64_t i0, int64_t i1) {
  const int64_t rb = dtype_row_bytes(kv_type, kv_stride);
  with_kv_type(kv_type, [&](auto kt) {
    constexpr DType KT = decltype(kt)::value;
    static constexpr auto kAttend = decode_kernels<KT, Keys>(std::make_index_sequence<Rows>{});
    for_decode_items<Rows, KT>(kAttend.data(), part, q, static_cast<const uint8_t*>(k), static_cast<const uint8_t*>(v),
                               rb, hs, T, S, Hq, Hkv, D, scale, causal, n_split, i0, i1);
  });
}

}  // namespace
}  // namespace ninestep
