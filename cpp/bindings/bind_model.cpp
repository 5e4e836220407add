// Weights and Engine: the config dict (fields from model/config.h's schema) and the tensor dict
// become C++ views (checked in Weights::build); step runs with the GIL released.
#include <new>
#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "bindings/model_args.h"
#include "bindings/registry.h"
#include "model/arch.h"
#include "kernels/nn.h"
#include "model/engine.h"

namespace ninestep {

namespace {

// The views plus references to the arrays they point into, so the memory (an mmap) stays alive.
struct PyWeights : Weights {
  std::vector<py::object> keep;
};

py::list config_schema() {
  py::list out;
#define NS_SCHEMA_ROW(type, name, def, doc) out.append(py::make_tuple(#name, model_args::type_name(type{}), type(def), doc));
  NS_CONFIG_FIELDS(NS_SCHEMA_ROW)
#undef NS_SCHEMA_ROW
  return out;
}

std::shared_ptr<PyWeights> make_weights(const py::dict& config, const py::dict& tensors) {
  const ModelConfig cfg = model_args::config(config);
  std::vector<py::object> keep;
  const std::map<std::string, TensorIn> in = model_args::tensors(tensors, &keep);
  auto w = std::make_shared<PyWeights>();
  static_cast<Weights&>(*w) = Weights::build(cfg, in);
  w->keep = std::move(keep);
  return w;
}

}  // namespace

NS_BIND(model) {
  m.def("config_schema", &config_schema, "[(name, type, default, doc)] of every engine config field");
  m.def("architectures", &arch_names, "the architecture names the engine runs");

  py::class_<PyWeights, std::shared_ptr<PyWeights>>(m, "Weights")
      .def(py::init(&make_weights), py::arg("config"), py::arg("tensors"),
           "config: dict of hyperparameters; tensors: GGUF name -> (array of raw bytes, kind, shape)")
      .def_property_readonly("n_layers", [](const PyWeights& w) { return w.cfg.n_layers; })
      .def_property_readonly("vocab_size", [](const PyWeights& w) { return w.cfg.vocab_size; })
      .def_property_readonly(
          "packed_bytes", [](const PyWeights& w) { return w.packed_bytes; },
          "bytes of the matrices' packed copies for batched steps (cpp/kernels/quant_packed.h)");

  py::class_<Engine>(m, "Engine")
      .def(py::init([](std::shared_ptr<PyWeights> w, int64_t n_ctx, int64_t n_seq, int64_t chunk,
                       const std::string& kv_cache) {
             NS_CHECK(w != nullptr, "weights: expected a Weights object");
             // auto: f16 for quantized weights (their own rounding dwarfs the cache's), f32 for float weights
             bool quantized = false;
             for (const LayerWeights& L : w->layers)
               for (const Proj* p : {&L.q, &L.k, &L.v, &L.o})
                 if (*p && dtype_info(p->w.type).quantized) quantized = true;
             const DType kv_type = kv_cache == "auto" ? (quantized ? DType::f16 : DType::f32)
                                                      : kv_cache_type(kv_cache, "kv_cache");
             const std::string kv_error = kv_cache_type_error(kv_type, w->cfg.head_dim);
             NS_CHECK(kv_error.empty(), "kv_cache: " + kv_error);
             try {
               return new Engine(w, n_ctx, n_seq, chunk, kv_type);
             } catch (const std::bad_alloc&) {  // a ValueError naming what to change, not MemoryError
               const double kv = 2.0 * double(w->cfg.n_layers) * double(n_seq) * double(n_ctx) *
                                 double(dtype_row_bytes(kv_type, w->cfg.kv_dim()));
               const std::string seqs = n_seq > 1 ? std::to_string(n_seq) + " sequences x " : "";
               throw py::value_error("n_ctx: a KV cache of " + seqs + std::to_string(n_ctx) + " positions needs " +
                                     std::to_string(int64_t(kv)) + " bytes (" + std::to_string(int64_t(kv / 1e6)) +
                                     " MB) as " + dtype_info(kv_type).name + ", which could not be allocated; use a smaller n_ctx" +
                                     (kv_type == DType::q8_0 ? "" : " or a smaller kv_cache type (q8_0)"));
             }
           }),
           py::arg("weights"), py::arg("n_ctx"), py::arg("n_seq") = 1, py::arg("chunk") = Engine::kDefaultChunk,
           py::arg("kv_cache") = "auto")
      .def("step",
           [](Engine& e, py::handle tokens, py::handle items, py::handle logits) {
             auto ta = get_array<const int32_t>(tokens, "tokens", 1);
             auto ia = get_array<const int64_t>(items, "items", 2);
             auto la = get_array<float>(logits, "logits_out", 2);
             NS_CHECK(ia.shape[1] == 3, "items: expected shape (n, 3) of (seq, n_tokens, n_logits), got " +
                                            shape_str(ia.shape));
             const int64_t n_items = ia.shape[0];
             std::vector<StepItem> its(n_items);
             int64_t total = 0, rows = 0;
             for (int64_t i = 0; i < n_items; ++i) {
               const int64_t s = ia.data[3 * i], n = ia.data[3 * i + 1], nl = ia.data[3 * i + 2];
               NS_CHECK(s >= 0 && s <= INT32_MAX, "items[" + std::to_string(i) + "]: bad sequence id " +
                                                      std::to_string(s));
               NS_CHECK(n >= 1 && n <= ta.shape[0] && nl >= 0 && nl <= n,
                        "items[" + std::to_string(i) + "]: bad (n_tokens, n_logits)");
               its[i] = StepItem{int32_t(s), n, nl};
               total += n;
               rows += nl;
             }
             NS_CHECK(total == ta.shape[0], "tokens: the items hold " + std::to_string(total) + " tokens, got " +
                                                std::to_string(ta.shape[0]));
             NS_CHECK(la.shape[0] == rows && la.shape[1] == e.config().vocab_size,
                      "logits_out: expected shape (" + std::to_string(rows) + ", " +
                          std::to_string(e.config().vocab_size) + "), got " + shape_str(la.shape));
             // Between pieces, take the GIL back briefly to run pending signal handlers; one that
             // raises (Ctrl-C: KeyboardInterrupt) stops the step with the finished pieces cached.
             const auto interrupted = [] {
               py::gil_scoped_acquire gil;
               return PyErr_CheckSignals() != 0;  // leaves the handler's exception set
             };
             bool complete;
             {
               py::gil_scoped_release release;
               complete = e.step(la.data, ta.data, its.data(), n_items, interrupted);
             }
             if (!complete) throw py::error_already_set();
           },
           py::arg("tokens"), py::arg("items"), py::arg("logits_out"))
      .def("seq_len", &Engine::seq_len, py::arg("seq"))
      .def("truncate", &Engine::truncate, py::arg("seq"), py::arg("n"))
      .def("copy", &Engine::copy, py::arg("src"), py::arg("dst"), py::arg("n"))
      .def_property_readonly("n_ctx", &Engine::n_ctx)
      .def_property_readonly("n_seq", &Engine::n_seq)
      .def_property_readonly("chunk", &Engine::chunk)
      .def_property_readonly("kv_cache", [](const Engine& e) { return std::string(dtype_info(e.kv_type()).name); })
      .def("profile", [](const Engine& e) {
        py::dict d;
        for (int i = 0; i < kNumPhases; ++i) d[kPhaseNames[i]] = e.profile()[i];
        return d;
      }, "seconds per phase over all steps (NINESTEP_PROFILE=1 at construction turns timing on)");
}

}  // namespace ninestep
