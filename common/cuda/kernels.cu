// The elementwise and per-row kernels of the decoder forward (see kernels.h). Attention is in
// attention.cu. Simple by design: one thread per element or one block per row, fp32 math.
#include <algorithm>

#include "common/cuda/cuda_check.h"
#include "common/cuda/kernels.h"

namespace treepo::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline void StoreAs(float* p, float v) { *p = v; }
__device__ inline void StoreAs(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Blocks for a grid-stride loop over n elements.
inline unsigned Blocks(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<size_t>(b, size_t{1} << 20));
}

Status LastLaunch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return OkStatus();
  return CudaStatus(err, what, __FILE__, __LINE__);
}

// Sum over the block; every thread gets the total. `scratch`: >= 32 floats of shared memory.
__device__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps = (blockDim.x + 31) / 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float s = lane < warps ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

__global__ void EmbedKernel(const int32_t* tokens, const __nv_bfloat16* table, float* x, int rows,
                            int dim) {
  const size_t n = static_cast<size_t>(rows) * dim;
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < n;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t r = e / dim, i = e % dim;
    x[e] = __bfloat162float(table[static_cast<size_t>(tokens[r]) * dim + i]);
  }
}

template <typename Out>
__global__ void RmsNormKernel(const float* x, int ld_x, const int32_t* row_index, const float* w,
                              Out* out, int ld_out, int groups, int n, float eps) {
  __shared__ float scratch[32];
  const int r = blockIdx.x / groups, g = blockIdx.x % groups;
  const int src = row_index != nullptr ? row_index[r] : r;
  const float* xr = x + static_cast<size_t>(src) * ld_x + static_cast<size_t>(g) * n;
  Out* o = out + static_cast<size_t>(r) * ld_out + static_cast<size_t>(g) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / n + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) StoreAs(o + i, xr[i] * inv * w[i]);
}

__global__ void AddBiasKernel(float* y, int ld, const float* bias, int rows, int n) {
  const size_t total = static_cast<size_t>(rows) * n;
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t r = e / n, i = e % n;
    y[r * ld + i] += bias[i];
  }
}

__global__ void RopeKernel(float* x, int ld, const int32_t* positions, int rows, int n_heads,
                           int head_dim, const float* inv_freq, float scale, bool adjacent) {
  const int half = head_dim / 2;
  const size_t total = static_cast<size_t>(rows) * n_heads * half;
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const int i = static_cast<int>(e % half);
    const size_t rh = e / half;
    const int h = static_cast<int>(rh % n_heads);
    const size_t r = rh / n_heads;
    // The CPU's float arithmetic: angle in float, accurate cosf/sinf (no fast-math intrinsics).
    const float angle = static_cast<float>(positions[r]) * inv_freq[i];
    const float c = scale * cosf(angle), s = scale * sinf(angle);
    float* v = x + r * ld + static_cast<size_t>(h) * head_dim;
    const int a = adjacent ? 2 * i : i;
    const int b = adjacent ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

__global__ void SiluMulKernel(const float* gu, __nv_bfloat16* out, int rows, int n) {
  const size_t total = static_cast<size_t>(rows) * n;
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t r = e / n, i = e % n;
    const float g = gu[r * 2 * n + i], u = gu[r * 2 * n + n + i];
    out[e] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
  }
}

__global__ void KvAppendKernel(const float* k, const float* v, int ld, const int32_t* slots,
                               int rows, int kv_dim, __nv_bfloat16* k_cache,
                               __nv_bfloat16* v_cache) {
  const size_t total = static_cast<size_t>(rows) * kv_dim;
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t r = e / kv_dim, j = e % kv_dim;
    const size_t dst = static_cast<size_t>(slots[r]) * kv_dim + j;
    k_cache[dst] = __float2bfloat16_rn(k[r * ld + j]);
    v_cache[dst] = __float2bfloat16_rn(v[r * ld + j]);
  }
}

__global__ void F32ToBf16Kernel(const float* in, __nv_bfloat16* out, size_t n) {
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < n;
       e += size_t{gridDim.x} * blockDim.x) {
    out[e] = __float2bfloat16_rn(in[e]);
  }
}

__global__ void Bf16ToF32Kernel(const __nv_bfloat16* in, float* out, size_t n) {
  for (size_t e = blockIdx.x * size_t{blockDim.x} + threadIdx.x; e < n;
       e += size_t{gridDim.x} * blockDim.x) {
    out[e] = __bfloat162float(in[e]);
  }
}

// Threads for one block per vector of width n: a multiple of 32, at most kThreads.
inline int RowThreads(int n) { return std::min(kThreads, std::max(32, (n + 31) / 32 * 32)); }

template <typename Out>
Status RmsNormImpl(const float* x, int ld_x, const int32_t* row_index, const float* w, Out* out,
                   int ld_out, int rows, int groups, int n, float eps, cudaStream_t stream) {
  if (rows <= 0 || groups <= 0 || n <= 0) {
    return rows == 0 ? OkStatus() : InvalidArgument("RmsNorm: bad shape");
  }
  const size_t blocks = static_cast<size_t>(rows) * groups;
  if (blocks > 0x7fffffffu) return InvalidArgument("RmsNorm: too many rows");
  RmsNormKernel<Out><<<static_cast<unsigned>(blocks), RowThreads(n), 0, stream>>>(
      x, ld_x, row_index, w, out, ld_out, groups, n, eps);
  return LastLaunch("RmsNormKernel");
}

}  // namespace

Status LaunchEmbed(const int32_t* tokens, const __nv_bfloat16* table, float* x, int rows, int dim,
                   cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  EmbedKernel<<<Blocks(static_cast<size_t>(rows) * dim), kThreads, 0, stream>>>(tokens, table, x,
                                                                                rows, dim);
  return LastLaunch("EmbedKernel");
}

Status LaunchRmsNorm(const float* x, int ld_x, const int32_t* row_index, const float* w, float* out,
                     int ld_out, int rows, int groups, int n, float eps, cudaStream_t stream) {
  return RmsNormImpl(x, ld_x, row_index, w, out, ld_out, rows, groups, n, eps, stream);
}

Status LaunchRmsNorm(const float* x, int ld_x, const int32_t* row_index, const float* w,
                     __nv_bfloat16* out, int ld_out, int rows, int groups, int n, float eps,
                     cudaStream_t stream) {
  return RmsNormImpl(x, ld_x, row_index, w, out, ld_out, rows, groups, n, eps, stream);
}

Status LaunchAddBias(float* y, int ld, const float* bias, int rows, int n, cudaStream_t stream) {
  if (rows == 0 || n == 0) return OkStatus();
  AddBiasKernel<<<Blocks(static_cast<size_t>(rows) * n), kThreads, 0, stream>>>(y, ld, bias, rows,
                                                                                n);
  return LastLaunch("AddBiasKernel");
}

Status LaunchRope(float* x, int ld, const int32_t* positions, int rows, int n_heads, int head_dim,
                  const float* inv_freq, float scale, model::RopeLayout layout,
                  cudaStream_t stream) {
  if (head_dim % 2 != 0) return InvalidArgument("Rope: odd head_dim");
  const size_t n = static_cast<size_t>(rows) * n_heads * (head_dim / 2);
  if (n == 0) return OkStatus();
  RopeKernel<<<Blocks(n), kThreads, 0, stream>>>(x, ld, positions, rows, n_heads, head_dim,
                                                 inv_freq, scale,
                                                 layout == model::RopeLayout::kAdjacentPairs);
  return LastLaunch("RopeKernel");
}

Status LaunchSiluMul(const float* gu, __nv_bfloat16* out, int rows, int n, cudaStream_t stream) {
  if (rows == 0 || n == 0) return OkStatus();
  SiluMulKernel<<<Blocks(static_cast<size_t>(rows) * n), kThreads, 0, stream>>>(gu, out, rows, n);
  return LastLaunch("SiluMulKernel");
}

Status LaunchKvAppend(const float* k, const float* v, int ld, const int32_t* slots, int rows,
                      int kv_dim, __nv_bfloat16* k_cache, __nv_bfloat16* v_cache,
                      cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  KvAppendKernel<<<Blocks(static_cast<size_t>(rows) * kv_dim), kThreads, 0, stream>>>(
      k, v, ld, slots, rows, kv_dim, k_cache, v_cache);
  return LastLaunch("KvAppendKernel");
}

Status LaunchF32ToBf16(const float* in, __nv_bfloat16* out, size_t n, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  F32ToBf16Kernel<<<Blocks(n), kThreads, 0, stream>>>(in, out, n);
  return LastLaunch("F32ToBf16Kernel");
}

Status LaunchBf16ToF32(const __nv_bfloat16* in, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  Bf16ToF32Kernel<<<Blocks(n), kThreads, 0, stream>>>(in, out, n);
  return LastLaunch("Bf16ToF32Kernel");
}

}  // namespace treepo::cuda
