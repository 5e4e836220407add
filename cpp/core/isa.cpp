#include "core/isa.h"

#include <atomic>
#include <cstdlib>

#include "core/check.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace ninestep {

static std::atomic<int> g_active{0};

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512, Isa::neon}) {
    if (name == isa_name(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

bool isa_compiled(Isa isa) {
  switch (isa) {
    case Isa::generic: return true;
#ifdef NINESTEP_HAVE_AVX2
    case Isa::avx2: return true;
#endif
#ifdef NINESTEP_HAVE_AVX512
    case Isa::avx512: return true;
#endif
#ifdef NINESTEP_HAVE_NEON
    case Isa::neon: return true;
#endif
    default: return false;
  }
}

#if defined(__x86_64__) || defined(_M_X64)
static unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif

bool isa_cpu_has(Isa isa) {
  if (isa == Isa::generic) return true;
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return false;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xE6) == 0xE6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx2 = b & (1u << 5);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));  // F DQ BW VL
  if (isa == Isa::avx2) return ymm_os && avx2 && fma && f16c;
  if (isa == Isa::avx512) return ymm_os && zmm_os && avx2 && fma && f16c && avx512;
  return false;
#elif defined(__aarch64__)
  return isa == Isa::neon;
#else
  return false;
#endif
}

std::vector<Isa> isa_supported() {
  std::vector<Isa> out;
  for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512, Isa::neon})
    if (isa_compiled(i) && isa_cpu_has(i)) out.push_back(i);
  return out;
}

Isa isa_best() { return isa_supported().back(); }

Isa active_isa() { return static_cast<Isa>(g_active.load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  NS_CHECK(isa_compiled(isa), std::string("ISA '") + isa_name(isa) + "' is not compiled into this build of ninestep");
  NS_CHECK(isa_cpu_has(isa), std::string("ISA '") + isa_name(isa) + "' is not supported by this CPU");
  g_active.store(static_cast<int>(isa));
}

void init_isa_from_env() {
  const char* env = std::getenv("NINESTEP_ISA");
  if (env && *env) {
    Isa isa;
    NS_CHECK(isa_from_name(env, &isa),
             std::string("NINESTEP_ISA='") + env + "' is not one of generic, avx2, avx512, neon");
    set_active_isa(isa);
  } else {
    set_active_isa(isa_best());
  }
}

}  // namespace ninestep
