// CPU (fp32, BLAS) training forward and backward of the Llama-family decoder.
//
// A micro-batch is a list of token sequences, concatenated into rows. Every linear layer is
// one GEMM over all rows; attention is full causal attention within each sequence (positions
// 0..n-1, no KV pages). Forward saves the activations backward needs (including each
// sequence's attention probabilities: n^2 floats per head and layer); buffers only grow, so a
// steady-state step allocates nothing. Both RoPE layouts, grouped-query attention, optional
// q/k/v biases and tied or untied output projections are supported.
//
// Row r predicts token r + 1 of its sequence. logp[r] = log p(tokens[r + 1] | tokens[..r]) and
// entropy[r] = entropy of that next-token distribution; for the last row of each sequence
// both are 0 and their gradient inputs are ignored.
//
// Not thread-safe; one object per thread. The weights must outlive the object and must not
// change between Forward and the matching Backward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::learner {

struct TrainBatch {
  std::span<const int32_t> tokens;  // [rows]: the sequences, one after another
  std::span<const int> seq_lens;    // each in [1, max_seq_len]; they sum to rows
};

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
  void AttentionForward(int layer);
  void AttentionBackward(int layer, const float* dout, float* dq, float* dk, float* dv);

  const model::ModelWeights* w_;
  int rows_ = 0;
  std::vector<int32_t> tokens_, positions_;
  std::vector<int> seq_lens_, seq_starts_;
  std::vector<size_t> att_offsets_;  // per sequence, into one layer's attention block
  size_t att_per_layer_ = 0;

  // Saved activations; per-layer arrays hold all layers one after another.
  std::vector<float> x_;            // [layers + 1, rows, dim]: residual stream entering each layer
  std::vector<float> xmid_;         // [layers, rows, dim]: residual after attention
  std::vector<float> xn1_, xn2_;    // [layers, rows, dim]: normed inputs of attention / FFN
  std::vector<float> inv1_, inv2_;  // [layers, rows]
  std::vector<float> q_;            // [layers, rows, dim] after RoPE
  std::vector<float> k_, v_;        // [layers, rows, kv_dim] (k after RoPE)
  std::vector<float> att_;          // [layers, sum over seqs of heads * n^2] probabilities
  std::vector<float> ao_;           // [layers, rows, dim] attention output before o_proj
  std::vector<float> gate_, up_, act_;  // [layers, rows, hidden]
  std::vector<float> xnf_, invf_;       // [rows, dim], [rows]
  std::vector<float> probs_;            // [rows, vocab] softmax of the logits

  // Backward scratch.
  std::vector<float> dx_, dxmid_, dxn_, dq_, dk_, dv_, dao_, dh_, dg_, du_, dp_;
};

}  // namespace treepo::learner
