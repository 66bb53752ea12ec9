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

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Result<DeviceBuffer> DeviceBuffer::Allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  const cudaError_t err = cudaMalloc(&b.ptr_, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    b.ptr_ = nullptr;
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    const Status s = CudaStatus(err, "cudaMalloc", __FILE__, __LINE__);
    return Status(s.code(), s.message() + " (asked for " + std::to_string(bytes >> 20) + " MiB, " +
                                std::to_string(free_bytes >> 20) + " MiB free of " +
                                std::to_string(total_bytes >> 20) + " MiB)");
  }
  b.bytes_ = bytes;
  return b;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Result<PinnedBuffer> PinnedBuffer::Allocate(size_t bytes) {
  PinnedBuffer b;
  if (bytes == 0) return b;
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMallocHost(&b.ptr_, bytes));
  b.bytes_ = bytes;
  return b;
}

void GrowDevice(DeviceBuffer* buf, size_t bytes) {
  if (buf->bytes() >= bytes) return;
  *buf = DeviceBuffer();  // free first: the old contents are not kept
  Result<DeviceBuffer> b = DeviceBuffer::Allocate(bytes + bytes / 4);
  TREEPO_CHECK(b.ok()) << b.status().ToString();
  *buf = std::move(b).value();
}

void GrowPinned(PinnedBuffer* buf, size_t bytes) {
  if (buf->bytes() >= bytes) return;
  *buf = PinnedBuffer();
  Result<PinnedBuffer> b = PinnedBuffer::Allocate(bytes + bytes / 4);
  TREEPO_CHECK(b.ok()) << b.status().ToString();
  *buf = std::move(b).value();
}

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
