// Reward functions (TREEPO_SPEC.md section 4): a response's text and the reference answer
// in, a scalar reward and the answer extracted from the response out. Chosen by name from
// RewardFns(), a registry holding the built-ins and what plug-ins add (docs/plugins.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"

namespace treepo::scheduler {

struct RewardResult {
  float reward = 0.0f;
  std::string extracted;  // the answer read from the response ("" when none)
};

// Pure and thread-safe (const, no state).
class RewardFn {
 public:
  virtual ~RewardFn() = default;
  virtual std::string_view name() const = 0;
  // `response_tokens`: the response's token count (used by length-aware wrappers; -1 when
  // unknown, which such wrappers treat as no penalty).
  virtual RewardResult Score(std::string_view response, std::string_view reference,
                             int response_tokens = -1) const = 0;
};

struct RewardOptions {
  std::string name = "math";  // a RewardFns() name: math | exact_match | a plug-in's
  // DAPO overlong penalty: with cap Lmax = overlong_max_tokens and buffer B, a response of
  // n > Lmax - B tokens gets -(n - (Lmax - B)) / B added. Off when overlong_max_tokens <= 0.
  int overlong_max_tokens = 0;
  int overlong_buffer_tokens = 512;
};

using RewardFnRegistry = Registry<RewardFn, const RewardOptions&>;
// The process's registry; the built-ins (math first, the default; exact_match) are registered
// on first use.
RewardFnRegistry& RewardFns();
// Registers a plug-in's reward (a C descriptor, copied) under its name.
Status RegisterRewardPlugin(const TreepoRewardPlugin& plugin);

// The named reward, wrapped in the overlong penalty when options ask for it.
Result<std::unique_ptr<RewardFn>> MakeRewardFn(const RewardOptions& options);
std::vector<std::string> RewardFnNames();

// Math answer helpers, exposed for tests and evaluation.
// The normalised form of an answer string (spaces, \left/\right, \!, trailing '.', degrees,
// \dfrac/\tfrac, \text{} wrappers and $ signs removed).
std::string NormalizeMathAnswer(std::string_view answer);
// True when the two answers are the same after normalisation or equal as numbers/fractions.
bool MathAnswersEqual(std::string_view a, std::string_view b);
// The value of a plain number, "a/b", "\frac{a}{b}", "-\frac{a}{b}", "1,000", "50\%"-free
// forms; nullopt otherwise. Input is already normalised.
std::optional<double> ParseMathNumber(std::string_view normalized);

}  // namespace treepo::scheduler
