// The ninestep._core extension module. Each area binds itself in bind_<area>.cpp.
#include <pybind11/pybind11.h>

#include "core/check.h"
#include "core/isa.h"

namespace py = pybind11;

namespace ninestep {
void bind_core(py::module_& m);
}  // namespace ninestep

PYBIND11_MODULE(_core, m) {
  m.doc() = "ninestep C++ core: SIMD kernels and the decoder forward pass";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ninestep::ArgError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  ninestep::init_isa_from_env();
  ninestep::bind_core(m);
}
