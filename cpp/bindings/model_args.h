// A model's config dict and tensor dict as the C++ side takes them (ModelConfig + TensorIn views),
// with every key, type and array checked. Shared by the decoder and encoder bindings.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>
#include <vector>

#include "core/check.h"
#include "model/weights.h"

namespace ninestep {
namespace model_args {
namespace py = pybind11;

inline const char* type_name(int64_t) { return "int"; }
inline const char* type_name(double) { return "float"; }
inline const char* type_name(bool) { return "bool"; }
inline const char* type_name(const std::string&) { return "str"; }

// A missing key keeps the schema's default; a present one must have the field's type.
template <class T>
void read(const py::dict& d, const char* key, T* out) {
  if (!d.contains(key)) return;
  py::handle v = d[key];
  const bool ok = std::is_same_v<T, bool>          ? py::isinstance<py::bool_>(v)
                  : std::is_same_v<T, int64_t>     ? py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v)
                  : std::is_same_v<T, double>      ? (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) &&
                                                    !py::isinstance<py::bool_>(v)
                                                   : py::isinstance<py::str>(v);
  NS_CHECK(ok, std::string("config['") + key + "']: expected " + type_name(T{}) + ", got " + std::string(py::repr(v)));
  *out = v.cast<T>();
}

inline ModelConfig config(const py::dict& d) {
  ModelConfig c;
#define NS_READ_FIELD(type, name, def, doc) read<type>(d, #name, &c.name);
  NS_CONFIG_FIELDS(NS_READ_FIELD)
#undef NS_READ_FIELD
  for (auto item : d) {
    const std::string key = py::str(item.first);
    bool known = false;
#define NS_KNOWN_FIELD(type, name, def, doc) known = known || key == #name;
    NS_CONFIG_FIELDS(NS_KNOWN_FIELD)
#undef NS_KNOWN_FIELD
    NS_CHECK(known, "config: unknown field '" + key + "'");
  }
  return c;
}

// name -> (array of raw bytes, kind, shape) into views; `keep` gets the arrays (the views' owners).
inline std::map<std::string, TensorIn> tensors(const py::dict& tensors, std::vector<py::object>* keep) {
  std::map<std::string, TensorIn> in;
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
    keep->push_back(a);
  }
  return in;
}

}  // namespace model_args
}  // namespace ninestep
