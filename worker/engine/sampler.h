// Token sampling: greedy, temperature, top-k and top-p, with a per-node random stream.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"

namespace treepo::worker {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int top_k = 0;             // keep the k most likely tokens; 0: all
  float top_p = 1.0f;        // keep the smallest set whose probability reaches top_p; 1: all
  bool stop_at_eos = true;   // finish a sequence when it samples EOS

  Status Validate() const;
};

// The random stream of one node: a function of (seed, node) only, so a node's tokens do not
// depend on what else shares the batch.
std::mt19937_64 NodeRng(uint64_t seed, NodeId node);

struct Sample {
  int32_t token = 0;
  // log p(token) under softmax(logits / T); under softmax(logits) when T = 0. Truncation by
  // top-k / top-p changes which tokens may be drawn, not this value.
  float logprob = 0.0f;
};

// Draws tokens; holds scratch buffers so that drawing allocates nothing once warm.
// One per thread.
class Sampler {
 public:
  // logits: [vocab]. Precondition: params validated, vocab >= 1.
  Sample Draw(const float* logits, int vocab, const SamplingParams& params, std::mt19937_64* rng);

 private:
  std::vector<float> probs_;
  std::vector<int32_t> order_;
};

// A way of drawing tokens, chosen by name per worker (EngineOptions::sampler) from
// TokenSamplers(): the built-in "default" is Sampler above; plug-ins add theirs
// (docs/plugins.md). One object per engine (not shared between threads).
class TokenSampler {
 public:
  virtual ~TokenSampler() = default;
  virtual std::string_view name() const = 0;
  // logits: [vocab]; rng: the node's stream. Precondition: params validated, vocab >= 1.
  virtual Sample Draw(const float* logits, int vocab, const SamplingParams& params,
                      std::mt19937_64* rng) = 0;
};

using TokenSamplerRegistry = Registry<TokenSampler>;
// The process's registry; built-in "default" (temperature, top-k, top-p: Sampler).
TokenSamplerRegistry& TokenSamplers();
// Registers a plug-in's sampler (a C descriptor, copied). Its Draw CHECKs the plug-in's answer
// (token in the vocabulary, finite log-prob).
Status RegisterSamplerPlugin(const TreepoSamplerPlugin& plugin);

}  // namespace treepo::worker
