// The ninestep._core extension module. Each area binds itself in bind_<area>.cpp.
#include <pybind11/pybind11.h>

#include "bindings/registry.h"
#include "core/check.h"
#include "core/isa.h"

namespace py = pybind11;

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
  for (ninestep::BindFn bind : ninestep::binders()) bind(m);
}
