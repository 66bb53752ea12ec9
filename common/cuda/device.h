// Owned CUDA resources: device memory, pinned host memory, and the per-backend context (the
// device it runs on, its stream, its cuBLAS handle). Each C handle is wrapped once here; the
// destructors release without checking (a failure there has nobody left to tell).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "common/status.h"

namespace treepo::cuda {

// CUDA devices visible to this process; 0 when there is no driver or no device.
int DeviceCount();

// Where a CudaBuffer lives: device memory, or page-locked host memory (fast, asynchronous
// copies to and from the device).
enum class Memory { kDevice, kPinnedHost };

// Memory of a fixed byte size; move-only. Empty (data() == nullptr) when size is 0.
template <Memory kWhere>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  ~CudaBuffer();
  CudaBuffer(CudaBuffer&& o) noexcept;
  CudaBuffer& operator=(CudaBuffer&& o) noexcept;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

  // kResourceExhausted when there are not `bytes` free. Contents undefined.
  static Result<CudaBuffer> Allocate(size_t bytes);

  void* data() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};
using DeviceBuffer = CudaBuffer<Memory::kDevice>;
using PinnedBuffer = CudaBuffer<Memory::kPinnedHost>;

// Grows `buf` to at least `bytes` (contents lost when it grows; a grown buffer gets 25% of
// headroom so that slowly rising sizes do not reallocate every call). CHECKs on failure:
// for the scratch buffers of a forward pass, where running out is not recoverable.
template <Memory kWhere>
void Grow(CudaBuffer<kWhere>* buf, size_t bytes);
inline void GrowDevice(DeviceBuffer* buf, size_t bytes) { Grow(buf, bytes); }
inline void GrowPinned(PinnedBuffer* buf, size_t bytes) { Grow(buf, bytes); }

// The device a backend runs on: made current on creation, one non-blocking stream, one cuBLAS
// handle bound to it. Not thread-safe (one per backend, used by the engine's thread).
class DeviceContext {
 public:
  // kFailedPrecondition for an ordinal out of [0, DeviceCount()) or an unusable device.
  static Result<std::unique_ptr<DeviceContext>> Create(int device);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  const cudaDeviceProp& props() const { return props_; }
  // Makes this context's device current on the calling thread (every entry point calls it:
  // the engine may have touched another device in between).
  void MakeCurrent() const;
  // Waits for the stream; CHECKs that everything on it succeeded.
  void Sync() const;

 private:
  DeviceContext() = default;

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudaDeviceProp props_{};
};

}  // namespace treepo::cuda
