#include "scheduler/reward/reward_fn.h"

#include <functional>

#include "common/check.h"
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

// A plug-in's reward: the C descriptor called through its function pointer.
class PluginReward : public RewardFn {
 public:
  PluginReward(const TreepoRewardPlugin& d, std::string name) : d_(d), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  RewardResult Score(std::string_view response, std::string_view reference,
                     int response_tokens) const override {
    char extracted[1024];
    extracted[0] = '\0';
    TreepoRewardOutput out{0.0f, extracted, sizeof(extracted)};
    d_.score(d_.state, {response.data(), response.size()}, {reference.data(), reference.size()},
             response_tokens, &out);
    extracted[sizeof(extracted) - 1] = '\0';  // a plug-in that forgot the terminator
    return {out.reward, std::string(extracted)};
  }

 private:
  TreepoRewardPlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
};

template <typename T>
std::unique_ptr<RewardFn> Builtin(const RewardOptions&) {
  return std::make_unique<T>();
}

}  // namespace

RewardFnRegistry& RewardFns() {
  static RewardFnRegistry* registry = [] {
    auto* r = new RewardFnRegistry("reward");
    TREEPO_CHECK_OK(r->Register("math", Builtin<MathReward>));
    TREEPO_CHECK_OK(r->Register("exact_match", Builtin<ExactMatchReward>));
    return r;
  }();
  return *registry;
}

Status RegisterRewardPlugin(const TreepoRewardPlugin& plugin) {
  if (plugin.score == nullptr) {
    return InvalidArgument(std::string("reward '") + plugin.name + "': no score function");
  }
  const std::string name = plugin.name;
  return RewardFns().Register(name,
                              [plugin, name](const RewardOptions&) -> std::unique_ptr<RewardFn> {
                                return std::make_unique<PluginReward>(plugin, name);
                              });
}

std::vector<std::string> RewardFnNames() { return RewardFns().Names(); }

Result<std::unique_ptr<RewardFn>> MakeRewardFn(const RewardOptions& o) {
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<RewardFn> fn, RewardFns().Make(o.name, o));
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
