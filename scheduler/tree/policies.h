// Pluggable tree policies (TREEPO_SPEC.md section 2): how a step's budget is split over the
// paths that go on (BranchingPolicy), and how a query with no live path and too few leaves
// is refilled (FallbackPolicy). Both are chosen by name from their registries (the built-ins
// and what plug-ins add; docs/plugins.md). Deterministic: all randomness comes from the
// SplitMixRng passed in.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"

namespace treepo::scheduler {

uint64_t SplitMix64(uint64_t x);
// Hash of two words (order matters): seeds for (run, query, step), (run, query, node ordinal).
uint64_t MixSeed(uint64_t a, uint64_t b);

// Small portable generator (splitmix64 sequence); same numbers on every platform.
class SplitMixRng {
 public:
  explicit SplitMixRng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform integer in [lo, hi]; precondition lo <= hi.
  int64_t UniformInt(int64_t lo, int64_t hi);

 private:
  uint64_t state_;
};

// A path that goes on after a step, as a branching policy sees it.
struct BranchPath {
  NodeId tip;
  double cum_logprob = 0;        // sum over the path's response tokens
  int response_tokens = 0;       // tokens on the path
  double last_mean_logprob = 0;  // mean log-prob of the newest segment (0 if empty)
};

class BranchingPolicy {
 public:
  virtual ~BranchingPolicy() = default;
  virtual std::string_view name() const = 0;
  // Children per path: paths.size() counts, each >= 1, summing to `total`.
  // Precondition: total >= paths.size() >= 1.
  virtual std::vector<int> Split(int total, const std::vector<BranchPath>& paths) const = 0;
};

struct BranchingOptions {
  std::string policy = "fixed_avg";  // fixed_avg | logprob_weighted | a plug-in's
  std::string score = "mean";        // logprob_weighted: cumulative | mean | last_segment
  double temperature = 1.0;          // logprob_weighted: softmax temperature (> 0)
  bool favour_low_prob = true;       // logprob_weighted: sign -1 (true) or +1 (false)
};

using BranchingPolicyRegistry = Registry<BranchingPolicy, const BranchingOptions&>;
// The process's registry; built-ins fixed_avg (the default) and logprob_weighted.
BranchingPolicyRegistry& BranchingPolicies();
// Registers a plug-in's policy (a C descriptor, copied). Its Split CHECKs the plug-in's
// answer (one count >= 1 per path, summing to the total).
Status RegisterBranchingPlugin(const TreepoBranchingPlugin& plugin);

Result<std::unique_ptr<BranchingPolicy>> MakeBranchingPolicy(const BranchingOptions& options);
std::vector<std::string> BranchingPolicyNames();

// A FINISHED or EOS leaf that fallback may cut back and continue.
struct FallbackCandidate {
  std::vector<NodeId> path;  // depth-1 node first, the leaf's node last
  int response_tokens = 0;
};

// `copies` new depth-(kept+1) paths under `parent` (nullopt: the prompt).
struct FallbackBranch {
  std::optional<NodeId> parent;
  int copies = 0;
};

struct FallbackParams {
  int remaining = 0;       // w - leaves (>= 1)
  int branch_factor = 0;   // b
  int segment_tokens = 0;  // L
  int window_tokens = 0;   // cut granularity, a multiple of L
  int max_depth = 0;       // d
};

class FallbackPolicy {
 public:
  virtual ~FallbackPolicy() = default;
  virtual std::string_view name() const = 0;
  // Branches whose copies sum to params.remaining.
  virtual std::vector<FallbackBranch> Plan(std::vector<FallbackCandidate> candidates,
                                           const FallbackParams& params,
                                           SplitMixRng& rng) const = 0;
};

using FallbackPolicyRegistry = Registry<FallbackPolicy>;
// The process's registry; built-in depth_first (the default).
FallbackPolicyRegistry& FallbackPolicies();

Result<std::unique_ptr<FallbackPolicy>> MakeFallbackPolicy(std::string_view name);
std::vector<std::string> FallbackPolicyNames();

}  // namespace treepo::scheduler
