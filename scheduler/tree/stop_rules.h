// Stop rules (TREEPO_SPEC.md section 2): checked on every new segment, in order; the first
// that fires ends the path as a leaf with its reason. Pluggable: a StopRuleSet is an ordered
// list of StopRule objects made by name from StopRules(), a registry holding the built-ins and
// what plug-ins add (docs/plugins.md); MakeStopRules builds the spec's default set plus the
// configured extra rules.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"
#include "common/tree/tree_record.h"

namespace treepo::scheduler {

// What a stop rule sees of one new segment.
struct SegmentView {
  std::string_view text;        // decoded text of this segment only
  bool has_eos = false;         // the segment holds EOS (any position, 0 included)
  int response_tokens = 0;      // tokens on the path including this segment (after the cap)
  int depth = 0;                // depth of the segment's node (1 = first segment)
  int max_depth = 0;            // d
  int max_response_tokens = 0;  // d * L
};

class StopRule {
 public:
  virtual ~StopRule() = default;
  virtual std::string_view name() const = 0;
  // The reason the path ends here, or nullopt to let the next rule look.
  virtual std::optional<FinishReason> Check(const SegmentView& s) const = 0;
};

struct StopOptions {
  bool repetition_first = false;         // repetition checked first (true) or last (false, default)
  bool boxed_only = false;               // FINISHED on a box alone (true) or box AND EOS (false)
  int repetition_window_chars = 32;      // substring length
  int repetition_min_count = 8;          // occurrences (overlaps counted) that fire
  std::vector<std::string> extra_rules;  // StopRules() names checked after the built-in set

  Status Validate() const;
};

// Ordered rules; Check returns the first reason that fires.
class StopRuleSet {
 public:
  explicit StopRuleSet(std::vector<std::unique_ptr<StopRule>> rules) : rules_(std::move(rules)) {}
  std::optional<FinishReason> Check(const SegmentView& s) const;
  const std::vector<std::unique_ptr<StopRule>>& rules() const { return rules_; }

 private:
  std::vector<std::unique_ptr<StopRule>> rules_;
};

using StopRuleRegistry = Registry<StopRule, const StopOptions&>;
// The process's registry; built-ins finished, eos, max_tokens, max_depth, repetition.
StopRuleRegistry& StopRules();
// Registers a plug-in's rule (a C descriptor, copied). A reason code outside TREEPO_STOP_*
// from the plug-in is a CHECK failure naming it.
Status RegisterStopRulePlugin(const TreepoStopRulePlugin& plugin);

// repetition (if first), finished, eos, max_tokens, max_depth, repetition (if last).
StopRuleSet MakeDefaultStopRules(const StopOptions& options);
// The default set, then options.extra_rules in order; kInvalidArgument for an unknown name.
Result<StopRuleSet> MakeStopRules(const StopOptions& options);

// True when `text` holds "\boxed{...}" with balanced (nested) braces.
bool HasBoxed(std::string_view text);
// The content of the last balanced "\boxed{...}" in `text`, or nullopt.
std::optional<std::string> LastBoxedContent(std::string_view text);
// True when some substring of `window` chars occurs >= `min_count` times in `text`, overlapping
// occurrences counted. Text shorter than `window` never fires.
bool HasRepetition(std::string_view text, int window, int min_count);

}  // namespace treepo::scheduler
