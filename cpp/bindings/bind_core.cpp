// ISA, threads and the weight-type table.
#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "core/dtype.h"
#include "core/isa.h"
#include "core/threads.h"
#include "kernels/traits.h"

namespace ninestep {

NS_BIND(core) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &num_threads);
  m.def("default_num_threads", &default_num_threads);
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
