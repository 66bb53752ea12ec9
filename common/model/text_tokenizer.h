// One interface over the tokenizer formats treepo reads, so that commands need not care
// which one a model brings: a Hugging Face tokenizer.json (HfTokenizer) or a llama2.c
// tokenizer.bin (Tokenizer). A model directory's tokenizer is found by FindTokenizerFile.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/hf_tokenizer.h"
#include "common/model/tokenizer.h"
#include "common/status.h"

namespace treepo::model {

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // Ids of `text`; `add_special_tokens` adds the format's sequence start (llama2.c: BOS;
  // tokenizer.json: its post-processor's tokens).
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const = 0;
  // Text of `ids`; special tokens are left out when `skip_special_tokens`.
  virtual std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;
  virtual int vocab_size() const = 0;
  // Id of a token given by its text (e.g. "<|im_end|>"), if the vocabulary has it.
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  // "tokenizer.json" or "llama2.c".
  virtual std::string_view format() const = 0;
};

std::unique_ptr<TextTokenizer> WrapTokenizer(HfTokenizer tokenizer);
std::unique_ptr<TextTokenizer> WrapTokenizer(Tokenizer tokenizer);

// The tokenizer file of a model: `model_path` is a directory or a file in it (config.json,
// model.safetensors, a checkpoint); <dir>/tokenizer.json is preferred, then <dir>/tokenizer.bin.
// kNotFound when neither exists.
Result<std::string> FindTokenizerFile(const std::string& model_path);

// Loads `path`: a directory (via FindTokenizerFile), a *.json file (tokenizer.json), or any
// other file as llama2.c's format, which needs `llama2c_vocab_size` > 0 (the model's
// vocab_size; kInvalidArgument otherwise). kNotFound when `path` does not exist.
Result<std::unique_ptr<TextTokenizer>> LoadTextTokenizer(const std::string& path,
                                                         int llama2c_vocab_size = 0);

}  // namespace treepo::model
