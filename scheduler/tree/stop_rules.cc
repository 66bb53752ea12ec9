#include "scheduler/tree/stop_rules.h"

#include <string>
#include <unordered_map>

#include "common/check.h"

namespace treepo::scheduler {
namespace {

class RepetitionRule : public StopRule {
 public:
  RepetitionRule(int window, int min_count) : window_(window), min_count_(min_count) {}
  std::string_view name() const override { return "repetition"; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    if (HasRepetition(s.text, window_, min_count_)) return FinishReason::kRepetition;
    return std::nullopt;
  }

 private:
  int window_;
  int min_count_;
};

class FinishedRule : public StopRule {
 public:
  explicit FinishedRule(bool boxed_only) : boxed_only_(boxed_only) {}
  std::string_view name() const override { return "finished"; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    if ((boxed_only_ || s.has_eos) && HasBoxed(s.text)) return FinishReason::kFinished;
    return std::nullopt;
  }

 private:
  bool boxed_only_;
};

class EosRule : public StopRule {
 public:
  std::string_view name() const override { return "eos"; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    if (s.has_eos) return FinishReason::kEos;
    return std::nullopt;
  }
};

class MaxTokensRule : public StopRule {
 public:
  std::string_view name() const override { return "max_tokens"; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    if (s.response_tokens >= s.max_response_tokens) return FinishReason::kMaxTokens;
    return std::nullopt;
  }
};

class MaxDepthRule : public StopRule {
 public:
  std::string_view name() const override { return "max_depth"; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    if (s.depth >= s.max_depth) return FinishReason::kMaxDepth;
    return std::nullopt;
  }
};

// End of the balanced-brace group whose '{' is at `open`, or npos.
size_t MatchBrace(std::string_view text, size_t open) {
  int level = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == '{') ++level;
    if (text[i] == '}' && --level == 0) return i;
  }
  return std::string_view::npos;
}

// A plug-in's rule: the C descriptor called through its function pointer.
class PluginStopRule : public StopRule {
 public:
  PluginStopRule(const TreepoStopRulePlugin& d, std::string name) : d_(d), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  std::optional<FinishReason> Check(const SegmentView& s) const override {
    const TreepoSegmentView v{
        {s.text.data(), s.text.size()}, s.has_eos ? 1 : 0, s.response_tokens, s.depth, s.max_depth,
        s.max_response_tokens};
    const int32_t code = d_.check(d_.state, &v);
    switch (code) {
      case TREEPO_STOP_NONE:
        return std::nullopt;
      case TREEPO_STOP_FINISHED:
        return FinishReason::kFinished;
      case TREEPO_STOP_EOS:
        return FinishReason::kEos;
      case TREEPO_STOP_MAX_TOKENS:
        return FinishReason::kMaxTokens;
      case TREEPO_STOP_MAX_DEPTH:
        return FinishReason::kMaxDepth;
      case TREEPO_STOP_REPETITION:
        return FinishReason::kRepetition;
    }
    TREEPO_CHECK(false) << "stop rule plug-in '" << name_ << "' returned unknown reason " << code;
    return std::nullopt;
  }

 private:
  TreepoStopRulePlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
};

template <typename T>
Result<std::unique_ptr<StopRule>> Plain(const StopOptions&) {
  return std::unique_ptr<StopRule>(std::make_unique<T>());
}

std::unique_ptr<StopRule> MakeBuiltin(std::string_view name, const StopOptions& o) {
  auto r = StopRules().Make(name, o);
  TREEPO_CHECK_OK(r.status());
  return std::move(*r);
}

}  // namespace

StopRuleRegistry& StopRules() {
  static StopRuleRegistry* registry = [] {
    auto* r = new StopRuleRegistry("stop rule");
    TREEPO_CHECK_OK(
        r->Register("finished", [](const StopOptions& o) -> Result<std::unique_ptr<StopRule>> {
          return std::unique_ptr<StopRule>(std::make_unique<FinishedRule>(o.boxed_only));
        }));
    TREEPO_CHECK_OK(r->Register("eos", Plain<EosRule>));
    TREEPO_CHECK_OK(r->Register("max_tokens", Plain<MaxTokensRule>));
    TREEPO_CHECK_OK(r->Register("max_depth", Plain<MaxDepthRule>));
    TREEPO_CHECK_OK(
        r->Register("repetition", [](const StopOptions& o) -> Result<std::unique_ptr<StopRule>> {
          return std::unique_ptr<StopRule>(
              std::make_unique<RepetitionRule>(o.repetition_window_chars, o.repetition_min_count));
        }));
    return r;
  }();
  return *registry;
}

Status RegisterStopRulePlugin(const TreepoStopRulePlugin& plugin) {
  if (plugin.check == nullptr) {
    return InvalidArgument(std::string("stop rule '") + plugin.name + "': no check function");
  }
  const std::string name = plugin.name;
  return StopRules().Register(
      name, [plugin, name](const StopOptions&) -> Result<std::unique_ptr<StopRule>> {
        return std::unique_ptr<StopRule>(std::make_unique<PluginStopRule>(plugin, name));
      });
}

Status StopOptions::Validate() const {
  if (repetition_window_chars < 1) return InvalidArgument("repetition_window_chars must be >= 1");
  if (repetition_min_count < 2) return InvalidArgument("repetition_min_count must be >= 2");
  return OkStatus();
}

std::optional<FinishReason> StopRuleSet::Check(const SegmentView& s) const {
  for (const auto& r : rules_) {
    if (auto reason = r->Check(s)) return reason;
  }
  return std::nullopt;
}

namespace {

std::vector<std::string_view> DefaultRuleNames(const StopOptions& o) {
  if (o.repetition_first) return {"repetition", "finished", "eos", "max_tokens", "max_depth"};
  return {"finished", "eos", "max_tokens", "max_depth", "repetition"};
}

}  // namespace

StopRuleSet MakeDefaultStopRules(const StopOptions& o) {
  std::vector<std::unique_ptr<StopRule>> rules;
  for (std::string_view name : DefaultRuleNames(o)) rules.push_back(MakeBuiltin(name, o));
  return StopRuleSet(std::move(rules));
}

Result<StopRuleSet> MakeStopRules(const StopOptions& o) {
  std::vector<std::unique_ptr<StopRule>> rules;
  for (std::string_view name : DefaultRuleNames(o)) rules.push_back(MakeBuiltin(name, o));
  for (const std::string& name : o.extra_rules) {
    TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<StopRule> rule, StopRules().Make(name, o));
    rules.push_back(std::move(rule));
  }
  return StopRuleSet(std::move(rules));
}

std::optional<std::string> LastBoxedContent(std::string_view text) {
  static constexpr std::string_view kBoxed = "\\boxed";
  std::optional<std::string> last;
  for (size_t pos = text.find(kBoxed); pos != std::string_view::npos;
       pos = text.find(kBoxed, pos + 1)) {
    size_t open = pos + kBoxed.size();
    while (open < text.size() && text[open] == ' ') ++open;
    if (open >= text.size() || text[open] != '{') continue;
    const size_t close = MatchBrace(text, open);
    if (close == std::string_view::npos) continue;
    last = std::string(text.substr(open + 1, close - open - 1));
  }
  return last;
}

bool HasBoxed(std::string_view text) { return LastBoxedContent(text).has_value(); }

bool HasRepetition(std::string_view text, int window, int min_count) {
  if (window <= 0 || text.size() < static_cast<size_t>(window)) return false;
  std::unordered_map<std::string_view, int> counts;
  for (size_t i = 0; i + window <= text.size(); ++i) {
    if (++counts[text.substr(i, window)] >= min_count) return true;
  }
  return false;
}

}  // namespace treepo::scheduler
