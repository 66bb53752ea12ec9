#include "common/cuda/train_plan.h"

#include <cmath>
#include <string>

namespace treepo::cuda {

Status PlanTrainBatch(const compute::TrainBatch& batch, const model::ModelConfig& c,
                      TrainPlan* plan) {
  if (!batch.parents.empty()) {
    return Unimplemented(
        "cuda train backend: tree-packed batches are not supported; set learner.tree_packing "
        "= false (the trainer does so by itself with this backend)");
  }
  if (batch.seq_lens.empty()) return InvalidArgument("empty batch");
  size_t total = 0;
  for (int n : batch.seq_lens) {
    if (n < 1 || n > c.max_seq_len) {
      return InvalidArgument("sequence length " + std::to_string(n) + " outside [1, " +
                             std::to_string(c.max_seq_len) + "]");
    }
    total += static_cast<size_t>(n);
  }
  if (total != batch.tokens.size()) {
    return InvalidArgument("sequence lengths sum to " + std::to_string(total) + " but " +
                           std::to_string(batch.tokens.size()) + " tokens were given");
  }
  for (int32_t t : batch.tokens) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgument("token id " + std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(c.vocab_size));
    }
  }
  plan->rows = static_cast<int>(total);
  plan->seq_lens.assign(batch.seq_lens.begin(), batch.seq_lens.end());
  plan->seq_starts.clear();
  plan->ints.assign(3 * total, 0);
  int start = 0;
  for (int n : plan->seq_lens) {
    plan->seq_starts.push_back(start);
    for (int i = 0; i < n; ++i) {
      plan->ints[start + i] = batch.tokens[start + i];
      plan->ints[total + start + i] = i;
      plan->ints[2 * total + start + i] = i + 1 < n ? batch.tokens[start + i + 1] : -1;
    }
    start += n;
  }
  return OkStatus();
}

AdamWArgs PlanAdamWStep(const compute::AdamWOptions& o, int64_t step, double sum_squares,
                        compute::StepStats* stats) {
  compute::StepStats s;
  s.grad_norm = std::sqrt(sum_squares);
  if (o.max_grad_norm > 0.0f && s.grad_norm > o.max_grad_norm) {
    s.clip_scale = o.max_grad_norm / (s.grad_norm + 1e-6);
  }
  s.lr = compute::AdamWLearningRate(o, step);
  AdamWArgs a;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.scale = static_cast<float>(s.clip_scale);
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta1), step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta2), step));
  const float lr = static_cast<float>(s.lr);
  a.step_size = lr / bc1;
  a.inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  a.eps = o.eps;
  a.decay = 1.0f - lr * o.weight_decay;
  *stats = s;
  return a;
}

}  // namespace treepo::cuda
