// Argument and bounds checks. A failed check throws ninestep::ArgError, which the bindings
// turn into a Python ValueError. Nothing handed to a kernel is trusted without one.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ninestep {

struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

[[noreturn]] inline void fail(const std::string& msg) { throw ArgError(msg); }

#define NS_CHECK(cond, msg)                          \
  do {                                               \
    if (!(cond)) ::ninestep::fail(std::string(msg)); \
  } while (0)

// a * b without overflow, for sizes: fails if the product does not fit in int64.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) fail(std::string(what) + ": size overflow");
  return r;
}

}  // namespace ninestep
