// Paged causal attention over a ragged batch (kernels.h, LaunchPagedAttention).
//
// One thread block per (row, KV head, chunk of up to 2, 4 or 8 query heads of that KV head):
// the query heads that share a KV head (GQA) read each K and V row once. The block's warps
// take the row's context positions round-robin; each warp keeps an online softmax (running
// max m, running sum l, unnormalised output) per query head in registers, a lane owning
// head dims lane, lane + 32, ... At the end the warps' partial states are merged through
// shared memory: M = max m_w, out = sum exp(m_w - M) acc_w / sum exp(m_w - M) l_w.
//
// Decode rows (one query) and prefill-chunk rows (many queries of one sequence) take the same
// path: a row is a row, its causal limit is ctx_len[r] and its pages come from its table. The
// design follows the paged decode kernels of vLLM and FlashInfer (block tables, GQA grouping,
// online softmax, a final merge of partial states) without their tiling across rows of a
// prefill chunk or their split of long contexts over several blocks; see docs/gpu.md.
#include <cfloat>

#include "common/cuda/cuda_check.h"
#include "common/cuda/kernels.h"

namespace treepo::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = 256;

// kMaxGroup: query heads one block takes (a larger group: more blocks along z);
// kMaxDimLanes: head dims per lane (head_dim <= 32 * kMaxDimLanes). Both size the per-thread
// registers; the instantiations are the switch in LaunchPagedAttention.
template <int kMaxGroup, int kMaxDimLanes>
__global__ void __launch_bounds__(kWarps * 32)
    PagedAttentionKernel(AttentionArgs a, int kv_dim, float scale) {
  extern __shared__ float smem[];
  const int r = blockIdx.x, kvh = blockIdx.y;
  const int group = a.n_heads / a.n_kv_heads;
  const int g0 = blockIdx.z * kMaxGroup;
  const int gn = min(kMaxGroup, group - g0);
  const int hd = a.head_dim;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  float q[kMaxGroup][kMaxDimLanes], acc[kMaxGroup][kMaxDimLanes];
  float m[kMaxGroup], l[kMaxGroup];
  const float* qrow = a.q + static_cast<size_t>(r) * a.ld_q;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxDimLanes; ++j) {
      const int d = lane + 32 * j;
      const bool live = g < gn && d < hd;
      q[g][j] = live ? qrow[(kvh * group + g0 + g) * hd + d] : 0.0f;
      acc[g][j] = 0.0f;
    }
  }

  const int ctx = a.ctx_len[r];
  const int32_t* table = a.block_tables + a.bt_offset[r];
  for (int t = warp; t < ctx; t += kWarps) {
    const size_t at =
        (static_cast<size_t>(table[t / a.page_size]) * a.page_size + t % a.page_size) * kv_dim +
        static_cast<size_t>(kvh) * hd;
    float k[kMaxDimLanes], v[kMaxDimLanes];
#pragma unroll
    for (int j = 0; j < kMaxDimLanes; ++j) {
      const int d = lane + 32 * j;
      k[j] = d < hd ? __bfloat162float(a.k_cache[at + d]) : 0.0f;
      v[j] = d < hd ? __bfloat162float(a.v_cache[at + d]) : 0.0f;
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= gn) break;
      float s = 0.0f;
#pragma unroll
      for (int j = 0; j < kMaxDimLanes; ++j) s += q[g][j] * k[j];
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      s *= scale;
      const float m_new = fmaxf(m[g], s);
      const float corr = expf(m[g] - m_new);  // 0 on the first position (m = -inf)
      const float p = expf(s - m_new);
      l[g] = l[g] * corr + p;
#pragma unroll
      for (int j = 0; j < kMaxDimLanes; ++j) acc[g][j] = acc[g][j] * corr + p * v[j];
      m[g] = m_new;
    }
  }

  // Merge the warps' states: smem = m[kWarps][gn], l[kWarps][gn], acc[kWarps][gn][hd].
  float* m_s = smem;
  float* l_s = m_s + kWarps * gn;
  float* acc_s = l_s + kWarps * gn;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= gn) break;
    if (lane == 0) {
      m_s[warp * gn + g] = m[g];
      l_s[warp * gn + g] = l[g];
    }
#pragma unroll
    for (int j = 0; j < kMaxDimLanes; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) acc_s[(static_cast<size_t>(warp) * gn + g) * hd + d] = acc[g][j];
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < gn * hd; e += blockDim.x) {
    const int g = e / hd, d = e % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, m_s[w * gn + g]);
    float sum = 0.0f, o = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float f = expf(m_s[w * gn + g] - mx);  // 0 for a warp that saw no position
      sum += f * l_s[w * gn + g];
      o += f * acc_s[(static_cast<size_t>(w) * gn + g) * hd + d];
    }
    a.out[static_cast<size_t>(r) * a.n_heads * hd + (kvh * group + g0 + g) * hd + d] =
        __float2bfloat16_rn(o / sum);
  }
}

}  // namespace

Status LaunchPagedAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.rows == 0) return OkStatus();
  if (a.rows < 0 || a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 ||
      a.page_size <= 0) {
    return InvalidArgument("PagedAttention: bad shape (heads " + std::to_string(a.n_heads) + "/" +
                           std::to_string(a.n_kv_heads) + ", page_size " +
                           std::to_string(a.page_size) + ")");
  }
  if (a.head_dim <= 0 || a.head_dim > kMaxHeadDim) {
    return InvalidArgument("PagedAttention: head_dim " + std::to_string(a.head_dim) +
                           " is not in 1.." + std::to_string(kMaxHeadDim));
  }
  if (a.n_kv_heads > 65535) return InvalidArgument("PagedAttention: too many KV heads");
  const int group = a.n_heads / a.n_kv_heads;
  const int max_group = group <= 2 ? 2 : group <= 4 ? 4 : 8;
  const int dim_lanes = a.head_dim <= 64 ? 2 : a.head_dim <= 128 ? 4 : 8;
  const int chunks = (group + max_group - 1) / max_group;
  const int gn = group < max_group ? group : max_group;
  const size_t smem = sizeof(float) * kWarps * gn * (2 + static_cast<size_t>(a.head_dim));
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.n_kv_heads),
                  static_cast<unsigned>(chunks));
  const dim3 block(kWarps * 32);
  const int kv_dim = a.n_kv_heads * a.head_dim;
  const float scale = 1.0f / sqrtf(static_cast<float>(a.head_dim));
  switch (max_group * 10 + dim_lanes) {
#define TREEPO_ATTENTION_CASE(G, D)                                              \
  case G * 10 + D:                                                               \
    PagedAttentionKernel<G, D><<<grid, block, smem, stream>>>(a, kv_dim, scale); \
    break;
    TREEPO_ATTENTION_CASE(2, 2)
    TREEPO_ATTENTION_CASE(2, 4)
    TREEPO_ATTENTION_CASE(2, 8)
    TREEPO_ATTENTION_CASE(4, 2)
    TREEPO_ATTENTION_CASE(4, 4)
    TREEPO_ATTENTION_CASE(4, 8)
    TREEPO_ATTENTION_CASE(8, 2)
    TREEPO_ATTENTION_CASE(8, 4)
    TREEPO_ATTENTION_CASE(8, 8)
#undef TREEPO_ATTENTION_CASE
    default:
      return Internal("PagedAttention: no instantiation for group " + std::to_string(max_group) +
                      ", dims per lane " + std::to_string(dim_lanes));
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return CudaStatus(err, "PagedAttentionKernel", __FILE__, __LINE__);
  return OkStatus();
}

}  // namespace treepo::cuda
