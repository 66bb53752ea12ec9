#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/check.h"

namespace treepo::worker {
namespace {

// SplitMix64 finaliser: mixes (seed, node) into one well-spread 64-bit seed.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from the top 53 bits (the same on every platform, unlike
// std::uniform_real_distribution).
double Uniform(std::mt19937_64* rng) { return static_cast<double>((*rng)() >> 11) * 0x1.0p-53; }

}  // namespace

Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return InvalidArgument("temperature must be finite and >= 0");
  }
  if (top_k < 0) return InvalidArgument("top_k must be >= 0, got " + std::to_string(top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) return InvalidArgument("top_p must be in (0, 1]");
  return OkStatus();
}

std::mt19937_64 NodeRng(uint64_t seed, NodeId node) {
  return std::mt19937_64(Mix(Mix(seed) ^ node.value()));
}

Sample Sampler::Draw(const float* logits, int vocab, const SamplingParams& params,
                     std::mt19937_64* rng) {
  const float inv_t = params.temperature > 0.0f ? 1.0f / params.temperature : 1.0f;
  float mx = logits[0];
  int32_t argmax = 0;
  for (int i = 1; i < vocab; ++i) {
    if (logits[i] > mx) mx = logits[i], argmax = i;
  }
  if (probs_.size() < static_cast<size_t>(vocab)) probs_.resize(vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    probs_[i] = std::exp((logits[i] - mx) * inv_t);
    sum += probs_[i];
  }
  const double log_sum = std::log(sum);  // log-partition relative to the max
  auto logprob = [&](int32_t t) { return static_cast<float>((logits[t] - mx) * inv_t - log_sum); };
  if (params.temperature == 0.0f) return {argmax, logprob(argmax)};

  // Candidates: all tokens, or the top-k / top-p set, most likely first when truncated.
  int n = vocab;
  const bool truncate = (params.top_k > 0 && params.top_k < vocab) || params.top_p < 1.0f;
  if (truncate) {
    order_.resize(vocab);
    for (int i = 0; i < vocab; ++i) order_[i] = i;
    auto by_prob = [&](int32_t a, int32_t b) {
      return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
    };
    if (params.top_k > 0 && params.top_k < vocab) {
      n = params.top_k;
      std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), by_prob);
    } else {
      std::sort(order_.begin(), order_.end(), by_prob);
    }
    if (params.top_p < 1.0f) {
      const double target = params.top_p * sum;
      double acc = 0.0;
      int keep = 0;
      while (keep < n) {
        acc += probs_[order_[keep++]];
        if (acc >= target) break;
      }
      n = keep;
    }
  }
  double total = 0.0;
  for (int i = 0; i < n; ++i) total += probs_[truncate ? order_[i] : i];
  const double u = Uniform(rng) * total;
  double acc = 0.0;
  int32_t pick = truncate ? order_[n - 1] : vocab - 1;
  for (int i = 0; i < n; ++i) {
    const int32_t t = truncate ? order_[i] : i;
    acc += probs_[t];
    if (u < acc) {
      pick = t;
      break;
    }
  }
  return {pick, logprob(pick)};
}

namespace {

class DefaultSampler : public TokenSampler {
 public:
  std::string_view name() const override { return "default"; }
  Sample Draw(const float* logits, int vocab, const SamplingParams& params,
              std::mt19937_64* rng) override {
    return sampler_.Draw(logits, vocab, params, rng);
  }

 private:
  Sampler sampler_;
};

// A plug-in's sampler: the C descriptor called through its function pointer.
class PluginSampler : public TokenSampler {
 public:
  PluginSampler(const TreepoSamplerPlugin& d, std::string name) : d_(d), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Sample Draw(const float* logits, int vocab, const SamplingParams& params,
              std::mt19937_64* rng) override {
    const TreepoSamplingParams p{params.temperature, params.top_k, params.top_p};
    const TreepoSample s = d_.draw(d_.state, logits, vocab, &p, (*rng)());
    TREEPO_CHECK(s.token >= 0 && s.token < vocab)
        << "sampler plug-in '" << name_ << "' drew token " << s.token << " of " << vocab;
    TREEPO_CHECK(std::isfinite(s.logprob))
        << "sampler plug-in '" << name_ << "' gave log-prob " << s.logprob;
    return {s.token, s.logprob};
  }

 private:
  TreepoSamplerPlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
};

}  // namespace

TokenSamplerRegistry& TokenSamplers() {
  static TokenSamplerRegistry* registry = [] {
    auto* r = new TokenSamplerRegistry("token sampler");
    TREEPO_CHECK_OK(r->Register("default", []() -> Result<std::unique_ptr<TokenSampler>> {
      return std::unique_ptr<TokenSampler>(std::make_unique<DefaultSampler>());
    }));
    return r;
  }();
  return *registry;
}

Status RegisterSamplerPlugin(const TreepoSamplerPlugin& plugin) {
  if (plugin.draw == nullptr) {
    return InvalidArgument(std::string("token sampler '") + plugin.name + "': no draw function");
  }
  const std::string name = plugin.name;
  return TokenSamplers().Register(name, [plugin, name]() -> Result<std::unique_ptr<TokenSampler>> {
    return std::unique_ptr<TokenSampler>(std::make_unique<PluginSampler>(plugin, name));
  });
}

}  // namespace treepo::worker
