// The CUDA kernels of the decoder forward (kernels.cu, attention.cu), as host launchers on a
// stream. Every pointer is device memory; shapes are [rows, cols] row-major, and a row of an
// operand that lives inside a wider buffer (q, k, v inside the fused qkv) has a row stride
// `ld` in elements. bf16 is __nv_bfloat16; accumulation is fp32 everywhere.
//
// A launcher returns the launch error (a bad configuration) as a Status; an error while the
// kernel runs shows at the next synchronisation. Each kernel has a CPU reference in
// common/cpu/ops.h or common/cpu/forward.cc and a test in tests/gpu/cuda_kernels_test.cc.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/model/config.h"
#include "common/status.h"

namespace treepo::cuda {

// x[r, :] = float(table[tokens[r], :]).  tokens: [rows] (in range, checked by the caller),
// table: [vocab, dim] bf16, x: [rows, dim] fp32.
Status LaunchEmbed(const int32_t* tokens, const __nv_bfloat16* table, float* x, int rows, int dim,
                   cudaStream_t stream);

// RMSNorm of `rows * groups` vectors of width n (cpu::RmsNorm): vector (r, g) is
// x[src_row(r) * ld_x + g * n + i] with src_row(r) = row_index ? row_index[r] : r, and goes to
// out[r * ld_out + g * n + i] = x * w[i] / sqrt(mean(x^2) + eps). groups > 1 is the per-head
// q/k norm. In place (out == x, same ld, no row_index) is allowed. w: [n] fp32.
Status LaunchRmsNorm(const float* x, int ld_x, const int32_t* row_index, const float* w, float* out,
                     int ld_out, int rows, int groups, int n, float eps, cudaStream_t stream);
Status LaunchRmsNorm(const float* x, int ld_x, const int32_t* row_index, const float* w,
                     __nv_bfloat16* out, int ld_out, int rows, int groups, int n, float eps,
                     cudaStream_t stream);

// y[r * ld + i] += bias[i] for i < n.  bias: [n] fp32.
Status LaunchAddBias(float* y, int ld, const float* bias, int rows, int n, cudaStream_t stream);

// RoPE in place on heads [0, n_heads) of each row: x[r * ld + h * head_dim + ...], at
// positions[r] (cpu::Rope, forward direction). inv_freq: [head_dim / 2]; cos and sin are
// multiplied by `scale`.
Status LaunchRope(float* x, int ld, const int32_t* positions, int rows, int n_heads, int head_dim,
                  const float* inv_freq, float scale, model::RopeLayout layout,
                  cudaStream_t stream);

// out[r, i] = bf16(silu(gu[r, i]) * gu[r, n + i]) (cpu::SiluMul).  gu: [rows, 2n] fp32 (the
// gate and up projections side by side), out: [rows, n] bf16.
Status LaunchSiluMul(const float* gu, __nv_bfloat16* out, int rows, int n, cudaStream_t stream);

// Writes K and V of each row into its slot of the paged cache: k_cache[slots[r] * kv_dim + j]
// = bf16(k[r * ld + j]), the same for v. slots[r] = page * page_size + position % page_size.
// k_cache, v_cache: one layer's [num_pages * page_size, kv_dim] bf16.
Status LaunchKvAppend(const float* k, const float* v, int ld, const int32_t* slots, int rows,
                      int kv_dim, __nv_bfloat16* k_cache, __nv_bfloat16* v_cache,
                      cudaStream_t stream);

// Elementwise conversions (weights upload, KV pages migration, tests).
Status LaunchF32ToBf16(const float* in, __nv_bfloat16* out, size_t n, cudaStream_t stream);
Status LaunchBf16ToF32(const __nv_bfloat16* in, float* out, size_t n, cudaStream_t stream);

// Paged causal attention over a ragged batch: the decode rows and the prefill-chunk rows of
// every sequence in one launch. Row r of the batch attends, for each query head h, to the
// positions [0, ctx_len[r]) of its sequence (ctx_len = its position + 1: causal), whose K and
// V rows are at page block_tables[bt_offset[r] + t / page_size], row t % page_size, of
// k_cache / v_cache (one layer's [num_pages, page_size, kv_dim] bf16). Query head h reads
// KV head h / (n_heads / n_kv_heads) (GQA). Softmax of q.k * 1/sqrt(head_dim), fp32,
// online (one pass over the context).
// q: [rows, ld_q] fp32 (heads side by side from column 0); out: [rows, n_heads * head_dim]
// bf16.
struct AttentionArgs {
  const float* q = nullptr;
  int ld_q = 0;
  const __nv_bfloat16* k_cache = nullptr;
  const __nv_bfloat16* v_cache = nullptr;
  const int32_t* block_tables = nullptr;  // every row's sequence's table, concatenated
  const int32_t* bt_offset = nullptr;     // [rows]: where row r's table starts
  const int32_t* ctx_len = nullptr;       // [rows]: positions row r attends to
  __nv_bfloat16* out = nullptr;
  int rows = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;
};
Status LaunchPagedAttention(const AttentionArgs& a, cudaStream_t stream);

}  // namespace treepo::cuda
