// Learner algorithms: what the learner process (RunLearner) trains with. An algorithm owns
// the trainable weights and its optimiser state, takes one step per LearnerBatch, and saves
// and restores that optimiser state in checkpoints; the process around it publishes the
// weights, reports metrics and writes the weights into checkpoints.
//
// Algorithms are chosen by name (config key learner.algorithm) from Learners(), a registry
// that holds the built-in "ppo_clip" (Trainer: the clipped policy loss with AdamW, trainer.h)
// and what plug-ins add (TreepoLearnerPlugin, docs/plugins.md).
//
// Not thread-safe; one owner.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/collective/collective.h"
#include "common/ids.h"
#include "common/model/weights.h"
#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"
#include "learner/service/train_batch.h"

namespace treepo::learner {

struct TrainerOptions;

// Metrics of one step (TrainDone carries them by these names; see ToMetrics).
struct TrainStepMetrics {
  double loss = 0.0;           // mean over optimiser steps
  double clip_fraction = 0.0;  // token-weighted over every micro-batch
  double ratio_mean = 0.0;
  double ratio_max = 0.0;
  double kl_mean = 0.0;
  double entropy_mean = 0.0;
  double advantage_mean = 0.0;
  double advantage_std = 0.0;
  double logp_mismatch = 0.0;  // mean |recomputed logp_old - rollout logp| per token
  double logp_mismatch_max = 0.0;
  double grad_norm = 0.0;  // mean global norm before clipping over optimiser steps
  double lr = 0.0;         // of the last optimiser step
  int64_t tokens = 0;      // response tokens trained on (per epoch)
  int64_t sequences = 0;
  int64_t optimizer_steps = 0;
  double train_s = 0.0;
};

class LearnerAlgorithm {
 public:
  virtual ~LearnerAlgorithm() = default;

  virtual std::string_view name() const = 0;
  // One step on `batch`; on success the weights are version() + 1 (also for a batch with no
  // token, so versions count steps). On failure the version stays.
  virtual Result<TrainStepMetrics> Step(const LearnerBatch& batch) = 0;
  virtual const model::ModelWeights& weights() const = 0;
  virtual WeightVersion version() const = 0;
  // Ranks to reduce over (null or world_size 1: this learner alone). Must outlive the
  // algorithm. Called once, before the first Step.
  virtual Status set_collective(collective::Collective* collective) = 0;
  // Writes the optimiser state into the checkpoint directory `dir` (being written; the
  // weights go there too) / reads it back from a checkpoint on a resume.
  virtual Status SaveState(const std::string& dir) const = 0;
  virtual Status LoadState(const std::string& dir) = 0;
};

// What an algorithm is made from besides the weights.
struct LearnerAlgorithmOptions {
  // The learner.* training keys: all of them for the built-in; a plug-in uses
  // micro_batch_tokens and tree_packing (the host's forward and backward passes).
  const TrainerOptions* trainer = nullptr;
  std::string settings;   // learner.algorithm_options, verbatim
  WeightVersion version;  // of the weights it starts from
  int rank = 0;           // data-parallel rank
  int world_size = 1;
};

using LearnerRegistry =
    Registry<LearnerAlgorithm, model::ModelWeights, const LearnerAlgorithmOptions&>;
// The process's registry. The built-in is registered on first use: "ppo_clip" (the default).
LearnerRegistry& Learners();
inline constexpr char kDefaultLearnerAlgorithm[] = "ppo_clip";

// Registers a plug-in's learner (a C descriptor, copied) under its name: kInvalidArgument
// without create or step, kAlreadyExists for a taken name.
Status RegisterLearnerPlugin(const TreepoLearnerPlugin& plugin);

// The algorithm `name` from Learners() (kInvalidArgument listing the names when unknown).
Result<std::unique_ptr<LearnerAlgorithm>> MakeLearnerAlgorithm(std::string_view name,
                                                               model::ModelWeights weights,
                                                               const LearnerAlgorithmOptions& o);

}  // namespace treepo::learner
