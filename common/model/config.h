// The Llama-family decoder's shape: Llama 2/3, Qwen2/2.5 and llama2.c models.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace treepo::model {

// How RoPE pairs the elements of a head.
enum class RopeLayout {
  kAdjacentPairs,  // llama2.c: (2i, 2i+1) rotate together
  kRotateHalf,     // Hugging Face: (i, i + head_dim/2) rotate together
};

struct ModelConfig {
  int dim = 0;         // model width
  int hidden_dim = 0;  // SwiGLU inner width
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (grouped-query attention when < n_heads)
  int vocab_size = 0;
  int max_seq_len = 0;  // longest context the model supports (positions)
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  RopeLayout rope_layout = RopeLayout::kAdjacentPairs;
  bool tied_embeddings = true;  // output projection is the token embedding
  bool qkv_bias = false;        // Qwen2-style biases on q, k, v projections
  int bos_id = 1;
  int eos_id = 2;

  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return n_kv_heads * head_dim(); }
  int heads_per_kv() const { return n_heads / n_kv_heads; }

  // Shapes agree (dim divisible by heads, heads by kv heads, even head_dim, ...).
  Status Validate() const;
  // One line for logs: "dim=64 hidden=172 layers=5 heads=8/4 vocab=512 seq=512".
  std::string ToString() const;

  // Parameters of the weights (as a double: a bad config must not overflow the estimate).
  double ParamCount() const;
};

// kResourceExhausted when the fp32 weights of `config` would not fit in memory
// (common/memory_budget.h), checked before anything is allocated.
Status CheckWeightsFitMemory(const ModelConfig& config);

// kResourceExhausted when a KV pool of `num_pages` pages of `page_size` positions for
// `config` (keys and values of every layer, fp32) would not fit in memory.
Status CheckKvPoolFitsMemory(const ModelConfig& config, int64_t num_pages, int64_t page_size);

}  // namespace treepo::model
