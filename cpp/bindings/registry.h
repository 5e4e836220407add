// Each bind_<area>.cpp registers itself with NS_BIND(area) { ... } so that adding an area
// never touches module.cpp.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

namespace ninestep {

using BindFn = void (*)(pybind11::module_&);
inline std::vector<BindFn>& binders() {
  static std::vector<BindFn> list;
  return list;
}
struct BindRegistrar {
  explicit BindRegistrar(BindFn f) { binders().push_back(f); }
};

}  // namespace ninestep

#define NS_BIND(area)                                                         \
  static void ns_bind_##area(pybind11::module_& m);                           \
  static ::ninestep::BindRegistrar ns_bind_registrar_##area(&ns_bind_##area); \
  static void ns_bind_##area(pybind11::module_& m)
