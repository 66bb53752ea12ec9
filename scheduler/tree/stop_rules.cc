#include "scheduler/tree/stop_rules.h"

#include <string>
#include <unordered_map>

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

}  // namespace

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

StopRuleSet MakeDefaultStopRules(const StopOptions& o) {
  std::vector<std::unique_ptr<StopRule>> rules;
  if (o.repetition_first) {
    rules.push_back(
        std::make_unique<RepetitionRule>(o.repetition_window_chars, o.repetition_min_count));
  }
  rules.push_back(std::make_unique<FinishedRule>(o.boxed_only));
  rules.push_back(std::make_unique<EosRule>());
  rules.push_back(std::make_unique<MaxTokensRule>());
  rules.push_back(std::make_unique<MaxDepthRule>());
  if (!o.repetition_first) {
    rules.push_back(
        std::make_unique<RepetitionRule>(o.repetition_window_chars, o.repetition_min_count));
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
