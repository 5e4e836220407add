// Turning NumPy arrays into checked raw pointers. The Python layer validates first and names
// arguments for users; these checks are the C++ side's own guard, so a bad call from anywhere
// raises ValueError instead of reading out of bounds.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "core/check.h"

namespace ninestep {
namespace py = pybind11;

template <class T>
struct ArrayRef {
  T* data = nullptr;
  std::vector<int64_t> shape;
  int64_t size() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
};

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Checks dtype T, C-contiguity, rank `ndim` (-1: any) and writability (when T is non-const).
template <class T>
ArrayRef<T> get_array(py::handle obj, const char* name, int ndim = -1) {
  using Base = std::remove_const_t<T>;
  if (!py::isinstance<py::array>(obj)) fail(std::string(name) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  const py::dtype want = py::dtype::of<Base>();
  if (!a.dtype().is(want) && !a.dtype().equal(want))
    fail(std::string(name) + ": expected dtype " + std::string(py::str(want)) + ", got " +
         std::string(py::str(a.dtype())) + " with shape " + shape_str(shape));
  if (ndim >= 0 && a.ndim() != ndim)
    fail(std::string(name) + ": expected a " + std::to_string(ndim) + "-d array, got shape " + shape_str(shape));
  if (!(a.flags() & py::array::c_style))
    fail(std::string(name) + ": array must be C-contiguous (shape " + shape_str(shape) + ")");
  // e.g. np.frombuffer at an odd offset: loads through T* would be UB (strides are whole items here)
  if (reinterpret_cast<uintptr_t>(a.data()) % alignof(Base) != 0)
    fail(std::string(name) + ": array data is not aligned for " + std::string(py::str(want)));
  ArrayRef<T> r;
  r.shape = shape;
  if constexpr (std::is_const_v<T>) {
    r.data = static_cast<T*>(a.data());
  } else {
    if (!a.writeable()) fail(std::string(name) + ": array is read-only");
    r.data = static_cast<T*>(a.mutable_data());
  }
  return r;
}

}  // namespace ninestep
