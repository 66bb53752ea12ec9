// A learner algorithm from a plug-in (TreepoLearnerPlugin, docs/plugins.md): the plug-in
// brings the loss and the optimiser, this host brings the model. Per step it hands the
// plug-in the batch, the weights as named mutable tensors, and the host's services: forward
// (per response token log-probs), backward (the gradient of a per-token weighted sum of them,
// summed over data-parallel ranks) and a scalar all-reduce. Both passes run the learner's
// training backend (TrainerOptions::backend, learner/train_backend.h) on the rows of BuildRows
// in MicroBatches (tree-packed when TrainerOptions::tree_packing and the backend runs them),
// the same numerics as the built-in trainer.
//
// Not thread-safe; one owner (the plug-in's step runs on the caller's thread).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/plugin/treepo_plugin.h"
#include "learner/service/learner_algorithm.h"
#include "learner/service/trainer.h"
#include "learner/train_backend.h"

namespace treepo::learner {

class PluginLearner : public LearnerAlgorithm {
 public:
  // Calls the plug-in's create: kInvalidArgument with its reason when it fails.
  static Result<std::unique_ptr<LearnerAlgorithm>> Create(const TreepoLearnerPlugin& plugin,
                                                          std::string name,
                                                          model::ModelWeights weights,
                                                          const LearnerAlgorithmOptions& o);
  ~PluginLearner() override;
  PluginLearner(const PluginLearner&) = delete;
  PluginLearner& operator=(const PluginLearner&) = delete;

  std::string_view name() const override { return name_; }
  // kInternal with the plug-in's reason when its step fails.
  Result<TrainStepMetrics> Step(const LearnerBatch& batch) override;
  const model::ModelWeights& weights() const override { return *weights_; }
  WeightVersion version() const override { return version_; }
  Status set_collective(collective::Collective* collective) override;
  // The plug-in's save_state / load_state (nothing when it has none).
  Status SaveState(const std::string& dir) const override;
  Status LoadState(const std::string& dir) override;

 private:
  PluginLearner(const TreepoLearnerPlugin& plugin, std::string name, model::ModelWeights weights,
                const LearnerAlgorithmOptions& o);

  // The host services of TreepoLearnerStep (ctx->host is the PluginLearner).
  static int Forward(const TreepoLearnerStep* ctx, float* logp_out);
  static int Backward(const TreepoLearnerStep* ctx, const float* coeff, float** grads);
  static int AllReduceSum(const TreepoLearnerStep* ctx, double* values, size_t n);
  // Records `st` as the step's failure (in ctx->error too); 0 when ok, else 1.
  int Report(const TreepoLearnerStep* ctx, const Status& st);

  Status RunForward(float* logp_out);
  Status RunBackward(const float* coeff, float** grads);

  TreepoLearnerPlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
  TrainerOptions options_;
  int rank_ = 0, world_size_ = 1;
  std::shared_ptr<model::ModelWeights> weights_;    // the plug-in changes them in place
  std::unique_ptr<compute::TrainBackend> backend_;  // gradients of weights_
  bool packed_ = false;                             // tree-packed micro-batches
  WeightVersion version_;
  std::vector<TreepoTensor> tensors_;  // views of weights_
  void* instance_ = nullptr;
  collective::Collective* collective_ = nullptr;  // world_size > 1 only

  // During a step: the batch, each sequence's offset into the per-token arrays, the plan.
  const LearnerBatch* batch_ = nullptr;
  std::vector<size_t> token_offset_;
  std::vector<std::vector<size_t>> micro_;
  std::string host_error_;
};

}  // namespace treepo::learner
