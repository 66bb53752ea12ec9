#include "common/compute/train_backend.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/model/safetensors.h"
#ifdef TREEPO_HAVE_CUDA
#include "common/cuda/cuda_train.h"
#endif

namespace treepo::compute {

Status PlanTrainRows(const TrainBatch& batch, const model::ModelConfig& c, TrainRows* out) {
  if (batch.seq_lens.empty()) return InvalidArgument("empty batch");
  const bool tree = !batch.parents.empty();
  size_t total = 0;
  for (int n : batch.seq_lens) {
    if (n < 1 || (!tree && n > c.max_seq_len)) {
      return InvalidArgument("sequence length " + std::to_string(n) + " outside [1, " +
                             std::to_string(c.max_seq_len) + "]");
    }
    total += static_cast<size_t>(n);
  }
  if (total != batch.tokens.size()) {
    return InvalidArgument("sequence lengths sum to " + std::to_string(total) + " but " +
                           std::to_string(batch.tokens.size()) + " tokens were given");
  }
  if (tree && batch.parents.size() != total) {
    return InvalidArgument(std::to_string(batch.parents.size()) + " parents given for " +
                           std::to_string(total) + " tokens");
  }
  for (int32_t t : batch.tokens) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgument("token id " + std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(c.vocab_size));
    }
  }
  TrainRows rows;
  rows.tree = tree;
  rows.parent.assign(total, -1);
  rows.position.assign(total, 0);
  int start = 0;
  for (int n : batch.seq_lens) {
    rows.seq_starts.push_back(start);
    rows.max_len = std::max(rows.max_len, n);
    for (int i = 0; i < n; ++i) {
      const int r = start + i;
      const int p = tree ? batch.parents[r] : i - 1;
      if (tree && (i == 0 ? p != -1 : p < 0 || p >= i)) {
        return InvalidArgument("token " + std::to_string(i) + " of a tree sequence has parent " +
                               std::to_string(p) +
                               " (the first token's must be -1, every other's an earlier index)");
      }
      rows.parent[r] = p < 0 ? -1 : start + p;
      rows.position[r] = p < 0 ? 0 : rows.position[start + p] + 1;
      if (rows.position[r] >= c.max_seq_len) {
        return InvalidArgument("token " + std::to_string(i) + " of a tree sequence sits at depth " +
                               std::to_string(rows.position[r]) + ", past the model's " +
                               std::to_string(c.max_seq_len) + " positions");
      }
    }
    start += n;
  }
  *out = std::move(rows);
  return OkStatus();
}

Status AdamWOptions::Validate() const {
  if (!(lr >= 0.0f) || !std::isfinite(lr)) return InvalidArgument("lr must be >= 0");
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) return InvalidArgument("beta1 must be in [0, 1)");
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) return InvalidArgument("beta2 must be in [0, 1)");
  if (!(eps > 0.0f)) return InvalidArgument("eps must be > 0");
  if (!(weight_decay >= 0.0f)) return InvalidArgument("weight_decay must be >= 0");
  if (warmup_steps < 0) return InvalidArgument("warmup_steps must be >= 0");
  if (decay_steps < 0) return InvalidArgument("decay_steps must be >= 0");
  if (!(min_lr_ratio >= 0.0f && min_lr_ratio <= 1.0f)) {
    return InvalidArgument("min_lr_ratio must be in [0, 1]");
  }
  if (!std::isfinite(max_grad_norm)) return InvalidArgument("max_grad_norm must be finite");
  return OkStatus();
}

double AdamWLearningRate(const AdamWOptions& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  }
  if (o.decay_steps <= o.warmup_steps) return o.lr;
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) /
                                            static_cast<double>(o.decay_steps - o.warmup_steps));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

std::vector<uint8_t> AdamWDecayMask(const model::ParamLayout& layout, const AdamWOptions& o) {
  std::vector<uint8_t> decay(layout.total(), 0);
  for (const model::TensorInfo& t : layout.tensors()) {
    const bool d = t.shape.size() >= 2 || o.decay_vectors;
    std::fill_n(decay.begin() + t.offset, t.numel, d ? 1 : 0);
  }
  return decay;
}

Status SaveAdamWState(const std::string& path, const std::vector<float>& m,
                      const std::vector<float>& v, int64_t step) {
  std::map<std::string, model::NamedTensor> t;
  const int64_t n = static_cast<int64_t>(m.size());
  t["m"].shape = {n};
  t["m"].data = m;
  t["v"].shape = {n};
  t["v"].data = v;
  return model::SaveSafetensors(
      path, t, {{"step", std::to_string(step)}, {"num_params", std::to_string(n)}});
}

Status LoadAdamWState(const std::string& path, size_t n, std::vector<float>* m,
                      std::vector<float>* v, int64_t* step) {
  std::map<std::string, std::string> meta;
  TREEPO_ASSIGN_OR_RETURN(auto t, model::LoadSafetensors(path, &meta));
  auto mi = t.find("m"), vi = t.find("v");
  if (mi == t.end() || vi == t.end()) return InvalidArgument(path + ": needs tensors m and v");
  if (mi->second.data.size() != n || vi->second.data.size() != n) {
    return InvalidArgument(path + ": optimiser state for " +
                           std::to_string(mi->second.data.size()) + " parameters, model has " +
                           std::to_string(n));
  }
  auto st = meta.find("step");
  if (st == meta.end()) return InvalidArgument(path + ": no step in metadata");
  int64_t s = -1;
  try {
    s = std::stoll(st->second);
  } catch (const std::exception&) {
    s = -1;
  }
  if (s < 0) return InvalidArgument(path + ": bad step '" + st->second + "'");
  *m = std::move(mi->second.data);
  *v = std::move(vi->second.data);
  *step = s;
  return OkStatus();
}

Result<std::unique_ptr<TrainBackend>> CreateCudaTrainBackend(
    int device, std::shared_ptr<const model::ModelWeights> weights, const AdamWOptions* adamw) {
  if (weights == nullptr) return InvalidArgument("train backend: no weights");
  if (adamw != nullptr) TREEPO_RETURN_IF_ERROR(adamw->Validate());
#ifdef TREEPO_HAVE_CUDA
  return cuda::CreateCudaTrainer(device, std::move(weights), adamw);
#else
  (void)device;
  return Unimplemented(
      "backend 'cuda': this build has no CUDA backend (the CUDA toolkit was not found when it "
      "was configured)");
#endif
}

}  // namespace treepo::compute
