// Integers read from JSON, range-checked. nlohmann's get<int>() narrows silently (1e12 reads
// as -727379968) and get<uint64_t>() of a number past 2^64 (stored as a double) reads as 0 or
// garbage; these helpers return an error naming the field and the range instead.
#pragma once

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/status.h"

namespace treepo {

// Reads `v` as an integer of type T. Accepts JSON integers and numbers written with a
// fraction or exponent whose value is integral (1e3, 7.0) when they fit in T exactly.
// kInvalidArgument naming `what` for any other value.
template <typename T>
Result<T> JsonToInt(const nlohmann::json& v, std::string_view what) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  using Lim = std::numeric_limits<T>;
  const std::string range =
      "[" + std::to_string(Lim::min()) + ", " + std::to_string(Lim::max()) + "]";
  auto out_of_range = [&](const std::string& value) {
    return InvalidArgument(std::string(what) + ": " + value + " is outside " + range);
  };
  if (v.is_number_unsigned()) {
    const uint64_t x = v.get<uint64_t>();
    if (x > static_cast<uint64_t>(Lim::max())) return out_of_range(std::to_string(x));
    return static_cast<T>(x);
  }
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if ((std::is_unsigned_v<T> && x < 0) ||
        (std::is_signed_v<T> && x < static_cast<int64_t>(Lim::min())) ||
        (x > 0 && static_cast<uint64_t>(x) > static_cast<uint64_t>(Lim::max()))) {
      return out_of_range(std::to_string(x));
    }
    return static_cast<T>(x);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) {
      return InvalidArgument(std::string(what) + ": " + v.dump() + " is not an integer");
    }
    // Every double in (min - 1, max + 1) converts exactly; the bounds are powers of two.
    const double lo = static_cast<double>(Lim::min());
    const double hi_exclusive = std::ldexp(1.0, Lim::digits);
    if (d < lo || d >= hi_exclusive) return out_of_range(v.dump());
    return static_cast<T>(d);
  }
  return InvalidArgument(std::string(what) + ": expected an integer, got " +
                         std::string(v.type_name()));
}

// The number `v` as a float; kInvalidArgument when it is not a number or not finite as a
// float (1e39 overflows).
inline Result<float> JsonToFiniteFloat(const nlohmann::json& v, std::string_view what) {
  if (!v.is_number()) {
    return InvalidArgument(std::string(what) + ": expected a number, got " +
                           std::string(v.type_name()));
  }
  const double d = v.get<double>();
  const float f = static_cast<float>(d);
  if (!std::isfinite(d) || !std::isfinite(f)) {
    return InvalidArgument(std::string(what) + ": " + v.dump() + " is not a finite float");
  }
  return f;
}

}  // namespace treepo
