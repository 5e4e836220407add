// ISA, threads and the weight-type table.
#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "core/dtype.h"
#include "core/isa.h"
#include "core/threads.h"
#include "core/tuner.h"
#include "kernels/traits.h"

namespace ninestep {

NS_BIND(core) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &num_threads);
  m.def("default_num_threads", &default_num_threads);
  // The engine's decode thread-count chooser on its own, so its decisions can be tested on made-up times.
  py::class_<ThreadTuner>(m, "ThreadTuner")
      .def(py::init([](const std::string& mode) {
             NS_CHECK(mode == "on" || mode == "off" || mode == "cycle",
                      "mode: '" + mode + "' is not one of on, off, cycle");
             return ThreadTuner(mode == "on" ? ThreadTuner::Mode::on
                                             : mode == "off" ? ThreadTuner::Mode::off : ThreadTuner::Mode::cycle);
           }),
           py::arg("mode") = "on")
      .def("choose", [](ThreadTuner& t, int nmax) {
        NS_CHECK(nmax >= 1, "nmax must be >= 1, got " + std::to_string(nmax));
        return t.choose(nmax);
      }, py::arg("nmax"))
      .def("record", [](ThreadTuner& t, int n, double seconds, double waited) {
        NS_CHECK(n >= 1, "n must be >= 1, got " + std::to_string(n));
        NS_CHECK(seconds >= 0 && waited >= 0, "seconds and waited must be >= 0");
        t.record(n, seconds, waited);
      }, py::arg("n"), py::arg("seconds"), py::arg("waited") = 0.0)
      .def_property_readonly("current", &ThreadTuner::current);
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) {
    Isa isa;
    NS_CHECK(isa_from_name(name, &isa), "isa: '" + name + "' is not one of generic, avx2, avx512, neon");
    set_active_isa(isa);
  }, py::arg("name"));
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa i : isa_supported()) out.push_back(isa_name(i));
    return out;
  });
  m.def("compiled_isas", [] {
    std::vector<std::string> out;
    for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512, Isa::neon})
      if (isa_compiled(i)) out.push_back(isa_name(i));
    return out;
  });
  m.def("dtype_table", [] {
    py::dict d;
    for (int i = 0; i < kNumDTypes; ++i) {
      const DTypeInfo& info = dtype_info(static_cast<DType>(i));
      d[info.name] = py::make_tuple(info.block_elems, info.block_bytes, info.quantized);
    }
    return d;
  }, "name -> (elements per block, bytes per block, quantized)");
  m.def("type_kernels", [] {
    py::dict d;
    for (int i = 0; i < kNumDTypes; ++i) {
      const TypeTraits& t = type_traits(static_cast<DType>(i));
      const ActTraits& a = act_traits(t.act);
      py::dict row;
      row["activations"] = a.name;
      row["matmul"] = t.gemm.generic != nullptr && (t.act == ActFormat::f32 || a.from_float.generic != nullptr);
      row["quantize"] = t.quantize_row != nullptr;
      row["dequantize"] = t.dequantize_row != nullptr;
      d[dtype_info(t.type).name] = row;
    }
    return d;
  }, "name -> which kernels the trait table has for that weight type");
}

}  // namespace ninestep
