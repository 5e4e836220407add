#include "model/arch.h"

#include <sstream>

#include "core/check.h"

namespace ninestep {

static std::vector<Arch>& registry() {
  static std::vector<Arch> list;
  return list;
}

ArchRegistrar::ArchRegistrar(const Arch& a) { registry().push_back(a); }

std::vector<std::string> arch_names() {
  std::vector<std::string> out;
  for (const Arch& a : registry()) {
    std::istringstream in(a.names);
    for (std::string n; in >> n;) out.push_back(n);
  }
  return out;
}

const Arch* find_arch(const std::string& name) {
  for (const Arch& a : registry()) {
    std::istringstream in(a.names);
    for (std::string n; in >> n;)
      if (n == name) return &a;
  }
  std::string known;
  for (const std::string& n : arch_names()) known += (known.empty() ? "" : ", ") + n;
  fail("architecture '" + name + "' is not supported (supported: " + known + ")");
}

}  // namespace ninestep
