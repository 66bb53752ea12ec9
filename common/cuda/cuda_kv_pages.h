// The paged KV pool in device memory, bf16. All layers' K arrays, then all layers' V arrays,
// each [num_pages, page_size, kv_dim] (the CPU pool's layout, common/cpu/kv_view.h), in one
// allocation: a page of every layer is then one strided 2-D copy, in exactly the migration
// order of KvPages::Read (layer 0..n-1 K, then V).
#pragma once

#include <cuda_bf16.h>

#include <memory>

#include "common/compute/decoder_backend.h"
#include "common/cuda/device.h"

namespace treepo::cuda {

class CudaKvPages final : public compute::KvPages {
 public:
  // A zeroed pool on ctx's device. kResourceExhausted when it does not fit. `ctx` outlives it.
  static Result<std::unique_ptr<CudaKvPages>> Create(const DeviceContext* ctx,
                                                     const compute::KvShape& shape);

  const compute::KvShape& shape() const override { return shape_; }
  // A device-to-device copy on the backend's stream (ordered before the next forward).
  void CopyRows(int32_t from, int32_t to, int rows) override;
  // Synchronous; the fp32 values are the bf16 ones widened (Read) or rounded to nearest even
  // (Write).
  void Read(int32_t page, float* out) const override;
  void Write(int32_t page, const float* in) override;

  // Layer `layer`'s K or V, [num_pages, page_size, kv_dim].
  __nv_bfloat16* K(int layer) const;
  __nv_bfloat16* V(int layer) const;
  size_t bytes() const { return pool_.bytes(); }

 private:
  CudaKvPages(const DeviceContext* ctx, const compute::KvShape& shape) : ctx_(ctx), shape_(shape) {}
  size_t LayerElems() const;
  size_t PageElems() const;  // one page of one layer's K (or V)
  // A strided copy of `rows` rows of page `page` over every layer's K and V.
  void Copy2D(void* dst, size_t dpitch, const void* src, size_t spitch, int rows,
              cudaMemcpyKind kind) const;

  const DeviceContext* ctx_;
  compute::KvShape shape_;
  DeviceBuffer pool_;
  mutable PinnedBuffer staging_;  // one page of every layer, bf16
};

}  // namespace treepo::cuda
