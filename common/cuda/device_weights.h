// The model's weights in device memory, as the CUDA forward reads them: matrices bf16
// (q|k|v and gate|up fused, weight_pack.h), norms, biases and RoPE frequencies fp32.
#pragma once

#include <memory>
#include <vector>

#include "common/cuda/device.h"
#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::cuda {

struct DeviceLayer {
  DeviceBuffer wqkv;                 // bf16 [q_dim + 2 kv_dim, dim]
  DeviceBuffer bqkv;                 // fp32 [q_dim + 2 kv_dim]; empty without qkv_bias
  DeviceBuffer wo;                   // bf16 [dim, q_dim]
  DeviceBuffer w13;                  // bf16 [2 hidden, dim]
  DeviceBuffer w2;                   // bf16 [dim, hidden]
  DeviceBuffer attn_norm, ffn_norm;  // fp32 [dim]
  DeviceBuffer q_norm, k_norm;       // fp32 [head_dim]; empty without qk_norm
};

class DeviceWeights {
 public:
  // Allocates and uploads. kResourceExhausted when the device memory does not hold them.
  static Result<std::unique_ptr<DeviceWeights>> Upload(const model::ModelWeights& w);
  // Uploads new values into the same buffers. kInvalidArgument when `w` has another
  // architecture (any shape or optional tensor differs).
  Status Update(const model::ModelWeights& w);

  const model::ModelConfig& config() const { return config_; }
  const DeviceLayer& layer(int l) const { return layers_[l]; }
  const DeviceBuffer& embed() const { return embed_; }  // bf16 [vocab, dim]
  // bf16 [vocab, dim]: the embedding itself when tied.
  const DeviceBuffer& lm_head() const { return config_.tied_embeddings ? embed_ : lm_head_; }
  const DeviceBuffer& final_norm() const { return final_norm_; }  // fp32 [dim]
  const DeviceBuffer& inv_freq() const { return inv_freq_; }      // fp32 [head_dim / 2]
  size_t bytes() const;

  // The architecture fields that fix the device layout; "" when a and b agree, else the first
  // field that differs ("dim 64 vs 128").
  static std::string ArchitectureDifference(const model::ModelConfig& a,
                                            const model::ModelConfig& b);

 private:
  Status Copy(const model::ModelWeights& w);

  model::ModelConfig config_;
  std::vector<DeviceLayer> layers_;
  DeviceBuffer embed_, lm_head_, final_norm_, inv_freq_;
};

}  // namespace treepo::cuda
