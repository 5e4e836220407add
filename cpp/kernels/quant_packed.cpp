// Packing GGUF rows into the panel layout (quant_packed.h); scalar, once per model load.
#include "kernels/quant_packed.h"

#include <cstring>

#include "core/check.h"
#include "core/dispatch.h"
#include "core/isa.h"
#include "kernels/quant_k.h"

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
    case DType::q4_k:
      return (8 * 128 + 160) / 8;  // per group: a super-block over its 8 groups
    case DType::q5_k:
      return (8 * 160 + 160) / 8;
    case DType::q6_k:
      return (8 * 192 + 144) / 8;
    default:
      return 0;
  }
}

bool packs_on_this_machine(DType t) {
#ifdef NINESTEP_HAVE_AVX2
  // Q8_0 / Q4_0 / Q4_1 have their own AVX-512 GEMM, which the packed AVX2 one has not been measured
  // against; the other types run the AVX2 panel there too.
  const bool own512 = t == DType::q8_0 || t == DType::q4_0 || t == DType::q4_1;
  if (!(active_isa() == Isa::avx2 || (active_isa() == Isa::avx512 && !own512))) return false;
  const int64_t stride = packed_stride_avx2(t);
  NS_CHECK(stride == packed_group_bytes(t), "pack: layout sizes disagree for " + std::string(dtype_info(t).name));
  return stride != 0;
#else
  (void)t;
  return false;
#endif
}

int64_t packed_bytes(DType t, int64_t n, int64_t k) {
  const int64_t gb = packed_group_bytes(t);
  NS_CHECK(gb != 0, std::string("pack: no packed layout for ") + dtype_info(t).name);
  NS_CHECK(n > 0 && k > 0 && k <= kPackMaxK, "pack: bad shape [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  dtype_row_bytes(t, k);  // k a whole number of the type's blocks
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  return checked_mul(checked_mul(cgs, k / QK, "pack"), gb, "pack");
}

namespace {

// Element e (0..31) of a Q4 block's nibbles.
inline int q4_nibble(const uint8_t* qs, int e) { return e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4; }

// Element e of group G's quads (Q bytes: n[4], then one plane per bit above the fourth) of row c
// takes the unsigned quant v: its low nibble in n[q % 4] (low half for quads 0..3), bit 4 + p in
// bit q of plane p (q = e / 4, the quad).
inline void put(uint8_t* Q, int c, int e, int v, int planes) {
  const int q = e / 4, byte = 4 * c + e % 4;
  Q[32 * (q % 4) + byte] |= static_cast<uint8_t>((v & 15) << (q < 4 ? 0 : 4));
  for (int p = 0; p < planes; ++p) Q[128 + 32 * p + byte] |= static_cast<uint8_t>(((v >> (4 + p)) & 1) << q);
}

// Row c (of 8) of the 32-element group G from its GGUF block.
void pack_group32(uint8_t* G, const uint8_t* block, DType t, int c) {
  if (t == DType::q8_0) {
    const BlockQ8_0& b = *reinterpret_cast<const BlockQ8_0*>(block);
    for (int e = 0; e < QK; ++e) G[32 * (e / 4) + 4 * c + e % 4] = static_cast<uint8_t>(b.qs[e]);
    std::memcpy(G + 256 + 2 * c, &b.d, 2);
    return;
  }
  // the fields before the nibbles: d (all), m (q4_1, q5_1), qh (q5_0, q5_1)
  const bool min = t == DType::q4_1 || t == DType::q5_1, fifth = t == DType::q5_0 || t == DType::q5_1;
  const int head = 2 + (min ? 2 : 0) + (fifth ? 4 : 0), quad_bytes = fifth ? 160 : 128;
  uint32_t qh = 0;
  if (fifth) std::memcpy(&qh, block + head - 4, 4);
  for (int e = 0; e < QK; ++e) put(G, c, e, q4_nibble(block + head, e) | (int)(((qh >> e) & 1u) << 4), fifth);
  std::memcpy(G + quad_bytes + 2 * c, block, 2);                    // d
  if (min) std::memcpy(G + quad_bytes + 16 + 2 * c, block + 2, 2);  // m
}

// Row c of the K-quant super-block S (8 groups' quads, then the trailer) from its GGUF block.
void pack_super(uint8_t* S, const uint8_t* block, DType t, int c) {
  if (t == DType::q6_k) {
    const BlockQ6K& b = *reinterpret_cast<const BlockQ6K*>(block);
    for (int e = 0; e < QK_K; ++e) put(S + 192 * (e / 32), c, e % 32, k_q6(b, e), 2);
    uint8_t* tr = S + 8 * 192;
    for (int h = 0; h < 16; ++h) tr[8 * h + c] = static_cast<uint8_t>(b.scales[h]);  // [half][row]
    std::memcpy(tr + 128 + 2 * c, &b.d, 2);
    return;
  }
  const bool q5 = t == DType::q5_k;
  const int quad_bytes = q5 ? 160 : 128;
  const BlockQ4K* b4 = reinterpret_cast<const BlockQ4K*>(block);
  const BlockQ5K* b5 = reinterpret_cast<const BlockQ5K*>(block);
  for (int e = 0; e < QK_K; ++e) put(S + quad_bytes * (e / 32), c, e % 32, q5 ? k_q5(*b5, e) : k_nibble(b4->qs, e), q5);
  uint8_t* tr = S + 8 * quad_bytes;
  for (int s = 0; s < 8; ++s) k_scale_min(s, q5 ? b5->scales : b4->scales, &tr[8 * s + c], &tr[64 + 8 * s + c]);
  std::memcpy(tr + 128 + 2 * c, block, 2);      // d (the first field of both blocks)
  std::memcpy(tr + 144 + 2 * c, block + 2, 2);  // dmin
}

}  // namespace

void pack_weights(void* dst, const void* src, DType t, int64_t n, int64_t k) {
  const int64_t total = packed_bytes(t, n, k), gb = packed_group_bytes(t);
  const bool kq = t == DType::q4_k || t == DType::q5_k || t == DType::q6_k;
  const int64_t ng = k / QK, rb = dtype_row_bytes(t, k), per = kq ? 8 : 1;  // groups per GGUF block
  const int64_t blocks = ng / per, bb = rb / blocks;
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  uint8_t* d = static_cast<uint8_t*>(dst);
  const uint8_t* s = static_cast<const uint8_t*>(src);
  std::memset(d, 0, (size_t)total);  // padding rows: zero quants and scales
#pragma omp parallel for schedule(static)
  for (int64_t cg = 0; cg < cgs; ++cg)
    for (int c = 0; c < kPackRows && cg * kPackRows + c < n; ++c) {
      const uint8_t* row = s + (cg * kPackRows + c) * rb;
      for (int64_t b = 0; b < blocks; ++b) {
        uint8_t* out = d + (cg * ng + b * per) * gb;
        if (kq)
          pack_super(out, row + b * bb, t, c);
        else
          pack_group32(out, row + b * bb, t, c);
      }
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
