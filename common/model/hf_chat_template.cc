#include "common/model/hf_chat_template.h"

#include <ctime>
#include <filesystem>

#include "common/jinja/error.h"
#include "common/json_file.h"

namespace treepo::model {
namespace {

namespace fs = std::filesystem;

// A special token in tokenizer_config.json: a string, or an AddedToken object with "content".
std::optional<std::string> TokenText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Load(const std::string& path) {
  std::error_code ec;
  fs::path file = path;
  if (fs::is_directory(file, ec)) {
    file /= "tokenizer_config.json";
  } else if (file.filename() != "tokenizer_config.json") {
    file = file.parent_path() / "tokenizer_config.json";
  }
  TREEPO_ASSIGN_OR_RETURN(nlohmann::json config, ReadJsonObjectFile(file.string()));
  if (!config.contains("chat_template")) return NotFound(file.string() + " has no chat_template");
  std::string source;
  const nlohmann::json& t = config["chat_template"];
  if (t.is_string()) {
    source = t.get<std::string>();
  } else if (t.is_array()) {
    for (const auto& e : t) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string()) {
        source = e["template"].get<std::string>();
      }
    }
    if (source.empty()) return NotFound(file.string() + ": no chat_template named \"default\"");
  } else {
    return InvalidArgument(file.string() + ": chat_template must be a string or a list");
  }
  nlohmann::json special = nlohmann::json::object();
  for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
    if (config.contains(key)) {
      if (auto text = TokenText(config[key])) special[key] = *text;
    }
  }
  if (config.contains("additional_special_tokens") &&
      config["additional_special_tokens"].is_array()) {
    nlohmann::json extra = nlohmann::json::array();
    for (const auto& e : config["additional_special_tokens"]) {
      if (auto text = TokenText(e)) extra.push_back(*text);
    }
    special["additional_special_tokens"] = extra;
  }
  auto r = FromSource(source, special);
  if (!r.ok()) return r.status().WithContext(file.string());
  return r;
}

Result<ChatTemplate> ChatTemplate::FromSource(const std::string& source,
                                              const nlohmann::json& special_tokens) {
  if (!special_tokens.is_object()) return InvalidArgument("special tokens must be a JSON object");
  jinja::TemplateOptions o;
  o.trim_blocks = true;
  o.lstrip_blocks = true;
  TREEPO_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source, o));
  ChatTemplate c;
  c.template_ = std::move(t);
  c.special_tokens_ = special_tokens;
  if (special_tokens.contains("eos_token") && special_tokens["eos_token"].is_string()) {
    c.eos_token_ = special_tokens["eos_token"].get<std::string>();
  }
  return c;
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) return InvalidArgument("messages must be a JSON array");
  for (const auto& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return InvalidArgument("each message must be an object with a string \"role\"");
    }
  }
  if (!extra.is_object()) return InvalidArgument("extra variables must be a JSON object");
  jinja::Value ctx = jinja::Value::FromJson(special_tokens_);
  ctx.Set("messages", jinja::Value::FromJson(messages));
  ctx.Set("add_generation_prompt", jinja::Value(add_generation_prompt));
  ctx.Set("raise_exception",
          jinja::Value::MakeFunction([](const jinja::Args& args) -> jinja::Value {
            jinja::Fail("raise_exception: " +
                        (args.positional.empty() ? std::string() : args.positional[0].Str()));
          }));
  ctx.Set("strftime_now", jinja::Value::MakeFunction([](const jinja::Args& args) {
            const std::string fmt = args.positional.empty() ? "%Y-%m-%d" : args.positional[0].Str();
            const std::time_t now = std::time(nullptr);
            std::tm tm{};
            localtime_r(&now, &tm);
            char buf[256];
            const size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
            return jinja::Value(std::string(buf, n));
          }));
  for (const auto& [k, v] : extra.items()) ctx.Set(k, jinja::Value::FromJson(v));
  return template_.Render(ctx);
}

Result<std::string> ChatTemplate::RenderPrompt(const std::string& prompt,
                                               const ChatPromptOptions& options) const {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!options.system_prompt.empty()) {
    messages.push_back({{"role", "system"}, {"content", options.system_prompt}});
  }
  messages.push_back({{"role", "user"}, {"content", prompt + options.instruction_suffix}});
  return Render(messages, /*add_generation_prompt=*/true, options.extra);
}

}  // namespace treepo::model
