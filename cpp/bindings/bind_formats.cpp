// Fast path for the GGUF reader: arrays of length-prefixed UTF-8 strings (a vocabulary holds
// 100k+). Every length is checked against the bytes left before it is used; the Python reader
// turns the status into a FormatError with the field and offset.
#include <cstring>

#include "bindings/arrays.h"
#include "bindings/registry.h"

namespace ninestep {

NS_BIND(formats) {
  m.def("gguf_strings", [](py::buffer buf, int64_t pos, int64_t n) {
    const py::buffer_info info = buf.request();
    NS_CHECK(info.ndim == 1 && info.itemsize == 1, "buf: expected a 1-d byte buffer");
    const auto* data = static_cast<const uint8_t*>(info.ptr);
    const int64_t size = info.size;
    NS_CHECK(pos >= 0 && pos <= size && n >= 0, "gguf_strings: position or count out of range");
    // status: 0 ok, 1 no room for a length, 2 a length past the end, 3 invalid UTF-8 (at `at`)
    int status = 0;
    int64_t at = pos;
    py::list out;
    for (int64_t i = 0; i < n; ++i) {
      at = pos;
      if (size - pos < 8) { status = 1; break; }
      uint64_t len;
      std::memcpy(&len, data + pos, 8);
      if (len > (uint64_t)(size - pos - 8)) { status = 2; break; }
      PyObject* s = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(data + pos + 8), (Py_ssize_t)len, "strict");
      if (!s) {
        PyErr_Clear();
        status = 3;
        break;
      }
      out.append(py::reinterpret_steal<py::object>(s));
      pos += 8 + (int64_t)len;
    }
    return py::make_tuple(out, pos, status, at);
  }, py::arg("buf"), py::arg("pos"), py::arg("n"),
     "(strings, end position, status, offset of the failing string): status 0 ok, 1 truncated length, "
     "2 length past the end, 3 invalid UTF-8");
}

}  // namespace ninestep
