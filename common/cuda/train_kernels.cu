// Kernels of the CUDA training pass (train_kernels.h). Simple kernels over clever ones: one
// block per row (or per row and head), fp32 arithmetic, block reductions in shared memory.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "common/cuda/train_kernels.h"

namespace treepo::cuda {
namespace {

constexpr int kThreads = 256;

Status LaunchError(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return OkStatus();
  return Internal(std::string(what) + ": " + cudaGetErrorName(err) + ": " +
                  cudaGetErrorString(err));
}

unsigned Blocks(size_t n, int threads = kThreads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ float BlockSum(float v, float* shared32) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = lane < warps ? shared32[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

__device__ float BlockMax(float v, float* shared32) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = lane < warps ? shared32[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}

__global__ void EmbedF32Kernel(const int32_t* tokens, const float* table, float* x, int dim) {
  const size_t r = blockIdx.x;
  const float* src = table + static_cast<size_t>(tokens[r]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) x[r * dim + i] = src[i];
}

__global__ void EmbedBackwardKernel(const int32_t* tokens, const float* dx, float* dtable,
                                    int dim) {
  const size_t r = blockIdx.x;
  float* dst = dtable + static_cast<size_t>(tokens[r]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) atomicAdd(dst + i, dx[r * dim + i]);
}

__global__ void RmsNormTrainKernel(const float* x, const float* w, float* out, float* inv, int n,
                                   float eps) {
  __shared__ float sh[32];
  const size_t r = blockIdx.x;
  const float* xr = x + r * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = BlockSum(ss, sh);
  const float iv = rsqrtf(ss / n + eps);
  if (threadIdx.x == 0) inv[r] = iv;
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[r * n + i] = xr[i] * iv * w[i];
}

__global__ void RmsNormBackwardDxKernel(const float* x, const float* w, const float* inv,
                                        const float* dy, float* dx, int n, bool accumulate) {
  __shared__ float sh[32];
  const size_t r = blockIdx.x;
  const float iv = inv[r];
  const float *xr = x + r * n, *dyr = dy + r * n;
  float dot = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) dot += dyr[i] * w[i] * xr[i] * iv;
  dot = BlockSum(dot, sh) / n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float g = iv * (dyr[i] * w[i] - xr[i] * iv * dot);
    dx[r * n + i] = accumulate ? dx[r * n + i] + g : g;
  }
}

// One thread per column: dw[i] += sum over rows (coalesced across the threads of a warp).
__global__ void RmsNormBackwardDwKernel(const float* x, const float* inv, const float* dy,
                                        float* dw, int rows, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = 0.0f;
  for (int r = 0; r < rows; ++r) {
    const size_t at = static_cast<size_t>(r) * n + i;
    s += dy[at] * x[at] * inv[r];
  }
  dw[i] += s;
}

__global__ void ColumnSumKernel(const float* y, int rows, int n, float* dcol) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = 0.0f;
  for (int r = 0; r < rows; ++r) s += y[static_cast<size_t>(r) * n + i];
  dcol[i] += s;
}

__global__ void RopeTrainKernel(float* x, const int32_t* positions, int n_heads, int head_dim,
                                const float* inv_freq, float scale, bool adjacent, float sign) {
  const size_t r = blockIdx.x;
  const int half = head_dim / 2;
  const float pos = static_cast<float>(positions[r]);
  for (int t = threadIdx.x; t < n_heads * half; t += blockDim.x) {
    const int h = t / half, i = t % half;
    const float angle = pos * inv_freq[i];
    const float c = scale * cosf(angle), s = sign * scale * sinf(angle);
    float* v = x + r * n_heads * head_dim + static_cast<size_t>(h) * head_dim;
    const int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

__device__ float Sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

__global__ void SwiGluKernel(const float* gate, const float* up, float* act, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  act[i] = g * Sigmoid(g) * up[i];
}

__global__ void SwiGluBackwardKernel(const float* gate, const float* up, const float* dact,
                                     float* dgate, float* dup, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i], sg = Sigmoid(g), d = dact[i];
  dup[i] = d * g * sg;
  dgate[i] = d * up[i] * sg * (1.0f + g * (1.0f - sg));
}

// The keys of row i: rows 0..i (causal), or its CSR list.
struct KeyList {
  const int32_t* idx;  // null: causal
  int begin, count;
  __device__ KeyList(const int32_t* off, const int32_t* list, int i)
      : idx(off != nullptr ? list : nullptr),
        begin(off != nullptr ? off[i] : 0),
        count(off != nullptr ? off[i + 1] - off[i] : i + 1) {}
  __device__ int operator[](int t) const { return idx != nullptr ? idx[begin + t] : t; }
};

// Block (i, h): scores of query row i against its keys in shared memory, softmax, output.
__global__ void AttentionKernel(const float* q, const float* k, const float* v, float* out,
                                float* lse, const int32_t* key_off, const int32_t* key_idx,
                                int max_keys, int n_heads, int n_kv_heads, int hd, float scale) {
  extern __shared__ float s[];  // [max_keys] scores, then hd floats of q
  __shared__ float sh[32];
  const int i = blockIdx.x, h = blockIdx.y, kvh = h / (n_heads / n_kv_heads);
  const int qw = n_heads * hd, kw = n_kv_heads * hd;
  const KeyList keys(key_off, key_idx, i);
  float* qs = s + max_keys;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    qs[d] = q[static_cast<size_t>(i) * qw + h * hd + d];
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int t = threadIdx.x; t < keys.count; t += blockDim.x) {
    const float* kj = k + static_cast<size_t>(keys[t]) * kw + kvh * hd;
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot += qs[d] * kj[d];
    s[t] = dot * scale;
    mx = fmaxf(mx, s[t]);
  }
  mx = BlockMax(mx, sh);
  float sum = 0.0f;
  for (int t = threadIdx.x; t < keys.count; t += blockDim.x) {
    s[t] = expf(s[t] - mx);
    sum += s[t];
  }
  sum = BlockSum(sum, sh);  // synchronises, so s[] is complete
  const float inv = 1.0f / sum;
  if (threadIdx.x == 0) lse[static_cast<size_t>(i) * n_heads + h] = mx + logf(sum);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int t = 0; t < keys.count; ++t) {
      acc += s[t] * v[static_cast<size_t>(keys[t]) * kw + kvh * hd + d];
    }
    out[static_cast<size_t>(i) * qw + h * hd + d] = acc * inv;
  }
}

// Block (i, h): delta = dout_i . out_i, ds_ij = p_ij (dout_i . v_j - delta), dq_i.
__global__ void AttentionBackwardQKernel(const float* q, const float* k, const float* v,
                                         const float* out, const float* lse, const float* dout,
                                         float* delta, float* dq, const int32_t* key_off,
                                         const int32_t* key_idx, int max_keys, int n_heads,
                                         int n_kv_heads, int hd, float scale) {
  extern __shared__ float s[];  // [max_keys] ds, then hd of q, then hd of dout
  __shared__ float sh[32];
  const int i = blockIdx.x, h = blockIdx.y, kvh = h / (n_heads / n_kv_heads);
  const int qw = n_heads * hd, kw = n_kv_heads * hd;
  const KeyList keys(key_off, key_idx, i);
  const size_t qi = static_cast<size_t>(i) * qw + h * hd;
  float* qs = s + max_keys;
  float* dos = qs + hd;
  float dd = 0.0f;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    qs[d] = q[qi + d];
    dos[d] = dout[qi + d];
    dd += dout[qi + d] * out[qi + d];
  }
  dd = BlockSum(dd, sh);  // synchronises: qs, dos complete
  const float l = lse[static_cast<size_t>(i) * n_heads + h];
  if (threadIdx.x == 0) delta[static_cast<size_t>(i) * n_heads + h] = dd;
  for (int t = threadIdx.x; t < keys.count; t += blockDim.x) {
    const size_t j = static_cast<size_t>(keys[t]) * kw + kvh * hd;
    float sc = 0.0f, dp = 0.0f;
    for (int d = 0; d < hd; ++d) {
      sc += qs[d] * k[j + d];
      dp += dos[d] * v[j + d];
    }
    const float p = expf(sc * scale - l);
    s[t] = p * (dp - dd);
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int t = 0; t < keys.count; ++t) {
      acc += s[t] * k[static_cast<size_t>(keys[t]) * kw + kvh * hd + d];
    }
    dq[qi + d] = acc * scale;
  }
}

constexpr int kKvChunk = 2048;  // attenders per pass of the dk/dv kernel (shared memory)

// Block (j, kvh): dk_j, dv_j summed over the query heads of the group and the rows attending
// to j (rows j..len-1, or its CSR list), kKvChunk rows at a time.
__global__ void AttentionBackwardKvKernel(const float* q, const float* k, const float* v,
                                          const float* lse, const float* dout, const float* delta,
                                          float* dk, float* dv, const int32_t* att_off,
                                          const int32_t* att_idx, int len, int n_heads,
                                          int n_kv_heads, int hd, float scale) {
  __shared__ float p[kKvChunk], ds[kKvChunk];
  __shared__ int32_t rows_sh[kKvChunk];
  extern __shared__ float s[];  // hd of k_j, hd of v_j
  const int j = blockIdx.x, kvh = blockIdx.y, group = n_heads / n_kv_heads;
  const int qw = n_heads * hd, kw = n_kv_heads * hd;
  const int begin = att_off != nullptr ? att_off[j] : 0;
  const int total = att_off != nullptr ? att_off[j + 1] - begin : len - j;
  float* ks = s;
  float* vs = s + hd;
  const size_t kj = static_cast<size_t>(j) * kw + kvh * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    ks[d] = k[kj + d];
    vs[d] = v[kj + d];
  }
  float accv[4] = {0, 0, 0, 0}, acck[4] = {0, 0, 0, 0};  // hd <= 4 * blockDim.x
  for (int c0 = 0; c0 < total; c0 += kKvChunk) {
    const int cnt = min(kKvChunk, total - c0);
    for (int g = 0; g < group; ++g) {
      const int h = kvh * group + g;
      __syncthreads();  // the previous pass's p, ds, rows_sh are consumed
      for (int t = threadIdx.x; t < cnt; t += blockDim.x) {
        const int i = att_idx != nullptr ? att_idx[begin + c0 + t] : j + c0 + t;
        const size_t qi = static_cast<size_t>(i) * qw + h * hd;
        float sc = 0.0f, dp = 0.0f;
        for (int d = 0; d < hd; ++d) {
          sc += q[qi + d] * ks[d];
          dp += dout[qi + d] * vs[d];
        }
        const float pr = expf(sc * scale - lse[static_cast<size_t>(i) * n_heads + h]);
        p[t] = pr;
        ds[t] = pr * (dp - delta[static_cast<size_t>(i) * n_heads + h]);
        rows_sh[t] = i;
      }
      __syncthreads();
      for (int c = 0; c < 4; ++c) {
        const int d = threadIdx.x + c * blockDim.x;
        if (d >= hd) break;
        float av = 0.0f, ak = 0.0f;
        for (int t = 0; t < cnt; ++t) {
          const size_t qi = static_cast<size_t>(rows_sh[t]) * qw + h * hd;
          av += p[t] * dout[qi + d];
          ak += ds[t] * q[qi + d];
        }
        accv[c] += av;
        acck[c] += ak;
      }
    }
  }
  for (int c = 0; c < 4; ++c) {
    const int d = threadIdx.x + c * blockDim.x;
    if (d >= hd) break;
    dv[kj + d] = accv[c];
    dk[kj + d] = acck[c] * scale;
  }
}

__global__ void LogSoftmaxStatsKernel(const float* logits, float* lse, float* entropy_rows,
                                      int vocab) {
  __shared__ float sh[32];
  const size_t r = blockIdx.x;
  const float* z = logits + r * vocab;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) mx = fmaxf(mx, z[i]);
  mx = BlockMax(mx, sh);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(z[i] - mx);
  sum = BlockSum(sum, sh);
  // H = log(sum) - sum_i e_i (z_i - mx) / sum, with e_i = exp(z_i - mx) (as the CPU does).
  float ez = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) ez += expf(z[i] - mx) * (z[i] - mx);
  ez = BlockSum(ez, sh);
  if (threadIdx.x == 0) {
    const float shift = logf(sum);
    lse[r] = mx + shift;
    entropy_rows[r] = shift - ez / sum;
  }
}

__global__ void GatherOutputsKernel(const float* logits, const float* lse,
                                    const float* entropy_rows, const int32_t* src,
                                    const int32_t* tok, float* logp, float* entropy, int n_out,
                                    int vocab) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= n_out) return;
  const int r = src[o];
  if (r < 0) {
    logp[o] = 0.0f;
    entropy[o] = 0.0f;
    return;
  }
  logp[o] = logits[static_cast<size_t>(r) * vocab + tok[o]] - lse[r];
  entropy[o] = entropy_rows[r];
}

__global__ void LogSoftmaxBackwardKernel(float* logits, const float* lse, const float* entropy_rows,
                                         const float* gl, const float* ge, int vocab) {
  const size_t r = blockIdx.x;
  float* z = logits + r * vocab;
  const float l = lse[r], a = gl[r], b = ge[r], h = entropy_rows[r];
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float lp = z[i] - l, p = expf(lp);
    z[i] = -a * p - b * p * (lp + h);
  }
}

__global__ void ScatterOneHotKernel(float* dlogits, const int32_t* src, const int32_t* tok,
                                    const float* dlogp, int n_out, int vocab) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= n_out || src[o] < 0) return;
  atomicAdd(dlogits + static_cast<size_t>(src[o]) * vocab + tok[o], dlogp[o]);
}

__global__ void SumSquaresKernel(const float* x, size_t n, double* out) {
  __shared__ double sh[kThreads];
  double s = 0.0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    s += static_cast<double>(x[i]) * x[i];
  }
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(out, sh[0]);
}

__global__ void AdamWKernel(float* params, float* grad, float* m, float* v,
                            const uint8_t* decay_mask, __nv_bfloat16* pb, size_t n, AdamWArgs a) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = grad[i] * a.scale;
  const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
  const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  float p = decay_mask[i] ? params[i] * a.decay : params[i];
  p -= a.step_size * mi / (sqrtf(vi) * a.inv_sqrt_bc2 + a.eps);
  params[i] = p;
  pb[i] = __float2bfloat16(p);
  grad[i] = 0.0f;
}

// Dynamic shared memory above the default 48 KiB needs an opt-in per kernel.
template <typename K>
Status AllowShared(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return OkStatus();
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(bytes));
  if (err != cudaSuccess) {
    return InvalidArgument("attention: a sequence needs " + std::to_string(bytes) +
                           " bytes of shared memory, more than the device gives a block (" +
                           cudaGetErrorString(err) + "); use shorter sequences");
  }
  return OkStatus();
}

}  // namespace

Status LaunchEmbedF32(const int32_t* tokens, const float* table, float* x, int rows, int dim,
                      cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  EmbedF32Kernel<<<rows, 128, 0, stream>>>(tokens, table, x, dim);
  return LaunchError("EmbedF32Kernel");
}

Status LaunchEmbedBackward(const int32_t* tokens, const float* dx, float* dtable, int rows, int dim,
                           cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  EmbedBackwardKernel<<<rows, 128, 0, stream>>>(tokens, dx, dtable, dim);
  return LaunchError("EmbedBackwardKernel");
}

Status LaunchRmsNormTrain(const float* x, const float* w, float* out, float* inv, int rows, int n,
                          float eps, cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  RmsNormTrainKernel<<<rows, kThreads, 0, stream>>>(x, w, out, inv, n, eps);
  return LaunchError("RmsNormTrainKernel");
}

Status LaunchRmsNormBackward(const float* x, const float* w, const float* inv, const float* dy,
                             float* dx, float* dw, int rows, int n, bool accumulate,
                             cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  RmsNormBackwardDxKernel<<<rows, kThreads, 0, stream>>>(x, w, inv, dy, dx, n, accumulate);
  TREEPO_RETURN_IF_ERROR(LaunchError("RmsNormBackwardDxKernel"));
  RmsNormBackwardDwKernel<<<Blocks(n), kThreads, 0, stream>>>(x, inv, dy, dw, rows, n);
  return LaunchError("RmsNormBackwardDwKernel");
}

Status LaunchColumnSum(const float* y, int rows, int n, float* dcol, cudaStream_t stream) {
  if (rows == 0 || n == 0) return OkStatus();
  ColumnSumKernel<<<Blocks(n), kThreads, 0, stream>>>(y, rows, n, dcol);
  return LaunchError("ColumnSumKernel");
}

Status LaunchRopeTrain(float* x, const int32_t* positions, int rows, int n_heads, int head_dim,
                       const float* inv_freq, float scale, model::RopeLayout layout, bool inverse,
                       cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  RopeTrainKernel<<<rows, 128, 0, stream>>>(x, positions, n_heads, head_dim, inv_freq, scale,
                                            layout == model::RopeLayout::kAdjacentPairs,
                                            inverse ? -1.0f : 1.0f);
  return LaunchError("RopeTrainKernel");
}

Status LaunchSwiGlu(const float* gate, const float* up, float* act, size_t n, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  SwiGluKernel<<<Blocks(n), kThreads, 0, stream>>>(gate, up, act, n);
  return LaunchError("SwiGluKernel");
}

Status LaunchSwiGluBackward(const float* gate, const float* up, const float* dact, float* dgate,
                            float* dup, size_t n, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  SwiGluBackwardKernel<<<Blocks(n), kThreads, 0, stream>>>(gate, up, dact, dgate, dup, n);
  return LaunchError("SwiGluBackwardKernel");
}

Status LaunchTrainAttention(const float* q, const float* k, const float* v, float* out, float* lse,
                            int len, int n_heads, int n_kv_heads, int hd,
                            const AttentionLists* lists, int max_keys, cudaStream_t stream) {
  if (len == 0) return OkStatus();
  const size_t shared = (static_cast<size_t>(max_keys) + hd) * sizeof(float);
  TREEPO_RETURN_IF_ERROR(AllowShared(AttentionKernel, shared));
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  AttentionKernel<<<dim3(len, n_heads), 128, shared, stream>>>(
      q, k, v, out, lse, lists != nullptr ? lists->key_off : nullptr,
      lists != nullptr ? lists->key_idx : nullptr, max_keys, n_heads, n_kv_heads, hd, scale);
  return LaunchError("AttentionKernel");
}

Status LaunchTrainAttentionBackward(const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const float* dout,
                                    float* delta, float* dq, float* dk, float* dv, int len,
                                    int n_heads, int n_kv_heads, int hd,
                                    const AttentionLists* lists, int max_keys,
                                    cudaStream_t stream) {
  if (len == 0) return OkStatus();
  if (hd > 4 * 128) return InvalidArgument("attention backward: head_dim above 512");
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const size_t shared_q = (static_cast<size_t>(max_keys) + 2 * hd) * sizeof(float);
  TREEPO_RETURN_IF_ERROR(AllowShared(AttentionBackwardQKernel, shared_q));
  AttentionBackwardQKernel<<<dim3(len, n_heads), 128, shared_q, stream>>>(
      q, k, v, out, lse, dout, delta, dq, lists != nullptr ? lists->key_off : nullptr,
      lists != nullptr ? lists->key_idx : nullptr, max_keys, n_heads, n_kv_heads, hd, scale);
  TREEPO_RETURN_IF_ERROR(LaunchError("AttentionBackwardQKernel"));
  const size_t shared_kv = 2 * static_cast<size_t>(hd) * sizeof(float);  // + 24 KiB static
  AttentionBackwardKvKernel<<<dim3(len, n_kv_heads), 128, shared_kv, stream>>>(
      q, k, v, lse, dout, delta, dk, dv, lists != nullptr ? lists->att_off : nullptr,
      lists != nullptr ? lists->att_idx : nullptr, len, n_heads, n_kv_heads, hd, scale);
  return LaunchError("AttentionBackwardKvKernel");
}

Status LaunchLogSoftmaxStats(const float* logits, float* lse, float* entropy_rows, int rows,
                             int vocab, cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  LogSoftmaxStatsKernel<<<rows, kThreads, 0, stream>>>(logits, lse, entropy_rows, vocab);
  return LaunchError("LogSoftmaxStatsKernel");
}

Status LaunchGatherOutputs(const float* logits, const float* lse, const float* entropy_rows,
                           const int32_t* src, const int32_t* tok, float* logp, float* entropy,
                           int n_out, int vocab, cudaStream_t stream) {
  if (n_out == 0) return OkStatus();
  GatherOutputsKernel<<<Blocks(n_out), kThreads, 0, stream>>>(logits, lse, entropy_rows, src, tok,
                                                              logp, entropy, n_out, vocab);
  return LaunchError("GatherOutputsKernel");
}

Status LaunchLogSoftmaxBackward(float* logits, const float* lse, const float* entropy_rows,
                                const float* gl, const float* ge, const int32_t* src,
                                const int32_t* tok, const float* dlogp, int rows, int n_out,
                                int vocab, cudaStream_t stream) {
  if (rows == 0) return OkStatus();
  LogSoftmaxBackwardKernel<<<rows, kThreads, 0, stream>>>(logits, lse, entropy_rows, gl, ge, vocab);
  TREEPO_RETURN_IF_ERROR(LaunchError("LogSoftmaxBackwardKernel"));
  if (n_out == 0) return OkStatus();
  ScatterOneHotKernel<<<Blocks(n_out), kThreads, 0, stream>>>(logits, src, tok, dlogp, n_out,
                                                              vocab);
  return LaunchError("ScatterOneHotKernel");
}

Status LaunchSumSquares(const float* x, size_t n, double* out, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  const unsigned blocks = std::min<unsigned>(Blocks(n), 1024);
  SumSquaresKernel<<<blocks, kThreads, 0, stream>>>(x, n, out);
  return LaunchError("SumSquaresKernel");
}

Status LaunchAdamW(float* params, float* grad, float* m, float* v, const uint8_t* decay_mask,
                   __nv_bfloat16* params_bf16, size_t n, const AdamWArgs& a, cudaStream_t stream) {
  if (n == 0) return OkStatus();
  AdamWKernel<<<Blocks(n), kThreads, 0, stream>>>(params, grad, m, v, decay_mask, params_bf16, n,
                                                  a);
  return LaunchError("AdamWKernel");
}

}  // namespace treepo::cuda
