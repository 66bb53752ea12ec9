// Model parameters as one flat fp32 buffer with named views.
//
// Every parameter lives in `ModelWeights::data` at an offset given by `ParamLayout`, so an
// optimiser, a gradient buffer, a checksum or a weight stream treats the model as one array.
// Tensor names are the Hugging Face Llama names (`model.layers.3.self_attn.q_proj.weight`),
// matrices row-major [out, in].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/model/config.h"
#include "common/model/dtype.h"
#include "common/status.h"

namespace treepo::model {

struct TensorInfo {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in floats, into the flat buffer
  size_t numel = 0;
};

// Offsets (in floats) of one layer's tensors. A bias or q/k norm offset is kNone when absent.
struct LayerOffsets {
  size_t attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, ffn_norm, w1, w2, w3;
};

class ParamLayout {
 public:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  ParamLayout() = default;
  // CHECKs that `config` is valid: call ModelConfig::Validate() on outside input first.
  explicit ParamLayout(const ModelConfig& config);

  size_t total() const { return total_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(const std::string& name) const;

  size_t embed() const { return embed_; }  // [vocab, dim]
  const LayerOffsets& layer(int i) const { return layers_[i]; }
  size_t final_norm() const { return final_norm_; }  // [dim]
  size_t lm_head() const { return lm_head_; }        // [vocab, dim]; == embed() when tied

 private:
  size_t Add(std::string name, std::vector<int64_t> shape);

  std::vector<TensorInfo> tensors_;
  std::vector<LayerOffsets> layers_;
  size_t embed_ = 0, final_norm_ = 0, lm_head_ = 0, total_ = 0;
};

// A matrix of the weights in its storage type.
struct MatrixRef {
  const float* f32 = nullptr;      // kF32
  const uint16_t* half = nullptr;  // kBF16 / kF16
  WeightDtype dtype = WeightDtype::kF32;
};

struct ModelWeights {
  ModelConfig config;
  ParamLayout layout;
  // kF32: every tensor in `data` (layout.total() floats): what the learner trains.
  // kBF16 / kF16 (inference: workers, eval): `data` is empty; every tensor is in `half`
  // (layout.total() elements at the layout's offsets) and the 1-D tensors (norms, biases,
  // a tiny share) are also kept widened in `vectors`. Kernels widen the matrices as they read
  // them, so the weights take half the memory of fp32 and the compute stays fp32.
  WeightDtype dtype = WeightDtype::kF32;
  std::vector<float> data;
  std::vector<uint16_t> half;
  std::vector<float> vectors;
  std::vector<std::pair<size_t, size_t>> vector_index;  // (layout offset, into vectors), sorted

  // Zero-filled weights for `config` (validated).
  static Result<ModelWeights> Zeros(const ModelConfig& config);
  // Deterministic random init for a seed: N(0, 0.02) matrices (output projections scaled by
  // 1/sqrt(2 * n_layers)), ones for norms, zeros for biases.
  static Result<ModelWeights> Random(const ModelConfig& config, uint64_t seed);

  // fp32 access: kF32 only.
  const float* at(size_t offset) const { return data.data() + offset; }
  float* at(size_t offset) { return data.data() + offset; }
  size_t num_params() const { return layout.total(); }

  // The storage holds layout.total() parameters.
  bool complete() const;
  // fp32 values of the 1-D tensor (norm, bias) at layout offset `offset`, in either storage.
  const float* Vector(size_t offset) const;
  // The matrix at layout offset `offset`.
  MatrixRef Matrix(size_t offset) const;
  // Row `row` of the [rows, cols] matrix at `offset`, widened into out[cols].
  void MatrixRow(size_t offset, int64_t row, int cols, float* out) const;
  // Bytes of parameter storage.
  size_t StorageBytes() const;

  // `w` (kF32) with its tensors rounded to `dtype` (kBF16 / kF16, nearest even).
  static ModelWeights ToHalf(const ModelWeights& w, WeightDtype dtype);
  // 16-bit weights: fills vectors and vector_index from `half`.
  void IndexVectors();
};

}  // namespace treepo::model
