// Element types of stored weights and their conversions to and from fp32.
//
// A model's matrices may stay in the 16-bit type of its checkpoint (bf16 or f16) and be widened
// to fp32 inside the kernels: both widen exactly, so a product over 16-bit weights equals the
// same product over their fp32 widening, bit for bit.
#pragma once

#include <bit>
#include <cstdint>

namespace treepo::model {

enum class WeightDtype : uint8_t { kF32, kBF16, kF16 };

inline const char* DtypeName(WeightDtype d) {
  return d == WeightDtype::kF32 ? "F32" : d == WeightDtype::kBF16 ? "BF16" : "F16";
}

inline float Bf16ToFloat(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Round to nearest even; NaN stays NaN.
inline uint16_t FloatToBf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float F16ToFloat(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }

// Round to nearest even (values past the f16 range become infinities).
inline uint16_t FloatToF16(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }

inline float HalfToFloat(uint16_t h, WeightDtype d) {
  return d == WeightDtype::kBF16 ? Bf16ToFloat(h) : F16ToFloat(h);
}

inline uint16_t FloatToHalf(float f, WeightDtype d) {
  return d == WeightDtype::kBF16 ? FloatToBf16(f) : FloatToF16(f);
}

}  // namespace treepo::model
