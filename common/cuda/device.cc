#include "common/cuda/device.h"

#include <string>
#include <utility>

#include "common/check.h"
#include "common/cuda/cuda_check.h"

namespace treepo::cuda {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

namespace {

void Free(Memory where, void* ptr) {
  if (ptr == nullptr) return;
  if (where == Memory::kDevice) {
    (void)cudaFree(ptr);
  } else {
    (void)cudaFreeHost(ptr);
  }
}

}  // namespace

template <Memory kWhere>
CudaBuffer<kWhere>::~CudaBuffer() {
  Free(kWhere, ptr_);
}

template <Memory kWhere>
CudaBuffer<kWhere>::CudaBuffer(CudaBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

template <Memory kWhere>
CudaBuffer<kWhere>& CudaBuffer<kWhere>::operator=(CudaBuffer&& o) noexcept {
  if (this != &o) {
    Free(kWhere, ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

template <Memory kWhere>
Result<CudaBuffer<kWhere>> CudaBuffer<kWhere>::Allocate(size_t bytes) {
  CudaBuffer b;
  if (bytes == 0) return b;
  if constexpr (kWhere == Memory::kPinnedHost) {
    TREEPO_CUDA_RETURN_IF_ERROR(cudaMallocHost(&b.ptr_, bytes));
  } else {
    const cudaError_t err = cudaMalloc(&b.ptr_, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      b.ptr_ = nullptr;
      size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      const Status s = CudaStatus(err, "cudaMalloc", __FILE__, __LINE__);
      return Status(s.code(), s.message() + " (asked for " + std::to_string(bytes >> 20) +
                                  " MiB, " + std::to_string(free_bytes >> 20) + " MiB free of " +
                                  std::to_string(total_bytes >> 20) + " MiB)");
    }
  }
  b.bytes_ = bytes;
  return b;
}

template <Memory kWhere>
void Grow(CudaBuffer<kWhere>* buf, size_t bytes) {
  if (buf->bytes() >= bytes) return;
  *buf = CudaBuffer<kWhere>();  // free first: the old contents are not kept
  Result<CudaBuffer<kWhere>> b = CudaBuffer<kWhere>::Allocate(bytes + bytes / 4);
  TREEPO_CHECK(b.ok()) << b.status().ToString();
  *buf = std::move(b).value();
}

template class CudaBuffer<Memory::kDevice>;
template class CudaBuffer<Memory::kPinnedHost>;
template void Grow(DeviceBuffer*, size_t);
template void Grow(PinnedBuffer*, size_t);

Result<std::unique_ptr<DeviceContext>> DeviceContext::Create(int device) {
  const int count = DeviceCount();
  if (count == 0) {
    return FailedPrecondition("backend 'cuda': no CUDA device is visible to this process");
  }
  if (device < 0 || device >= count) {
    return FailedPrecondition("backend 'cuda': device " + std::to_string(device) +
                              " does not exist (" + std::to_string(count) + " visible: 0.." +
                              std::to_string(count - 1) + ")");
  }
  std::unique_ptr<DeviceContext> ctx(new DeviceContext());
  ctx->device_ = device;
  TREEPO_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&ctx->props_, device));
  if (ctx->props_.major < 8) {
    return FailedPrecondition("backend 'cuda': device " + std::to_string(device) + " (" +
                              ctx->props_.name + ", compute capability " +
                              std::to_string(ctx->props_.major) + "." +
                              std::to_string(ctx->props_.minor) +
                              ") has no bf16 tensor cores; the CUDA backend needs 8.0 or newer");
  }
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&ctx->stream_, cudaStreamNonBlocking));
  TREEPO_CUBLAS_RETURN_IF_ERROR(cublasCreate(&ctx->cublas_));
  TREEPO_CUBLAS_RETURN_IF_ERROR(cublasSetStream(ctx->cublas_, ctx->stream_));
  TREEPO_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(ctx->cublas_, CUBLAS_DEFAULT_MATH));
  return ctx;
}

DeviceContext::~DeviceContext() {
  (void)cudaSetDevice(device_);
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  if (cublas_ != nullptr) (void)cublasDestroy(cublas_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
}

void DeviceContext::MakeCurrent() const { TREEPO_CUDA_CHECK(cudaSetDevice(device_)); }

void DeviceContext::Sync() const { TREEPO_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

}  // namespace treepo::cuda
