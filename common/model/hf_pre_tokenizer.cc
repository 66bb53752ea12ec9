#include "common/model/hf_pre_tokenizer.h"

#include <algorithm>
#include <optional>

#include "common/model/hf_byte_level.h"
#include "common/model/hf_regex.h"

namespace treepo::model::hf {
namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `text` at the matches of `re` as the Hugging Face SplitDelimiterBehavior does.
void SplitText(const std::string& text, const Regex& re, SplitBehavior behavior, bool invert,
               std::vector<std::string>* out) {
  // (begin, end, is_match) covering `text`.
  struct Part {
    size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  size_t last = 0;
  for (const auto& [b, e] : re.FindAll(text)) {
    if (b > last) parts.push_back({last, b, false});
    parts.push_back({b, e, true});
    last = e;
  }
  if (last < text.size()) parts.push_back({last, text.size(), false});
  if (invert) {
    for (Part& p : parts) p.match = !p.match;
  }
  std::vector<std::pair<size_t, size_t>> ranges;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.match) ranges.emplace_back(p.b, p.e);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) ranges.emplace_back(p.b, p.e);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_was_match = false;
      for (const Part& p : parts) {
        if (p.match && !ranges.empty() && !prev_was_match) {
          ranges.back().second = p.e;
        } else {
          ranges.emplace_back(p.b, p.e);
        }
        prev_was_match = p.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      // Right to left: a match joins the part after it unless that part is a match too.
      bool next_was_match = false;
      for (size_t i = parts.size(); i-- > 0;) {
        const Part& p = parts[i];
        if (p.match && !next_was_match && !ranges.empty()) {
          ranges.back().first = p.b;
        } else {
          ranges.emplace_back(p.b, p.e);
        }
        next_was_match = p.match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.match && prev_match && !ranges.empty()) {
          ranges.back().second = p.e;
        } else {
          ranges.emplace_back(p.b, p.e);
        }
        prev_match = p.match;
      }
      break;
    }
  }
  for (const auto& [b, e] : ranges) {
    if (e > b) out->push_back(text.substr(b, e - b));
  }
}

class SplitPre final : public PreTokenizer {
 public:
  SplitPre(Regex re, SplitBehavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<std::string>* pieces, bool) const override {
    std::vector<std::string> out;
    for (const std::string& p : *pieces) SplitText(p, re_, behavior_, invert_, &out);
    *pieces = std::move(out);
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenization pattern (ByteLevel's use_regex).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre final : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, std::optional<Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void PreTokenize(std::vector<std::string>* pieces, bool) const override {
    std::vector<std::string> split;
    for (std::string& p : *pieces) {
      if (add_prefix_space_ && (p.empty() || p[0] != ' ')) p.insert(0, " ");
      if (re_) {
        SplitText(p, *re_, SplitBehavior::kIsolated, false, &split);
      } else if (!p.empty()) {
        split.push_back(std::move(p));
      }
    }
    for (std::string& p : split) p = BytesToByteLevel(p);
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> re_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePre final : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split, Regex re)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split), re_(std::move(re)) {}
  void PreTokenize(std::vector<std::string>* pieces, bool first_segment) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < pieces->size(); ++i) {
      std::string p;
      for (char c : (*pieces)[i]) {
        if (c == ' ') {
          p += replacement_;
        } else {
          p.push_back(c);
        }
      }
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && first_segment && i == 0);
      if (prepend && p.compare(0, replacement_.size(), replacement_) != 0)
        p.insert(0, replacement_);
      if (split_) {
        SplitText(p, re_, SplitBehavior::kMergedWithNext, false, &out);
      } else if (!p.empty()) {
        out.push_back(std::move(p));
      }
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Regex re_;  // the replacement, literally
};

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<std::string>* pieces, bool first_segment) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces, first_segment);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Result<SplitBehavior> ParseBehavior(const nlohmann::json& spec) {
  const std::string b = spec.value("behavior", std::string("Isolated"));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return InvalidArgument("split behavior '" + b + "' is not known");
}

std::unique_ptr<PreTokenizer> RegexSplit(const char* pattern, SplitBehavior behavior, bool invert) {
  auto re = Regex::Compile(pattern);
  return std::make_unique<SplitPre>(std::move(re).value(), behavior, invert);
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgument("pre_tokenizer: an object with a \"type\" is expected");
  }
  const std::string type = spec["type"];
  try {
    if (type == "Split") {
      if (!spec.contains("pattern")) return InvalidArgument("pre_tokenizer Split: no \"pattern\"");
      auto re = CompilePattern(spec["pattern"]);
      if (!re.ok()) return re.status().WithContext("pre_tokenizer Split");
      TREEPO_ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(spec));
      return std::unique_ptr<PreTokenizer>(
          new SplitPre(std::move(re).value(), behavior, spec.value("invert", false)));
    }
    if (type == "ByteLevel") {
      std::optional<Regex> re;
      if (spec.value("use_regex", true)) re = Regex::Compile(kGpt2Pattern).value();
      return std::unique_ptr<PreTokenizer>(
          new ByteLevelPre(spec.value("add_prefix_space", true), std::move(re)));
    }
    if (type == "Metaspace") {
      const std::string replacement = spec.value("replacement", std::string("\xE2\x96\x81"));
      if (replacement.empty()) return InvalidArgument("pre_tokenizer Metaspace: empty replacement");
      PrependScheme scheme =
          spec.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
      if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
        const std::string s = spec["prepend_scheme"];
        if (s == "always") {
          scheme = PrependScheme::kAlways;
        } else if (s == "first") {
          scheme = PrependScheme::kFirst;
        } else if (s == "never") {
          scheme = PrependScheme::kNever;
        } else {
          return InvalidArgument("pre_tokenizer Metaspace: prepend_scheme '" + s +
                                 "' is not known");
        }
      }
      TREEPO_ASSIGN_OR_RETURN(Regex re, Regex::Compile(replacement, /*literal=*/true));
      return std::unique_ptr<PreTokenizer>(
          new MetaspacePre(replacement, scheme, spec.value("split", true), std::move(re)));
    }
    if (type == "Digits") {
      return RegexSplit(spec.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
                        SplitBehavior::kIsolated, false);
    }
    if (type == "Whitespace") return RegexSplit(R"(\w+|[^\w\s]+)", SplitBehavior::kRemoved, true);
    if (type == "WhitespaceSplit") return RegexSplit(R"(\s+)", SplitBehavior::kRemoved, false);
    if (type == "Sequence") {
      if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array()) {
        return InvalidArgument("pre_tokenizer Sequence: \"pretokenizers\" must be an array");
      }
      std::vector<std::unique_ptr<PreTokenizer>> parts;
      for (const auto& s : spec["pretokenizers"]) {
        TREEPO_ASSIGN_OR_RETURN(auto p, MakePreTokenizer(s));
        if (p) parts.push_back(std::move(p));
      }
      return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("pre_tokenizer " + type + ": " + e.what());
  }
  return InvalidArgument("pre_tokenizer type '" + type + "' is not supported");
}

}  // namespace treepo::model::hf
