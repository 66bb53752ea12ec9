// `treepo chat-template`: renders a model's chat template for a conversation, exactly as
// Hugging Face's apply_chat_template(..., tokenize=False) does.
//
// --tokenizer is the model directory, its tokenizer_config.json, or a file beside it.
// --messages is a JSON file: an array of {"role", "content"} messages, or an object with
// "messages" and further template variables (such as "tools"). --var KEY=JSON sets one more
// variable (e.g. --var enable_thinking=false). The rendered text goes to stdout as it is.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/command.h"
#include "common/log.h"
#include "common/model/hf_chat_template.h"

namespace treepo::cluster {
namespace {

struct ChatTemplateOptions {
  std::string tokenizer;  // model directory or tokenizer_config.json
  std::string messages;   // JSON file with the conversation
  bool add_generation_prompt = false;
  std::vector<std::string> vars;  // KEY=JSON
};

Result<std::string> RenderChat(const ChatTemplateOptions& o) {
  using ojson = nlohmann::ordered_json;
  TREEPO_ASSIGN_OR_RETURN(model::ChatTemplate t, model::ChatTemplate::Load(o.tokenizer));
  std::ifstream in(o.messages, std::ios::binary);
  if (!in) return NotFound("cannot open " + o.messages);
  std::stringstream ss;
  ss << in.rdbuf();
  ojson doc = ojson::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument(o.messages + ": not JSON");
  ojson messages, extra = ojson::object();
  if (doc.is_array()) {
    messages = std::move(doc);
  } else if (doc.is_object() && doc.contains("messages")) {
    messages = doc["messages"];
    for (auto& [k, v] : doc.items()) {
      if (k != "messages") extra[k] = v;
    }
  } else {
    return InvalidArgument(o.messages + ": expected an array of messages or {\"messages\": [...]}");
  }
  for (const std::string& kv : o.vars) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument("--var " + kv + ": expected KEY=JSON");
    ojson v = ojson::parse(kv.substr(eq + 1), nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) return InvalidArgument("--var " + kv + ": the value is not JSON");
    extra[kv.substr(0, eq)] = std::move(v);
  }
  auto r = t.Render(messages, o.add_generation_prompt, extra);
  if (!r.ok()) return r.status().WithContext(o.messages);
  return r;
}

}  // namespace

void RegisterChatTemplate(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<ChatTemplateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat-template",
      "Render a model's chat template for a conversation (as apply_chat_template)");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "model directory, or its tokenizer_config.json / tokenizer.json")
      ->required();
  cmd->add_option("--messages", opts->messages,
                  "JSON file: [{\"role\", \"content\"}...] or {\"messages\": [...], vars...}")
      ->required();
  cmd->add_flag("--add-generation-prompt", opts->add_generation_prompt,
                "end with the assistant turn's header");
  cmd->add_option("--var", opts->vars, "template variable KEY=JSON (repeatable)");
  cmd->callback([opts, exit_code] {
    InitLogging("chat-template", "warn");
    Result<std::string> text = RenderChat(*opts);
    if (!text.ok()) {
      spdlog::error("chat-template: {}", text.status().ToString());
      *exit_code = 1;
      return;
    }
    std::cout << *text;
    std::cout.flush();
    *exit_code = 0;
  });
}

}  // namespace treepo::cluster
