// The CPU decoder backend: fp32 pages in host memory and the batch-invariant forward of
// common/cpu/forward.h. The reference every other backend is checked against.
#pragma once

#include <memory>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "common/cpu/kv_view.h"

namespace treepo::compute {

// fp32 pages in host memory, one array per layer for K and one for V.
class HostKvPages final : public KvPages {
 public:
  // Zeroed storage: 2 * n_layers * num_pages * page_size * kv_dim floats. Precondition:
  // every dimension positive.
  explicit HostKvPages(const KvShape& shape);

  const KvShape& shape() const override { return shape_; }
  void CopyRows(int32_t from, int32_t to, int rows) override;
  void Read(int32_t page, float* out) const override;
  void Write(int32_t page, const float* in) override;

  // The storage as the CPU forward reads it (valid while this object lives).
  cpu::KvView View() const;
  // [page_size, kv_dim] of K or V of `page` in `layer`.
  const float* KPage(int layer, int32_t page) const;
  const float* VPage(int layer, int32_t page) const;

 private:
  size_t PageOffset(int32_t page) const;

  KvShape shape_;
  std::vector<std::vector<float>> k_, v_;  // [n_layers][num_pages * page_size * kv_dim]
  std::vector<float*> k_ptrs_, v_ptrs_;
};

// Precondition: weights validated and complete, kv dimensions matching the weights' config.
std::unique_ptr<DecoderBackend> CreateCpuDecoder(std::shared_ptr<const model::ModelWeights> weights,
                                                 const KvShape& kv);

}  // namespace treepo::compute
