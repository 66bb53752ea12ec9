#include "common/model/config.h"

#include <sstream>

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

}  // namespace treepo::model
