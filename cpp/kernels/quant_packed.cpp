// Packing GGUF rows into the panel layout (quant_packed.h); scalar, once per model load.
#include "kernels/quant_packed.h"

#include <cstring>

#include "core/check.h"
#include "core/dispatch.h"
#include "core/isa.h"

namespace ninestep {

int64_t packed_group_bytes(DType t) {
  switch (t) {
    case DType::q8_0:
      return 8 * 32 + 16;
    case DType::q4_0:
      return 4 * 32 + 16;
    case DType::q4_1:
      return 4 * 32 + 32;
    case DType::q5_0:
      return 5 * 32 + 16;
    case DType::q5_1:
      return 5 * 32 + 32;
    default:
      return 0;
  }
}

bool packs_on_this_machine(DType t) {
#ifdef NINESTEP_HAVE_AVX2
  // Q8_0 / Q4_0 / Q4_1 have their own AVX-512 GEMM, which the packed AVX2 one has not been measured
  // against; Q5_0 / Q5_1 run the AVX2 panel there too.
  const bool own512 = t == DType::q8_0 || t == DType::q4_0 || t == DType::q4_1;
  return packed_group_bytes(t) != 0 && (active_isa() == Isa::avx2 || (active_isa() == Isa::avx512 && !own512));
#else
  (void)t;
  return false;
#endif
}

int64_t packed_bytes(DType t, int64_t n, int64_t k) {
  const int64_t gb = packed_group_bytes(t);
  NS_CHECK(gb != 0, std::string("pack: no packed layout for ") + dtype_info(t).name);
  NS_CHECK(n > 0 && k > 0 && k % QK == 0, "pack: bad shape [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  return checked_mul(checked_mul(cgs, k / QK, "pack"), gb, "pack");
}

namespace {

// Element e (0..31) of a Q4 block's nibbles.
inline uint8_t nibble(const uint8_t* qs, int e) { return e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4; }

// Group g of row c (of 8) into G.
void pack_group(uint8_t* G, const uint8_t* block, DType t, int c) {
  const int lane = 4 * c;
  switch (t) {
    case DType::q8_0: {
      const BlockQ8_0& b = *reinterpret_cast<const BlockQ8_0*>(block);
      for (int e = 0; e < QK; ++e) G[32 * (e / 4) + lane + e % 4] = static_cast<uint8_t>(b.qs[e]);
      std::memcpy(G + 256 + 2 * c, &b.d, 2);
      break;
    }
    case DType::q4_0:
    case DType::q4_1:
    case DType::q5_0:
    case DType::q5_1: {
      // the fields before the nibbles: d (all), m (q4_1, q5_1), qh (q5_0, q5_1)
      const bool min = t == DType::q4_1 || t == DType::q5_1, fifth = t == DType::q5_0 || t == DType::q5_1;
      const int head = 2 + (min ? 2 : 0) + (fifth ? 4 : 0), quad_bytes = fifth ? 160 : 128;
      const uint8_t* qs = block + head;
      uint32_t qh = 0;
      if (fifth) std::memcpy(&qh, block + head - 4, 4);
      for (int e = 0; e < QK; ++e) {
        const int q = e / 4;  // quad 0..7: nibble half q / 4 of n[q % 4]; bit q of h
        G[32 * (q % 4) + lane + e % 4] |= static_cast<uint8_t>(nibble(qs, e) << (q < 4 ? 0 : 4));
        if (fifth) G[128 + lane + e % 4] |= static_cast<uint8_t>(((qh >> e) & 1u) << q);
      }
      std::memcpy(G + quad_bytes + 2 * c, block, 2);                    // d
      if (min) std::memcpy(G + quad_bytes + 16 + 2 * c, block + 2, 2);  // m
      break;
    }
    default:
      NS_CHECK(false, std::string("pack: no packed layout for ") + dtype_info(t).name);
  }
}

}  // namespace

void pack_weights(void* dst, const void* src, DType t, int64_t n, int64_t k) {
  const int64_t total = packed_bytes(t, n, k), gb = packed_group_bytes(t);
  const int64_t ng = k / QK, rb = dtype_row_bytes(t, k), bb = rb / ng;
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  uint8_t* d = static_cast<uint8_t*>(dst);
  const uint8_t* s = static_cast<const uint8_t*>(src);
  std::memset(d, 0, (size_t)total);  // padding rows: zero quants and scales
#pragma omp parallel for schedule(static)
  for (int64_t cg = 0; cg < cgs; ++cg)
    for (int c = 0; c < kPackRows && cg * kPackRows + c < n; ++c) {
      const uint8_t* row = s + (cg * kPackRows + c) * rb;
      for (int64_t g = 0; g < ng; ++g) pack_group(d + (cg * ng + g) * gb, row + g * bb, t, c);
    }
}

using PackedGemmFn = bool (*)(float*, int64_t, const BlockQ8Act*, const void*, DType, int64_t, int64_t, int64_t,
                              int64_t);

bool qgemm_packed(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                  int64_t n0, int64_t n1) {
  static const Dispatch<PackedGemmFn> kGemm{nullptr, NS_AVX2(qgemm_packed_avx2)};
  const PackedGemmFn f = kGemm.get();
  return f != nullptr && packs_on_this_machine(t) && f(y, ldy, act, packed, t, m, k, n0, n1);
}

}  // namespace ninestep
