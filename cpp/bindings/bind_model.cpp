// Weights and Session: the config dict and the tensor dict become C++ views (checked in
// Weights::build); forward runs with the GIL released.
#include <new>
#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "model/session.h"

namespace ninestep {

namespace {

// The views plus references to the arrays they point into, so the memory (an mmap) stays alive.
struct PyWeights : Weights {
  std::vector<py::object> keep;
};

template <class T>
T cfg_get(const py::dict& cfg, const char* key) {
  NS_CHECK(cfg.contains(key), std::string("config: missing '") + key + "'");
  try {
    return cfg[key].cast<T>();
  } catch (const py::cast_error&) {
    fail(std::string("config['") + key + "']: wrong type, got " + std::string(py::repr(cfg[key])));
  }
}

ModelConfig config_from(const py::dict& d) {
  ModelConfig c;
  c.n_layers = cfg_get<int64_t>(d, "n_layers");
  c.d_model = cfg_get<int64_t>(d, "d_model");
  c.n_heads = cfg_get<int64_t>(d, "n_heads");
  c.n_kv_heads = cfg_get<int64_t>(d, "n_kv_heads");
  c.head_dim = cfg_get<int64_t>(d, "head_dim");
  c.d_ff = cfg_get<int64_t>(d, "d_ff");
  c.vocab_size = cfg_get<int64_t>(d, "vocab_size");
  c.norm_eps = cfg_get<float>(d, "norm_eps");
  c.rope_theta = cfg_get<float>(d, "rope_theta");
  const std::string style = cfg_get<std::string>(d, "rope_style");
  NS_CHECK(style == "norm" || style == "neox", "config['rope_style']: expected 'norm' or 'neox', got '" + style + "'");
  c.rope_style = style == "norm" ? RopeStyle::norm : RopeStyle::neox;
  c.tied_embeddings = cfg_get<bool>(d, "tied_embeddings");
  c.has_qkv_bias = cfg_get<bool>(d, "has_qkv_bias");
  return c;
}

std::shared_ptr<PyWeights> make_weights(const py::dict& config, const py::dict& tensors) {
  const ModelConfig cfg = config_from(config);
  std::map<std::string, TensorIn> in;
  std::vector<py::object> keep;
  for (auto item : tensors) {
    const std::string name = py::str(item.first);
    const std::string where = "tensors['" + name + "']";
    NS_CHECK(py::isinstance<py::tuple>(item.second) && py::len(item.second) == 3,
             where + ": expected a tuple (array, kind, shape)");
    py::tuple tup = py::reinterpret_borrow<py::tuple>(item.second);
    NS_CHECK(py::isinstance<py::array>(tup[0]), where + ": expected a NumPy array");
    py::array a = py::reinterpret_borrow<py::array>(tup[0]);
    NS_CHECK(a.flags() & py::array::c_style, where + ": array must be C-contiguous");
    TensorIn t;
    t.data = a.data();
    t.nbytes = a.nbytes();
    try {
      t.type = dtype_from_name(tup[1].cast<std::string>());
      t.shape = tup[2].cast<std::vector<int64_t>>();
    } catch (const py::cast_error&) {
      fail(where + ": kind must be a str and shape a sequence of ints");
    }
    in[name] = t;
    keep.push_back(a);
  }
  auto w = std::make_shared<PyWeights>();
  static_cast<Weights&>(*w) = Weights::build(cfg, in);
  w->keep = std::move(keep);
  return w;
}

}  // namespace

NS_BIND(model) {
  py::class_<PyWeights, std::shared_ptr<PyWeights>>(m, "Weights")
      .def(py::init(&make_weights), py::arg("config"), py::arg("tensors"),
           "config: dict of hyperparameters; tensors: GGUF name -> (array of raw bytes, kind, shape)")
      .def_property_readonly("n_layers", [](const PyWeights& w) { return w.cfg.n_layers; })
      .def_property_readonly("vocab_size", [](const PyWeights& w) { return w.cfg.vocab_size; });

  py::class_<Session>(m, "Session")
      .def(py::init([](std::shared_ptr<PyWeights> w, int64_t n_ctx, int64_t chunk) {
             NS_CHECK(w != nullptr, "weights: expected a Weights object");
             try {
               return new Session(w, n_ctx, chunk);
             } catch (const std::bad_alloc&) {  // a ValueError naming what to change, not MemoryError
               const double kv = 2.0 * double(w->cfg.n_layers) * double(n_ctx) * double(w->cfg.kv_dim()) * sizeof(float);
               throw py::value_error("n_ctx: a KV cache of " + std::to_string(n_ctx) + " positions needs " +
                                     std::to_string(int64_t(kv)) + " bytes (" + std::to_string(int64_t(kv / 1e6)) +
                                     " MB), which could not be allocated; use a smaller n_ctx");
             }
           }),
           py::arg("weights"), py::arg("n_ctx"), py::arg("chunk") = Session::kDefaultChunk)
      .def("forward",
           [](Session& s, py::handle ids, int64_t pos, py::handle logits, bool all_logits) {
             auto ia = get_array<const int32_t>(ids, "ids", 1);
             auto la = get_array<float>(logits, "logits_out", 2);
             const int64_t T = ia.shape[0], V = s.config().vocab_size, rows = all_logits ? T : 1;
             NS_CHECK(la.shape[0] == rows && la.shape[1] == V,
                      "logits_out: expected shape (" + std::to_string(rows) + ", " + std::to_string(V) + "), got " +
                          shape_str(la.shape));
             // Between chunks, take the GIL back briefly to run pending signal handlers; one that
             // raises (Ctrl-C: KeyboardInterrupt) stops the call with n_past at the last full chunk.
             const auto interrupted = [] {
               py::gil_scoped_acquire gil;
               return PyErr_CheckSignals() != 0;  // leaves the handler's exception set
             };
             bool complete;
             {
               py::gil_scoped_release release;
               complete = s.forward(la.data, ia.data, T, pos, all_logits, interrupted);
             }
             if (!complete) throw py::error_already_set();
           },
           py::arg("ids"), py::arg("pos"), py::arg("logits_out"), py::arg("all_logits") = false)
      .def_property_readonly("n_past", &Session::n_past)
      .def_property_readonly("n_ctx", &Session::n_ctx)
      .def_property_readonly("chunk", &Session::chunk)
      .def("reset", &Session::reset)
      .def("profile", [](const Session& s) {
        py::dict d;
        for (int i = 0; i < kNumPhases; ++i) d[kPhaseNames[i]] = s.profile()[i];
        return d;
      }, "seconds per phase over all calls (NINESTEP_PROFILE=1 at construction turns timing on)");
}

}  // namespace ninestep
