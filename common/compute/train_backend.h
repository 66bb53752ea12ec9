// The compute-backend seam of the learner: where the training weights, their gradient and the
// optimiser state live, and what runs the training forward and backward and the AdamW step.
//
// The learner algorithms (learner/service/trainer.h, plugin_learner.h) keep the batching, the
// loss and the metrics, and hand a backend only the rows of a micro-batch, the loss's
// gradient with respect to the per-row outputs, and the order to step. Two backends:
//   cpu   fp32, OpenBLAS (learner/model_train.h + learner/adamw.h): the reference, what CI
//         runs; created by learner::CreateTrainBackend (learner/train_backend.h), since the
//         training code sits in the learner layer;
//   cuda  bf16 compute weights, fp32 master weights, gradient and AdamW moments on the device,
//         cuBLAS GEMMs and our kernels (common/cuda/cuda_train.h, docs/gpu.md); plain and
//         tree-packed batches.
// The backend is chosen by name as the decoder's is (ResolveBackend in decoder_backend.h).
//
// Data-parallel ranks reduce the gradient in host memory: GradientOnHost() gives the
// accumulated gradient as host floats (the CPU buffer itself; a device backend downloads
// it), the caller all-reduces it over the collective and hands it back with
// GradientFromHost() before Step().
//
// Thread-safety: none. One owner.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::compute {

// The rows of one training micro-batch (see learner/model_train.h for the row semantics).
struct TrainBatch {
  std::span<const int32_t> tokens;  // [rows]: the sequences, one after another
  std::span<const int> seq_lens;    // each >= 1; they sum to rows
  // Empty: every sequence is a chain of at most max_seq_len tokens. Otherwise [rows]: per
  // token, the index within its sequence of the token before it on its path; -1 exactly for
  // each sequence's first token, else in [0, own index). Depths must stay below max_seq_len.
  std::span<const int> parents = {};
};

// A training batch's rows, checked: per row its parent row (a global row index; -1 for each
// sequence's first token) and its RoPE position (its depth on its path); per sequence its
// first row.
struct TrainRows {
  bool tree = false;  // tree-packed (TrainBatch::parents given)
  std::vector<int> parent;
  std::vector<int32_t> position;
  std::vector<int> seq_starts;
  int max_len = 0;  // the longest sequence's rows
};
// kInvalidArgument, naming what is wrong, for an empty batch, a length outside
// [1, max_seq_len] (plain), lengths that do not sum to the tokens, a parent count that does
// not match, a token outside the vocabulary, a bad parent or a depth past max_seq_len.
Status PlanTrainRows(const TrainBatch& batch, const model::ModelConfig& config, TrainRows* rows);

// AdamW's hyper-parameters (TREEPO_SPEC.md section 6; learner/adamw.h has the details).
struct AdamWOptions {
  float lr = 1e-6f;  // peak learning rate
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled: p -= lr * wd * p
  int64_t warmup_steps = 0;   // lr rises linearly over the first warmup_steps steps
  // Cosine decay after warm-up: from lr at step warmup_steps to lr * min_lr_ratio at step
  // decay_steps, flat after. 0 = no decay (constant lr after warm-up).
  int64_t decay_steps = 0;
  float min_lr_ratio = 0.1f;
  float max_grad_norm = 1.0f;  // global-norm clip; <= 0 disables clipping
  bool decay_vectors = false;  // also decay 1-D tensors (norm weights, biases)
  Status Validate() const;
};

struct StepStats {
  double grad_norm = 0.0;   // global L2 norm before clipping
  double clip_scale = 1.0;  // factor applied to the gradient (1 when not clipped)
  double lr = 0.0;          // learning rate used
};

// The learning rate at 1-based step `step`: lr * step / warmup_steps during warm-up, then lr,
// or the cosine decay towards lr * min_lr_ratio when decay_steps > warmup_steps.
double AdamWLearningRate(const AdamWOptions& o, int64_t step);
// Per parameter of `layout`: 1 where weight decay applies (matrices; vectors too with
// decay_vectors).
std::vector<uint8_t> AdamWDecayMask(const model::ParamLayout& layout, const AdamWOptions& o);

// The optimiser state file: safetensors with tensors "m" and "v" ([n]) and metadata step,
// num_params. Load refuses a malformed file or one whose sizes are not `n`
// (kInvalidArgument, naming the file).
Status SaveAdamWState(const std::string& path, const std::vector<float>& m,
                      const std::vector<float>& v, int64_t step);
Status LoadAdamWState(const std::string& path, size_t n, std::vector<float>* m,
                      std::vector<float>* v, int64_t* step);

class TrainBackend {
 public:
  virtual ~TrainBackend() = default;
  virtual std::string_view name() const = 0;  // "cpu" | "cuda"
  // Whether Forward takes tree-packed batches (TrainBatch::parents).
  virtual bool runs_tree_batches() const = 0;

  // The weights as fp32 host tensors, current after the last Step (a device backend copies
  // its master weights back on the first call after a step): what is published and saved.
  virtual const model::ModelWeights& weights() const = 0;
  // A backend reading the caller's weights (CreateGradientBackend) re-reads them: call after
  // changing them. Training backends own their weights; for them this does nothing.
  virtual Status WeightsChanged() = 0;

  // Training forward over `batch`: logp and (when not null) entropy per row, resized to the
  // rows (row semantics in learner/model_train.h). Keeps what Backward needs. kInvalidArgument
  // for a malformed batch (ids outside the vocabulary, bad lengths, empty); kUnimplemented for
  // a batch kind the backend does not run.
  virtual Status Forward(const TrainBatch& batch, std::vector<float>* logp,
                         std::vector<float>* entropy) = 0;
  // Backward of the last Forward (once per Forward): dlogp [rows] = dL/dlogp, dentropy [rows]
  // or empty. Adds dL/dparams into the backend's gradient (ParamLayout order; a tied embedding
  // gets both uses). kFailedPrecondition without a fresh Forward, kInvalidArgument for wrong
  // sizes.
  virtual Status Backward(std::span<const float> dlogp, std::span<const float> dentropy) = 0;

  // The gradient accumulated since the last Step (or ZeroGradient) as host floats
  // [layout.total()]; the caller may change it (an all-reduce) and must then call
  // GradientFromHost before Backward or Step. Valid until the next call on the backend.
  virtual std::span<float> GradientOnHost() = 0;
  virtual Status GradientFromHost() = 0;
  virtual void ZeroGradient() = 0;

  // One AdamW step of the held weights with the accumulated gradient, which is zeroed.
  // kFailedPrecondition for a backend created without an optimiser.
  virtual Result<StepStats> Step() = 0;
  virtual int64_t optimizer_step() const = 0;  // steps taken (0 for a fresh optimiser)
  // The optimiser state file (SaveAdamWState's format, whichever backend wrote it).
  virtual Status SaveOptimizer(const std::string& path) const = 0;
  virtual Status LoadOptimizer(const std::string& path) = 0;
};

// The CUDA training backend on device `device`: for training (adamw not null) it holds its own
// copy of `weights`; without adamw it computes gradients of the caller's weights (re-read on
// WeightsChanged). kUnimplemented in a build without CUDA, kFailedPrecondition without the
// device, kResourceExhausted when the device cannot hold the model.
Result<std::unique_ptr<TrainBackend>> CreateCudaTrainBackend(
    int device, std::shared_ptr<const model::ModelWeights> weights, const AdamWOptions* adamw);

}  // namespace treepo::compute
