// How a prompt record's text becomes the model's input: as it is (the tokenizer's sequence
// start first: llama2.c's BOS, tokenizer.json's post-processor tokens), or in chat mode as a
// conversation rendered with the model's chat template (tokenizer_config.json) with the
// generation prompt, tokenized without added special tokens (the template writes them), as
// Hugging Face's apply_chat_template(..., tokenize=True) does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/model/hf_chat_template.h"
#include "common/model/text_tokenizer.h"
#include "common/status.h"

namespace treepo::scheduler {

// Chat mode's settings. Config keys (under the caller's prefix): chat, system_prompt,
// instruction_suffix, enable_thinking.
struct ChatModeOptions {
  bool enabled = false;            // chat: render prompts with the chat template
  std::string system_prompt;       // system_prompt: "" = no system message
  std::string instruction_suffix;  // instruction_suffix: appended to each prompt, e.g.
                                   // "\nPut the final answer in \\boxed{}."
  // enable_thinking: the template variable of Qwen3's template ("" = not set, the template's
  // default; "true" / "false").
  std::string enable_thinking;

  Status Validate() const;
  // The keys `prefix` + "chat", "system_prompt", ... from `config` (absent keys keep the value).
  Status Load(const Config& config, const std::string& prefix);
};

class PromptEncoder {
 public:
  // `chat_template_from`: where tokenizer_config.json is (a model directory, or a file beside
  // it); only read in chat mode, where its absence is kNotFound naming the path.
  static Result<PromptEncoder> Create(std::shared_ptr<const model::TextTokenizer> tokenizer,
                                      const ChatModeOptions& chat,
                                      const std::string& chat_template_from);

  // The model's input for one prompt: never empty. kInvalidArgument when the template fails on
  // it (raise_exception, for example).
  Result<std::vector<int32_t>> Encode(const std::string& prompt) const;
  // The text Encode tokenizes (the prompt itself outside chat mode).
  Result<std::string> Render(const std::string& prompt) const;

  bool chat() const { return template_.has_value(); }
  const std::shared_ptr<const model::TextTokenizer>& tokenizer() const { return tokenizer_; }

 private:
  std::shared_ptr<const model::TextTokenizer> tokenizer_;
  std::optional<model::ChatTemplate> template_;
  model::ChatPromptOptions chat_options_;
};

// The tokenizer of a model: `tokenizer_path` when given (a tokenizer.json, a llama2.c
// tokenizer.bin, or a directory), else the one beside the model (FindTokenizerFile).
Result<std::shared_ptr<const model::TextTokenizer>> LoadModelTokenizer(
    const std::string& tokenizer_path, const std::string& model_path, int vocab_size);

}  // namespace treepo::scheduler
