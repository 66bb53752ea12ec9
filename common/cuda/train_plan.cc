#include "common/cuda/train_plan.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace treepo::cuda {

Status PlanTrainBatch(const compute::TrainBatch& batch, const model::ModelConfig& c,
                      TrainPlan* plan) {
  compute::TrainRows checked;
  TREEPO_RETURN_IF_ERROR(compute::PlanTrainRows(batch, c, &checked));
  const bool tree = checked.tree;
  const size_t total = checked.parent.size();
  const int rows = static_cast<int>(total);
  const int max_len = checked.max_len;
  const std::vector<int>& parent = checked.parent;
  const std::vector<int32_t>& depth = checked.position;
  plan->rows = rows;
  plan->tree = tree;
  plan->seq_lens.assign(batch.seq_lens.begin(), batch.seq_lens.end());
  plan->seq_starts = checked.seq_starts;
  std::vector<int32_t>& v = plan->ints;
  v.clear();
  plan->tokens = v.size();
  v.insert(v.end(), batch.tokens.begin(), batch.tokens.end());
  plan->positions = v.size();
  v.insert(v.end(), depth.begin(), depth.end());
  plan->out_src = v.size();
  v.resize(v.size() + 2 * total, -1);
  plan->out_tok = plan->out_src + total;
  plan->max_keys = max_len;
  for (int r = 0; r < rows; ++r) {
    if (!tree) {  // row r predicts row r + 1 of its sequence
      const bool last = r + 1 == rows || parent[r + 1] != r;
      v[plan->out_src + r] = last ? -1 : r;
      v[plan->out_tok + r] = last ? 0 : batch.tokens[r + 1];
    } else {  // row r is predicted at its parent
      v[plan->out_src + r] = parent[r];
      v[plan->out_tok + r] = batch.tokens[r];
    }
  }
  plan->key_off = plan->key_idx = plan->att_off = plan->att_idx = 0;
  if (!tree) return OkStatus();

  // Key lists (ancestors root first, then the row) and their transpose.
  plan->key_off = v.size();
  v.resize(v.size() + total + 1, 0);
  size_t keys = 0;
  int max_keys = 0;
  for (int r = 0; r < rows; ++r) {
    v[plan->key_off + r] = static_cast<int32_t>(keys);
    keys += static_cast<size_t>(depth[r]) + 1;
    max_keys = std::max(max_keys, depth[r] + 1);
  }
  v[plan->key_off + total] = static_cast<int32_t>(keys);
  plan->max_keys = max_keys;
  plan->key_idx = v.size();
  v.resize(v.size() + keys, 0);
  std::vector<int32_t> attenders(total, 0);
  for (int r = 0; r < rows; ++r) {
    // Walk up from r, filling its list from the back.
    size_t at = plan->key_idx + v[plan->key_off + r] + depth[r];
    for (int a = r; a >= 0; a = parent[a]) {
      v[at--] = a;
      ++attenders[a];
    }
  }
  plan->att_off = v.size();
  v.resize(v.size() + total + 1, 0);
  for (int r = 0; r < rows; ++r) {
    v[plan->att_off + r + 1] = v[plan->att_off + r] + attenders[r];
  }
  plan->att_idx = v.size();
  v.resize(v.size() + keys, 0);
  std::vector<int32_t> fill(total, 0);
  for (int r = 0; r < rows; ++r) {  // rows in increasing order within each list
    const size_t k0 = plan->key_idx + v[plan->key_off + r];
    for (int t = 0; t <= depth[r]; ++t) {
      const int32_t a = v[k0 + t];
      v[plan->att_idx + v[plan->att_off + a] + fill[a]++] = r;
    }
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
