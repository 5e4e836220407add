// ninestep._core.Sampler: a seeded generator plus reusable scratch; one sample() per token.
#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "kernels/sample.h"

namespace ninestep {

struct Sampler {
  Rng rng;
  SampleWork work;
  explicit Sampler(uint64_t seed) : rng(seed) {}
};

NS_BIND(sample) {
  py::class_<Sampler>(m, "Sampler")
      .def(py::init<uint64_t>(), py::arg("seed"))
      .def("sample", [](Sampler& s, py::handle logits, float temperature, int64_t top_k, float top_p, float min_p,
                        float repetition_penalty, py::handle recent) {
        auto l = get_array<const float>(logits, "logits", 1);
        auto r = get_array<const int32_t>(recent, "recent", 1);
        const int64_t n = l.shape[0];
        NS_CHECK(n > 0, "logits: empty");
        NS_CHECK(temperature >= 0.0f, "temperature: must be >= 0");
        NS_CHECK(top_k >= 0, "top_k: must be >= 0");
        NS_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p: must be in (0, 1]");
        NS_CHECK(min_p >= 0.0f && min_p <= 1.0f, "min_p: must be in [0, 1]");
        NS_CHECK(repetition_penalty > 0.0f, "repetition_penalty: must be > 0");
        for (int64_t i = 0; i < r.shape[0]; ++i)
          NS_CHECK(r.data[i] >= 0 && r.data[i] < n, "recent: id " + std::to_string(r.data[i]) + " outside [0, " +
                                                        std::to_string(n) + ")");
        SampleParams p{temperature, top_k, top_p, min_p, repetition_penalty};
        py::gil_scoped_release release;
        return sample_token(l.data, n, r.data, r.shape[0], p, s.rng, s.work);
      }, py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"),
         py::arg("repetition_penalty"), py::arg("recent"));
}

}  // namespace ninestep
