// TrainModel's attention (forward and backward) and the backward pass.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/cpu/ops.h"
#include "learner/model_train.h"

namespace treepo::learner {
namespace {

// dx += backward of y = x * inv * w over `rows` rows of width n; dw += the weight gradient.
void RmsNormBackward(const float* dy, const float* x, const float* w, const float* inv, int rows,
                     int n, float* dx, float* dw) {
  for (int r = 0; r < rows; ++r) {
    const float* dyr = dy + static_cast<size_t>(r) * n;
    const float* xr = x + static_cast<size_t>(r) * n;
    float* dxr = dx + static_cast<size_t>(r) * n;
    const float s = inv[r];
    float dot = 0.0f;
    for (int i = 0; i < n; ++i) {
      dot += dyr[i] * w[i] * xr[i];
      dw[i] += dyr[i] * xr[i] * s;
    }
    const float k = dot * s * s * s / static_cast<float>(n);
    for (int i = 0; i < n; ++i) dxr[i] += s * dyr[i] * w[i] - k * xr[i];
  }
}

// g[i] += sum over rows of dy[r, i].
void ColumnSums(const float* dy, int rows, int n, float* g) {
  for (int r = 0; r < rows; ++r) {
    const float* d = dy + static_cast<size_t>(r) * n;
    for (int i = 0; i < n; ++i) g[i] += d[i];
  }
}

}  // namespace

void TrainModel::AttentionForward(int layer) {
  const model::ModelConfig& c = w_->config;
  const int dim = c.q_dim(), kv = c.kv_dim(), hd = c.head_dim(), hpk = c.heads_per_kv();
  const size_t rd = static_cast<size_t>(rows_) * dim, rk = static_cast<size_t>(rows_) * kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = q_.data() + rd * layer;
  const float* k = k_.data() + rk * layer;
  const float* v = v_.data() + rk * layer;
  float* out = ao_.data() + rd * layer;
  float* att = att_.data() + att_per_layer_ * layer;
  for (size_t s = 0; s < seq_lens_.size(); ++s) {
    const int n = seq_lens_[s];
    const size_t r0 = static_cast<size_t>(seq_starts_[s]);
    for (int h = 0; h < c.n_heads; ++h) {
      float* p = att + att_offsets_[s] + static_cast<size_t>(h) * n * n;
      const float* qh = q + r0 * dim + static_cast<size_t>(h) * hd;
      const float* kh = k + r0 * kv + static_cast<size_t>(h / hpk) * hd;
      const float* vh = v + r0 * kv + static_cast<size_t>(h / hpk) * hd;
      // p[n, n] = scale * qh kh^T, then a causal softmax per row.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, qh, dim, kh, kv, 0.0f,
                  p, n);
      for (int i = 0; i < n; ++i) {
        float* row = p + static_cast<size_t>(i) * n;
        cpu::SoftmaxInPlace(row, i + 1);
        std::fill(row + i + 1, row + n, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, p, n, vh, kv, 0.0f,
                  out + r0 * dim + static_cast<size_t>(h) * hd, dim);
    }
  }
}

void TrainModel::AttentionBackward(int layer, const float* dout, float* dq, float* dk, float* dv) {
  const model::ModelConfig& c = w_->config;
  const int dim = c.q_dim(), kv = c.kv_dim(), hd = c.head_dim(), hpk = c.heads_per_kv();
  const size_t rd = static_cast<size_t>(rows_) * dim, rk = static_cast<size_t>(rows_) * kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = q_.data() + rd * layer;
  const float* k = k_.data() + rk * layer;
  const float* v = v_.data() + rk * layer;
  const float* att = att_.data() + att_per_layer_ * layer;
  std::fill_n(dk, rk, 0.0f);
  std::fill_n(dv, rk, 0.0f);
  for (size_t s = 0; s < seq_lens_.size(); ++s) {
    const int n = seq_lens_[s];
    const size_t r0 = static_cast<size_t>(seq_starts_[s]);
    cpu::GrowScratch(&dp_, static_cast<size_t>(n) * n);
    float* dp = dp_.data();
    for (int h = 0; h < c.n_heads; ++h) {
      const float* p = att + att_offsets_[s] + static_cast<size_t>(h) * n * n;
      const size_t qo = r0 * dim + static_cast<size_t>(h) * hd;
      const size_t ko = r0 * kv + static_cast<size_t>(h / hpk) * hd;
      // dp = dout_h v_h^T; dv_h += p^T dout_h.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, dout + qo, dim, v + ko,
                  kv, 0.0f, dp, n);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, p, n, dout + qo, dim,
                  1.0f, dv + ko, kv);
      // ds = p * (dp - rowsum(p * dp)); masked entries have p = 0 and stay 0.
      for (int i = 0; i < n; ++i) {
        const float* pr = p + static_cast<size_t>(i) * n;
        float* dr = dp + static_cast<size_t>(i) * n;
        float dot = 0.0f;
        for (int j = 0; j <= i; ++j) dot += pr[j] * dr[j];
        for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot);
        std::fill(dr + i + 1, dr + n, 0.0f);
      }
      // dq_h = scale * ds k_h; dk_h += scale * ds^T q_h.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, scale, dp, n, k + ko, kv,
                  0.0f, dq + qo, dim);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, scale, dp, n, q + qo, dim,
                  1.0f, dk + ko, kv);
    }
  }
}

namespace {

// dst[i, :] = src[rows[i], :] for n rows of width w.
void GatherRows(const float* src, const int* rows, int n, int w, float* dst) {
  for (int i = 0; i < n; ++i) {
    std::copy_n(src + static_cast<size_t>(rows[i]) * w, w, dst + static_cast<size_t>(i) * w);
  }
}

}  // namespace

void TrainModel::TreeAttentionForward(int layer) {
  const model::ModelConfig& c = w_->config;
  const int dim = c.q_dim(), kv = c.kv_dim(), hd = c.head_dim(), hpk = c.heads_per_kv();
  const size_t rd = static_cast<size_t>(rows_) * dim, rk = static_cast<size_t>(rows_) * kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = q_.data() + rd * layer;
  const float* k = k_.data() + rk * layer;
  const float* v = v_.data() + rk * layer;
  float* out = ao_.data() + rd * layer;
  float* att = att_.data() + att_per_layer_ * layer;
  for (const TreeRun& run : runs_) {
    const int n = run.len, m = run.n_keys, m0 = m - n;  // m0: ancestors before the run
    cpu::GrowScratch(&kg_, static_cast<size_t>(m) * kv);
    cpu::GrowScratch(&vg_, static_cast<size_t>(m) * kv);
    GatherRows(k, run_keys_.data() + run.keys, m, kv, kg_.data());
    GatherRows(v, run_keys_.data() + run.keys, m, kv, vg_.data());
    const size_t r0 = static_cast<size_t>(run.start);
    for (int h = 0; h < c.n_heads; ++h) {
      float* p = att + run.att + static_cast<size_t>(h) * n * m;
      const float* qh = q + r0 * dim + static_cast<size_t>(h) * hd;
      const size_t kvo = static_cast<size_t>(h / hpk) * hd;
      // p[n, m] = scale * qh kg^T; row j sees the m0 ancestors and run rows 0..j.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, hd, scale, qh, dim,
                  kg_.data() + kvo, kv, 0.0f, p, m);
      for (int j = 0; j < n; ++j) {
        float* row = p + static_cast<size_t>(j) * m;
        cpu::SoftmaxInPlace(row, m0 + j + 1);
        std::fill(row + m0 + j + 1, row + m, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, m, 1.0f, p, m, vg_.data() + kvo,
                  kv, 0.0f, out + r0 * dim + static_cast<size_t>(h) * hd, dim);
    }
  }
}

void TrainModel::TreeAttentionBackward(int layer, const float* dout, float* dq, float* dk,
                                       float* dv) {
  const model::ModelConfig& c = w_->config;
  const int dim = c.q_dim(), kv = c.kv_dim(), hd = c.head_dim(), hpk = c.heads_per_kv();
  const size_t rd = static_cast<size_t>(rows_) * dim, rk = static_cast<size_t>(rows_) * kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = q_.data() + rd * layer;
  const float* k = k_.data() + rk * layer;
  const float* v = v_.data() + rk * layer;
  const float* att = att_.data() + att_per_layer_ * layer;
  std::fill_n(dk, rk, 0.0f);
  std::fill_n(dv, rk, 0.0f);
  for (const TreeRun& run : runs_) {
    const int n = run.len, m = run.n_keys, m0 = m - n;
    const int* keys = run_keys_.data() + run.keys;
    const size_t mk = static_cast<size_t>(m) * kv;
    for (auto* b : {&kg_, &vg_, &dkg_, &dvg_}) cpu::GrowScratch(b, mk);
    GatherRows(k, keys, m, kv, kg_.data());
    GatherRows(v, keys, m, kv, vg_.data());
    std::fill_n(dkg_.data(), mk, 0.0f);
    std::fill_n(dvg_.data(), mk, 0.0f);
    cpu::GrowScratch(&dp_, static_cast<size_t>(n) * m);
    float* dp = dp_.data();
    const size_t r0 = static_cast<size_t>(run.start);
    for (int h = 0; h < c.n_heads; ++h) {
      const float* p = att + run.att + static_cast<size_t>(h) * n * m;
      const size_t qo = r0 * dim + static_cast<size_t>(h) * hd;
      const size_t kvo = static_cast<size_t>(h / hpk) * hd;
      // dp = dout_h vg_h^T; dvg_h += p^T dout_h.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, hd, 1.0f, dout + qo, dim,
                  vg_.data() + kvo, kv, 0.0f, dp, m);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, hd, n, 1.0f, p, m, dout + qo, dim,
                  1.0f, dvg_.data() + kvo, kv);
      // ds = p * (dp - rowsum(p * dp)) over each row's visible keys; the rest stays 0.
      for (int j = 0; j < n; ++j) {
        const int visible = m0 + j + 1;
        const float* pr = p + static_cast<size_t>(j) * m;
        float* dr = dp + static_cast<size_t>(j) * m;
        float dot = 0.0f;
        for (int a = 0; a < visible; ++a) dot += pr[a] * dr[a];
        for (int a = 0; a < visible; ++a) dr[a] = pr[a] * (dr[a] - dot);
        std::fill(dr + visible, dr + m, 0.0f);
      }
      // dq_h = scale * ds kg_h; dkg_h += scale * ds^T q_h.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, m, scale, dp, m,
                  kg_.data() + kvo, kv, 0.0f, dq + qo, dim);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, hd, n, scale, dp, m, q + qo, dim,
                  1.0f, dkg_.data() + kvo, kv);
    }
    // Scatter the run's key and value gradients back to their rows.
    for (int a = 0; a < m; ++a) {
      float* dkr = dk + static_cast<size_t>(keys[a]) * kv;
      float* dvr = dv + static_cast<size_t>(keys[a]) * kv;
      const float* gk = dkg_.data() + static_cast<size_t>(a) * kv;
      const float* gv = dvg_.data() + static_cast<size_t>(a) * kv;
      for (int i = 0; i < kv; ++i) {
        dkr[i] += gk[i];
        dvr[i] += gv[i];
      }
    }
  }
}

void TrainModel::Backward(std::span<const float> dlogp, std::span<const float> dentropy,
                          float* grad) {
  TREEPO_CHECK_GT(rows_, 0);
  TREEPO_CHECK_EQ(dlogp.size(), static_cast<size_t>(rows_));
  TREEPO_CHECK(dentropy.empty() || dentropy.size() == static_cast<size_t>(rows_));
  const model::ModelConfig& c = w_->config;
  const model::ParamLayout& lay = w_->layout;
  const int rows = rows_, dim = c.dim, qd = c.q_dim(), kv = c.kv_dim(), hid = c.hidden_dim;
  const int vocab = c.vocab_size, layers = c.n_layers;
  const size_t rd = static_cast<size_t>(rows) * dim, rk = static_cast<size_t>(rows) * kv;
  const size_t rq = static_cast<size_t>(rows) * qd;
  const size_t rh = static_cast<size_t>(rows) * hid;
  for (auto* b : {&dx_, &dxmid_, &dxn_}) cpu::GrowScratch(b, rd);
  for (auto* b : {&dq_, &dao_}) cpu::GrowScratch(b, rq);
  for (auto* b : {&dk_, &dv_}) cpu::GrowScratch(b, rk);
  if (c.qk_norm) {
    cpu::GrowScratch(&dqn_, rq);
    cpu::GrowScratch(&dkn_, rk);
  }
  for (auto* b : {&dh_, &dg_, &du_}) cpu::GrowScratch(b, rh);

  // dlogits, in place of the probabilities: for logp_t = z_t - lse, dz_j = g (1[j = t] - p_j);
  // for H = -sum p log p, dz_j = -gH p_j (log p_j + H).
  // A row with several children (tree-packed) sums their contributions.
  float* dz = probs_.data();
  for (int r = 0; r < rows; ++r) {
    float* pr = dz + static_cast<size_t>(r) * vocab;
    const int c0 = child_off_[r], c1 = child_off_[r + 1];
    float g = 0.0f, ge = 0.0f;
    for (int ci = c0; ci < c1; ++ci) {
      const size_t out = OutIndex(children_[ci]);
      g += dlogp[out];
      if (!dentropy.empty()) ge += dentropy[out];
    }
    if (ge != 0.0f) {
      double h = 0.0;
      for (int j = 0; j < vocab; ++j) {
        if (pr[j] > 0.0f) h -= static_cast<double>(pr[j]) * std::log(pr[j]);
      }
      for (int j = 0; j < vocab; ++j) {
        const float p = pr[j];
        const float lp = p > 0.0f ? std::log(p) : 0.0f;
        pr[j] = -g * p - ge * p * (lp + static_cast<float>(h));
      }
    } else {
      for (int j = 0; j < vocab; ++j) pr[j] *= -g;
    }
    for (int ci = c0; ci < c1; ++ci) pr[tokens_[children_[ci]]] += dlogp[OutIndex(children_[ci])];
  }
  cpu::MatMulTn(dz, xnf_.data(), grad + lay.lm_head(), rows, vocab, dim);
  float* dxnf = dxn_.data();
  cpu::MatMul(dz, w_->at(lay.lm_head()), dxnf, rows, dim, vocab);
  float* dx = dx_.data();
  std::fill_n(dx, rd, 0.0f);
  RmsNormBackward(dxnf, x_.data() + rd * layers, w_->at(lay.final_norm()), invf_.data(), rows, dim,
                  dx, grad + lay.final_norm());

  for (int l = layers - 1; l >= 0; --l) {
    const model::LayerOffsets& o = lay.layer(l);
    // FFN: x_out = xmid + act w2^T, act = silu(gate) * up.
    cpu::MatMulTn(dx, act_.data() + rh * l, grad + o.w2, rows, dim, hid);
    float* dact = dh_.data();
    cpu::MatMul(dx, w_->at(o.w2), dact, rows, hid, dim);
    const float* gate = gate_.data() + rh * l;
    const float* up = up_.data() + rh * l;
    float* dg = dg_.data();
    float* du = du_.data();
    for (size_t i = 0; i < rh; ++i) {
      const float sg = 1.0f / (1.0f + std::exp(-gate[i]));
      const float silu = gate[i] * sg;
      du[i] = dact[i] * silu;
      dg[i] = dact[i] * up[i] * sg * (1.0f + gate[i] * (1.0f - sg));
    }
    const float* xn2 = xn2_.data() + rd * l;
    cpu::MatMulTn(dg, xn2, grad + o.w1, rows, hid, dim);
    cpu::MatMulTn(du, xn2, grad + o.w3, rows, hid, dim);
    float* dxn = dxn_.data();
    cpu::MatMul(dg, w_->at(o.w1), dxn, rows, dim, hid);
    cpu::MatMul(du, w_->at(o.w3), dxn, rows, dim, hid, 1.0f);
    float* dxmid = dxmid_.data();
    std::copy_n(dx, rd, dxmid);
    RmsNormBackward(dxn, xmid_.data() + rd * l, w_->at(o.ffn_norm), inv2_.data() + rows * l, rows,
                    dim, dxmid, grad + o.ffn_norm);

    // Attention: xmid = xin + ao wo^T.
    cpu::MatMulTn(dxmid, ao_.data() + rq * l, grad + o.wo, rows, dim, qd);
    float* dao = dao_.data();
    cpu::MatMul(dxmid, w_->at(o.wo), dao, rows, qd, dim);
    float* dq = dq_.data();
    float* dk = dk_.data();
    float* dv = dv_.data();
    if (tree_) {
      TreeAttentionBackward(l, dao, dq, dk, dv);
    } else {
      AttentionBackward(l, dao, dq, dk, dv);
    }
    // RoPE is a rotation: its backward is the inverse rotation.
    cpu::Rope(dq, positions_.data(), rows, c.n_heads, c, /*inverse=*/true);
    cpu::Rope(dk, positions_.data(), rows, c.n_kv_heads, c, /*inverse=*/true);
    if (c.qk_norm) {  // through the per-head norms, to q and k before them
      const int hd = c.head_dim();
      std::fill_n(dqn_.data(), rq, 0.0f);
      std::fill_n(dkn_.data(), rk, 0.0f);
      RmsNormBackward(dq, qraw_.data() + rq * l, w_->at(o.q_norm),
                      invq_.data() + static_cast<size_t>(rows) * c.n_heads * l, rows * c.n_heads,
                      hd, dqn_.data(), grad + o.q_norm);
      RmsNormBackward(dk, kraw_.data() + rk * l, w_->at(o.k_norm),
                      invk_.data() + static_cast<size_t>(rows) * c.n_kv_heads * l,
                      rows * c.n_kv_heads, hd, dkn_.data(), grad + o.k_norm);
      dq = dqn_.data();
      dk = dkn_.data();
    }
    if (c.qkv_bias) {
      ColumnSums(dq, rows, qd, grad + o.bq);
      ColumnSums(dk, rows, kv, grad + o.bk);
      ColumnSums(dv, rows, kv, grad + o.bv);
    }
    const float* xn1 = xn1_.data() + rd * l;
    cpu::MatMulTn(dq, xn1, grad + o.wq, rows, qd, dim);
    cpu::MatMulTn(dk, xn1, grad + o.wk, rows, kv, dim);
    cpu::MatMulTn(dv, xn1, grad + o.wv, rows, kv, dim);
    cpu::MatMul(dq, w_->at(o.wq), dxn, rows, dim, qd);
    cpu::MatMul(dk, w_->at(o.wk), dxn, rows, dim, kv, 1.0f);
    cpu::MatMul(dv, w_->at(o.wv), dxn, rows, dim, kv, 1.0f);
    std::copy_n(dxmid, rd, dx);
    RmsNormBackward(dxn, x_.data() + rd * l, w_->at(o.attn_norm), inv1_.data() + rows * l, rows,
                    dim, dx, grad + o.attn_norm);
  }
  float* gemb = grad + lay.embed();
  for (int r = 0; r < rows; ++r) {
    float* g = gemb + static_cast<size_t>(tokens_[r]) * dim;
    const float* d = dx + static_cast<size_t>(r) * dim;
    for (int i = 0; i < dim; ++i) g[i] += d[i];
  }
}

}  // namespace treepo::learner
