// The host half of the CUDA training backend (cuda_train.cc), plain C++ tested on any machine
// (tests/gpu/cuda_train_host_test.cc): a TrainBatch checked like TrainModel checks it and
// flattened into the int32 arrays the kernels read, and the scalars of one AdamW step.
#pragma once

#include <cstdint>
#include <vector>

#include "common/compute/train_backend.h"
#include "common/model/config.h"
#include "common/status.h"

namespace treepo::cuda {

struct TrainPlan {
  int rows = 0;
  std::vector<int> seq_starts, seq_lens;
  // [3 * rows]: tokens, then positions (within the sequence), then targets (the next token of
  // the sequence, -1 for its last row), in one buffer so that they go to the device in one copy.
  std::vector<int32_t> ints;
};

// kUnimplemented for a tree-packed batch (parents given); kInvalidArgument, with TrainModel's
// messages, for an empty batch, a length outside [1, max_seq_len], lengths that do not add up
// to the tokens and ids outside the vocabulary. `plan` is reused.
Status PlanTrainBatch(const compute::TrainBatch& batch, const model::ModelConfig& config,
                      TrainPlan* plan);

// The per-step scalars of the AdamW kernel (train_kernels.h).
struct AdamWArgs {
  float scale = 1.0f;  // gradient clip factor
  float beta1 = 0.9f, beta2 = 0.999f;
  float step_size = 0.0f;     // lr / (1 - beta1^t)
  float inv_sqrt_bc2 = 1.0f;  // 1 / sqrt(1 - beta2^t)
  float eps = 1e-8f;
  float decay = 1.0f;  // 1 - lr * weight_decay
};

// Step `step` (1-based) with a gradient whose sum of squares is `sum_squares`: the scalars
// exactly as learner::AdamW::Step computes them, and the step's statistics.
AdamWArgs PlanAdamWStep(const compute::AdamWOptions& o, int64_t step, double sum_squares,
                        compute::StepStats* stats);

}  // namespace treepo::cuda
