#include "common/cuda/weight_pack.h"

#include "common/check.h"
#include "common/model/dtype.h"

namespace treepo::cuda {

std::vector<uint16_t> PackBf16(const model::ModelWeights& w, const std::vector<TensorPart>& parts) {
  size_t total = 0;
  for (const TensorPart& p : parts) total += p.numel;
  std::vector<uint16_t> out(total);
  size_t at = 0;
  for (const TensorPart& p : parts) {
    TREEPO_CHECK_LE(p.offset + p.numel, w.layout.total());
    const model::MatrixRef m = w.Matrix(p.offset);
    switch (w.dtype) {
      case model::WeightDtype::kF32:
        for (size_t i = 0; i < p.numel; ++i) out[at + i] = model::FloatToBf16(m.f32[i]);
        break;
      case model::WeightDtype::kBF16:
        for (size_t i = 0; i < p.numel; ++i) out[at + i] = m.half[i];
        break;
      case model::WeightDtype::kF16:
        for (size_t i = 0; i < p.numel; ++i) {
          out[at + i] = model::FloatToBf16(model::F16ToFloat(m.half[i]));
        }
        break;
    }
    at += p.numel;
  }
  return out;
}

std::vector<float> PackF32(const model::ModelWeights& w, const std::vector<TensorPart>& parts) {
  std::vector<float> out;
  for (const TensorPart& p : parts) {
    const float* v = w.Vector(p.offset);
    out.insert(out.end(), v, v + p.numel);
  }
  return out;
}

LayerParts LayerTensorParts(const model::ModelWeights& w, int layer) {
  const model::ModelConfig& c = w.config;
  const model::LayerOffsets& o = w.layout.layer(layer);
  const size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hid = c.hidden_dim;
  LayerParts p;
  p.wqkv = {{o.wq, qd * dim}, {o.wk, kvd * dim}, {o.wv, kvd * dim}};
  if (o.bq != model::ParamLayout::kNone) p.bqkv = {{o.bq, qd}, {o.bk, kvd}, {o.bv, kvd}};
  p.wo = {{o.wo, dim * qd}};
  p.w13 = {{o.w1, hid * dim}, {o.w3, hid * dim}};
  p.w2 = {{o.w2, dim * hid}};
  return p;
}

}  // namespace treepo::cuda
