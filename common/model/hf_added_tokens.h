// tokenizer.json "added_tokens": tokens (special ones like <|im_start|>, and others) matched
// in the raw text before normalization and pre-tokenization, each becoming its one id. At each
// position the longest token wins (leftmost-longest, as the Hugging Face implementation).
// `lstrip`/`rstrip` tokens also take the whitespace to their left/right. `single_word` is not
// honoured (none of the supported models set it).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
};

class AddedTokens {
 public:
  // Parses the "added_tokens" array (null or absent: none). Entries need an id >= 0 and a
  // non-empty content.
  static Result<AddedTokens> FromJson(const nlohmann::json& spec);

  // A part of the text: an added token (`id` >= 0) or text between tokens (`id` == -1).
  struct Segment {
    std::string_view text;
    size_t offset;  // of `text` in the input
    int32_t id;
  };
  std::vector<Segment> Split(std::string_view text) const;

  const AddedToken* ById(int32_t id) const;
  const AddedToken* ByContent(std::string_view content) const;
  const std::vector<AddedToken>& all() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // Per first byte: indices into tokens_, longest content first.
  std::vector<std::vector<size_t>> by_first_byte_ = std::vector<std::vector<size_t>>(256);
};

}  // namespace treepo::model::hf
