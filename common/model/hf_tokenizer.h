// A Hugging Face `tokenizer.json` tokenizer: added tokens, normalizer, pre-tokenizer, BPE
// model, post-processor and decoder, composed as the `tokenizers` library composes them.
// Covers the byte-level BPE of GPT-2, Qwen2/2.5/3 and Llama 3 and the SentencePiece-style
// BPE with Metaspace/byte fallback of Llama 2 and Mistral. Immutable after loading and safe
// to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/hf_added_tokens.h"
#include "common/model/hf_bpe.h"
#include "common/model/hf_decoder.h"
#include "common/model/hf_normalizer.h"
#include "common/model/hf_post_processor.h"
#include "common/model/hf_pre_tokenizer.h"
#include "common/status.h"

namespace treepo::model {

class HfTokenizer {
 public:
  // Loads `path`: a tokenizer.json file, or a directory holding one. A missing file is
  // kNotFound, malformed JSON kDataLoss, an unsupported component kInvalidArgument naming it.
  static Result<HfTokenizer> Load(const std::string& path);
  static Result<HfTokenizer> FromJson(const nlohmann::json& spec);

  // Ids of `text`; with `add_special_tokens` the post-processor's tokens (e.g. Llama 3's
  // <|begin_of_text|>) are added around them. Added tokens in `text` (such as <|im_start|>)
  // are always recognised. Invalid UTF-8 in `text` is read as U+FFFD.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const;

  // Text of `ids`; special added tokens are left out when `skip_special_tokens`, ids without
  // a token are skipped, and invalid UTF-8 becomes U+FFFD. No clean-up of spaces is done.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // Added tokens first, then the model's vocabulary.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const;
  // One past the largest id of the model and added tokens.
  int32_t vocab_size() const { return vocab_size_; }
  const hf::AddedTokens& added_tokens() const { return added_; }

 private:
  HfTokenizer() = default;

  hf::AddedTokens added_;
  std::shared_ptr<const hf::Normalizer> normalizer_;
  std::shared_ptr<const hf::PreTokenizer> pre_tokenizer_;
  std::shared_ptr<const hf::BpeModel> model_;
  hf::PostProcessor post_;
  std::shared_ptr<const hf::Decoder> decoder_;
  int32_t vocab_size_ = 0;
};

}  // namespace treepo::model
