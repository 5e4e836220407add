// EncoderWeights and Encoder (model/encoder.h): the config and tensor dicts become checked views;
// run() computes with the GIL released.
#include <pybind11/stl.h>

#include <new>

#include "bindings/arrays.h"
#include "bindings/model_args.h"
#include "bindings/registry.h"
#include "model/encoder.h"

namespace ninestep {

namespace {

struct PyEncoderWeights : EncoderWeights {
  std::vector<py::object> keep;  // the arrays the views point into (an mmap stays alive)
};

std::shared_ptr<PyEncoderWeights> make_encoder_weights(const py::dict& config, const py::dict& tensors) {
  const ModelConfig cfg = model_args::config(config);
  std::vector<py::object> keep;
  const auto in = model_args::tensors(tensors, &keep);
  auto w = std::make_shared<PyEncoderWeights>();
  static_cast<EncoderWeights&>(*w) = EncoderWeights::build(cfg, in);
  w->keep = std::move(keep);
  return w;
}

}  // namespace

NS_BIND(encoder) {
  m.def("encoder_architectures", &encoder_arch_names, "the encoder architecture names the engine runs");

  py::class_<PyEncoderWeights, std::shared_ptr<PyEncoderWeights>>(m, "EncoderWeights")
      .def(py::init(&make_encoder_weights), py::arg("config"), py::arg("tensors"),
           "config: dict of hyperparameters; tensors: GGUF name -> (array of raw bytes, kind, shape)")
      .def_property_readonly("n_positions", [](const PyEncoderWeights& w) { return w.n_positions; })
      .def_property_readonly("d_model", [](const PyEncoderWeights& w) { return w.cfg.d_model; });

  py::class_<Encoder>(m, "Encoder")
      .def(py::init([](std::shared_ptr<PyEncoderWeights> w) {
             NS_CHECK(w != nullptr, "weights: expected an EncoderWeights object");
             return new Encoder(w);
           }),
           py::arg("weights"))
      .def("run",
           [](Encoder& e, py::handle tokens, py::handle lengths, py::handle out) {
             auto ta = get_array<const int32_t>(tokens, "tokens", 1);
             auto la = get_array<const int64_t>(lengths, "lengths", 1);
             auto oa = get_array<float>(out, "out", 2);
             const int64_t d = e.config().d_model;
             NS_CHECK(oa.shape[0] == ta.shape[0] && oa.shape[1] == d,
                      "out: expected shape (" + std::to_string(ta.shape[0]) + ", " + std::to_string(d) + "), got " +
                          shape_str(oa.shape));
             try {
               py::gil_scoped_release release;
               e.run(oa.data, ta.data, ta.shape[0], la.data, la.shape[0]);
             } catch (const std::bad_alloc&) {
               throw py::value_error("tokens: the scratch for " + std::to_string(ta.shape[0]) +
                                     " packed tokens could not be allocated; use a smaller batch");
             }
           },
           py::arg("tokens"), py::arg("lengths"), py::arg("out"),
           "out [sum(lengths), d_model] = last hidden states of the packed sentences tokens [sum(lengths)]")
      .def_property_readonly("n_positions", &Encoder::n_positions)
      .def_property_readonly("d_model", [](const Encoder& e) { return e.config().d_model; })
      .def("profile", [](const Encoder& e) {
        py::dict d;
        for (int i = 0; i < kNumEncPhases; ++i) d[kEncPhaseNames[i]] = e.profile()[i];
        return d;
      }, "seconds per phase over all runs (NINESTEP_PROFILE=1 at construction turns timing on)");
}

}  // namespace ninestep
