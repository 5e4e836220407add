// matmul, quantize, dequantize, get_rows. Weights arrive as raw bytes plus (kind, n, k); the byte count
// is checked against the kind's block layout before any kernel runs.
#include "bindings/arrays.h"
#include "bindings/registry.h"
#include "kernels/get_rows.h"
#include "kernels/matmul.h"
#include "kernels/quant_packed.h"
#include "kernels/traits.h"

namespace ninestep {

// Raw bytes of a C-contiguous array holding n rows of `type` with k elements each.
static const void* weight_bytes(py::handle obj, DType type, int64_t n, int64_t k, const char* name) {
  if (!py::isinstance<py::array>(obj)) fail(std::string(name) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  NS_CHECK(a.flags() & py::array::c_style, std::string(name) + ": array must be C-contiguous");
  NS_CHECK(n > 0, std::string(name) + ": row count must be positive");
  const int64_t need = checked_mul(n, dtype_row_bytes(type, k), name);
  NS_CHECK(a.nbytes() == need, std::string(name) + ": holds " + std::to_string(a.nbytes()) + " bytes, " +
                                   dtype_info(type).name + " [" + std::to_string(n) + ", " + std::to_string(k) +
                                   "] needs " + std::to_string(need));
  check_aligned(a.data(), type, name);
  return a.data();
}

NS_BIND(matmul) {
  m.def(
      "matmul",
      [](py::handle y, py::handle x, py::handle w, const std::string& kind, int64_t n, int64_t k, bool packed) {
        const DType type = dtype_from_name(kind);
        auto xa = get_array<const float>(x, "x", 2);
        auto ya = get_array<float>(y, "out", 2);
        NS_CHECK(xa.shape[1] == k, "x: has " + std::to_string(xa.shape[1]) + " columns, w has " + std::to_string(k));
        NS_CHECK(ya.shape[0] == xa.shape[0] && ya.shape[1] == n, "out: expected shape (" + std::to_string(xa.shape[0]) +
                                                                     ", " + std::to_string(n) + "), got " +
                                                                     shape_str(ya.shape));
        check_matmul_kernel(type, "w");
        WeightView wv{weight_bytes(w, type, n, k, "w"), type, n, k};
        const int64_t mrows = xa.shape[0];
        if (mrows == 0) return;
        py::gil_scoped_release release;
        std::vector<uint8_t> copy;
        if (packed && packs_matrix(type, k)) {
          copy.resize((size_t)packed_bytes(type, n, k));
          pack_weights(copy.data(), wv.data, type, n, k);
          wv.packed = copy.data();
        }
        matmul(ya.data, xa.data, wv, mrows);
      },
      py::arg("out"), py::arg("x"), py::arg("w"), py::arg("kind"), py::arg("n"), py::arg("k"),
      py::arg("packed") = false,
      "out [m, n] = x [m, k] @ W^T, W given as raw bytes of `kind`; packed: through a packed copy of W "
      "(quant_packed.h) where this machine has one, as a loaded model's batches run");
  m.def(
      "packs", [](const std::string& kind) { return packs_on_this_machine(dtype_from_name(kind)); }, py::arg("kind"),
      "whether matmuls on this machine read a packed copy of `kind` weights");
  m.def(
      "packed_gemv", [](const std::string& kind) { return packed_gemv_here(dtype_from_name(kind)); },
      py::arg("kind"), "whether a lone activation row reads the packed copy of `kind` here (quant_packed.h)");

  m.def("quantize", [](py::handle dst, py::handle src, const std::string& kind) {
    const DType type = dtype_from_name(kind);
    NS_CHECK(type_traits(type).quantize_row != nullptr, "kind: ninestep cannot quantize to " + kind);
    auto sa = get_array<const float>(src, "w", 2);
    const int64_t n = sa.shape[0], k = sa.shape[1];
    auto da = get_array<uint8_t>(dst, "out", 2);
    NS_CHECK(da.shape[0] == n && da.shape[1] == dtype_row_bytes(type, k), "out: wrong shape " + shape_str(da.shape));
    py::gil_scoped_release release;
    quantize_rows(da.data, sa.data, type, n, k);
  }, py::arg("out"), py::arg("w"), py::arg("kind"));

  m.def("quantize_activations", [](py::handle dst, py::handle src, const std::string& format) {
    int f = 0;
    while (f <= static_cast<int>(ActFormat::q8_k) && format != act_traits(static_cast<ActFormat>(f)).name) ++f;
    NS_CHECK(f <= static_cast<int>(ActFormat::q8_k) && f != static_cast<int>(ActFormat::f32),
             "format: expected q8_32 or q8_k, got '" + format + "'");
    const ActFormat fmt = static_cast<ActFormat>(f);
    auto sa = get_array<const float>(src, "x", 2);
    const int64_t n = sa.shape[0], k = sa.shape[1];
    const int64_t rb = act_row_bytes(fmt, k);
    auto da = get_array<uint8_t>(dst, "out", 2);
    NS_CHECK(da.shape[0] == n && da.shape[1] == rb, "out: expected shape (" + std::to_string(n) + ", " +
                                                        std::to_string(rb) + "), got " + shape_str(da.shape));
    const ActRowFn conv = act_traits(fmt).from_float.get();
    py::gil_scoped_release release;
    for (int64_t i = 0; i < n; ++i) conv(da.data + i * rb, sa.data + i * k, k);
  }, py::arg("out"), py::arg("x"), py::arg("format"),
     "out [m, row bytes] = x [m, k] as matmul's activation blocks (q8_32 or q8_k) at the active ISA");

  m.def("dequantize", [](py::handle dst, py::handle src, const std::string& kind, int64_t n, int64_t k) {
    const DType type = dtype_from_name(kind);
    const void* s = weight_bytes(src, type, n, k, "data");
    auto da = get_array<float>(dst, "out", 2);
    NS_CHECK(da.shape[0] == n && da.shape[1] == k, "out: expected shape (" + std::to_string(n) + ", " +
                                                       std::to_string(k) + "), got " + shape_str(da.shape));
    py::gil_scoped_release release;
    dequantize_rows(da.data, s, type, n, k);
  }, py::arg("out"), py::arg("data"), py::arg("kind"), py::arg("n"), py::arg("k"));

  m.def("get_rows", [](py::handle dst, py::handle src, const std::string& kind, int64_t n, int64_t k, py::handle ids) {
    const DType type = dtype_from_name(kind);
    check_dequantize_kernel(type, "w");
    const void* s = weight_bytes(src, type, n, k, "w");
    auto ia = get_array<const int64_t>(ids, "ids", 1);
    auto da = get_array<float>(dst, "out", 2);
    NS_CHECK(da.shape[0] == ia.shape[0] && da.shape[1] == k, "out: expected shape (" + std::to_string(ia.shape[0]) +
                                                                 ", " + std::to_string(k) + "), got " +
                                                                 shape_str(da.shape));
    py::gil_scoped_release release;
    get_rows(da.data, s, type, n, k, ia.data, ia.shape[0], "w");
  }, py::arg("out"), py::arg("w"), py::arg("kind"), py::arg("n"), py::arg("k"), py::arg("ids"),
     "out [m, k] = rows ids [m] (int64, each in [0, n)) of W [n, k] given as raw bytes of `kind`, as float32");
}

}  // namespace ninestep
