#include "common/model/weights.h"

#include <cmath>
#include <random>

#include "common/check.h"

namespace treepo::model {

ParamLayout::ParamLayout(const ModelConfig& c) {
  TREEPO_CHECK_OK(c.Validate());
  const int64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim(), vocab = c.vocab_size;
  const int64_t qd = c.q_dim(), hd = c.head_dim();
  embed_ = Add("model.embed_tokens.weight", {vocab, dim});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOffsets o;
    o.attn_norm = Add(p + "input_layernorm.weight", {dim});
    o.wq = Add(p + "self_attn.q_proj.weight", {qd, dim});
    o.wk = Add(p + "self_attn.k_proj.weight", {kv, dim});
    o.wv = Add(p + "self_attn.v_proj.weight", {kv, dim});
    o.bq = o.bk = o.bv = kNone;
    if (c.qkv_bias) {
      o.bq = Add(p + "self_attn.q_proj.bias", {qd});
      o.bk = Add(p + "self_attn.k_proj.bias", {kv});
      o.bv = Add(p + "self_attn.v_proj.bias", {kv});
    }
    o.q_norm = o.k_norm = kNone;
    if (c.qk_norm) {
      o.q_norm = Add(p + "self_attn.q_norm.weight", {hd});
      o.k_norm = Add(p + "self_attn.k_norm.weight", {hd});
    }
    o.wo = Add(p + "self_attn.o_proj.weight", {dim, qd});
    o.ffn_norm = Add(p + "post_attention_layernorm.weight", {dim});
    o.w1 = Add(p + "mlp.gate_proj.weight", {hid, dim});
    o.w2 = Add(p + "mlp.down_proj.weight", {dim, hid});
    o.w3 = Add(p + "mlp.up_proj.weight", {hid, dim});
    layers_.push_back(o);
  }
  final_norm_ = Add("model.norm.weight", {dim});
  lm_head_ = c.tied_embeddings ? embed_ : Add("lm_head.weight", {vocab, dim});
}

size_t ParamLayout::Add(std::string name, std::vector<int64_t> shape) {
  size_t n = 1;
  for (int64_t s : shape) n *= static_cast<size_t>(s);
  tensors_.push_back(TensorInfo{std::move(name), std::move(shape), total_, n});
  size_t off = total_;
  total_ += n;
  return off;
}

const TensorInfo* ParamLayout::Find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<ModelWeights> ModelWeights::Zeros(const ModelConfig& config) {
  TREEPO_RETURN_IF_ERROR(config.Validate());
  TREEPO_RETURN_IF_ERROR(CheckWeightsFitMemory(config));
  ModelWeights w;
  w.config = config;
  w.layout = ParamLayout(config);
  w.data.assign(w.layout.total(), 0.0f);
  return w;
}

Result<ModelWeights> ModelWeights::Random(const ModelConfig& config, uint64_t seed) {
  TREEPO_ASSIGN_OR_RETURN(ModelWeights w, Zeros(config));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const float out_scale = 1.0f / std::sqrt(2.0f * config.n_layers);
  for (const TensorInfo& t : w.layout.tensors()) {
    float* p = w.at(t.offset);
    const bool is_norm = t.shape.size() == 1 && t.name.find("bias") == std::string::npos;
    const bool is_bias = t.name.find("bias") != std::string::npos;
    const bool is_out =
        t.name.find("o_proj") != std::string::npos || t.name.find("down_proj") != std::string::npos;
    for (size_t i = 0; i < t.numel; ++i) {
      if (is_norm) {
        p[i] = 1.0f;
      } else if (is_bias) {
        p[i] = 0.0f;
      } else {
        p[i] = normal(rng) * (is_out ? out_scale : 1.0f);
      }
    }
  }
  return w;
}

}  // namespace treepo::model
