// softmax, rmsnorm, layernorm, rope, attention, silu, gelu, swiglu: checked arrays in, one
// kernel call (GIL released) each. Every size is checked here before any kernel runs.
#include <cmath>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "kernels/nn.h"

namespace ninestep {

static void check_same_shape(const std::vector<int64_t>& got, const std::vector<int64_t>& want, const char* name,
                             const char* like) {
  NS_CHECK(got == want, std::string(name) + ": expected shape " + shape_str(want) + " (as " + like + "), got " +
                            shape_str(got));
}

// rows x n view of an array over its last axis.
static void rows_cols(const std::vector<int64_t>& shape, const char* name, int64_t* rows, int64_t* n) {
  NS_CHECK(!shape.empty(), std::string(name) + ": expected at least 1 dimension, got shape ()");
  *n = shape.back();
  NS_CHECK(*n > 0, std::string(name) + ": last axis must be non-empty, got shape " + shape_str(shape));
  *rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) *rows = checked_mul(*rows, shape[i], name);
}

NS_BIND(nn) {
  m.def("softmax", [](py::handle out, py::handle x) {
    auto xa = get_array<const float>(x, "x");
    auto ya = get_array<float>(out, "out");
    check_same_shape(ya.shape, xa.shape, "out", "x");
    int64_t rows, n;
    rows_cols(xa.shape, "x", &rows, &n);
    py::gil_scoped_release release;
    softmax(ya.data, xa.data, rows, n);
  }, py::arg("out"), py::arg("x"), "out = softmax(x) over the last axis");

  m.def("rmsnorm", [](py::handle out, py::handle x, py::handle w, float eps) {
    auto xa = get_array<const float>(x, "x");
    auto wa = get_array<const float>(w, "weight", 1);
    auto ya = get_array<float>(out, "out");
    check_same_shape(ya.shape, xa.shape, "out", "x");
    int64_t rows, n;
    rows_cols(xa.shape, "x", &rows, &n);
    check_same_shape(wa.shape, {n}, "weight", "x's last axis");
    NS_CHECK(eps >= 0.0f && std::isfinite(eps), "eps: must be finite and >= 0, got " + std::to_string(eps));
    py::gil_scoped_release release;
    rmsnorm(ya.data, xa.data, wa.data, eps, rows, n);
  }, py::arg("out"), py::arg("x"), py::arg("weight"), py::arg("eps"));

  m.def("layernorm", [](py::handle out, py::handle x, py::handle w, py::handle b, float eps) {
    auto xa = get_array<const float>(x, "x");
    auto wa = get_array<const float>(w, "weight", 1);
    auto ya = get_array<float>(out, "out");
    check_same_shape(ya.shape, xa.shape, "out", "x");
    int64_t rows, n;
    rows_cols(xa.shape, "x", &rows, &n);
    check_same_shape(wa.shape, {n}, "weight", "x's last axis");
    const float* bias = nullptr;
    if (!b.is_none()) {
      auto ba = get_array<const float>(b, "bias", 1);
      check_same_shape(ba.shape, {n}, "bias", "x's last axis");
      bias = ba.data;
    }
    NS_CHECK(eps >= 0.0f && std::isfinite(eps), "eps: must be finite and >= 0, got " + std::to_string(eps));
    py::gil_scoped_release release;
    layernorm(ya.data, xa.data, wa.data, bias, eps, rows, n);
  }, py::arg("out"), py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"));

  // In place on x (the Python wrapper copies into `out` first).
  m.def("rope", [](py::handle x, py::handle positions, float theta, const std::string& style) {
    auto xa = get_array<float>(x, "x", 3);
    auto pa = get_array<const int32_t>(positions, "positions", 1);
    const int64_t T = xa.shape[0], H = xa.shape[1], D = xa.shape[2];
    NS_CHECK(D % 2 == 0, "x: head size D must be even, got shape " + shape_str(xa.shape));
    check_same_shape(pa.shape, {T}, "positions", "x's first axis");
    NS_CHECK(theta > 0.0f && std::isfinite(theta), "theta: must be finite and > 0, got " + std::to_string(theta));
    NS_CHECK(style == "norm" || style == "neox", "style: expected 'norm' or 'neox', got '" + style + "'");
    const RopeStyle st = style == "norm" ? RopeStyle::norm : RopeStyle::neox;
    py::gil_scoped_release release;
    rope(xa.data, pa.data, T, H, D, theta, st);
  }, py::arg("x"), py::arg("positions"), py::arg("theta"), py::arg("style"), "rotates x [T, H, D] in place");

  m.def("attention", [](py::handle out, py::handle q, py::handle k, py::handle v, bool causal, float scale,
                        int64_t window, const std::string& kv_cache) {
    auto qa = get_array<const float>(q, "q", 3);
    auto ka = get_array<const float>(k, "k", 3);
    auto va = get_array<const float>(v, "v", 3);
    auto oa = get_array<float>(out, "out", 3);
    const int64_t T = qa.shape[0], Hq = qa.shape[1], D = qa.shape[2], S = ka.shape[0], Hkv = ka.shape[1];
    NS_CHECK(T > 0 && Hq > 0 && D > 0, "q: every axis must be non-empty, got shape " + shape_str(qa.shape));
    NS_CHECK(S > 0 && Hkv > 0 && ka.shape[2] == D,
             "k: expected shape (S, Hkv, " + std::to_string(D) + "), got " + shape_str(ka.shape));
    check_same_shape(va.shape, ka.shape, "v", "k");
    check_same_shape(oa.shape, qa.shape, "out", "q");
    NS_CHECK(Hq % Hkv == 0, "q: query heads " + std::to_string(Hq) + " are not a multiple of k's heads " +
                                std::to_string(Hkv));
    NS_CHECK(!causal || T <= S, "q: causal attention needs T <= S, got q " + shape_str(qa.shape) + " and k " +
                                    shape_str(ka.shape));
    NS_CHECK(std::isfinite(scale), "scale: must be finite, got " + std::to_string(scale));
    NS_CHECK(window >= 0, "window: must be >= 0, got " + std::to_string(window));
    NS_CHECK(window == 0 || causal, "window: a sliding window needs causal=True");
    const DType kt = kv_cache_type(kv_cache, "kv_cache");
    const std::string kv_error = kv_cache_type_error(kt, D);
    NS_CHECK(kv_error.empty(), "kv_cache: " + kv_error);
    py::gil_scoped_release release;
    if (kt == DType::f32) {
      attention(oa.data, qa.data, ka.data, va.data, kt, Hkv * D, D, T, S, Hq, Hkv, D, scale, causal, window);
      return;
    }
    // k and v stored as a KV cache of that type would hold them: rows of Hkv * D elements
    const int64_t rb = dtype_row_bytes(kt, Hkv * D);
    std::vector<uint8_t> kc(checked_mul(S, rb, "k")), vc(kc.size());  // [S] rows of rb bytes
    for (int64_t s = 0; s < S; ++s) {
      kv_store_row(kc.data() + s * rb, ka.data + s * Hkv * D, kt, Hkv * D);
      kv_store_row(vc.data() + s * rb, va.data + s * Hkv * D, kt, Hkv * D);
    }
    attention(oa.data, qa.data, kc.data(), vc.data(), kt, Hkv * D, D, T, S, Hq, Hkv, D, scale, causal, window);
  }, py::arg("out"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"), py::arg("scale"),
     py::arg("window") = 0, py::arg("kv_cache") = "f32");

  m.def("silu", [](py::handle out, py::handle x) {
    auto xa = get_array<const float>(x, "x");
    auto ya = get_array<float>(out, "out");
    check_same_shape(ya.shape, xa.shape, "out", "x");
    py::gil_scoped_release release;
    silu(ya.data, xa.data, xa.size());
  }, py::arg("out"), py::arg("x"));

  m.def("gelu", [](py::handle out, py::handle x, bool tanh_approx) {
    auto xa = get_array<const float>(x, "x");
    auto ya = get_array<float>(out, "out");
    check_same_shape(ya.shape, xa.shape, "out", "x");
    py::gil_scoped_release release;
    gelu(ya.data, xa.data, tanh_approx, xa.size());
  }, py::arg("out"), py::arg("x"), py::arg("tanh_approx"));

  m.def("swiglu", [](py::handle out, py::handle gate, py::handle up) {
    auto ga = get_array<const float>(gate, "gate");
    auto ua = get_array<const float>(up, "up");
    auto ya = get_array<float>(out, "out");
    check_same_shape(ua.shape, ga.shape, "up", "gate");
    check_same_shape(ya.shape, ga.shape, "out", "gate");
    py::gil_scoped_release release;
    swiglu(ya.data, ga.data, ua.data, ga.size());
  }, py::arg("out"), py::arg("gate"), py::arg("up"));
}

}  // namespace ninestep
