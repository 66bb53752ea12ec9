// The CUDA decoder backend: DeviceWeights + CudaKvPages + the kernels, one stream.
//
// A forward pass: the batch is planned on the host (batch_plan.h) and its int32 arrays go to
// the device in one copy; then per layer RMSNorm -> fused QKV GEMM -> bias, q/k norm, RoPE ->
// K/V appended into the pages -> paged attention -> output GEMM (+= residual) -> RMSNorm ->
// fused gate|up GEMM -> SwiGLU -> down GEMM (+= residual); the logit rows are gathered by
// the final RMSNorm, go through the LM head, and the fp32 logits are copied to the host. The
// residual stream and every GEMM output are fp32; GEMM inputs are bf16 (cuBLAS, fp32
// accumulation); K and V are stored bf16.
#include "common/cuda/cuda_decoder.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/cuda/batch_plan.h"
#include "common/cuda/cuda_check.h"
#include "common/cuda/cuda_kv_pages.h"
#include "common/cuda/device.h"
#include "common/cuda/device_weights.h"
#include "common/cuda/kernels.h"

namespace treepo::cuda {
namespace {

using bf16 = __nv_bfloat16;

// Scratch of a forward pass on the device; grows, never shrinks.
struct Scratch {
  DeviceBuffer ints;    // BatchPlan::ints
  DeviceBuffer x;       // fp32 [rows, dim]: the residual stream
  DeviceBuffer xb;      // bf16 [rows, dim]: normed input of a GEMM
  DeviceBuffer qkv;     // fp32 [rows, q_dim + 2 kv_dim]
  DeviceBuffer att;     // bf16 [rows, q_dim]
  DeviceBuffer gu;      // fp32 [rows, 2 hidden]
  DeviceBuffer hb;      // bf16 [rows, hidden]
  DeviceBuffer fin;     // bf16 [n_out, dim]
  DeviceBuffer logits;  // fp32 [n_out, vocab]
  PinnedBuffer ints_host;
};

class CudaDecoder final : public compute::DecoderBackend {
 public:
  CudaDecoder(std::unique_ptr<DeviceContext> ctx, std::unique_ptr<DeviceWeights> weights,
              std::unique_ptr<CudaKvPages> kv)
      : ctx_(std::move(ctx)), weights_(std::move(weights)), kv_(std::move(kv)) {}

  ~CudaDecoder() override {
    (void)cudaSetDevice(ctx_->device());
    (void)cudaStreamSynchronize(ctx_->stream());
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  }

  std::string_view name() const override { return "cuda"; }
  compute::KvPages& kv() override { return *kv_; }
  const compute::KvPages& kv() const override { return *kv_; }

  Status SetWeights(std::shared_ptr<const model::ModelWeights> weights) override {
    if (weights == nullptr) return InvalidArgument("cuda backend: no weights");
    ctx_->MakeCurrent();
    ctx_->Sync();
    return weights_->Update(*weights);
  }

  void Forward(const compute::ForwardBatch& batch, float* logits) override;

  compute::ForwardStats stats() const override { return stats_; }

 private:
  // y[m, n] = beta * y + x[m, k] . w[n, k]^T: bf16 inputs, fp32 output and accumulation.
  void Gemm(const bf16* x, const DeviceBuffer& w, float* y, int m, int n, int k, float beta);
  void Reserve(const BatchPlan& plan);

  std::unique_ptr<DeviceContext> ctx_;
  std::unique_ptr<DeviceWeights> weights_;
  std::unique_ptr<CudaKvPages> kv_;
  Scratch s_;
  BatchPlan plan_;
  std::vector<cudaEvent_t> events_;  // pairs around each GEMM of the current forward
  size_t events_used_ = 0;
  double pending_flops_ = 0.0;
  compute::ForwardStats stats_;
};

void CudaDecoder::Gemm(const bf16* x, const DeviceBuffer& w, float* y, int m, int n, int k,
                       float beta) {
  TREEPO_CHECK_GE(w.bytes(), static_cast<size_t>(n) * k * sizeof(bf16));
  if (events_used_ + 2 > events_.size()) {
    for (int i = 0; i < 2; ++i) {
      cudaEvent_t e = nullptr;
      TREEPO_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
  }
  TREEPO_CUDA_CHECK(cudaEventRecord(events_[events_used_], ctx_->stream()));
  const float alpha = 1.0f;
  // cuBLAS is column-major: row-major y[m, n] is column-major y^T[n, m] = w . x^T, where the
  // stored w[n, k] reads as a column-major [k, n] matrix (hence OP_T) and x[m, k] as [k, m].
  TREEPO_CUBLAS_CHECK(cublasGemmEx(ctx_->cublas(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                   w.data(), CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, y,
                                   CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  TREEPO_CUDA_CHECK(cudaEventRecord(events_[events_used_ + 1], ctx_->stream()));
  events_used_ += 2;
  pending_flops_ += 2.0 * m * n * k;
}

void CudaDecoder::Reserve(const BatchPlan& plan) {
  const model::ModelConfig& c = weights_->config();
  const size_t r = static_cast<size_t>(plan.rows), o = static_cast<size_t>(plan.n_out);
  const size_t qkv = static_cast<size_t>(c.q_dim()) + 2 * c.kv_dim();
  GrowDevice(&s_.ints, plan.ints.size() * sizeof(int32_t));
  GrowPinned(&s_.ints_host, plan.ints.size() * sizeof(int32_t));
  GrowDevice(&s_.x, r * c.dim * sizeof(float));
  GrowDevice(&s_.xb, r * c.dim * sizeof(bf16));
  GrowDevice(&s_.qkv, r * qkv * sizeof(float));
  GrowDevice(&s_.att, r * c.q_dim() * sizeof(bf16));
  GrowDevice(&s_.gu, r * 2 * c.hidden_dim * sizeof(float));
  GrowDevice(&s_.hb, r * c.hidden_dim * sizeof(bf16));
  GrowDevice(&s_.fin, o * c.dim * sizeof(bf16));
  GrowDevice(&s_.logits, o * c.vocab_size * sizeof(float));
}

void CudaDecoder::Forward(const compute::ForwardBatch& batch, float* logits) {
  const model::ModelConfig& c = weights_->config();
  const compute::KvShape& ks = kv_->shape();
  PlanBatch(batch, c.vocab_size, ks.page_size, ks.num_pages, &plan_);
  if (plan_.rows == 0) return;
  ctx_->MakeCurrent();
  Reserve(plan_);
  const cudaStream_t st = ctx_->stream();
  const int rows = plan_.rows, dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim();
  const int hid = c.hidden_dim, hd = c.head_dim(), qkvw = qd + 2 * kvd;
  const float eps = c.norm_eps;
  const float rope_scale = static_cast<float>(c.rope_scaling.attention_factor);

  std::memcpy(s_.ints_host.data(), plan_.ints.data(), plan_.ints.size() * sizeof(int32_t));
  TREEPO_CUDA_CHECK(cudaMemcpyAsync(s_.ints.data(), s_.ints_host.data(),
                                    plan_.ints.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    st));
  const int32_t* ints = s_.ints.as<int32_t>();
  const int32_t* tokens = ints + plan_.tokens;
  const int32_t* positions = ints + plan_.positions;
  float* x = s_.x.as<float>();
  bf16* xb = s_.xb.as<bf16>();
  float* qkv = s_.qkv.as<float>();
  bf16* att = s_.att.as<bf16>();
  float* gu = s_.gu.as<float>();
  bf16* hb = s_.hb.as<bf16>();
  const float* inv_freq = weights_->inv_freq().as<float>();
  events_used_ = 0;
  pending_flops_ = 0.0;

  TREEPO_CHECK_OK(LaunchEmbed(tokens, weights_->embed().as<bf16>(), x, rows, dim, st));
  for (int l = 0; l < c.n_layers; ++l) {
    const DeviceLayer& w = weights_->layer(l);
    TREEPO_CHECK_OK(
        LaunchRmsNorm(x, dim, nullptr, w.attn_norm.as<float>(), xb, dim, rows, 1, dim, eps, st));
    Gemm(xb, w.wqkv, qkv, rows, qkvw, dim, 0.0f);
    if (w.bqkv.data() != nullptr) {
      TREEPO_CHECK_OK(LaunchAddBias(qkv, qkvw, w.bqkv.as<float>(), rows, qkvw, st));
    }
    if (w.q_norm.data() != nullptr) {  // per head, in place
      TREEPO_CHECK_OK(LaunchRmsNorm(qkv, qkvw, nullptr, w.q_norm.as<float>(), qkv, qkvw, rows,
                                    c.n_heads, hd, eps, st));
      TREEPO_CHECK_OK(LaunchRmsNorm(qkv + qd, qkvw, nullptr, w.k_norm.as<float>(), qkv + qd, qkvw,
                                    rows, c.n_kv_heads, hd, eps, st));
    }
    TREEPO_CHECK_OK(LaunchRope(qkv, qkvw, positions, rows, c.n_heads, hd, inv_freq, rope_scale,
                               c.rope_layout, st));
    TREEPO_CHECK_OK(LaunchRope(qkv + qd, qkvw, positions, rows, c.n_kv_heads, hd, inv_freq,
                               rope_scale, c.rope_layout, st));
    TREEPO_CHECK_OK(LaunchKvAppend(qkv + qd, qkv + qd + kvd, qkvw, ints + plan_.slots, rows, kvd,
                                   kv_->K(l), kv_->V(l), st));
    AttentionArgs a;
    a.q = qkv;
    a.ld_q = qkvw;
    a.k_cache = kv_->K(l);
    a.v_cache = kv_->V(l);
    a.block_tables = ints + plan_.block_tables;
    a.bt_offset = ints + plan_.bt_offset;
    a.ctx_len = ints + plan_.ctx_len;
    a.out = att;
    a.rows = rows;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.head_dim = hd;
    a.page_size = ks.page_size;
    TREEPO_CHECK_OK(LaunchPagedAttention(a, st));
    Gemm(att, w.wo, x, rows, dim, qd, 1.0f);  // residual: x += att . wo^T
    TREEPO_CHECK_OK(
        LaunchRmsNorm(x, dim, nullptr, w.ffn_norm.as<float>(), xb, dim, rows, 1, dim, eps, st));
    Gemm(xb, w.w13, gu, rows, 2 * hid, dim, 0.0f);
    TREEPO_CHECK_OK(LaunchSiluMul(gu, hb, rows, hid, st));
    Gemm(hb, w.w2, x, rows, dim, hid, 1.0f);  // residual
  }
  const int n_out = plan_.n_out;
  if (n_out > 0) {
    bf16* fin = s_.fin.as<bf16>();
    float* dlogits = s_.logits.as<float>();
    TREEPO_CHECK_OK(LaunchRmsNorm(x, dim, ints + plan_.logit_rows,
                                  weights_->final_norm().as<float>(), fin, dim, n_out, 1, dim, eps,
                                  st));
    Gemm(fin, weights_->lm_head(), dlogits, n_out, c.vocab_size, dim, 0.0f);
    TREEPO_CUDA_CHECK(cudaMemcpyAsync(logits, dlogits,
                                      static_cast<size_t>(n_out) * c.vocab_size * sizeof(float),
                                      cudaMemcpyDeviceToHost, st));
  }
  ctx_->Sync();
  for (size_t i = 0; i < events_used_; i += 2) {
    float ms = 0.0f;
    TREEPO_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    stats_.matmul_seconds += ms * 1e-3;
  }
  stats_.matmul_flops += pending_flops_;
}

}  // namespace

Result<std::unique_ptr<compute::DecoderBackend>> CreateCudaDecoder(
    int device, std::shared_ptr<const model::ModelWeights> weights, const compute::KvShape& kv) {
  if (weights == nullptr) return InvalidArgument("cuda backend: no weights");
  const model::ModelConfig& c = weights->config;
  if (kv.n_layers != c.n_layers || kv.kv_dim != c.kv_dim()) {
    return InvalidArgument("cuda backend: the KV shape does not match the model");
  }
  if (c.head_dim() > 256 || c.head_dim() % 2 != 0) {
    return InvalidArgument("cuda backend: head_dim " + std::to_string(c.head_dim()) +
                           " is not supported (even, at most 256)");
  }
  if (c.n_kv_heads > 65535) return InvalidArgument("cuda backend: more than 65535 KV heads");
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<DeviceContext> ctx, DeviceContext::Create(device));
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<DeviceWeights> dw, DeviceWeights::Upload(*weights));
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<CudaKvPages> pages, CudaKvPages::Create(ctx.get(), kv));
  return std::unique_ptr<compute::DecoderBackend>(
      new CudaDecoder(std::move(ctx), std::move(dw), std::move(pages)));
}

}  // namespace treepo::cuda
