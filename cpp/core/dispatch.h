// Picks a kernel variant for the active ISA. An op lists its variants once:
//
//   static const Dispatch<SoftmaxFn> kSoftmax{softmax_generic, NS_AVX2(softmax_avx2),
//                                              NS_AVX512(softmax_avx512), NS_NEON(softmax_neon)};
//   kSoftmax.get()(y, x, n);
//
// A missing variant (nullptr) falls back to the next lower x86 tier, then to generic.
#pragma once
#include "core/isa.h"

#ifdef NINESTEP_HAVE_AVX2
#define NS_AVX2(fn) fn
#else
#define NS_AVX2(fn) nullptr
#endif
#ifdef NINESTEP_HAVE_AVX512
#define NS_AVX512(fn) fn
#else
#define NS_AVX512(fn) nullptr
#endif
#ifdef NINESTEP_HAVE_NEON
#define NS_NEON(fn) fn
#else
#define NS_NEON(fn) nullptr
#endif

namespace ninestep {

template <class Fn>
struct Dispatch {
  Fn generic;
  Fn avx2 = nullptr;
  Fn avx512 = nullptr;
  Fn neon = nullptr;

  Fn get() const { return for_isa(active_isa()); }
  Fn for_isa(Isa isa) const {
    switch (isa) {
      case Isa::avx512:
        if (avx512) return avx512;
        [[fallthrough]];
      case Isa::avx2:
        if (avx2) return avx2;
        return generic;
      case Isa::neon:
        return neon ? neon : generic;
      default:
        return generic;
    }
  }
};

}  // namespace ninestep
