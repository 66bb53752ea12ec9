// The CUDA kernels of the training pass (train_kernels.cu), as host launchers on a stream:
// the backward of each forward kernel of the decoder, causal attention with its backward per
// sequence, the log-softmax outputs (logp, entropy) with their backward, and AdamW. Every
// pointer is device memory; shapes are [rows, cols] row-major, fp32 unless named bf16.
// Each kernel mirrors a CPU routine of learner/model_train*.cc or learner/adamw.cc; the
// gpu-labelled tests (tests/gpu/cuda_train_test.cc) compare them end to end.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "common/cuda/train_plan.h"
#include "common/model/config.h"
#include "common/status.h"

namespace treepo::cuda {

// x[r, :] = table[tokens[r], :] (fp32 master embedding).
Status LaunchEmbedF32(const int32_t* tokens, const float* table, float* x, int rows, int dim,
                      cudaStream_t stream);
// dtable[tokens[r], :] += dx[r, :] (atomic: repeated tokens add up).
Status LaunchEmbedBackward(const int32_t* tokens, const float* dx, float* dtable, int rows, int dim,
                           cudaStream_t stream);
// out[r] = x[r] * w * inv[r], inv[r] = 1 / sqrt(mean(x[r]^2) + eps) (saved for backward).
Status LaunchRmsNormTrain(const float* x, const float* w, float* out, float* inv, int rows, int n,
                          float eps, cudaStream_t stream);
// Backward of LaunchRmsNormTrain: dx[r] (+)= inv * (dy * w - xhat * mean(dy * w * xhat)),
// xhat = x * inv; dx is overwritten unless accumulate. dw[i] += sum_r dy[r, i] * xhat[r, i].
Status LaunchRmsNormBackward(const float* x, const float* w, const float* inv, const float* dy,
                             float* dx, float* dw, int rows, int n, bool accumulate,
                             cudaStream_t stream);
// RoPE in place on [rows, n_heads * head_dim] at positions[r]: cpu::Rope with `inverse`
// (the backward of the forward rotation is the inverse one, with the same scale).
Status LaunchRopeTrain(float* x, const int32_t* positions, int rows, int n_heads, int head_dim,
                       const float* inv_freq, float scale, model::RopeLayout layout, bool inverse,
                       cudaStream_t stream);
// dcol[i] += sum over rows of y[r, i] (a bias's gradient).  y: [rows, n].
Status LaunchColumnSum(const float* y, int rows, int n, float* dcol, cudaStream_t stream);
// act[i] = silu(gate[i]) * up[i] over n elements.
Status LaunchSwiGlu(const float* gate, const float* up, float* act, size_t n, cudaStream_t stream);
// dgate = dact * up * silu'(gate), dup = dact * silu(gate).
Status LaunchSwiGluBackward(const float* gate, const float* up, const float* dact, float* dgate,
                            float* dup, size_t n, cudaStream_t stream);
// Attention over `len` rows: q [len, n_heads * hd], k and v [len, n_kv_heads * hd], out
// [len, n_heads * hd]; row i attends with softmax(q.k * 1/sqrt(hd)) to its keys: rows 0..i
// (causal, one plain sequence; `keys` null), or the CSR list keys->idx[keys->off[i] ..
// keys->off[i + 1]) (a tree's ancestors and itself; attenders is its transpose, for the
// backward). max_keys: the longest list (shared memory). lse [len, n_heads]: each row's and
// head's log-sum-exp of the scaled scores (for backward).
struct AttentionLists {
  const int32_t* key_off = nullptr;
  const int32_t* key_idx = nullptr;
  const int32_t* att_off = nullptr;
  const int32_t* att_idx = nullptr;
};
Status LaunchTrainAttention(const float* q, const float* k, const float* v, float* out, float* lse,
                            int len, int n_heads, int n_kv_heads, int hd,
                            const AttentionLists* lists, int max_keys, cudaStream_t stream);
// Its backward: dq, dk, dv (overwritten) from dout, recomputing the probabilities from lse.
// delta [len, n_heads] is scratch.
Status LaunchTrainAttentionBackward(const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const float* dout,
                                    float* delta, float* dq, float* dk, float* dv, int len,
                                    int n_heads, int n_kv_heads, int hd,
                                    const AttentionLists* lists, int max_keys, cudaStream_t stream);
// Per row r of logits [rows, vocab]: lse[r] = log sum exp, entropy_rows[r] = -sum p log p.
Status LaunchLogSoftmaxStats(const float* logits, float* lse, float* entropy_rows, int rows,
                             int vocab, cudaStream_t stream);
// Per output o: logp[o] = logits[src[o], tok[o]] - lse[src[o]], entropy[o] =
// entropy_rows[src[o]]; both 0 where src[o] is -1.
Status LaunchGatherOutputs(const float* logits, const float* lse, const float* entropy_rows,
                           const int32_t* src, const int32_t* tok, float* logp, float* entropy,
                           int n_out, int vocab, cudaStream_t stream);
// In place, logits become dL/dlogits of the outputs: per row, -gl[r] * p - ge[r] * p *
// (log p + H) (gl, ge: the sums of dL/dlogp and dL/dentropy over the row's outputs), then
// logits[src[o], tok[o]] += dlogp[o] for every output with a source (atomic).
Status LaunchLogSoftmaxBackward(float* logits, const float* lse, const float* entropy_rows,
                                const float* gl, const float* ge, const int32_t* src,
                                const int32_t* tok, const float* dlogp, int rows, int n_out,
                                int vocab, cudaStream_t stream);
// *out += sum of x[i]^2 in double (out zeroed by the caller).
Status LaunchSumSquares(const float* x, size_t n, double* out, cudaStream_t stream);
// One AdamW update over n parameters with the scalars of PlanAdamWStep (train_plan.h): the
// exact formulas of learner::AdamW::Step in fp32; grad is zeroed; the bf16 compute copy is
// refreshed.
Status LaunchAdamW(float* params, float* grad, float* m, float* v, const uint8_t* decay_mask,
                   __nv_bfloat16* params_bf16, size_t n, const AdamWArgs& a, cudaStream_t stream);

}  // namespace treepo::cuda
