// Packing GGUF rows into the packed layout (quant_packed.h), once per model load: the quads by the
// panel's SIMD unpack (quant_panel_avx2.cpp), the K-quant trailers here.
#include "kernels/quant_packed.h"

#include <cstring>

#include "core/check.h"
#include "core/isa.h"
#include "kernels/quant_k.h"

namespace ninestep {

// The packed type's byte layout, from its kernel's own types (none without AVX2).
static PackedLayout layout(DType t) {
#ifdef NINESTEP_HAVE_AVX2
  return packed_layout_avx2(t);
#else
  (void)t;
  return PackedLayout{};
#endif
}

bool vnni_active() {
#ifdef NINESTEP_HAVE_AVX512VNNI
  static const bool cpu = __builtin_cpu_supports("avx512vnni");
  return cpu && active_isa() == Isa::avx512;
#else
  return false;
#endif
}

bool packs_on_this_machine(DType t) {
  const Isa isa = active_isa();
  return (isa == Isa::avx2 || isa == Isa::avx512) && layout(t).group_bytes != 0;
}

bool packs_matrix(DType t, int64_t k) { return k <= kPackMaxK && packs_on_this_machine(t); }

int64_t packed_bytes(DType t, int64_t n, int64_t k) {
  const int64_t gb = layout(t).group_bytes;
  NS_CHECK(gb != 0, std::string("pack: no packed layout for ") + dtype_info(t).name);
  NS_CHECK(n > 0 && k > 0 && k <= kPackMaxK, "pack: bad shape [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  dtype_row_bytes(t, k);  // k a whole number of the type's blocks
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  return checked_mul(checked_mul(cgs, k / QK, "pack"), gb, "pack");
}

namespace {

// Row c's part of a K-quant super-block's trailer tr (after its 8 groups' quads) from its GGUF
// block: Q4_K / Q5_K sc[8 groups][8 rows], mn[8][8], d[8], dmin[8]; Q6_K scales[16 halves][8 rows], d[8].
void pack_trailer(uint8_t* tr, const uint8_t* block, DType t, int c) {
  if (t == DType::q6_k) {
    const BlockQ6K& b = *reinterpret_cast<const BlockQ6K*>(block);
    for (int h = 0; h < 16; ++h) tr[8 * h + c] = static_cast<uint8_t>(b.scales[h]);
    std::memcpy(tr + 128 + 2 * c, &b.d, 2);
    return;
  }
  const uint8_t* scales = t == DType::q5_k ? reinterpret_cast<const BlockQ5K*>(block)->scales
                                           : reinterpret_cast<const BlockQ4K*>(block)->scales;
  for (int s = 0; s < 8; ++s) k_scale_min(s, scales, &tr[8 * s + c], &tr[64 + 8 * s + c]);
  std::memcpy(tr + 128 + 2 * c, block, 2);      // d (the first field of both blocks)
  std::memcpy(tr + 144 + 2 * c, block + 2, 2);  // dmin
}

}  // namespace

void pack_weights(void* dst, const void* src, DType t, int64_t n, int64_t k) {
  NS_CHECK(packs_on_this_machine(t), std::string("pack: no packed kernel for ") + dtype_info(t).name + " here");
  const PackedLayout lay = layout(t);
  const int64_t total = packed_bytes(t, n, k), ng = k / QK, rb = dtype_row_bytes(t, k);
  const int64_t supers = lay.super_bytes ? ng / 8 : 0, sb = supers ? rb / supers : 0;  // K-quant blocks per row, bytes
  const int64_t cgs = (n + kPackRows - 1) / kPackRows;
  uint8_t* d = static_cast<uint8_t*>(dst);
  const uint8_t* s = static_cast<const uint8_t*>(src);
  std::memset(d, 0, (size_t)total);  // the K-quant trailers' padding rows: zero
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok)
  for (int64_t cg = 0; cg < cgs; ++cg) {
    const int nc = (int)(n - cg * kPackRows < kPackRows ? n - cg * kPackRows : kPackRows);
    uint8_t* out = d + cg * ng * lay.group_bytes;
    const uint8_t* rows = s + cg * kPackRows * rb;
#ifdef NINESTEP_HAVE_AVX2
    ok = ok && pack_panel_avx2(out, rows, t, rb, nc, ng, lay);
#else
    ok = false;
#endif
    for (int c = 0; c < nc; ++c)
      for (int64_t b = 0; b < supers; ++b)
        pack_trailer(out + b * lay.super_bytes + 8 * lay.quad_bytes, rows + c * rb + b * sb, t, c);
  }
  NS_CHECK(ok, std::string("pack: the packing kernel refused ") + dtype_info(t).name);
}

bool packed_gemv_here(DType t) {
  if (active_isa() != Isa::avx2 && !vnni_active()) return false;
  switch (t) {
    case DType::q4_0:
    case DType::q4_1:
    case DType::q5_0:
    case DType::q5_1:
    case DType::q4_k:
    case DType::q5_k:
    case DType::q6_k:
      return packs_on_this_machine(t);
    default:
      return false;
  }
}

bool qgemm_packed(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                  int64_t n0, int64_t n1) {
#ifdef NINESTEP_HAVE_AVX2
  if (!packs_on_this_machine(t)) return false;
#ifdef NINESTEP_HAVE_AVX512VNNI
  if (vnni_active()) return qgemm_packed_vnni(y, ldy, act, packed, t, m, k, n0, n1);
#endif
  return qgemm_packed_avx2(y, ldy, act, packed, t, m, k, n0, n1);
#else
  return false;
#endif
}

}  // namespace ninestep
