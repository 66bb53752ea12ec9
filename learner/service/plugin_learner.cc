#include "learner/service/plugin_learner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/compute/decoder_backend.h"

namespace treepo::learner {
namespace {

constexpr size_t kErrorCap = 1024;

// The plug-in's message in `buf` (NUL-terminated by contract; cut at the buffer's end anyway).
std::string ErrorText(const std::vector<char>& buf) {
  return std::string(buf.data(), strnlen(buf.data(), buf.size()));
}

}  // namespace

PluginLearner::PluginLearner(const TreepoLearnerPlugin& plugin, std::string name,
                             model::ModelWeights weights, const LearnerAlgorithmOptions& o)
    : d_(plugin),
      name_(std::move(name)),
      options_(*o.trainer),
      rank_(o.rank),
      world_size_(o.world_size),
      weights_(std::make_shared<model::ModelWeights>(std::move(weights))),
      version_(o.version) {
  for (const model::TensorInfo& t : weights_->layout.tensors()) {
    TreepoTensor v{};
    v.name = t.name.c_str();
    v.data = weights_->at(t.offset);
    v.shape = t.shape.data();
    v.ndim = static_cast<int32_t>(t.shape.size());
    v.numel = t.numel;
    tensors_.push_back(v);
  }
}

PluginLearner::~PluginLearner() {
  if (d_.destroy != nullptr && instance_ != nullptr) d_.destroy(instance_);
}

Result<std::unique_ptr<LearnerAlgorithm>> PluginLearner::Create(const TreepoLearnerPlugin& plugin,
                                                                std::string name,
                                                                model::ModelWeights weights,
                                                                const LearnerAlgorithmOptions& o) {
  TREEPO_RETURN_IF_ERROR(o.trainer->Validate());
  if (weights.dtype != model::WeightDtype::kF32 || !weights.complete()) {
    return InvalidArgument("learner algorithm '" + name + "': needs complete fp32 weights");
  }
  std::unique_ptr<PluginLearner> l(
      new PluginLearner(plugin, std::move(name), std::move(weights), o));
  const int device = RankDevice(o.trainer->device, o.rank, compute::CudaDeviceCount());
  auto backend = CreateGradientBackend({o.trainer->backend, device}, l->weights_);
  if (!backend.ok()) return backend.status().WithContext("learner.backend = " + o.trainer->backend);
  l->backend_ = std::move(*backend);
  l->packed_ = o.trainer->tree_packing && l->backend_->runs_tree_batches();
  std::vector<char> error(kErrorCap, '\0');
  TreepoLearnerInit init{};
  init.tensors = l->tensors_.data();
  init.n_tensors = l->tensors_.size();
  init.rank = o.rank;
  init.world_size = o.world_size;
  init.settings = {o.settings.data(), o.settings.size()};
  init.error = error.data();
  init.error_cap = error.size();
  const int rc = plugin.create(plugin.state, &init, &l->instance_);
  if (rc != 0) {
    l->instance_ = nullptr;  // nothing to destroy
    const std::string why = ErrorText(error);
    return InvalidArgument("learner algorithm '" + l->name_ + "': create failed (code " +
                           std::to_string(rc) + ")" + (why.empty() ? "" : ": " + why));
  }
  return std::unique_ptr<LearnerAlgorithm>(std::move(l));
}

Status PluginLearner::set_collective(collective::Collective* collective) {
  collective_ = collective != nullptr && collective->world_size() > 1 ? collective : nullptr;
  return OkStatus();
}

int PluginLearner::Report(const TreepoLearnerStep* ctx, const Status& st) {
  if (st.ok()) return 0;
  host_error_ = st.message();
  if (ctx->error != nullptr && ctx->error_cap > 0) {
    std::snprintf(ctx->error, ctx->error_cap, "%s", host_error_.c_str());
  }
  return 1;
}

Status PluginLearner::RunForward(float* logp_out) {
  std::vector<float> logp;
  TREEPO_RETURN_IF_ERROR(backend_->WeightsChanged());  // the plug-in may have stepped them
  for (const std::vector<size_t>& micro : micro_) {
    const Rows r = BuildRows(*batch_, micro, packed_);
    TREEPO_RETURN_IF_ERROR(backend_->Forward({r.tokens, r.seq_lens, r.parents}, &logp, nullptr));
    for (size_t k = 0; k < micro.size(); ++k) {
      float* out = logp_out + token_offset_[micro[k]];
      for (size_t j = 0; j < r.out[k].size(); ++j) out[j] = logp[r.out[k][j]];
    }
  }
  return OkStatus();
}

Status PluginLearner::RunBackward(const float* coeff, float** grads) {
  TREEPO_RETURN_IF_ERROR(backend_->WeightsChanged());  // the plug-in may have stepped them
  backend_->ZeroGradient();
  std::vector<float> logp, dlogp_rows;
  for (const std::vector<size_t>& micro : micro_) {
    const Rows r = BuildRows(*batch_, micro, packed_);
    TREEPO_RETURN_IF_ERROR(backend_->Forward({r.tokens, r.seq_lens, r.parents}, &logp, nullptr));
    dlogp_rows.assign(r.tokens.size(), 0.0f);
    for (size_t k = 0; k < micro.size(); ++k) {
      const float* c = coeff + token_offset_[micro[k]];
      // A row shared by several paths (tree-packed) gets the sum of their coefficients.
      for (size_t j = 0; j < r.out[k].size(); ++j) dlogp_rows[r.out[k][j]] += c[j];
    }
    TREEPO_RETURN_IF_ERROR(backend_->Backward(dlogp_rows, {}));
  }
  // Host memory: the plug-in reads the gradient there.
  const std::span<float> grad = backend_->GradientOnHost();
  if (collective_ != nullptr) TREEPO_RETURN_IF_ERROR(collective_->AllReduceSum(grad));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    grads[i] = grad.data() + weights_->layout.tensors()[i].offset;
  }
  return OkStatus();
}

int PluginLearner::Forward(const TreepoLearnerStep* ctx, float* logp_out) {
  auto* self = static_cast<PluginLearner*>(ctx->host);
  if (logp_out == nullptr && ctx->n_tokens > 0) {
    return self->Report(ctx, InvalidArgument("forward: logp_out is null"));
  }
  return self->Report(ctx, self->RunForward(logp_out));
}

int PluginLearner::Backward(const TreepoLearnerStep* ctx, const float* coeff, float** grads) {
  auto* self = static_cast<PluginLearner*>(ctx->host);
  if ((coeff == nullptr && ctx->n_tokens > 0) || grads == nullptr) {
    return self->Report(ctx, InvalidArgument("backward: coeff or grads is null"));
  }
  return self->Report(ctx, self->RunBackward(coeff, grads));
}

int PluginLearner::AllReduceSum(const TreepoLearnerStep* ctx, double* values, size_t n) {
  auto* self = static_cast<PluginLearner*>(ctx->host);
  if (self->collective_ == nullptr || n == 0) return 0;
  if (values == nullptr)
    return self->Report(ctx, InvalidArgument("all_reduce_sum: values is null"));
  return self->Report(ctx, self->collective_->AllReduceSum(std::span<double>(values, n)));
}

Result<TrainStepMetrics> PluginLearner::Step(const LearnerBatch& batch) {
  const auto t0 = std::chrono::steady_clock::now();
  // The C view of the batch: pointers into `batch`, which outlives the call.
  std::vector<TreepoLearnerSequence> seqs;
  token_offset_.clear();
  size_t n_tokens = 0;
  std::vector<size_t> all;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const TrainSequence& s = batch.sequences[i];
    TreepoLearnerSequence c{};
    c.tokens = s.tokens.data();
    c.n_tokens = static_cast<int32_t>(s.tokens.size());
    c.prompt_len = s.prompt_len;
    c.rollout_logp = s.rollout_logp.data();
    c.advantages = s.advantages.data();
    c.versions = s.versions.data();
    c.tree = static_cast<uint32_t>(s.tree);
    c.query_id = {s.query_id.data(), s.query_id.size()};
    c.reward = s.reward;
    seqs.push_back(c);
    token_offset_.push_back(n_tokens);
    n_tokens += static_cast<size_t>(s.response_tokens());
    all.push_back(i);
  }
  batch_ = &batch;
  micro_ = MicroBatches(batch, all, options_.micro_batch_tokens, packed_);
  host_error_.clear();

  TreepoLearnerMetrics pm{};
  std::vector<char> error(kErrorCap, '\0');
  TreepoLearnerStep ctx{};
  ctx.host = this;
  ctx.version = version_.value();
  ctx.rank = rank_;
  ctx.world_size = world_size_;
  ctx.sequences = seqs.data();
  ctx.n_sequences = seqs.size();
  ctx.n_tokens = n_tokens;
  ctx.tensors = tensors_.data();
  ctx.n_tensors = tensors_.size();
  ctx.metrics = &pm;
  ctx.forward = &PluginLearner::Forward;
  ctx.backward = &PluginLearner::Backward;
  ctx.all_reduce_sum = &PluginLearner::AllReduceSum;
  ctx.error = error.data();
  ctx.error_cap = error.size();
  const int rc = d_.step(instance_, &ctx);
  batch_ = nullptr;
  if (rc != 0) {
    std::string why = host_error_.empty() ? ErrorText(error) : host_error_;
    return Internal("learner algorithm '" + name_ + "': step failed (code " + std::to_string(rc) +
                    ")" + (why.empty() ? "" : ": " + why));
  }

  TrainStepMetrics m;
  m.loss = pm.loss;
  m.grad_norm = pm.grad_norm;
  m.lr = pm.lr;
  m.optimizer_steps = pm.optimizer_steps;
  m.advantage_mean = batch.advantage_mean;
  m.advantage_std = batch.advantage_std;
  m.tokens = batch.response_tokens;
  m.sequences = static_cast<int64_t>(batch.sequences.size());
  version_ = WeightVersion(version_.value() + 1);
  m.train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

Status PluginLearner::SaveState(const std::string& dir) const {
  if (d_.save_state == nullptr) return OkStatus();
  const int rc = d_.save_state(instance_, dir.c_str());
  if (rc != 0) {
    return DataLoss("learner algorithm '" + name_ + "': save_state(" + dir + ") failed with code " +
                    std::to_string(rc));
  }
  return OkStatus();
}

Status PluginLearner::LoadState(const std::string& dir) {
  if (d_.load_state == nullptr) return OkStatus();
  const int rc = d_.load_state(instance_, dir.c_str());
  if (rc != 0) {
    return DataLoss("learner algorithm '" + name_ + "': load_state(" + dir + ") failed with code " +
                    std::to_string(rc));
  }
  return OkStatus();
}

}  // namespace treepo::learner
