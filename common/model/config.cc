#include "common/model/config.h"

#include <algorithm>
#include <cmath>
#include <numbers>
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
  if (head_size < 0 || head_size > 4096) return bad("head_dim must be in [0, 4096]");
  if (head_size == 0 && dim % n_heads != 0) return bad("dim must be a multiple of n_heads");
  if (n_heads % n_kv_heads != 0) return bad("n_heads must be a multiple of n_kv_heads");
  if (head_dim() % 2 != 0 || head_dim() <= 0) return bad("head_dim must be even for RoPE");
  if (static_cast<int64_t>(n_heads) * head_dim() > (1 << 17)) return bad("q width too large");
  if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 || eos_id >= vocab_size) {
    return bad("bos/eos ids out of vocabulary");
  }
  if (!eos_ids.empty() && std::find(eos_ids.begin(), eos_ids.end(), eos_id) == eos_ids.end())
    return bad("eos_ids must hold eos_id");
  for (int id : eos_ids) {
    if (id < 0 || id >= vocab_size)
      return bad("eos id " + std::to_string(id) + " out of vocabulary");
  }
  if (!(norm_eps > 0) || !(rope_theta > 0)) return bad("norm_eps and rope_theta must be > 0");
  const RopeScaling& rs = rope_scaling;
  if (rs.type != RopeScalingType::kNone) {
    if (!(rs.factor >= 1.0) || !std::isfinite(rs.factor)) {
      return bad("rope_scaling factor must be >= 1");
    }
    if (rs.type != RopeScalingType::kLinear && rs.original_max_position <= 0) {
      return bad("rope_scaling original_max_position_embeddings must be > 0");
    }
    if (rs.type == RopeScalingType::kLlama3 &&
        !(rs.low_freq_factor > 0 && rs.high_freq_factor > rs.low_freq_factor)) {
      return bad("rope_scaling needs 0 < low_freq_factor < high_freq_factor");
    }
    if (rs.type == RopeScalingType::kYarn &&
        !(rs.beta_fast > 0 && rs.beta_slow > 0 && rs.attention_factor > 0 &&
          std::isfinite(rs.attention_factor))) {
      return bad("rope_scaling beta_fast, beta_slow and attention_factor must be > 0");
    }
  }
  return OkStatus();
}

bool ModelConfig::IsEos(int token) const {
  if (token == eos_id) return true;
  return std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end();
}

std::vector<float> RopeInvFrequencies(const ModelConfig& c) {
  const int hd = c.head_dim(), half = hd / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    inv[i] = std::pow(c.rope_theta, -2.0f * static_cast<float>(i) / static_cast<float>(hd));
  }
  const RopeScaling& rs = c.rope_scaling;
  switch (rs.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      for (float& f : inv) f = static_cast<float>(f / rs.factor);
      break;
    case RopeScalingType::kLlama3: {
      // transformers' _compute_llama3_parameters.
      const double old_ctx = rs.original_max_position;
      const double low_wavelen = old_ctx / rs.low_freq_factor;
      const double high_wavelen = old_ctx / rs.high_freq_factor;
      for (float& f : inv) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f = static_cast<float>(f / rs.factor);
        } else if (wavelen >= high_wavelen) {
          const double smooth =
              (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
          f = static_cast<float>((1.0 - smooth) * f / rs.factor + smooth * f);
        }
      }
      break;
    }
    case RopeScalingType::kYarn: {
      // transformers' _compute_yarn_parameters.
      const double base = c.rope_theta, orig = rs.original_max_position;
      auto correction_dim = [&](double rotations) {
        return hd * std::log(orig / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
      };
      double low = correction_dim(rs.beta_fast), high = correction_dim(rs.beta_slow);
      if (rs.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, hd - 1.0);
      if (low == high) high += 0.001;
      for (int i = 0; i < half; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;  // weight of the unscaled frequency
        const double f = inv[i];
        inv[i] = static_cast<float>(f / rs.factor * (1.0 - extrapolation) + f * extrapolation);
      }
      break;
    }
  }
  return inv;
}

std::string ModelConfig::ToString() const {
  std::ostringstream os;
  os << "dim=" << dim << " hidden=" << hidden_dim << " layers=" << n_layers << " heads=" << n_heads
     << "/" << n_kv_heads << " vocab=" << vocab_size << " seq=" << max_seq_len
     << (rope_layout == RopeLayout::kAdjacentPairs ? " rope=adjacent" : " rope=half")
     << (tied_embeddings ? " tied" : " untied") << (qkv_bias ? " qkv_bias" : "");
  // Only what older configs lack is added, so their line (and fingerprint) stays the same.
  if (head_size > 0) os << " head_dim=" << head_size;
  if (qk_norm) os << " qk_norm";
  const RopeScaling& rs = rope_scaling;
  switch (rs.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      os << " rope_scaling=linear/" << rs.factor;
      break;
    case RopeScalingType::kLlama3:
      os << " rope_scaling=llama3/" << rs.factor << "/" << rs.low_freq_factor << "/"
         << rs.high_freq_factor << "/" << rs.original_max_position;
      break;
    case RopeScalingType::kYarn:
      os << " rope_scaling=yarn/" << rs.factor << "/" << rs.original_max_position << "/"
         << rs.beta_fast << "/" << rs.beta_slow << "/" << rs.attention_factor
         << (rs.truncate ? "" : "/no_truncate");
      break;
  }
  return os.str();
}

double ModelConfig::ParamCount() const {
  const double d = dim, hid = hidden_dim, vocab = vocab_size;
  const double hd = n_heads > 0 ? head_dim() : 0.0;
  const double q = n_heads * hd, kv = n_kv_heads * hd;
  const double per_layer = 2 * d                          // norms
                           + q * d * 2 + kv * d * 2       // q, o; k, v
                           + (qkv_bias ? q + 2 * kv : 0)  // biases
                           + (qk_norm ? 2 * hd : 0)       // q/k norms
                           + 3 * hid * d;                 // SwiGLU
  return vocab * d * (tied_embeddings ? 1 : 2) + per_layer * n_layers + d;
}

Status CheckWeightsFitMemory(const ModelConfig& c, int bytes_per_param) {
  return CheckMemoryBudget(c.ParamCount() * bytes_per_param,
                           "the weights of model " + c.ToString());
}

Status CheckKvPoolFitsMemory(const ModelConfig& c, int64_t num_pages, int64_t page_size) {
  const double kv = c.n_heads > 0 ? static_cast<double>(c.n_kv_heads) * c.head_dim() : 0;
  const double bytes = 2.0 * c.n_layers * static_cast<double>(num_pages) *
                       static_cast<double>(page_size) * kv * sizeof(float);
  return CheckMemoryBudget(bytes, "a KV pool of " + std::to_string(num_pages) + " pages x " +
                                      std::to_string(page_size) + " positions (" +
                                      std::to_string(c.n_layers) + " layers, kv_dim " +
                                      std::to_string(static_cast<int64_t>(kv)) + ")");
}

}  // namespace treepo::model
