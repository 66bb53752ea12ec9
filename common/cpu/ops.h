// fp32 CPU building blocks shared by the inference forward (worker) and the training
// forward/backward (learner). Matrix products go through BLAS (OpenBLAS).
//
// Shapes are in comments as [rows, cols], row-major. Weights are [out, in].
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/model/config.h"

namespace treepo::cpu {

// A scratch buffer that only grows: `v` gets at least `n` elements (contents kept).
inline void GrowScratch(std::vector<float>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

// y[m, n] = beta * y + x[m, k] . w[n, k]^T   (a linear layer over m rows)
void MatMulWt(const float* x, const float* w, float* y, int m, int n, int k, float beta = 0.0f);
// y[m, n] = beta * y + x[m, k] . w[k, n]
void MatMul(const float* x, const float* w, float* y, int m, int n, int k, float beta = 0.0f);
// g[n, k] = beta * g + dy[m, n]^T . x[m, k]   (weight gradient of a linear layer)
void MatMulTn(const float* dy, const float* x, float* g, int m, int n, int k, float beta = 1.0f);

// out[i] = x[i] * w[i] / sqrt(mean(x^2) + eps), for each of `rows` rows of width `n`.
// Returns nothing; `inv_rms` (optional, [rows]) receives 1/sqrt(mean + eps) for backward.
void RmsNorm(const float* x, const float* w, float* out, int rows, int n, float eps,
             float* inv_rms = nullptr);

// Rotates q or k in place. x: [rows, n_heads * head_dim], positions: [rows]; inv_freq:
// [head_dim / 2] (model::RopeInvFrequencies). cos and sin are multiplied by `scale` (YaRN's
// attention factor; 1 otherwise). `inverse` applies the transpose (the backward pass of RoPE:
// the opposite rotation, the same scale).
void Rope(float* x, const int32_t* positions, int rows, int n_heads, int head_dim,
          const float* inv_freq, float scale, model::RopeLayout layout, bool inverse = false);
// The same for a model: its head_dim, frequencies (rope_scaling applied), scale and layout.
void Rope(float* x, const int32_t* positions, int rows, int n_heads, const model::ModelConfig& c,
          bool inverse = false);

// out[i] = silu(gate[i]) * up[i] over n elements.
void SiluMul(const float* gate, const float* up, float* out, size_t n);

// In-place softmax over n elements; returns log(sum(exp(x - max))) + max (the logsumexp).
float SoftmaxInPlace(float* x, int n);

// Sets the number of BLAS threads and of the fixed-order kernels' threads (ParallelFor)
// (0: leave as is).
void SetBlasThreads(int n);

}  // namespace treepo::cpu
