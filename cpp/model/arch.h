// The architecture registry: each cpp/model/<arch>.cpp registers its loader (which tensors, which
// per-layer settings) and its forward pass (block steps from model/step.h) under one or more
// GGUF `general.architecture` names:
//
//   NS_ARCH(llama, "llama qwen2 mistral", load_llama, forward_llama);
#pragma once
#include <string>
#include <vector>

namespace ninestep {

struct Weights;
class TensorSet;
class Step;

struct Arch {
  std::string names;                          // space-separated names it runs
  void (*load)(Weights& w, TensorSet& ts);    // fills w.embd, w.layers, w.out_norm, w.lm_head
  void (*forward)(Step& s);                   // one step of the batch, inside the parallel region
};

// The architecture that runs `name`; fails naming it and listing the registered ones.
const Arch* find_arch(const std::string& name);
std::vector<std::string> arch_names();

struct ArchRegistrar {
  explicit ArchRegistrar(const Arch& a);
};

}  // namespace ninestep

#define NS_ARCH(id, names, load, forward) \
  static ::ninestep::ArchRegistrar ns_arch_registrar_##id(::ninestep::Arch{names, load, forward})
