// The CUDA training backend: fp32 master weights, their bf16 copy for the GEMMs, the fp32
// gradient and the AdamW moments on the device, all in the flat ParamLayout order (so a
// tensor is an offset, as on the host). The forward keeps every activation backward needs;
// linear layers are cuBLAS GEMMs with bf16 inputs and fp32 outputs and accumulation (the
// activations are rounded to bf16 on their way into a GEMM); norms (Qwen3's per-head q/k norms
// too), q/k/v biases, RoPE, attention, SwiGLU and the log-softmax outputs are fp32 kernels
// (train_kernels.cu). Tree-packed batches run attention over CSR lists of each row's
// ancestors (train_plan.h); plain sequences run causal attention per sequence.
#include "common/cuda/cuda_train.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/cuda/cuda_check.h"
#include "common/cuda/device.h"
#include "common/cuda/kernels.h"
#include "common/cuda/train_kernels.h"
#include "common/cuda/train_plan.h"

namespace treepo::cuda {
namespace {

using bf16 = __nv_bfloat16;

class CudaTrainer final : public compute::TrainBackend {
 public:
  CudaTrainer(std::unique_ptr<DeviceContext> ctx, std::shared_ptr<const model::ModelWeights> src,
              const compute::AdamWOptions* adamw)
      : ctx_(std::move(ctx)), c_(src->config), layout_(src->layout), source_(std::move(src)) {
    if (adamw != nullptr) {
      opt_ = true;
      o_ = *adamw;
    }
  }
  ~CudaTrainer() override {
    (void)cudaSetDevice(ctx_->device());
    (void)cudaStreamSynchronize(ctx_->stream());
  }

  Status Init();

  std::string_view name() const override { return "cuda"; }
  bool runs_tree_batches() const override { return true; }
  const model::ModelWeights& weights() const override;
  Status WeightsChanged() override;
  Status Forward(const compute::TrainBatch& batch, std::vector<float>* logp,
                 std::vector<float>* entropy) override;
  Status Backward(std::span<const float> dlogp, std::span<const float> dentropy) override;
  std::span<float> GradientOnHost() override;
  Status GradientFromHost() override;
  void ZeroGradient() override;
  Result<compute::StepStats> Step() override;
  int64_t optimizer_step() const override { return step_; }
  Status SaveOptimizer(const std::string& path) const override;
  Status LoadOptimizer(const std::string& path) override;

 private:
  // Row-major C[M, N] = op(A)[M, K] . op(B)[K, N] + beta * C; A, B bf16 (row-major, leading
  // dimensions lda, ldb as stored), C fp32 with leading dimension N.
  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, const bf16* a, int lda, const bf16* b,
            int ldb, float* c, float beta);
  // y[rows, n] (+)= x[rows, k] . W[n, k]^T for the weight at layout offset `w`.
  void Linear(const float* x, size_t w, float* y, int rows, int n, int k, float beta);
  // dx[rows, k] (+)= dy[rows, n] . W[n, k] and grad[W] += dy^T . x.
  void LinearBackward(const float* dy, const float* x, size_t w, float* dx, int rows, int n, int k,
                      float beta);
  const bf16* ToBf16(const float* x, size_t n, DeviceBuffer* buf);
  Status Upload(const std::vector<float>& data);  // into master_ and wb_
  void Reserve(int rows);
  float* Master(size_t offset) const { return master_.as<float>() + offset; }
  float* Grad(size_t offset) const { return grad_.as<float>() + offset; }

  std::unique_ptr<DeviceContext> ctx_;
  model::ModelConfig c_;
  model::ParamLayout layout_;
  std::shared_ptr<const model::ModelWeights> source_;
  bool opt_ = false;
  compute::AdamWOptions o_;
  int64_t step_ = 0;
  mutable model::ModelWeights host_;  // the training weights on the host (weights())
  mutable bool host_stale_ = true;
  std::vector<float> host_grad_;
  std::vector<float> gl_host_, ge_host_;  // Backward's per-row output gradient sums

  DeviceBuffer master_, wb_, grad_, m_, v_, mask_, inv_freq_, norm_;
  // The last forward's batch and activations.
  int rows_ = 0, reserved_rows_ = 0;
  bool forwarded_ = false;
  TrainPlan plan_;
  DeviceBuffer ints_;  // TrainPlan::ints
  DeviceBuffer x_, xmid_, xn1_, xn2_, inv1_, inv2_, q_, k_, v_act_, ao_, lse_, gate_, up_, act_;
  DeviceBuffer qraw_, kraw_, invq_, invk_;  // q/k norm models: q, k before the norm, 1/rms
  DeviceBuffer xnf_, invf_, logits_, out_lse_, ent_rows_, logp_, ent_;
  // Backward scratch.
  DeviceBuffer dx_, dxn_, dq_, dk_, dv_, dao_, delta_, dgate_, dup_, dact_, dlogp_, gl_, ge_;
  DeviceBuffer dqn_, dkn_;
  DeviceBuffer bf_a_, bf_b_;  // bf16 copies of GEMM inputs
};

void CudaTrainer::Gemm(bool trans_a, bool trans_b, int m, int n, int k, const bf16* a, int lda,
                       const bf16* b, int ldb, float* c, float beta) {
  const float alpha = 1.0f;
  // Column-major view: C^T[N, M] = op(B)^T . op(A)^T, a row-major matrix being its transpose.
  TREEPO_CUBLAS_CHECK(cublasGemmEx(ctx_->cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                   CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta, c, CUDA_R_32F, n,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

const bf16* CudaTrainer::ToBf16(const float* x, size_t n, DeviceBuffer* buf) {
  GrowDevice(buf, n * sizeof(bf16));
  TREEPO_CHECK_OK(LaunchF32ToBf16(x, buf->as<bf16>(), n, ctx_->stream()));
  return buf->as<bf16>();
}

void CudaTrainer::Linear(const float* x, size_t w, float* y, int rows, int n, int k, float beta) {
  const bf16* xb = ToBf16(x, static_cast<size_t>(rows) * k, &bf_a_);
  Gemm(false, true, rows, n, k, xb, k, wb_.as<bf16>() + w, k, y, beta);
}

void CudaTrainer::LinearBackward(const float* dy, const float* x, size_t w, float* dx, int rows,
                                 int n, int k, float beta) {
  const bf16* dyb = ToBf16(dy, static_cast<size_t>(rows) * n, &bf_a_);
  const bf16* xb = ToBf16(x, static_cast<size_t>(rows) * k, &bf_b_);
  // grad W[n, k] += dy^T[n, rows] . x[rows, k]
  Gemm(true, false, n, k, rows, dyb, n, xb, k, Grad(w), 1.0f);
  // dx[rows, k] = dy[rows, n] . W[n, k]
  if (dx != nullptr) Gemm(false, false, rows, k, n, dyb, n, wb_.as<bf16>() + w, k, dx, beta);
}

Status CudaTrainer::Upload(const std::vector<float>& data) {
  ctx_->MakeCurrent();
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(master_.data(), data.data(),
                                              data.size() * sizeof(float), cudaMemcpyHostToDevice,
                                              ctx_->stream()));
  TREEPO_RETURN_IF_ERROR(
      LaunchF32ToBf16(master_.as<float>(), wb_.as<bf16>(), data.size(), ctx_->stream()));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(ctx_->stream()));
  host_stale_ = true;
  return OkStatus();
}

Status CudaTrainer::Init() {
  // Every copy and fill goes on the context's stream (non-blocking: it does not order with
  // the legacy default stream), then one synchronisation.
  ctx_->MakeCurrent();
  const cudaStream_t st = ctx_->stream();
  const size_t n = layout_.total();
  TREEPO_ASSIGN_OR_RETURN(master_, DeviceBuffer::Allocate(n * sizeof(float)));
  TREEPO_ASSIGN_OR_RETURN(wb_, DeviceBuffer::Allocate(n * sizeof(bf16)));
  TREEPO_ASSIGN_OR_RETURN(grad_, DeviceBuffer::Allocate(n * sizeof(float)));
  TREEPO_ASSIGN_OR_RETURN(norm_, DeviceBuffer::Allocate(sizeof(double)));
  const std::vector<float> freq = model::RopeInvFrequencies(c_);
  TREEPO_ASSIGN_OR_RETURN(inv_freq_, DeviceBuffer::Allocate(freq.size() * sizeof(float)));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
      inv_freq_.data(), freq.data(), freq.size() * sizeof(float), cudaMemcpyHostToDevice, st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(grad_.data(), 0, n * sizeof(float), st));
  std::vector<uint8_t> mask;
  if (opt_) {
    TREEPO_ASSIGN_OR_RETURN(m_, DeviceBuffer::Allocate(n * sizeof(float)));
    TREEPO_ASSIGN_OR_RETURN(v_, DeviceBuffer::Allocate(n * sizeof(float)));
    TREEPO_ASSIGN_OR_RETURN(mask_, DeviceBuffer::Allocate(n));
    TREEPO_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m_.data(), 0, n * sizeof(float), st));
    TREEPO_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(v_.data(), 0, n * sizeof(float), st));
    mask = compute::AdamWDecayMask(layout_, o_);
    TREEPO_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(mask_.data(), mask.data(), mask.size(), cudaMemcpyHostToDevice, st));
    host_ = *source_;  // the trainer's own weights from here on
    source_.reset();
  }
  TREEPO_RETURN_IF_ERROR(Upload(opt_ ? host_.data : source_->data));  // synchronises
  host_stale_ = false;
  return OkStatus();
}

const model::ModelWeights& CudaTrainer::weights() const {
  if (!opt_) return *source_;
  if (host_stale_) {
    ctx_->MakeCurrent();
    TREEPO_CUDA_CHECK(cudaMemcpyAsync(host_.data.data(), master_.data(),
                                      host_.data.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                      ctx_->stream()));
    ctx_->Sync();
    host_stale_ = false;
  }
  return host_;
}

Status CudaTrainer::WeightsChanged() {
  if (opt_) return OkStatus();
  return Upload(source_->data);
}

void CudaTrainer::Reserve(int rows) {
  if (rows <= reserved_rows_) return;
  const size_t r = static_cast<size_t>(rows), L = static_cast<size_t>(c_.n_layers);
  const size_t dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
  const size_t f = sizeof(float);
  GrowDevice(&x_, (L + 1) * r * dim * f);
  GrowDevice(&xmid_, L * r * dim * f);
  GrowDevice(&xn1_, L * r * dim * f);
  GrowDevice(&xn2_, L * r * dim * f);
  GrowDevice(&inv1_, L * r * f);
  GrowDevice(&inv2_, L * r * f);
  GrowDevice(&q_, L * r * qd * f);
  GrowDevice(&k_, L * r * kvd * f);
  GrowDevice(&v_act_, L * r * kvd * f);
  GrowDevice(&ao_, L * r * qd * f);
  GrowDevice(&lse_, L * r * c_.n_heads * f);
  GrowDevice(&gate_, L * r * hid * f);
  GrowDevice(&up_, L * r * hid * f);
  GrowDevice(&act_, L * r * hid * f);
  GrowDevice(&xnf_, r * dim * f);
  GrowDevice(&invf_, r * f);
  GrowDevice(&logits_, r * c_.vocab_size * f);
  GrowDevice(&out_lse_, r * f);
  GrowDevice(&logp_, r * f);
  GrowDevice(&ent_, r * f);
  GrowDevice(&ent_rows_, r * f);
  GrowDevice(&dx_, r * dim * f);
  GrowDevice(&dxn_, r * dim * f);
  GrowDevice(&dq_, r * qd * f);
  GrowDevice(&dk_, r * kvd * f);
  GrowDevice(&dv_, r * kvd * f);
  GrowDevice(&dao_, r * qd * f);
  GrowDevice(&delta_, r * c_.n_heads * f);
  GrowDevice(&dgate_, r * hid * f);
  GrowDevice(&dup_, r * hid * f);
  GrowDevice(&dact_, r * hid * f);
  GrowDevice(&dlogp_, r * f);
  GrowDevice(&gl_, r * f);
  GrowDevice(&ge_, r * f);
  if (c_.qk_norm) {
    GrowDevice(&qraw_, L * r * qd * f);
    GrowDevice(&kraw_, L * r * kvd * f);
    GrowDevice(&invq_, L * r * c_.n_heads * f);
    GrowDevice(&invk_, L * r * c_.n_kv_heads * f);
    GrowDevice(&dqn_, r * qd * f);
    GrowDevice(&dkn_, r * kvd * f);
  }
  // The GEMMs' bf16 inputs, at their largest (the logits' gradient), so that no buffer is
  // reallocated while a GEMM queued on the stream still reads it.
  const size_t widest = std::max({dim, qd, hid, static_cast<size_t>(c_.vocab_size)});
  GrowDevice(&bf_a_, r * widest * sizeof(bf16));
  GrowDevice(&bf_b_, r * widest * sizeof(bf16));
  reserved_rows_ = rows;
}

Status CudaTrainer::Forward(const compute::TrainBatch& batch, std::vector<float>* logp,
                            std::vector<float>* entropy) {
  forwarded_ = false;
  TREEPO_RETURN_IF_ERROR(PlanTrainBatch(batch, c_, &plan_));
  const size_t total = static_cast<size_t>(plan_.rows);
  const int rows = plan_.rows;
  ctx_->MakeCurrent();
  Reserve(rows);
  GrowDevice(&ints_, plan_.ints.size() * sizeof(int32_t));
  const cudaStream_t st = ctx_->stream();
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ints_.data(), plan_.ints.data(),
                                              plan_.ints.size() * sizeof(int32_t),
                                              cudaMemcpyHostToDevice, st));
  const int32_t* ints = ints_.as<int32_t>();
  const int32_t* tokens = ints + plan_.tokens;
  const int32_t* positions = ints + plan_.positions;
  AttentionLists lists;  // tree-packed: the CSR key and attender lists
  lists.key_off = ints + plan_.key_off;
  lists.key_idx = ints + plan_.key_idx;
  lists.att_off = ints + plan_.att_off;
  lists.att_idx = ints + plan_.att_idx;
  const size_t r = total, dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
  const int hd = c_.head_dim();
  const float eps = c_.norm_eps;
  const float rope_scale = static_cast<float>(c_.rope_scaling.attention_factor);
  const float* inv_freq = inv_freq_.as<float>();

  TREEPO_RETURN_IF_ERROR(
      LaunchEmbedF32(tokens, Master(layout_.embed()), x_.as<float>(), rows, c_.dim, st));
  for (int l = 0; l < c_.n_layers; ++l) {
    const model::LayerOffsets& o = layout_.layer(l);
    float* x = x_.as<float>() + l * r * dim;
    float* xn1 = xn1_.as<float>() + l * r * dim;
    float* xn2 = xn2_.as<float>() + l * r * dim;
    float* xmid = xmid_.as<float>() + l * r * dim;
    float* q = q_.as<float>() + l * r * qd;
    float* k = k_.as<float>() + l * r * kvd;
    float* v = v_act_.as<float>() + l * r * kvd;
    float* ao = ao_.as<float>() + l * r * qd;
    float* lse = lse_.as<float>() + l * r * c_.n_heads;
    float* g = gate_.as<float>() + l * r * hid;
    float* u = up_.as<float>() + l * r * hid;
    float* a = act_.as<float>() + l * r * hid;
    TREEPO_RETURN_IF_ERROR(LaunchRmsNormTrain(x, Master(o.attn_norm), xn1,
                                              inv1_.as<float>() + l * r, rows, c_.dim, eps, st));
    Linear(xn1, o.wq, q, rows, qd, dim, 0.0f);
    Linear(xn1, o.wk, k, rows, kvd, dim, 0.0f);
    Linear(xn1, o.wv, v, rows, kvd, dim, 0.0f);
    if (c_.qkv_bias) {
      TREEPO_RETURN_IF_ERROR(LaunchAddBias(q, qd, Master(o.bq), rows, qd, st));
      TREEPO_RETURN_IF_ERROR(LaunchAddBias(k, kvd, Master(o.bk), rows, kvd, st));
      TREEPO_RETURN_IF_ERROR(LaunchAddBias(v, kvd, Master(o.bv), rows, kvd, st));
    }
    if (c_.qk_norm) {  // per head, before RoPE; q and k before the norm kept for backward
      float* qraw = qraw_.as<float>() + l * r * qd;
      float* kraw = kraw_.as<float>() + l * r * kvd;
      TREEPO_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(qraw, q, r * qd * sizeof(float), cudaMemcpyDeviceToDevice, st));
      TREEPO_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(kraw, k, r * kvd * sizeof(float), cudaMemcpyDeviceToDevice, st));
      TREEPO_RETURN_IF_ERROR(LaunchRmsNormTrain(qraw, Master(o.q_norm), q,
                                                invq_.as<float>() + l * r * c_.n_heads,
                                                rows * c_.n_heads, hd, eps, st));
      TREEPO_RETURN_IF_ERROR(LaunchRmsNormTrain(kraw, Master(o.k_norm), k,
                                                invk_.as<float>() + l * r * c_.n_kv_heads,
                                                rows * c_.n_kv_heads, hd, eps, st));
    }
    TREEPO_RETURN_IF_ERROR(LaunchRopeTrain(q, positions, rows, c_.n_heads, hd, inv_freq, rope_scale,
                                           c_.rope_layout, false, st));
    TREEPO_RETURN_IF_ERROR(LaunchRopeTrain(k, positions, rows, c_.n_kv_heads, hd, inv_freq,
                                           rope_scale, c_.rope_layout, false, st));
    if (plan_.tree) {  // every row over its ancestors, in one launch
      TREEPO_RETURN_IF_ERROR(LaunchTrainAttention(q, k, v, ao, lse, rows, c_.n_heads, c_.n_kv_heads,
                                                  hd, &lists, plan_.max_keys, st));
    }
    for (size_t s = 0; !plan_.tree && s < plan_.seq_lens.size(); ++s) {  // causal per sequence
      const size_t b = plan_.seq_starts[s];
      TREEPO_RETURN_IF_ERROR(LaunchTrainAttention(
          q + b * qd, k + b * kvd, v + b * kvd, ao + b * qd, lse + b * c_.n_heads,
          plan_.seq_lens[s], c_.n_heads, c_.n_kv_heads, hd, nullptr, plan_.seq_lens[s], st));
    }
    TREEPO_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(xmid, x, r * dim * sizeof(float), cudaMemcpyDeviceToDevice, st));
    Linear(ao, o.wo, xmid, rows, dim, qd, 1.0f);
    TREEPO_RETURN_IF_ERROR(LaunchRmsNormTrain(xmid, Master(o.ffn_norm), xn2,
                                              inv2_.as<float>() + l * r, rows, c_.dim, eps, st));
    Linear(xn2, o.w1, g, rows, hid, dim, 0.0f);
    Linear(xn2, o.w3, u, rows, hid, dim, 0.0f);
    TREEPO_RETURN_IF_ERROR(LaunchSwiGlu(g, u, a, r * hid, st));
    float* xout = x_.as<float>() + (l + 1) * r * dim;
    TREEPO_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(xout, xmid, r * dim * sizeof(float), cudaMemcpyDeviceToDevice, st));
    Linear(a, o.w2, xout, rows, dim, hid, 1.0f);
  }
  TREEPO_RETURN_IF_ERROR(LaunchRmsNormTrain(x_.as<float>() + c_.n_layers * r * dim,
                                            Master(layout_.final_norm()), xnf_.as<float>(),
                                            invf_.as<float>(), rows, c_.dim, eps, st));
  Linear(xnf_.as<float>(), layout_.lm_head(), logits_.as<float>(), rows, c_.vocab_size, dim, 0.0f);
  TREEPO_RETURN_IF_ERROR(LaunchLogSoftmaxStats(logits_.as<float>(), out_lse_.as<float>(),
                                               ent_rows_.as<float>(), rows, c_.vocab_size, st));
  TREEPO_RETURN_IF_ERROR(LaunchGatherOutputs(
      logits_.as<float>(), out_lse_.as<float>(), ent_rows_.as<float>(), ints + plan_.out_src,
      ints + plan_.out_tok, logp_.as<float>(), ent_.as<float>(), rows, c_.vocab_size, st));
  logp->resize(r);
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(logp->data(), logp_.data(), r * sizeof(float), cudaMemcpyDeviceToHost, st));
  if (entropy != nullptr) {
    entropy->resize(r);
    TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(entropy->data(), ent_.data(), r * sizeof(float),
                                                cudaMemcpyDeviceToHost, st));
  }
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  rows_ = rows;
  forwarded_ = true;
  return OkStatus();
}

Status CudaTrainer::Backward(std::span<const float> dlogp, std::span<const float> dentropy) {
  if (!forwarded_) return FailedPrecondition("train backend: Backward without a Forward");
  const size_t r = static_cast<size_t>(rows_);
  if (dlogp.size() != r || (!dentropy.empty() && dentropy.size() != r)) {
    return InvalidArgument("train backend: Backward needs dlogp (and dentropy) of " +
                           std::to_string(r) + " rows");
  }
  forwarded_ = false;  // the logits become their gradient below
  ctx_->MakeCurrent();
  const cudaStream_t st = ctx_->stream();
  const int rows = rows_;
  const size_t dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
  const int hd = c_.head_dim();
  const float rope_scale = static_cast<float>(c_.rope_scaling.attention_factor);
  const int32_t* ints = ints_.as<int32_t>();
  const int32_t* tokens = ints + plan_.tokens;
  const int32_t* positions = ints + plan_.positions;
  AttentionLists lists;
  lists.key_off = ints + plan_.key_off;
  lists.key_idx = ints + plan_.key_idx;
  lists.att_off = ints + plan_.att_off;
  lists.att_idx = ints + plan_.att_idx;
  // Per row, the sums of the gradients of the outputs it predicts (several children of a
  // tree row), computed here from the plan's output sources.
  gl_host_.assign(r, 0.0f);
  ge_host_.assign(r, 0.0f);
  const int32_t* src = plan_.ints.data() + plan_.out_src;
  for (size_t o = 0; o < r; ++o) {
    if (src[o] < 0) continue;
    gl_host_[src[o]] += dlogp[o];
    if (!dentropy.empty()) ge_host_[src[o]] += dentropy[o];
  }
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dlogp_.data(), dlogp.data(), r * sizeof(float), cudaMemcpyHostToDevice, st));
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(gl_.data(), gl_host_.data(), r * sizeof(float), cudaMemcpyHostToDevice, st));
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(ge_.data(), ge_host_.data(), r * sizeof(float), cudaMemcpyHostToDevice, st));
  float* dlogits = logits_.as<float>();
  TREEPO_RETURN_IF_ERROR(LaunchLogSoftmaxBackward(
      dlogits, out_lse_.as<float>(), ent_rows_.as<float>(), gl_.as<float>(), ge_.as<float>(),
      ints + plan_.out_src, ints + plan_.out_tok, dlogp_.as<float>(), rows, rows, c_.vocab_size,
      st));
  float* dx = dx_.as<float>();
  float* dxn = dxn_.as<float>();
  // LM head (the embedding's gradient when tied: the same offset).
  LinearBackward(dlogits, xnf_.as<float>(), layout_.lm_head(), dxn, rows, c_.vocab_size, dim, 0.0f);
  TREEPO_RETURN_IF_ERROR(LaunchRmsNormBackward(
      x_.as<float>() + c_.n_layers * r * dim, Master(layout_.final_norm()), invf_.as<float>(), dxn,
      dx, Grad(layout_.final_norm()), rows, c_.dim, false, st));
  for (int l = c_.n_layers - 1; l >= 0; --l) {
    const model::LayerOffsets& o = layout_.layer(l);
    const float* x = x_.as<float>() + l * r * dim;
    const float* xn1 = xn1_.as<float>() + l * r * dim;
    const float* xn2 = xn2_.as<float>() + l * r * dim;
    const float* xmid = xmid_.as<float>() + l * r * dim;
    const float* q = q_.as<float>() + l * r * qd;
    const float* k = k_.as<float>() + l * r * kvd;
    const float* v = v_act_.as<float>() + l * r * kvd;
    const float* ao = ao_.as<float>() + l * r * qd;
    const float* lse = lse_.as<float>() + l * r * c_.n_heads;
    const float* g = gate_.as<float>() + l * r * hid;
    const float* u = up_.as<float>() + l * r * hid;
    const float* a = act_.as<float>() + l * r * hid;
    // x_{l+1} = xmid + act . w2^T: dx (= dx_{l+1}) is also dxmid's first part.
    LinearBackward(dx, a, o.w2, dact_.as<float>(), rows, dim, hid, 0.0f);
    TREEPO_RETURN_IF_ERROR(LaunchSwiGluBackward(g, u, dact_.as<float>(), dgate_.as<float>(),
                                                dup_.as<float>(), r * hid, st));
    LinearBackward(dgate_.as<float>(), xn2, o.w1, dxn, rows, hid, dim, 0.0f);
    LinearBackward(dup_.as<float>(), xn2, o.w3, dxn, rows, hid, dim, 1.0f);
    TREEPO_RETURN_IF_ERROR(LaunchRmsNormBackward(xmid, Master(o.ffn_norm),
                                                 inv2_.as<float>() + l * r, dxn, dx,
                                                 Grad(o.ffn_norm), rows, c_.dim, true, st));
    // xmid = x + ao . wo^T: dx now holds dxmid.
    LinearBackward(dx, ao, o.wo, dao_.as<float>(), rows, dim, qd, 0.0f);
    if (plan_.tree) {
      TREEPO_RETURN_IF_ERROR(LaunchTrainAttentionBackward(
          q, k, v, ao, lse, dao_.as<float>(), delta_.as<float>(), dq_.as<float>(), dk_.as<float>(),
          dv_.as<float>(), rows, c_.n_heads, c_.n_kv_heads, hd, &lists, plan_.max_keys, st));
    }
    for (size_t s = 0; !plan_.tree && s < plan_.seq_lens.size(); ++s) {
      const size_t b = plan_.seq_starts[s];
      TREEPO_RETURN_IF_ERROR(LaunchTrainAttentionBackward(
          q + b * qd, k + b * kvd, v + b * kvd, ao + b * qd, lse + b * c_.n_heads,
          dao_.as<float>() + b * qd, delta_.as<float>() + b * c_.n_heads, dq_.as<float>() + b * qd,
          dk_.as<float>() + b * kvd, dv_.as<float>() + b * kvd, plan_.seq_lens[s], c_.n_heads,
          c_.n_kv_heads, hd, nullptr, plan_.seq_lens[s], st));
    }
    TREEPO_RETURN_IF_ERROR(LaunchRopeTrain(dq_.as<float>(), positions, rows, c_.n_heads, hd,
                                           inv_freq_.as<float>(), rope_scale, c_.rope_layout, true,
                                           st));
    TREEPO_RETURN_IF_ERROR(LaunchRopeTrain(dk_.as<float>(), positions, rows, c_.n_kv_heads, hd,
                                           inv_freq_.as<float>(), rope_scale, c_.rope_layout, true,
                                           st));
    float* dq = dq_.as<float>();
    float* dk = dk_.as<float>();
    if (c_.qk_norm) {  // through the per-head norms, to q and k before them
      TREEPO_RETURN_IF_ERROR(LaunchRmsNormBackward(
          qraw_.as<float>() + l * r * qd, Master(o.q_norm), invq_.as<float>() + l * r * c_.n_heads,
          dq, dqn_.as<float>(), Grad(o.q_norm), rows * c_.n_heads, hd, false, st));
      TREEPO_RETURN_IF_ERROR(
          LaunchRmsNormBackward(kraw_.as<float>() + l * r * kvd, Master(o.k_norm),
                                invk_.as<float>() + l * r * c_.n_kv_heads, dk, dkn_.as<float>(),
                                Grad(o.k_norm), rows * c_.n_kv_heads, hd, false, st));
      dq = dqn_.as<float>();
      dk = dkn_.as<float>();
    }
    if (c_.qkv_bias) {
      TREEPO_RETURN_IF_ERROR(LaunchColumnSum(dq, rows, qd, Grad(o.bq), st));
      TREEPO_RETURN_IF_ERROR(LaunchColumnSum(dk, rows, kvd, Grad(o.bk), st));
      TREEPO_RETURN_IF_ERROR(LaunchColumnSum(dv_.as<float>(), rows, kvd, Grad(o.bv), st));
    }
    LinearBackward(dq, xn1, o.wq, dxn, rows, qd, dim, 0.0f);
    LinearBackward(dk, xn1, o.wk, dxn, rows, kvd, dim, 1.0f);
    LinearBackward(dv_.as<float>(), xn1, o.wv, dxn, rows, kvd, dim, 1.0f);
    TREEPO_RETURN_IF_ERROR(LaunchRmsNormBackward(x, Master(o.attn_norm), inv1_.as<float>() + l * r,
                                                 dxn, dx, Grad(o.attn_norm), rows, c_.dim, true,
                                                 st));
  }
  TREEPO_RETURN_IF_ERROR(LaunchEmbedBackward(tokens, dx, Grad(layout_.embed()), rows, c_.dim, st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  return OkStatus();
}

std::span<float> CudaTrainer::GradientOnHost() {
  ctx_->MakeCurrent();
  host_grad_.resize(layout_.total());
  TREEPO_CUDA_CHECK(cudaMemcpyAsync(host_grad_.data(), grad_.data(),
                                    host_grad_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                    ctx_->stream()));
  ctx_->Sync();
  return host_grad_;
}

Status CudaTrainer::GradientFromHost() {
  if (host_grad_.size() != layout_.total()) {
    return FailedPrecondition("train backend: GradientFromHost without GradientOnHost");
  }
  ctx_->MakeCurrent();
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(grad_.data(), host_grad_.data(),
                                              host_grad_.size() * sizeof(float),
                                              cudaMemcpyHostToDevice, ctx_->stream()));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(ctx_->stream()));
  return OkStatus();
}

void CudaTrainer::ZeroGradient() {
  ctx_->MakeCurrent();
  TREEPO_CUDA_CHECK(
      cudaMemsetAsync(grad_.data(), 0, layout_.total() * sizeof(float), ctx_->stream()));
}

Result<compute::StepStats> CudaTrainer::Step() {
  if (!opt_) return FailedPrecondition("train backend: created without an optimiser");
  ctx_->MakeCurrent();
  const cudaStream_t st = ctx_->stream();
  const size_t n = layout_.total();
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(norm_.data(), 0, sizeof(double), st));
  TREEPO_RETURN_IF_ERROR(LaunchSumSquares(grad_.as<float>(), n, norm_.as<double>(), st));
  double ss = 0.0;
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(&ss, norm_.data(), sizeof(double), cudaMemcpyDeviceToHost, st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  ++step_;
  compute::StepStats s;
  const AdamWArgs a = PlanAdamWStep(o_, step_, ss, &s);
  TREEPO_RETURN_IF_ERROR(LaunchAdamW(master_.as<float>(), grad_.as<float>(), m_.as<float>(),
                                     v_.as<float>(), mask_.as<uint8_t>(), wb_.as<bf16>(), n, a,
                                     st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  host_stale_ = true;
  return s;
}

Status CudaTrainer::SaveOptimizer(const std::string& path) const {
  if (!opt_) return FailedPrecondition("train backend: created without an optimiser");
  ctx_->MakeCurrent();
  const size_t n = layout_.total();
  std::vector<float> m(n), v(n);
  const cudaStream_t st = ctx_->stream();
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(m.data(), m_.data(), n * sizeof(float), cudaMemcpyDeviceToHost, st));
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(v.data(), v_.data(), n * sizeof(float), cudaMemcpyDeviceToHost, st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  return compute::SaveAdamWState(path, m, v, step_);
}

Status CudaTrainer::LoadOptimizer(const std::string& path) {
  if (!opt_) return FailedPrecondition("train backend: created without an optimiser");
  const size_t n = layout_.total();
  std::vector<float> m, v;
  int64_t step = 0;
  TREEPO_RETURN_IF_ERROR(compute::LoadAdamWState(path, n, &m, &v, &step));
  ctx_->MakeCurrent();
  const cudaStream_t st = ctx_->stream();
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(m_.data(), m.data(), n * sizeof(float), cudaMemcpyHostToDevice, st));
  TREEPO_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(v_.data(), v.data(), n * sizeof(float), cudaMemcpyHostToDevice, st));
  TREEPO_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  step_ = step;
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<compute::TrainBackend>> CreateCudaTrainer(
    int device, std::shared_ptr<const model::ModelWeights> weights,
    const compute::AdamWOptions* adamw) {
  if (weights == nullptr) return InvalidArgument("cuda train backend: no weights");
  if (weights->dtype != model::WeightDtype::kF32 || !weights->complete()) {
    return InvalidArgument("cuda train backend: needs complete fp32 weights");
  }
  const model::ModelConfig& c = weights->config;
  if (c.head_dim() % 2 != 0 || c.head_dim() > 512) {
    return InvalidArgument("cuda train backend: head_dim " + std::to_string(c.head_dim()) +
                           " is not supported (even, at most 512)");
  }
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<DeviceContext> ctx, DeviceContext::Create(device));
  auto t = std::make_unique<CudaTrainer>(std::move(ctx), std::move(weights), adamw);
  TREEPO_RETURN_IF_ERROR(t->Init());
  return std::unique_ptr<compute::TrainBackend>(std::move(t));
}

}  // namespace treepo::cuda
