// Helpers of the CUDA backend's tests: skipping without a device, host <-> device copies.
#pragma once

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "common/check.h"
#include "common/cuda/cuda_check.h"
#include "common/cuda/device.h"
#include "common/model/dtype.h"

// Skips the test on a machine without a usable CUDA device.
#define TREEPO_SKIP_WITHOUT_CUDA_DEVICE()                                               \
  do {                                                                                  \
    if (::treepo::cuda::DeviceCount() == 0) {                                           \
      GTEST_SKIP() << "no CUDA device (this test runs on a GPU: scripts/gpu-check.sh)"; \
    }                                                                                   \
  } while (0)

namespace treepo::cuda::testing {

template <typename T>
DeviceBuffer ToDevice(const std::vector<T>& v) {
  Result<DeviceBuffer> b = DeviceBuffer::Allocate(std::max<size_t>(v.size(), 1) * sizeof(T));
  TREEPO_CHECK(b.ok()) << b.status().ToString();
  if (!v.empty()) {
    TREEPO_CUDA_CHECK(
        cudaMemcpy(b->data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  return std::move(b).value();
}

template <typename T>
std::vector<T> FromDevice(const DeviceBuffer& b, size_t n) {
  TREEPO_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> v(n);
  TREEPO_CUDA_CHECK(cudaMemcpy(v.data(), b.data(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

inline std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<uint16_t> ToBf16Bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = model::FloatToBf16(v[i]);
  return out;
}

inline std::vector<float> Bf16BitsToFloat(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = model::Bf16ToFloat(v[i]);
  return out;
}

// The value rounded to bf16 and back.
inline float RoundBf16(float x) { return model::Bf16ToFloat(model::FloatToBf16(x)); }

}  // namespace treepo::cuda::testing
