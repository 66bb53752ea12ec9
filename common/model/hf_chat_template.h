// A model's chat template: tokenizer_config.json's "chat_template" (Jinja), rendered the way
// Hugging Face's apply_chat_template renders it: trim_blocks and lstrip_blocks on, the
// variables messages, add_generation_prompt, the special tokens the config names (bos_token,
// eos_token, pad_token, unk_token), and the functions raise_exception and strftime_now.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/jinja/template.h"
#include "common/status.h"

namespace treepo::model {

// A single-turn prompt in chat form, as math evaluation sets use it: an optional system
// message, then the prompt (with an instruction appended) as the user's message.
struct ChatPromptOptions {
  std::string system_prompt;  // "" = no system message (the template's default, if any)
  std::string
      instruction_suffix;  // appended to the prompt, e.g. "\nPut the final answer in \\boxed{}."
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // more template variables
};

class ChatTemplate {
 public:
  // Reads tokenizer_config.json: `path` is that file, a directory holding it, or a file
  // beside it (tokenizer.json, config.json). kNotFound when absent or without a
  // chat_template; a list of named templates uses the one named "default".
  static Result<ChatTemplate> Load(const std::string& path);
  // A template from its source and the config's special tokens (`special_tokens`: a JSON
  // object such as {"bos_token": "<s>", "eos_token": "</s>"}).
  static Result<ChatTemplate> FromSource(const std::string& source,
                                         const nlohmann::json& special_tokens);

  // `messages`: an array of {"role", "content", ...} objects; `extra`: more variables (a JSON
  // object, e.g. {"enable_thinking": false}), which override the defaults. Objects keep their
  // keys' order (tojson prints them in that order, as Python does).
  Result<std::string> Render(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  // The conversation [system?, user: prompt + suffix] with the generation prompt, ready for
  // the model to answer.
  Result<std::string> RenderPrompt(const std::string& prompt,
                                   const ChatPromptOptions& options) const;

  // The config's eos_token, if any (the end-of-turn token for most chat models).
  const std::optional<std::string>& eos_token() const { return eos_token_; }

 private:
  jinja::Template template_;
  nlohmann::json special_tokens_;
  std::optional<std::string> eos_token_;
};

}  // namespace treepo::model
