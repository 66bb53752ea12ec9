#include "common/cuda/cuda_kv_pages.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "common/check.h"
#include "common/cuda/cuda_check.h"
#include "common/model/dtype.h"

namespace treepo::cuda {

Result<std::unique_ptr<CudaKvPages>> CudaKvPages::Create(const DeviceContext* ctx,
                                                         const compute::KvShape& shape) {
  if (shape.n_layers < 1 || shape.num_pages < 1 || shape.page_size < 1 || shape.kv_dim < 1) {
    return InvalidArgument("cuda backend: every dimension of the KV shape must be positive");
  }
  if (static_cast<int64_t>(shape.num_pages) * shape.page_size >
      std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("cuda backend: num_pages * page_size must stay below 2^31 slots");
  }
  std::unique_ptr<CudaKvPages> kv(new CudaKvPages(ctx, shape));
  ctx->MakeCurrent();
  const size_t bytes =
      2 * static_cast<size_t>(shape.n_layers) * kv->LayerElems() * sizeof(__nv_bfloat16);
  Result<DeviceBuffer> pool = DeviceBuffer::Allocate(bytes);
  if (!pool.ok()) {
    return Status(pool.status().code(), "cuda backend: the KV pool (" +
                                            std::to_string(shape.num_pages) + " pages) " +
                                            pool.status().message());
  }
  kv->pool_ = std::move(pool).value();
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemset(kv->pool_.data(), 0, bytes));
  // The memset runs on the legacy stream; the backend's stream does not wait for it.
  TREEPO_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  TREEPO_ASSIGN_OR_RETURN(kv->staging_,
                          PinnedBuffer::Allocate(2 * static_cast<size_t>(shape.n_layers) *
                                                 kv->PageElems() * sizeof(__nv_bfloat16)));
  return kv;
}

size_t CudaKvPages::LayerElems() const {
  return static_cast<size_t>(shape_.num_pages) * shape_.page_size * shape_.kv_dim;
}

size_t CudaKvPages::PageElems() const {
  return static_cast<size_t>(shape_.page_size) * shape_.kv_dim;
}

__nv_bfloat16* CudaKvPages::K(int layer) const {
  return pool_.as<__nv_bfloat16>() + static_cast<size_t>(layer) * LayerElems();
}

__nv_bfloat16* CudaKvPages::V(int layer) const {
  return pool_.as<__nv_bfloat16>() + static_cast<size_t>(shape_.n_layers + layer) * LayerElems();
}

void CudaKvPages::Copy2D(void* dst, size_t dpitch, const void* src, size_t spitch, int rows,
                         cudaMemcpyKind kind) const {
  const size_t width = static_cast<size_t>(rows) * shape_.kv_dim * sizeof(__nv_bfloat16);
  if (width == 0) return;
  const size_t height = 2 * static_cast<size_t>(shape_.n_layers);
  if (std::max(dpitch, spitch) <= ctx_->props().memPitch) {
    TREEPO_CUDA_CHECK(
        cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, ctx_->stream()));
    return;
  }
  // A layer's array is larger than the device's largest pitch: one copy per layer and K/V.
  for (size_t i = 0; i < height; ++i) {
    TREEPO_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + i * dpitch,
                                      static_cast<const char*>(src) + i * spitch, width, kind,
                                      ctx_->stream()));
  }
}

void CudaKvPages::CopyRows(int32_t from, int32_t to, int rows) {
  TREEPO_CHECK(from >= 0 && from < shape_.num_pages) << "page " << from;
  TREEPO_CHECK(to >= 0 && to < shape_.num_pages) << "page " << to;
  TREEPO_CHECK(rows >= 0 && rows <= shape_.page_size) << "rows " << rows;
  if (from == to || rows == 0) return;
  ctx_->MakeCurrent();
  const size_t pitch = LayerElems() * sizeof(__nv_bfloat16);
  Copy2D(K(0) + static_cast<size_t>(to) * PageElems(), pitch,
         K(0) + static_cast<size_t>(from) * PageElems(), pitch, rows, cudaMemcpyDeviceToDevice);
}

void CudaKvPages::Read(int32_t page, float* out) const {
  TREEPO_CHECK(page >= 0 && page < shape_.num_pages) << "page " << page;
  ctx_->MakeCurrent();
  const size_t page_bytes = PageElems() * sizeof(__nv_bfloat16);
  Copy2D(staging_.data(), page_bytes, K(0) + static_cast<size_t>(page) * PageElems(),
         LayerElems() * sizeof(__nv_bfloat16), shape_.page_size, cudaMemcpyDeviceToHost);
  ctx_->Sync();
  const uint16_t* bits = staging_.as<uint16_t>();
  const size_t n = 2 * static_cast<size_t>(shape_.n_layers) * PageElems();
  for (size_t i = 0; i < n; ++i) out[i] = model::Bf16ToFloat(bits[i]);
}

void CudaKvPages::Write(int32_t page, const float* in) {
  TREEPO_CHECK(page >= 0 && page < shape_.num_pages) << "page " << page;
  ctx_->MakeCurrent();
  ctx_->Sync();  // the staging buffer may still feed an earlier asynchronous copy
  uint16_t* bits = staging_.as<uint16_t>();
  const size_t n = 2 * static_cast<size_t>(shape_.n_layers) * PageElems();
  for (size_t i = 0; i < n; ++i) bits[i] = model::FloatToBf16(in[i]);
  const size_t page_bytes = PageElems() * sizeof(__nv_bfloat16);
  Copy2D(K(0) + static_cast<size_t>(page) * PageElems(), LayerElems() * sizeof(__nv_bfloat16),
         staging_.data(), page_bytes, shape_.page_size, cudaMemcpyHostToDevice);
  ctx_->Sync();
}

}  // namespace treepo::cuda
