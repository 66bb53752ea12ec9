// The Llama-family decoder's shape: Llama 2/3.x, Qwen2/2.5, Qwen3 and llama2.c models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::model {

// How RoPE pairs the elements of a head.
enum class RopeLayout {
  kAdjacentPairs,  // llama2.c: (2i, 2i+1) rotate together
  kRotateHalf,     // Hugging Face: (i, i + head_dim/2) rotate together
};

// How RoPE's frequencies are stretched for long contexts (Hugging Face's rope_scaling).
enum class RopeScalingType {
  kNone,
  kLinear,  // every frequency / factor (position interpolation)
  kLlama3,  // Llama 3.1: low frequencies / factor, high kept, a smooth ramp between
  kYarn,    // YaRN: per-dimension ramp between interpolation and extrapolation, and cos/sin
            // scaled by attention_factor
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int original_max_position = 0;  // llama3, yarn: the pre-training context
  double beta_fast = 32.0;        // yarn
  double beta_slow = 1.0;         // yarn
  double attention_factor = 1.0;  // yarn: multiplies cos and sin (1 otherwise)
  bool truncate = true;           // yarn: round the ramp's ends to whole dimensions

  bool operator==(const RopeScaling&) const = default;
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
  bool qk_norm = false;         // Qwen3: RMSNorm over each head of q and k, before RoPE
  int head_size = 0;            // 0: dim / n_heads; else the head width (Qwen3, Llama 3.2)
  RopeScaling rope_scaling;
  int bos_id = 1;
  int eos_id = 2;  // the end of sequence (the first of eos_ids when that is given)
  // Every token that ends generation (config.json's eos_token_id list, generation_config's,
  // the chat template's end-of-turn token); empty: eos_id alone.
  std::vector<int> eos_ids;

  int head_dim() const { return head_size > 0 ? head_size : dim / n_heads; }
  int q_dim() const { return n_heads * head_dim(); }  // width of q and of attention's output
  int kv_dim() const { return n_kv_heads * head_dim(); }
  int heads_per_kv() const { return n_heads / n_kv_heads; }
  bool IsEos(int token) const;

  // Shapes agree (dim divisible by heads, heads by kv heads, even head_dim, ...).
  Status Validate() const;
  // One line for logs: "dim=64 hidden=172 layers=5 heads=8/4 vocab=512 seq=512".
  std::string ToString() const;

  // Parameters of the weights (as a double: a bad config must not overflow the estimate).
  double ParamCount() const;
};

// RoPE's inverse frequency of each of the head_dim / 2 rotated pairs, with rope_scaling
// applied. Unscaled: theta^(-2i / head_dim) in float, as llama2.c and transformers compute it.
std::vector<float> RopeInvFrequencies(const ModelConfig& config);

// kResourceExhausted when the weights of `config` at `bytes_per_param` (4: fp32, 2: bf16/f16)
// would not fit in memory (common/memory_budget.h), checked before anything is allocated.
Status CheckWeightsFitMemory(const ModelConfig& config, int bytes_per_param = 4);

// kResourceExhausted when a KV pool of `num_pages` pages of `page_size` positions for
// `config` (keys and values of every layer, fp32) would not fit in memory.
Status CheckKvPoolFitsMemory(const ModelConfig& config, int64_t num_pages, int64_t page_size);

}  // namespace treepo::model
