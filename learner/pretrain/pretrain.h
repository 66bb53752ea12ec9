// Next-token-prediction pretraining of a decoder on a fixed corpus of token sequences: the
// base model that RL starts from. Each step draws batch_size sequences (a seeded shuffle of the
// corpus, reshuffled every epoch), runs one TrainModel forward/backward over all of them
// (every linear layer one BLAS GEMM over the batch's rows), and takes one AdamW step on the
// mean negative log-likelihood of the loss tokens.
//
// Deterministic: the same weights, corpus and config give the same result bit for bit (with
// a fixed BLAS thread count).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"
#include "learner/adamw.h"

namespace treepo::learner {

struct PretrainConfig {
  int steps = 100;       // optimiser steps
  int batch_size = 32;   // sequences per step
  uint64_t seed = 1;     // corpus order
  AdamWOptions adamw;    // lr, warm-up, weight decay, clip
  int log_every = 10;    // on_log every N steps and at the last (0: only the last)
  int blas_threads = 0;  // 0: leave OpenBLAS's setting

  Status Validate() const;
};

// One corpus entry: tokens (starting with BOS) and the first token the loss covers. The loss
// is the NLL of tokens[loss_start..] given what precedes them; loss_start = 1 trains on every
// token. Requires 1 <= loss_start < tokens.size() <= max_seq_len.
struct PretrainSequence {
  std::vector<int32_t> tokens;
  int loss_start = 1;
};

struct PretrainLog {
  int step = 0;               // 1-based
  double loss = 0.0;          // mean NLL per loss token, averaged over the steps since the last log
  double lr = 0.0;            // of this step
  double grad_norm = 0.0;     // of this step, before clipping
  double tokens_per_s = 0.0;  // sequence tokens per second since the last log
};

struct PretrainStats {
  double first_loss = 0.0;  // step 1's loss
  double last_loss = 0.0;   // the last log's loss
  int64_t tokens = 0;       // sequence tokens processed
  double wall_s = 0.0;
};

// Trains `weights` in place. kInvalidArgument on a bad config, an empty corpus or a sequence
// that breaks PretrainSequence's contract or holds an id outside the vocabulary (checked
// before the first step, so nothing changes on error). `on_log` may be empty.
Result<PretrainStats> Pretrain(const PretrainConfig& config,
                               const std::vector<PretrainSequence>& corpus,
                               model::ModelWeights* weights,
                               const std::function<void(const PretrainLog&)>& on_log);

}  // namespace treepo::learner
