// AdamW over the flat parameter buffer (TREEPO_SPEC.md section 6), with linear warm-up,
// global-norm gradient clipping and state save/load.
//
// Weight decay applies to matrices (embeddings, projections, lm_head) only; RMSNorm weights
// and q/k/v biases (1-D tensors) are not decayed (`decay_vectors = false`). Decaying norm
// weights pulls them towards 0 rather than their natural value 1, which is why most LLM
// recipes exclude them; PyTorch's plain AdamW decays everything (set decay_vectors = true).
//
// Gradient accumulation: TrainModel::Backward adds into one gradient buffer over the
// micro-batches of a mini-batch (the loss divides by the mini-batch's token count); Step then
// consumes the sum and zeroes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/compute/train_backend.h"
#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::learner {

using AdamWOptions = compute::AdamWOptions;
using StepStats = compute::StepStats;

class AdamW {
 public:
  // CHECKs options.Validate(): validate outside input first.
  AdamW(const model::ParamLayout& layout, const AdamWOptions& options);

  // Learning rate at 1-based step `step`: lr * step / warmup_steps during warm-up, then lr,
  // or the cosine decay towards lr * min_lr_ratio when decay_steps > warmup_steps.
  double LearningRate(int64_t step) const;

  // One update of `params` (layout.total()) from `grad` (same size), which is zeroed after.
  StepStats Step(float* params, float* grad);

  int64_t step() const { return step_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }

  // Safetensors file with tensors "m" and "v" ([total]) and metadata step, num_params.
  Status Save(const std::string& path) const;
  // Refuses a file whose sizes do not match this layout (kInvalidArgument) or is malformed.
  Status Load(const std::string& path);

 private:
  AdamWOptions o_;
  std::vector<uint8_t> decay_;  // per parameter: 1 when weight decay applies
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

}  // namespace treepo::learner
