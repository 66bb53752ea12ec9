#include "common/cuda/device_weights.h"

#include <string>

#include "common/cuda/cuda_check.h"
#include "common/cuda/weight_pack.h"

namespace treepo::cuda {
namespace {

// Copies `bytes` from host into `buf`, allocating it (exactly) when it is empty.
Status Put(DeviceBuffer* buf, const void* data, size_t bytes) {
  if (bytes == 0) return OkStatus();
  if (buf->data() == nullptr) {
    TREEPO_ASSIGN_OR_RETURN(*buf, DeviceBuffer::Allocate(bytes));
  }
  TREEPO_CHECK_EQ(buf->bytes(), bytes);
  TREEPO_CUDA_RETURN_IF_ERROR(cudaMemcpy(buf->data(), data, bytes, cudaMemcpyHostToDevice));
  return OkStatus();
}

Status PutBf16(DeviceBuffer* buf, const model::ModelWeights& w,
               const std::vector<TensorPart>& parts) {
  const std::vector<uint16_t> v = PackBf16(w, parts);
  return Put(buf, v.data(), v.size() * sizeof(uint16_t));
}

Status PutF32(DeviceBuffer* buf, const model::ModelWeights& w,
              const std::vector<TensorPart>& parts) {
  const std::vector<float> v = PackF32(w, parts);
  return Put(buf, v.data(), v.size() * sizeof(float));
}

}  // namespace

std::string DeviceWeights::ArchitectureDifference(const model::ModelConfig& a,
                                                  const model::ModelConfig& b) {
  auto diff = [](const char* name, int x, int y) {
    return std::string(name) + " " + std::to_string(x) + " vs " + std::to_string(y);
  };
  if (a.dim != b.dim) return diff("dim", a.dim, b.dim);
  if (a.hidden_dim != b.hidden_dim) return diff("hidden_dim", a.hidden_dim, b.hidden_dim);
  if (a.n_layers != b.n_layers) return diff("n_layers", a.n_layers, b.n_layers);
  if (a.n_heads != b.n_heads) return diff("n_heads", a.n_heads, b.n_heads);
  if (a.n_kv_heads != b.n_kv_heads) return diff("n_kv_heads", a.n_kv_heads, b.n_kv_heads);
  if (a.vocab_size != b.vocab_size) return diff("vocab_size", a.vocab_size, b.vocab_size);
  if (a.head_dim() != b.head_dim()) return diff("head_dim", a.head_dim(), b.head_dim());
  if (a.qkv_bias != b.qkv_bias) return diff("qkv_bias", a.qkv_bias, b.qkv_bias);
  if (a.qk_norm != b.qk_norm) return diff("qk_norm", a.qk_norm, b.qk_norm);
  if (a.tied_embeddings != b.tied_embeddings) {
    return diff("tied_embeddings", a.tied_embeddings, b.tied_embeddings);
  }
  return "";
}

Result<std::unique_ptr<DeviceWeights>> DeviceWeights::Upload(const model::ModelWeights& w) {
  if (!w.complete()) return InvalidArgument("cuda backend: the weights are incomplete");
  std::unique_ptr<DeviceWeights> d(new DeviceWeights());
  d->config_ = w.config;
  d->layers_.resize(w.config.n_layers);
  TREEPO_RETURN_IF_ERROR(d->Copy(w));
  return d;
}

Status DeviceWeights::Update(const model::ModelWeights& w) {
  if (!w.complete()) return InvalidArgument("cuda backend: the weights are incomplete");
  const std::string diff = ArchitectureDifference(config_, w.config);
  if (!diff.empty()) {
    return InvalidArgument("cuda backend: new weights have another shape (" + diff + ")");
  }
  config_ = w.config;  // eps, RoPE settings may change with the same shapes
  return Copy(w);
}

Status DeviceWeights::Copy(const model::ModelWeights& w) {
  const model::ModelConfig& c = w.config;
  const model::ParamLayout& L = w.layout;
  const size_t dim = c.dim, vocab = c.vocab_size, hd = c.head_dim();
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerParts p = LayerTensorParts(w, l);
    const model::LayerOffsets& o = L.layer(l);
    DeviceLayer& d = layers_[l];
    TREEPO_RETURN_IF_ERROR(PutBf16(&d.wqkv, w, p.wqkv));
    TREEPO_RETURN_IF_ERROR(PutF32(&d.bqkv, w, p.bqkv));
    TREEPO_RETURN_IF_ERROR(PutBf16(&d.wo, w, p.wo));
    TREEPO_RETURN_IF_ERROR(PutBf16(&d.w13, w, p.w13));
    TREEPO_RETURN_IF_ERROR(PutBf16(&d.w2, w, p.w2));
    TREEPO_RETURN_IF_ERROR(PutF32(&d.attn_norm, w, {{o.attn_norm, dim}}));
    TREEPO_RETURN_IF_ERROR(PutF32(&d.ffn_norm, w, {{o.ffn_norm, dim}}));
    if (o.q_norm != model::ParamLayout::kNone) {
      TREEPO_RETURN_IF_ERROR(PutF32(&d.q_norm, w, {{o.q_norm, hd}}));
      TREEPO_RETURN_IF_ERROR(PutF32(&d.k_norm, w, {{o.k_norm, hd}}));
    }
  }
  TREEPO_RETURN_IF_ERROR(PutBf16(&embed_, w, {{L.embed(), vocab * dim}}));
  if (!c.tied_embeddings)
    TREEPO_RETURN_IF_ERROR(PutBf16(&lm_head_, w, {{L.lm_head(), vocab * dim}}));
  TREEPO_RETURN_IF_ERROR(PutF32(&final_norm_, w, {{L.final_norm(), dim}}));
  const std::vector<float> freq = model::RopeInvFrequencies(c);
  TREEPO_RETURN_IF_ERROR(Put(&inv_freq_, freq.data(), freq.size() * sizeof(float)));
  // cudaMemcpy from pageable memory may return before its DMA lands, and the forward runs on a
  // non-blocking stream that does not wait for the legacy stream: wait here.
  TREEPO_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return OkStatus();
}

size_t DeviceWeights::bytes() const {
  size_t b = embed_.bytes() + lm_head_.bytes() + final_norm_.bytes() + inv_freq_.bytes();
  for (const DeviceLayer& d : layers_) {
    b += d.wqkv.bytes() + d.bqkv.bytes() + d.wo.bytes() + d.w13.bytes() + d.w2.bytes() +
         d.attn_norm.bytes() + d.ffn_norm.bytes() + d.q_norm.bytes() + d.k_norm.bytes();
  }
  return b;
}

}  // namespace treepo::cuda
