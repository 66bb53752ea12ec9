#include "learner/train_backend.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "learner/model_train.h"

namespace treepo::learner {
namespace {

// TrainModel + AdamW over host buffers: what the trainer ran before the seam, unchanged.
class CpuTrainBackend final : public compute::TrainBackend {
 public:
  // Training: owns the weights.
  CpuTrainBackend(model::ModelWeights weights, const AdamWOptions& adamw)
      : own_(std::make_shared<model::ModelWeights>(std::move(weights))),
        w_(own_),
        model_(own_.get()),
        adamw_(std::in_place, own_->layout, adamw),
        grad_(own_->layout.total(), 0.0f) {}
  // Gradients of the caller's weights.
  explicit CpuTrainBackend(std::shared_ptr<const model::ModelWeights> weights)
      : w_(std::move(weights)), model_(w_.get()) {}  // the gradient on first use

  std::string_view name() const override { return "cpu"; }
  bool runs_tree_batches() const override { return true; }
  const model::ModelWeights& weights() const override { return *w_; }
  Status WeightsChanged() override { return OkStatus(); }

  Status Forward(const compute::TrainBatch& batch, std::vector<float>* logp,
                 std::vector<float>* entropy) override {
    forwarded_ = false;
    TREEPO_RETURN_IF_ERROR(model_.Forward(batch, logp, entropy));
    forwarded_ = true;
    return OkStatus();
  }

  Status Backward(std::span<const float> dlogp, std::span<const float> dentropy) override {
    if (!forwarded_) return FailedPrecondition("train backend: Backward without a Forward");
    const size_t rows = static_cast<size_t>(model_.rows());
    if (dlogp.size() != rows || (!dentropy.empty() && dentropy.size() != rows)) {
      return InvalidArgument("train backend: Backward needs dlogp (and dentropy) of " +
                             std::to_string(rows) + " rows");
    }
    if (grad_.empty()) grad_.assign(w_->layout.total(), 0.0f);
    forwarded_ = false;  // TrainModel's backward uses up what its forward saved
    model_.Backward(dlogp, dentropy, grad_.data());
    return OkStatus();
  }

  std::span<float> GradientOnHost() override {
    if (grad_.empty()) grad_.assign(w_->layout.total(), 0.0f);
    return grad_;
  }
  Status GradientFromHost() override { return OkStatus(); }
  void ZeroGradient() override { std::fill(grad_.begin(), grad_.end(), 0.0f); }

  Result<compute::StepStats> Step() override {
    if (!adamw_) return FailedPrecondition("train backend: created without an optimiser");
    return adamw_->Step(own_->data.data(), grad_.data());
  }
  int64_t optimizer_step() const override { return adamw_ ? adamw_->step() : 0; }
  Status SaveOptimizer(const std::string& path) const override {
    if (!adamw_) return FailedPrecondition("train backend: created without an optimiser");
    return adamw_->Save(path);
  }
  Status LoadOptimizer(const std::string& path) override {
    if (!adamw_) return FailedPrecondition("train backend: created without an optimiser");
    return adamw_->Load(path);
  }

 private:
  std::shared_ptr<model::ModelWeights> own_;      // training only
  std::shared_ptr<const model::ModelWeights> w_;  // the weights computed with
  TrainModel model_;
  std::optional<AdamW> adamw_;
  std::vector<float> grad_;  // layout.total() once used (a forward-only backend has none)
  bool forwarded_ = false;
};

}  // namespace

int RankDevice(int first, int rank, int count) {
  return count > 0 ? (first + rank) % count : first;
}

Result<std::unique_ptr<compute::TrainBackend>> CreateTrainBackend(
    const TrainBackendOptions& options, model::ModelWeights weights, const AdamWOptions& adamw) {
  TREEPO_RETURN_IF_ERROR(adamw.Validate());
  TREEPO_ASSIGN_OR_RETURN(const std::string kind, compute::ResolveBackend(options.kind));
  if (kind == "cuda") {
    return compute::CreateCudaTrainBackend(
        options.device, std::make_shared<const model::ModelWeights>(std::move(weights)), &adamw);
  }
  return std::unique_ptr<compute::TrainBackend>(new CpuTrainBackend(std::move(weights), adamw));
}

Result<std::unique_ptr<compute::TrainBackend>> CreateGradientBackend(
    const TrainBackendOptions& options, std::shared_ptr<const model::ModelWeights> weights) {
  if (weights == nullptr) return InvalidArgument("train backend: no weights");
  TREEPO_ASSIGN_OR_RETURN(const std::string kind, compute::ResolveBackend(options.kind));
  if (kind == "cuda") {
    return compute::CreateCudaTrainBackend(options.device, std::move(weights), nullptr);
  }
  return std::unique_ptr<compute::TrainBackend>(new CpuTrainBackend(std::move(weights)));
}

}  // namespace treepo::learner
