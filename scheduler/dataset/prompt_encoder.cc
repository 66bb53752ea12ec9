#include "scheduler/dataset/prompt_encoder.h"

namespace treepo::scheduler {

Status ChatModeOptions::Validate() const {
  if (!enable_thinking.empty() && enable_thinking != "true" && enable_thinking != "false") {
    return InvalidArgument("enable_thinking must be \"true\", \"false\" or \"\" (not set), not \"" +
                           enable_thinking + "\"");
  }
  if (!enabled &&
      (!system_prompt.empty() || !instruction_suffix.empty() || !enable_thinking.empty())) {
    return InvalidArgument(
        "system_prompt, instruction_suffix and enable_thinking apply in chat mode only "
        "(set chat = true)");
  }
  return OkStatus();
}

Status ChatModeOptions::Load(const Config& config, const std::string& prefix) {
  TREEPO_RETURN_IF_ERROR(config.Get(prefix + "chat", &enabled));
  TREEPO_RETURN_IF_ERROR(config.Get(prefix + "system_prompt", &system_prompt));
  TREEPO_RETURN_IF_ERROR(config.Get(prefix + "instruction_suffix", &instruction_suffix));
  TREEPO_RETURN_IF_ERROR(config.Get(prefix + "enable_thinking", &enable_thinking));
  return OkStatus();
}

Result<PromptEncoder> PromptEncoder::Create(std::shared_ptr<const model::TextTokenizer> tokenizer,
                                            const ChatModeOptions& chat,
                                            const std::string& chat_template_from) {
  TREEPO_RETURN_IF_ERROR(chat.Validate());
  PromptEncoder e;
  e.tokenizer_ = std::move(tokenizer);
  if (!chat.enabled) return e;
  Result<model::ChatTemplate> t = model::ChatTemplate::Load(chat_template_from);
  if (!t.ok()) {
    return Status(t.status().code(),
                  "chat mode needs the model's chat template: " + t.status().message());
  }
  e.template_.emplace(std::move(t).value());
  e.chat_options_.system_prompt = chat.system_prompt;
  e.chat_options_.instruction_suffix = chat.instruction_suffix;
  if (!chat.enable_thinking.empty()) {
    e.chat_options_.extra["enable_thinking"] = chat.enable_thinking == "true";
  }
  return e;
}

Result<std::string> PromptEncoder::Render(const std::string& prompt) const {
  if (!template_) return prompt;
  Result<std::string> text = template_->RenderPrompt(prompt, chat_options_);
  if (!text.ok()) return InvalidArgument("chat template: " + text.status().message());
  return text;
}

Result<std::vector<int32_t>> PromptEncoder::Encode(const std::string& prompt) const {
  TREEPO_ASSIGN_OR_RETURN(const std::string text, Render(prompt));
  std::vector<int32_t> ids = tokenizer_->Encode(text, /*add_special_tokens=*/!template_);
  if (ids.empty()) return InvalidArgument("the prompt encodes to no tokens");
  return ids;
}

Result<std::shared_ptr<const model::TextTokenizer>> LoadModelTokenizer(
    const std::string& tokenizer_path, const std::string& model_path, int vocab_size) {
  std::string path = tokenizer_path;
  if (path.empty()) {
    if (model_path.empty()) return InvalidArgument("no tokenizer given and no model to find one");
    TREEPO_ASSIGN_OR_RETURN(path, model::FindTokenizerFile(model_path));
  }
  Result<std::unique_ptr<model::TextTokenizer>> t = model::LoadTextTokenizer(path, vocab_size);
  if (!t.ok()) return t.status().WithContext("tokenizer " + path);
  if ((*t)->vocab_size() > vocab_size && vocab_size > 0) {
    return InvalidArgument("tokenizer " + path + " has " + std::to_string((*t)->vocab_size()) +
                           " tokens, more than the model's vocab_size " +
                           std::to_string(vocab_size));
  }
  return std::shared_ptr<const model::TextTokenizer>(std::move(t).value());
}

}  // namespace treepo::scheduler
