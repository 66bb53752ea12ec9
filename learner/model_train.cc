#include "learner/model_train.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/check.h"
#include "common/cpu/ops.h"

namespace treepo::learner {
namespace {

// y[r, i] += b[i] for `rows` rows of width n.
void AddBias(float* y, const float* b, int rows, int n) {
  for (int r = 0; r < rows; ++r) {
    float* yr = y + static_cast<size_t>(r) * n;
    for (int i = 0; i < n; ++i) yr[i] += b[i];
  }
}

}  // namespace

TrainModel::TrainModel(const model::ModelWeights* weights) : w_(weights) {
  TREEPO_CHECK(weights != nullptr);
  TREEPO_CHECK_OK(weights->config.Validate());
}

Status TrainModel::Plan(const TrainBatch& batch) {
  const model::ModelConfig& c = w_->config;
  compute::TrainRows checked;
  rows_ = 0;  // set once the batch is accepted
  TREEPO_RETURN_IF_ERROR(compute::PlanTrainRows(batch, c, &checked));
  const int rows = static_cast<int>(checked.parent.size());
  tree_ = checked.tree;
  tokens_.assign(batch.tokens.begin(), batch.tokens.end());
  seq_lens_.assign(batch.seq_lens.begin(), batch.seq_lens.end());
  seq_starts_ = std::move(checked.seq_starts);
  positions_ = std::move(checked.position);
  parent_ = std::move(checked.parent);
  att_offsets_.clear();
  att_per_layer_ = 0;
  for (int n : seq_lens_) {
    att_offsets_.push_back(att_per_layer_);
    if (!tree_) att_per_layer_ += static_cast<size_t>(c.n_heads) * n * n;
  }
  // Children (rows predicted from each row), as CSR in row order.
  child_off_.assign(rows + 1, 0);
  for (int r = 0; r < rows; ++r) {
    if (parent_[r] >= 0) ++child_off_[parent_[r] + 1];
  }
  for (int r = 0; r < rows; ++r) child_off_[r + 1] += child_off_[r];
  children_.resize(child_off_[rows]);
  {
    std::vector<int> fill(child_off_.begin(), child_off_.end() - 1);
    for (int r = 0; r < rows; ++r) {
      if (parent_[r] >= 0) children_[fill[parent_[r]]++] = r;
    }
  }
  if (tree_) {
    runs_.clear();
    run_keys_.clear();
    for (int r = 0; r < rows;) {
      int e = r + 1;
      while (e < rows && parent_[e] == e - 1) ++e;
      TreeRun run;
      run.start = r;
      run.len = e - r;
      run.keys = run_keys_.size();
      for (int a = parent_[r]; a >= 0; a = parent_[a]) run_keys_.push_back(a);
      std::reverse(run_keys_.begin() + static_cast<std::ptrdiff_t>(run.keys), run_keys_.end());
      for (int i = r; i < e; ++i) run_keys_.push_back(i);
      run.n_keys = static_cast<int>(run_keys_.size() - run.keys);
      run.att = att_per_layer_;
      att_per_layer_ += static_cast<size_t>(c.n_heads) * run.len * run.n_keys;
      runs_.push_back(run);
      r = e;
    }
  }
  rows_ = rows;
  return OkStatus();
}

Status TrainModel::Forward(const TrainBatch& batch, std::vector<float>* logp,
                           std::vector<float>* entropy) {
  const model::ModelConfig& c = w_->config;
  const model::ParamLayout& lay = w_->layout;
  TREEPO_RETURN_IF_ERROR(Plan(batch));
  const int rows = rows_, dim = c.dim, qd = c.q_dim(), kv = c.kv_dim(), hid = c.hidden_dim;
  const int vocab = c.vocab_size, layers = c.n_layers;
  const size_t rd = static_cast<size_t>(rows) * dim, rk = static_cast<size_t>(rows) * kv;
  const size_t rq = static_cast<size_t>(rows) * qd;
  const size_t rh = static_cast<size_t>(rows) * hid;
  cpu::GrowScratch(&x_, rd * (layers + 1));
  for (auto* v : {&xmid_, &xn1_, &xn2_}) cpu::GrowScratch(v, rd * layers);
  for (auto* v : {&q_, &ao_}) cpu::GrowScratch(v, rq * layers);
  for (auto* v : {&inv1_, &inv2_}) cpu::GrowScratch(v, static_cast<size_t>(rows) * layers);
  for (auto* v : {&k_, &v_}) cpu::GrowScratch(v, rk * layers);
  if (c.qk_norm) {
    cpu::GrowScratch(&qraw_, rq * layers);
    cpu::GrowScratch(&kraw_, rk * layers);
    cpu::GrowScratch(&invq_, static_cast<size_t>(rows) * c.n_heads * layers);
    cpu::GrowScratch(&invk_, static_cast<size_t>(rows) * c.n_kv_heads * layers);
  }
  for (auto* v : {&gate_, &up_, &act_}) cpu::GrowScratch(v, rh * layers);
  cpu::GrowScratch(&att_, att_per_layer_ * layers);
  cpu::GrowScratch(&xnf_, rd);
  cpu::GrowScratch(&invf_, rows);
  cpu::GrowScratch(&probs_, static_cast<size_t>(rows) * vocab);

  for (int r = 0; r < rows; ++r) {
    std::copy_n(w_->at(lay.embed()) + static_cast<size_t>(tokens_[r]) * dim, dim,
                x_.data() + static_cast<size_t>(r) * dim);
  }
  for (int l = 0; l < layers; ++l) {
    const model::LayerOffsets& o = lay.layer(l);
    const float* xin = x_.data() + rd * l;
    float* xn1 = xn1_.data() + rd * l;
    float* q = q_.data() + rq * l;
    float* k = k_.data() + rk * l;
    float* v = v_.data() + rk * l;
    cpu::RmsNorm(xin, w_->at(o.attn_norm), xn1, rows, dim, c.norm_eps, inv1_.data() + rows * l);
    cpu::MatMulWt(xn1, w_->at(o.wq), q, rows, qd, dim);
    cpu::MatMulWt(xn1, w_->at(o.wk), k, rows, kv, dim);
    cpu::MatMulWt(xn1, w_->at(o.wv), v, rows, kv, dim);
    if (c.qkv_bias) {
      AddBias(q, w_->at(o.bq), rows, qd);
      AddBias(k, w_->at(o.bk), rows, kv);
      AddBias(v, w_->at(o.bv), rows, kv);
    }
    if (c.qk_norm) {
      const int hd = c.head_dim();
      std::copy_n(q, rq, qraw_.data() + rq * l);
      std::copy_n(k, rk, kraw_.data() + rk * l);
      cpu::RmsNorm(q, w_->at(o.q_norm), q, rows * c.n_heads, hd, c.norm_eps,
                   invq_.data() + static_cast<size_t>(rows) * c.n_heads * l);
      cpu::RmsNorm(k, w_->at(o.k_norm), k, rows * c.n_kv_heads, hd, c.norm_eps,
                   invk_.data() + static_cast<size_t>(rows) * c.n_kv_heads * l);
    }
    cpu::Rope(q, positions_.data(), rows, c.n_heads, c);
    cpu::Rope(k, positions_.data(), rows, c.n_kv_heads, c);
    if (tree_) {
      TreeAttentionForward(l);
    } else {
      AttentionForward(l);
    }
    float* xmid = xmid_.data() + rd * l;
    std::copy_n(xin, rd, xmid);
    cpu::MatMulWt(ao_.data() + rq * l, w_->at(o.wo), xmid, rows, dim, qd, 1.0f);
    float* xn2 = xn2_.data() + rd * l;
    cpu::RmsNorm(xmid, w_->at(o.ffn_norm), xn2, rows, dim, c.norm_eps, inv2_.data() + rows * l);
    float* g = gate_.data() + rh * l;
    float* u = up_.data() + rh * l;
    float* a = act_.data() + rh * l;
    cpu::MatMulWt(xn2, w_->at(o.w1), g, rows, hid, dim);
    cpu::MatMulWt(xn2, w_->at(o.w3), u, rows, hid, dim);
    cpu::SiluMul(g, u, a, rh);
    float* xout = x_.data() + rd * (l + 1);
    std::copy_n(xmid, rd, xout);
    cpu::MatMulWt(a, w_->at(o.w2), xout, rows, dim, hid, 1.0f);
  }
  cpu::RmsNorm(x_.data() + rd * layers, w_->at(lay.final_norm()), xnf_.data(), rows, dim,
               c.norm_eps, invf_.data());
  float* logits = probs_.data();
  cpu::MatMulWt(xnf_.data(), w_->at(lay.lm_head()), logits, rows, vocab, dim);

  logp->assign(rows, 0.0f);
  if (entropy) entropy->assign(rows, 0.0f);
  for (int r = 0; r < rows; ++r) {
    float* z = logits + static_cast<size_t>(r) * vocab;
    const int c0 = child_off_[r], c1 = child_off_[r + 1];
    // Each predicted token's logit, read before the row becomes probabilities.
    for (int ci = c0; ci < c1; ++ci) (*logp)[OutIndex(children_[ci])] = z[tokens_[children_[ci]]];
    const float mx = *std::max_element(z, z + vocab);
    double sum = 0.0, sum_pz = 0.0;
    for (int j = 0; j < vocab; ++j) {
      const float e = std::exp(z[j] - mx);
      sum += e;
      sum_pz += static_cast<double>(e) * (z[j] - mx);
      z[j] = e;
    }
    const float lse_shift = static_cast<float>(std::log(sum));  // lse - mx
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < vocab; ++j) z[j] *= inv;
    const float h = static_cast<float>(lse_shift - sum_pz / sum);
    for (int ci = c0; ci < c1; ++ci) {
      const size_t out = OutIndex(children_[ci]);
      (*logp)[out] = (*logp)[out] - mx - lse_shift;
      if (entropy) (*entropy)[out] = h;
    }
  }
  return OkStatus();
}

}  // namespace treepo::learner
