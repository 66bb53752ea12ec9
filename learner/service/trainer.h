// One RL training step on a LearnerBatch (TREEPO_SPEC.md section 6): recompute logp_old with
// the weights that sampled each token, then per mini-batch (whole trees) accumulate the
// clipped policy loss's gradient over micro-batches and take one AdamW step.
//
// Weight versions: the trainer's weights are `version()`; a step makes version() + 1. It keeps
// copies of the last `max_staleness` versions so that tokens sampled by an older version
// (asynchronous mode) get their logp_old from the weights that sampled them.
//
// Data parallel (set_collective with world_size > 1): every rank steps on its own shard of
// the batch; the mini-batch token count (the loss's denominator) and the gradient are summed
// over ranks before each optimiser step, so every rank takes the same step as one trainer on
// the whole batch would, and the weights stay identical. Each rank takes exactly one
// optimiser step per epoch (mini_batch_queries must be 0), also with an empty shard.
//
// Not thread-safe; one owner.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/collective/collective.h"
#include "common/compute/train_backend.h"
#include "common/ids.h"
#include "common/model/weights.h"
#include "common/status.h"
#include "learner/adamw.h"
#include "learner/loss.h"
#include "learner/model_train.h"
#include "learner/service/learner_algorithm.h"
#include "learner/service/train_batch.h"
#include "learner/train_backend.h"
#include "protocols/messages.h"

namespace treepo::learner {

struct TrainerOptions {
  AdamWOptions adamw;
  PolicyLossOptions loss;
  int mini_batch_queries = 0;     // trees per optimiser step; 0 = the whole batch in one step
  int epochs = 1;                 // passes over the batch (>= 1)
  int micro_batch_tokens = 2048;  // rows per forward/backward (>= 1): sequence tokens, or
                                  // with tree_packing whole trees' packed rows; a longer
                                  // sequence (tree) runs alone
  int max_staleness = 0;          // older versions kept for logp_old (>= 0)
  // On-policy batches (every token sampled by the current weights, one mini-batch, one epoch)
  // take logp_old from the training forward pass instead of a separate one: the same numbers,
  // one forward pass fewer. false always runs the separate pass.
  bool reuse_forward_for_old_logp = true;
  // Train each tree as one packed sequence: every distinct token prefix of its leaves once,
  // each token attending to its own path only (TrainModel's tree mode). The same loss and
  // gradients as one sequence per leaf, with fewer rows; false trains one sequence per leaf.
  bool tree_packing = true;
  // Where the forward, backward and AdamW run (learner/train_backend.h): cpu | cuda | auto
  // (cuda when this build has it and a device is present). With a backend that does not run
  // tree-packed batches (runs_tree_batches() false) the trainer trains one sequence per leaf
  // instead: the same loss and gradients, more rows.
  // The library's default is cpu (exact, what tests compare against); the commands' default is
  // auto (configs/default.toml learner.backend).
  std::string backend = "cpu";
  int device = 0;  // cuda: device ordinal (data-parallel ranks: the first; RankDevice)

  Status Validate() const;
};

// The rows of a micro-batch (the sequences `seqs` of `batch`): one sequence per leaf,
// concatenated, or (packed) per tree the leaves' token trie with parents (TrainBatch's tree
// mode). out[k][j]: the logp/entropy index of response token j of sequence seqs[k].
struct Rows {
  std::vector<int32_t> tokens;
  std::vector<int> seq_lens;
  std::vector<int> parents;  // packed only
  std::vector<std::vector<size_t>> out;
};
Rows BuildRows(const LearnerBatch& batch, const std::vector<size_t>& seqs, bool packed);

// Groups the sequences `seqs` of `batch` into micro-batches of at most micro_batch_tokens rows
// (a longer unit runs alone), keeping each tree's sequences together when `packed`.
std::vector<std::vector<size_t>> MicroBatches(const LearnerBatch& batch,
                                              const std::vector<size_t>& seqs,
                                              int micro_batch_tokens, bool packed);

// The built-in learner algorithm "ppo_clip".
class Trainer : public LearnerAlgorithm {
 public:
  // Refuses invalid options (kInvalidArgument).
  static Result<std::unique_ptr<Trainer>> Create(model::ModelWeights weights,
                                                 const TrainerOptions& options,
                                                 WeightVersion version);

  // One step; on success the weights are version() + 1. A batch with no token changes
  // nothing and returns zero metrics (the version still advances, so versions count steps).
  // kFailedPrecondition when a token's sampling version is neither current nor kept.
  Result<TrainStepMetrics> Step(const LearnerBatch& batch) override;

  std::string_view name() const override { return kDefaultLearnerAlgorithm; }
  const model::ModelWeights& weights() const override { return backend_->weights(); }
  WeightVersion version() const override { return version_; }
  compute::TrainBackend& backend() { return *backend_; }
  // Whether micro-batches are tree-packed: tree_packing, where the backend runs such batches.
  bool tree_packed() const { return packed_; }
  // Ranks to reduce over (null or world_size 1: this trainer alone). Must outlive the trainer.
  // kInvalidArgument when world_size > 1 and mini_batch_queries > 0.
  Status set_collective(collective::Collective* collective) override;
  // The AdamW state, as optimizer.safetensors (kOptimizerFile) in `dir`.
  Status SaveState(const std::string& dir) const override;
  Status LoadState(const std::string& dir) override;

 private:
  Trainer(std::unique_ptr<compute::TrainBackend> backend, const TrainerOptions& options,
          WeightVersion version);

  // Fills logp_old (per sequence, per response token) with the sampling version's weights.
  Status RecomputeOldLogp(const LearnerBatch& batch, std::vector<std::vector<float>>* logp_old);
  std::vector<std::vector<size_t>> MicroBatches(const LearnerBatch& batch,
                                                const std::vector<size_t>& seqs) const {
    return learner::MicroBatches(batch, seqs, options_.micro_batch_tokens, packed_);
  }

  TrainerOptions options_;
  std::unique_ptr<compute::TrainBackend> backend_;  // the weights, gradient and AdamW state
  bool packed_ = false;
  WeightVersion version_;
  std::map<uint64_t, std::shared_ptr<const model::ModelWeights>> history_;
  std::unique_ptr<compute::TrainBackend> reference_;  // initial weights when kl_coef > 0
  collective::Collective* collective_ = nullptr;      // world_size > 1 only
};

// The TrainDone metric list: name/value pairs of every field above.
std::vector<protocols::Metric> ToMetrics(const TrainStepMetrics& m);

}  // namespace treepo::learner
