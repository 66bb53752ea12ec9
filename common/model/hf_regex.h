// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) for the
// pre-tokenizers' Split patterns. One owner of the pcre2 handles; immutable after Compile, so
// one Regex may be used from several threads (each FindAll makes its own match data).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

class Regex {
 public:
  // Compiles `pattern` (literal when `literal`); a pattern PCRE2 refuses is kInvalidArgument
  // with PCRE2's message and offset.
  static Result<Regex> Compile(std::string_view pattern, bool literal = false);

  // Every non-overlapping match in `text` (valid UTF-8) as (begin, end) byte offsets, left to
  // right; an empty match advances by one character.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  struct Handle;
  std::shared_ptr<const Handle> handle_;
};

// Compiles a tokenizer.json pattern: {"String": s} (literal) or {"Regex": r}.
Result<Regex> CompilePattern(const nlohmann::json& pattern);

}  // namespace treepo::model::hf
