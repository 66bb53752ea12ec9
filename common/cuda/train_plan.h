// The host half of the CUDA training backend (cuda_train.cc), plain C++ tested on any machine
// (tests/gpu/cuda_train_host_test.cc): a TrainBatch (plain or tree-packed) checked like
// TrainModel checks it and flattened into the int32 arrays the kernels read, and the scalars
// of one AdamW step.
#pragma once

#include <cstdint>
#include <vector>

#include "common/compute/train_backend.h"
#include "common/model/config.h"
#include "common/status.h"

namespace treepo::cuda {

struct TrainPlan {
  int rows = 0;
  bool tree = false;  // tree-packed (TrainBatch::parents given)
  std::vector<int> seq_starts, seq_lens;
  // Offsets into `ints` of the arrays (each [rows] unless said otherwise), in one buffer so
  // that they go to the device in one copy:
  //   tokens;
  //   positions: within the sequence, or (tree) the depth;
  //   out_src, out_tok: output o (logp[o], entropy[o]) is log p(out_tok[o]) under the
  //     distribution at row out_src[o] (-1: no output, 0). Plain: o = r predicts the next token
  //     (src r, token r + 1; -1 for a sequence's last row); tree: o = r is the prediction of
  //     r itself (src its parent; -1 at a root);
  //   tree only, global row indices: key_off [rows + 1] / key_idx: the rows each row attends
  //     to (its ancestors root first, then itself); att_off [rows + 1] / att_idx: the rows
  //     that attend to each row (itself and its descendants).
  size_t tokens = 0, positions = 0, out_src = 0, out_tok = 0;
  size_t key_off = 0, key_idx = 0, att_off = 0, att_idx = 0;
  int max_keys = 0;  // the longest key list (tree), or the longest sequence
  std::vector<int32_t> ints;
};

// Checks `batch` as TrainModel does (kInvalidArgument with its messages: an empty batch, a
// plain sequence longer than max_seq_len, lengths that do not add up to the tokens, parents
// of the wrong count or not pointing back, a depth past max_seq_len, ids outside the
// vocabulary) and fills `plan` (reused).
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
