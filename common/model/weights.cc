#include "common/model/weights.h"

#include <algorithm>
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

bool ModelWeights::complete() const {
  return dtype == WeightDtype::kF32 ? data.size() == layout.total()
                                    : half.size() == layout.total() && data.empty();
}

const float* ModelWeights::Vector(size_t offset) const {
  if (dtype == WeightDtype::kF32) return data.data() + offset;
  auto it = std::lower_bound(vector_index.begin(), vector_index.end(),
                             std::pair<size_t, size_t>(offset, 0));
  TREEPO_CHECK(it != vector_index.end() && it->first == offset) << "no 1-D tensor at " << offset;
  return vectors.data() + it->second;
}

MatrixRef ModelWeights::Matrix(size_t offset) const {
  MatrixRef m;
  m.dtype = dtype;
  if (dtype == WeightDtype::kF32) {
    m.f32 = data.data() + offset;
  } else {
    m.half = half.data() + offset;
  }
  return m;
}

void ModelWeights::MatrixRow(size_t offset, int64_t row, int cols, float* out) const {
  const size_t begin = offset + static_cast<size_t>(row) * cols;
  if (dtype == WeightDtype::kF32) {
    std::copy_n(data.data() + begin, cols, out);
    return;
  }
  for (int i = 0; i < cols; ++i) out[i] = HalfToFloat(half[begin + i], dtype);
}

size_t ModelWeights::StorageBytes() const {
  return data.size() * sizeof(float) + half.size() * sizeof(uint16_t) +
         vectors.size() * sizeof(float);
}

void ModelWeights::IndexVectors() {
  vectors.clear();
  vector_index.clear();
  for (const TensorInfo& t : layout.tensors()) {
    if (t.shape.size() != 1) continue;
    vector_index.emplace_back(t.offset, vectors.size());
    for (size_t i = 0; i < t.numel; ++i) vectors.push_back(HalfToFloat(half[t.offset + i], dtype));
  }
  std::sort(vector_index.begin(), vector_index.end());
}

ModelWeights ModelWeights::ToHalf(const ModelWeights& w, WeightDtype dtype) {
  TREEPO_CHECK(w.dtype == WeightDtype::kF32 && dtype != WeightDtype::kF32);
  ModelWeights h;
  h.config = w.config;
  h.layout = w.layout;
  h.dtype = dtype;
  h.half.resize(w.data.size());
  for (size_t i = 0; i < w.data.size(); ++i) h.half[i] = FloatToHalf(w.data[i], dtype);
  h.IndexVectors();
  return h;
}

}  // namespace treepo::model
