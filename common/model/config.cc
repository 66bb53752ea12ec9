#include "common/model/config.h"

#include <sstream>

#include "common/memory_budget.h"

namespace treepo::model {

Status ModelConfig::Validate() const {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("model config " + ToString() + ": " + why);
  };
  if (dim <= 0 || hidden_dim <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv_heads <= 0 ||
      vocab_size <= 0 || max_seq_len <= 0) {
    return bad("every size must be positive");
  }
  if (dim > (1 << 16) || hidden_dim > (1 << 18) || n_layers > 1024 || vocab_size > (1 << 22) ||
      max_seq_len > (1 << 22)) {
    return bad("a size is implausibly large");
  }
  if (dim % n_heads != 0) return bad("dim must be a multiple of n_heads");
  if (n_heads % n_kv_heads != 0) return bad("n_heads must be a multiple of n_kv_heads");
  if (head_dim() % 2 != 0) return bad("head_dim must be even for RoPE");
  if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 || eos_id >= vocab_size) {
    return bad("bos/eos ids out of vocabulary");
  }
  if (!(norm_eps > 0) || !(rope_theta > 0)) return bad("norm_eps and rope_theta must be > 0");
  return OkStatus();
}

std::string ModelConfig::ToString() const {
  std::ostringstream os;
  os << "dim=" << dim << " hidden=" << hidden_dim << " layers=" << n_layers << " heads=" << n_heads
     << "/" << n_kv_heads << " vocab=" << vocab_size << " seq=" << max_seq_len
     << (rope_layout == RopeLayout::kAdjacentPairs ? " rope=adjacent" : " rope=half")
     << (tied_embeddings ? " tied" : " untied") << (qkv_bias ? " qkv_bias" : "");
  return os.str();
}

double ModelConfig::ParamCount() const {
  const double d = dim, hid = hidden_dim, vocab = vocab_size;
  const double kv = n_heads > 0 ? static_cast<double>(n_kv_heads) * (dim / n_heads) : 0.0;
  const double per_layer = 2 * d                          // norms
                           + d * d * 2 + kv * d * 2       // q, o; k, v
                           + (qkv_bias ? d + 2 * kv : 0)  // biases
                           + 3 * hid * d;                 // SwiGLU
  return vocab * d * (tied_embeddings ? 1 : 2) + per_layer * n_layers + d;
}

Status CheckWeightsFitMemory(const ModelConfig& c) {
  return CheckMemoryBudget(c.ParamCount() * sizeof(float), "the weights of model " + c.ToString());
}

Status CheckKvPoolFitsMemory(const ModelConfig& c, int64_t num_pages, int64_t page_size) {
  const double kv = c.n_heads > 0 ? static_cast<double>(c.n_kv_heads) * (c.dim / c.n_heads) : 0;
  const double bytes = 2.0 * c.n_layers * static_cast<double>(num_pages) *
                       static_cast<double>(page_size) * kv * sizeof(float);
  return CheckMemoryBudget(bytes, "a KV pool of " + std::to_string(num_pages) + " pages x " +
                                      std::to_string(page_size) + " positions (" +
                                      std::to_string(c.n_layers) + " layers, kv_dim " +
                                      std::to_string(static_cast<int64_t>(kv)) + ")");
}

}  // namespace treepo::model
