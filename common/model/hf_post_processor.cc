#include "common/model/hf_post_processor.h"

#include <string>

namespace treepo::model::hf {
namespace {

Status AddTemplate(const nlohmann::json& spec, PostProcessor* p) {
  if (!spec.contains("single") || !spec["single"].is_array()) {
    return InvalidArgument("post_processor TemplateProcessing: \"single\" must be an array");
  }
  const nlohmann::json& specials =
      spec.contains("special_tokens") ? spec["special_tokens"] : nlohmann::json::object();
  bool seen_sequence = false;
  for (const auto& item : spec["single"]) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id") ||
        !item["SpecialToken"]["id"].is_string()) {
      return InvalidArgument("post_processor TemplateProcessing: malformed template item");
    }
    const std::string name = item["SpecialToken"]["id"];
    if (!specials.contains(name) || !specials[name].contains("ids") ||
        !specials[name]["ids"].is_array()) {
      return InvalidArgument("post_processor TemplateProcessing: special token '" + name +
                             "' has no ids");
    }
    for (const auto& id : specials[name]["ids"]) {
      if (!id.is_number_integer()) {
        return InvalidArgument("post_processor TemplateProcessing: non-integer id");
      }
      (seen_sequence ? p->suffix : p->prefix).push_back(id.get<int32_t>());
    }
  }
  return OkStatus();
}

Status AddClsSep(const nlohmann::json& spec, PostProcessor* p) {
  for (const char* key : {"cls", "sep"}) {
    if (!spec.contains(key) || !spec[key].is_array() || spec[key].size() != 2 ||
        !spec[key][1].is_number_integer()) {
      return InvalidArgument(std::string("post_processor: \"") + key + "\" must be [token, id]");
    }
  }
  p->prefix.push_back(spec["cls"][1].get<int32_t>());
  p->suffix.insert(p->suffix.begin(), spec["sep"][1].get<int32_t>());
  return OkStatus();
}

Status Add(const nlohmann::json& spec, PostProcessor* p) {
  if (spec.is_null()) return OkStatus();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgument("post_processor: an object with a \"type\" is expected");
  }
  const std::string type = spec["type"];
  if (type == "ByteLevel") return OkStatus();
  if (type == "TemplateProcessing") return AddTemplate(spec, p);
  if (type == "BertProcessing" || type == "RobertaProcessing") return AddClsSep(spec, p);
  if (type == "Sequence") {
    if (!spec.contains("processors") || !spec["processors"].is_array()) {
      return InvalidArgument("post_processor Sequence: \"processors\" must be an array");
    }
    for (const auto& s : spec["processors"]) TREEPO_RETURN_IF_ERROR(Add(s, p));
    return OkStatus();
  }
  return InvalidArgument("post_processor type '" + type + "' is not supported");
}

}  // namespace

Result<PostProcessor> MakePostProcessor(const nlohmann::json& spec) {
  PostProcessor p;
  TREEPO_RETURN_IF_ERROR(Add(spec, &p));
  return p;
}

}  // namespace treepo::model::hf
