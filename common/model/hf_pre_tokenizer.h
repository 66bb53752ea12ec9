// tokenizer.json "pre_tokenizer": splits normalized text into words that the model encodes
// one by one. Supported: Split (PCRE2 regex or literal, every split behaviour, invert),
// ByteLevel (optional GPT-2 regex, prefix space, byte-to-alphabet mapping), Metaspace
// (replacement, prepend_scheme always/first/never, split), Digits, Whitespace,
// WhitespaceSplit and Sequence. Other types are refused when loading.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` (valid UTF-8 each) by their splits, in order; empty pieces are dropped.
  // `first_segment` is true when pieces come from the text before any added token (Metaspace's
  // prepend_scheme "first" prepends only there).
  virtual void PreTokenize(std::vector<std::string>* pieces, bool first_segment) const = 0;
};

// nullptr for a null `spec` (no pre-tokenization: the whole segment is one word).
Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& spec);

}  // namespace treepo::model::hf
