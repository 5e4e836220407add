// Instruction-set detection and the active ISA that kernels dispatch on.
#pragma once
#include <string>
#include <vector>

namespace ninestep {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2, neon = 3 };

const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_compiled(Isa isa);   // a kernel variant for it is in this build
bool isa_cpu_has(Isa isa);    // the CPU (and OS) can run it
std::vector<Isa> isa_supported();  // compiled and runnable, generic first
Isa isa_best();

Isa active_isa();
// Throws ArgError if the ISA is not compiled in or the CPU lacks it.
void set_active_isa(Isa isa);
// Reads NINESTEP_ISA (if set) and selects it, else the best supported ISA. Throws on a bad value.
void init_isa_from_env();

}  // namespace ninestep
