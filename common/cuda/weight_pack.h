// Host-side packing of model weights into the device layout of the CUDA backend (no CUDA
// here, so that it is tested on any machine): matrices as bf16 bits, with the projections that
// read the same input fused into one matrix (q|k|v and gate|up), vectors as fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/model/weights.h"

namespace treepo::cuda {

// One tensor of the weights: its layout offset and element count.
struct TensorPart {
  size_t offset = 0;
  size_t numel = 0;
};

// The parts' elements one after the other as bf16 bits (row-major [out, in] matrices stacked
// along `out`): copied from bf16 storage, rounded to nearest even from f32, f16 widened then
// rounded (f16 values that bf16 cannot hold exactly lose mantissa bits).
std::vector<uint16_t> PackBf16(const model::ModelWeights& w, const std::vector<TensorPart>& parts);

// The 1-D tensors' values one after the other as fp32 (norms, biases).
std::vector<float> PackF32(const model::ModelWeights& w, const std::vector<TensorPart>& parts);

// The tensors of one decoder layer as the device holds them.
struct LayerParts {
  std::vector<TensorPart> wqkv;  // [q_dim + 2 kv_dim, dim]: wq, wk, wv
  std::vector<TensorPart> bqkv;  // [q_dim + 2 kv_dim] (empty without qkv_bias)
  std::vector<TensorPart> wo;    // [dim, q_dim]
  std::vector<TensorPart> w13;   // [2 hidden, dim]: gate (w1), then up (w3)
  std::vector<TensorPart> w2;    // [dim, hidden]
};
LayerParts LayerTensorParts(const model::ModelWeights& w, int layer);

}  // namespace treepo::cuda
