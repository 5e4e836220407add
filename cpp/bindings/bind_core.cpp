// ISA, threads and the weight-type table.
#include <omp.h>
#include <pybind11/stl.h>

#include <thread>

#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "core/dtype.h"
#include "core/isa.h"
#include "core/threads.h"
#include "core/tuner.h"
#include "core/work.h"
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
  // The engine's work split on its own: `threads` threads walk phases of sizes[p] units (chunk
  // boundaries at multiples of align) and count how often each unit was handed out; a thread
  // yields its core after every `yield_every`-th chunk it takes (0: never), so that descheduled
  // threads and stolen ranges happen. Returns the counts per phase (all 1 when the split is right).
  m.def(
      "work_split_counts",
      [](const std::vector<int64_t>& sizes, int threads, int64_t align, int yield_every, const std::string& split) {
        NS_CHECK(threads >= 1 && threads <= 256, "threads must be in [1, 256]");
        NS_CHECK(align >= 1 && yield_every >= 0, "align must be >= 1 and yield_every >= 0");
        NS_CHECK(split == "dynamic" || split == "static", "split: '" + split + "' is not dynamic or static");
        std::vector<std::vector<int>> counts(sizes.size());
        for (size_t p = 0; p < sizes.size(); ++p) {
          NS_CHECK(sizes[p] >= 0 && sizes[p] <= (int64_t(1) << 24), "sizes must be in [0, 2^24]");
          counts[p].assign(size_t(sizes[p]), 0);
        }
        WorkQueue q;
        py::gil_scoped_release nogil;
#pragma omp parallel num_threads(threads)
        {
          WorkCursor w(q, omp_get_num_threads(), omp_get_thread_num(),
                       split == "static" ? WorkSplit::stat : WorkSplit::dynamic);
          int64_t taken = 0;
          for (size_t p = 0; p < sizes.size(); ++p) {
            int64_t b, e;
            for (w.begin(sizes[p], align); w.next(&b, &e);) {
              for (int64_t u = b; u < e; ++u) __atomic_fetch_add(&counts[p][size_t(u)], 1, __ATOMIC_RELAXED);
              if (yield_every && ++taken % yield_every == 0) std::this_thread::yield();
            }
            w.finish();
          }
        }
        return counts;
      },
      py::arg("sizes"), py::arg("threads"), py::arg("align") = 1, py::arg("yield_every") = 0,
      py::arg("split") = "dynamic");
}

}  // namespace ninestep
