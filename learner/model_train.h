// CPU (fp32, BLAS) training forward and backward of the Llama-family decoder.
//
// A micro-batch is a list of token sequences, concatenated into rows. Every linear layer is
// one GEMM over all rows; attention is full causal attention within each sequence (positions
// 0..n-1, no KV pages). Forward saves the activations backward needs (including each
// sequence's attention probabilities: n^2 floats per head and layer); buffers only grow, so a
// steady-state step allocates nothing. Both RoPE layouts and every rope_scaling, grouped-query
// attention, a head width other than dim / heads, optional q/k/v biases, Qwen3's per-head q/k
// RMSNorm and tied or untied output projections are supported.
//
// Row r predicts token r + 1 of its sequence. logp[r] = log p(tokens[r + 1] | tokens[..r]) and
// entropy[r] = entropy of that next-token distribution; for the last row of each sequence
// both are 0 and their gradient inputs are ignored.
//
// Tree-packed sequences (TrainBatch::parents given): a sequence is a token tree laid out with
// every parent before its children; each token attends to exactly its ancestors and itself,
// at RoPE position = its depth (the root is position 0), so every root-to-token path computes
// what the same path would as a plain sequence. A token may have several children, so the
// outputs are indexed by the predicted token instead: logp[r] = log p(tokens[r] | ancestors of
// r) and entropy[r] = entropy of the distribution that predicts r (the one at r's parent);
// both are 0 for a sequence's root. Attention runs per chain of consecutive tokens (a run; in a
// trie of paths laid out path by path, each path's new suffix is one) as GEMMs per head over
// the run's ancestors and itself, and keeps heads x len x (depth + len) probabilities per run
// and layer, instead of heads x n^2 per sequence.
//
// Not thread-safe; one object per thread. The weights must outlive the object and must not
// change between Forward and the matching Backward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/compute/train_backend.h"
#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::learner {

using TrainBatch = compute::TrainBatch;  // the rows of a micro-batch (the seam's type)

class TrainModel {
 public:
  explicit TrainModel(const model::ModelWeights* weights);

  // Runs the forward pass over `batch`, keeping activations for Backward. `logp` is resized
  // to rows; `entropy` (may be null) too. Refuses ids outside the vocabulary, bad lengths and
  // an empty batch with kInvalidArgument.
  Status Forward(const TrainBatch& batch, std::vector<float>* logp, std::vector<float>* entropy);

  // Backward of the last Forward: dlogp [rows] = dL/dlogp, dentropy [rows] = dL/dentropy or
  // empty. Adds dL/dparams into `grad` (layout.total() floats, same ParamLayout as the
  // weights; a tied model's embedding gets both uses). CHECKs that Forward ran and sizes match.
  void Backward(std::span<const float> dlogp, std::span<const float> dentropy, float* grad);

  int rows() const { return rows_; }

 private:
  // Checks `batch` and fills the row bookkeeping (positions, parents, children, ancestors).
  Status Plan(const TrainBatch& batch);
  void AttentionForward(int layer);
  void AttentionBackward(int layer, const float* dout, float* dq, float* dk, float* dv);
  void TreeAttentionForward(int layer);
  void TreeAttentionBackward(int layer, const float* dout, float* dq, float* dk, float* dv);
  // Index into logp/entropy of the prediction of row r (r has a parent).
  size_t OutIndex(int r) const { return tree_ ? static_cast<size_t>(r) : parent_[r]; }

  const model::ModelWeights* w_;
  int rows_ = 0;
  std::vector<int32_t> tokens_, positions_;
  std::vector<int> seq_lens_, seq_starts_;
  std::vector<size_t> att_offsets_;  // per sequence, into one layer's attention block
  size_t att_per_layer_ = 0;
  bool tree_ = false;           // tree-packed batch
  std::vector<int> parent_;     // [rows] global row before r on its path, -1 at a root
  std::vector<int> child_off_;  // [rows + 1] CSR offsets into children_
  std::vector<int> children_;   // rows predicted from each row
  // Tree mode: maximal runs of rows that each continue the row before (parent = r - 1). All
  // rows of a run share the ancestors of its first row, so a run is causal attention of its
  // rows over a key list: those ancestors (root first), then the run's own rows.
  struct TreeRun {
    int start = 0, len = 0;  // rows [start, start + len)
    size_t keys = 0;         // offset into run_keys_ of the run's n_keys key rows
    int n_keys = 0;          // depth of the first row + len
    size_t att = 0;          // offset in one layer's block: heads x len x n_keys floats
  };
  std::vector<TreeRun> runs_;
  std::vector<int> run_keys_;
  std::vector<float> kg_, vg_, dkg_, dvg_;  // one run's gathered keys/values and their grads

  // Saved activations; per-layer arrays hold all layers one after another.
  std::vector<float> x_;            // [layers + 1, rows, dim]: residual stream entering each layer
  std::vector<float> xmid_;         // [layers, rows, dim]: residual after attention
  std::vector<float> xn1_, xn2_;    // [layers, rows, dim]: normed inputs of attention / FFN
  std::vector<float> inv1_, inv2_;  // [layers, rows]
  std::vector<float> q_;            // [layers, rows, q_dim] after RoPE
  std::vector<float> k_, v_;        // [layers, rows, kv_dim] (k after RoPE)
  // q/k norm models: q and k before the norm, and each head's 1/rms.
  std::vector<float> qraw_, kraw_;      // [layers, rows, q_dim], [layers, rows, kv_dim]
  std::vector<float> invq_, invk_;      // [layers, rows * n_heads], [layers, rows * n_kv_heads]
  std::vector<float> att_;              // [layers, sum over seqs of heads * n^2] probabilities
  std::vector<float> ao_;               // [layers, rows, q_dim] attention output before o_proj
  std::vector<float> gate_, up_, act_;  // [layers, rows, hidden]
  std::vector<float> xnf_, invf_;       // [rows, dim], [rows]
  std::vector<float> probs_;            // [rows, vocab] softmax of the logits

  // Backward scratch.
  std::vector<float> dx_, dxmid_, dxn_, dq_, dk_, dv_, dao_, dh_, dg_, du_, dp_, dqn_, dkn_;
};

}  // namespace treepo::learner
