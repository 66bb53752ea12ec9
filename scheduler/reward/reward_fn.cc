#include "scheduler/reward/reward_fn.h"

#include <functional>

#include "scheduler/tree/stop_rules.h"

namespace treepo::scheduler {
namespace {

// +1 when the last \boxed{...} equals the reference (MathAnswersEqual), else -1; no box -1.
class MathReward : public RewardFn {
 public:
  std::string_view name() const override { return "math"; }
  RewardResult Score(std::string_view response, std::string_view reference,
                     int /*response_tokens*/) const override {
    std::optional<std::string> boxed = LastBoxedContent(response);
    if (!boxed) return {-1.0f, ""};
    return {MathAnswersEqual(*boxed, reference) ? 1.0f : -1.0f, *boxed};
  }
};

// +1 when the whole response, trimmed, equals the trimmed reference; else -1.
class ExactMatchReward : public RewardFn {
 public:
  std::string_view name() const override { return "exact_match"; }
  RewardResult Score(std::string_view response, std::string_view reference,
                     int /*response_tokens*/) const override {
    const std::string r = Trim(response);
    return {r == Trim(reference) ? 1.0f : -1.0f, r};
  }

 private:
  static std::string Trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return "";
    const size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
  }
};

// DAPO overlong penalty on top of an inner reward.
class OverlongPenalty : public RewardFn {
 public:
  OverlongPenalty(std::unique_ptr<RewardFn> inner, int max_tokens, int buffer_tokens)
      : inner_(std::move(inner)), max_tokens_(max_tokens), buffer_tokens_(buffer_tokens) {}
  std::string_view name() const override { return inner_->name(); }
  RewardResult Score(std::string_view response, std::string_view reference,
                     int response_tokens) const override {
    RewardResult r = inner_->Score(response, reference, response_tokens);
    const int start = max_tokens_ - buffer_tokens_;
    if (response_tokens > start) {
      r.reward -= static_cast<float>(response_tokens - start) / buffer_tokens_;
    }
    return r;
  }

 private:
  std::unique_ptr<RewardFn> inner_;
  int max_tokens_;
  int buffer_tokens_;
};

}  // namespace

const std::vector<std::string_view>& RewardFnNames() {
  static const std::vector<std::string_view> kNames = {"math", "exact_match"};
  return kNames;
}

Result<std::unique_ptr<RewardFn>> MakeRewardFn(const RewardOptions& o) {
  using Ctor = std::unique_ptr<RewardFn> (*)();
  static constexpr std::pair<std::string_view, Ctor> kTable[] = {
      {"math", []() -> std::unique_ptr<RewardFn> { return std::make_unique<MathReward>(); }},
      {"exact_match",
       []() -> std::unique_ptr<RewardFn> { return std::make_unique<ExactMatchReward>(); }},
  };
  std::unique_ptr<RewardFn> fn;
  for (const auto& [n, make] : kTable) {
    if (n == o.name) fn = make();
  }
  if (!fn) {
    std::string names;
    for (std::string_view n : RewardFnNames())
      names += (names.empty() ? "" : ", ") + std::string(n);
    return InvalidArgument("unknown reward \"" + o.name + "\" (valid: " + names + ")");
  }
  if (o.overlong_max_tokens > 0) {
    if (o.overlong_buffer_tokens < 1 || o.overlong_buffer_tokens > o.overlong_max_tokens) {
      return InvalidArgument("overlong_buffer_tokens must be in [1, overlong_max_tokens]");
    }
    fn = std::make_unique<OverlongPenalty>(std::move(fn), o.overlong_max_tokens,
                                           o.overlong_buffer_tokens);
  }
  return fn;
}

}  // namespace treepo::scheduler
