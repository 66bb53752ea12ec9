#include "common/model/hf_added_tokens.h"

#include <algorithm>

namespace treepo::model::hf {
namespace {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

Result<AddedTokens> AddedTokens::FromJson(const nlohmann::json& spec) {
  AddedTokens t;
  if (spec.is_null()) return t;
  if (!spec.is_array()) return InvalidArgument("added_tokens: an array is expected");
  for (const auto& e : spec) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() ||
        e["id"].get<int64_t>() < 0 || e["id"].get<int64_t>() > (1 << 30) ||
        !e.contains("content") || !e["content"].is_string() ||
        e["content"].get<std::string>().empty()) {
      return InvalidArgument("added_tokens: each entry needs an id >= 0 and a non-empty content");
    }
    AddedToken a;
    a.id = e["id"].get<int32_t>();
    a.content = e["content"].get<std::string>();
    a.special = e.value("special", false);
    a.lstrip = e.value("lstrip", false);
    a.rstrip = e.value("rstrip", false);
    t.by_id_[a.id] = t.tokens_.size();
    t.by_content_[a.content] = t.tokens_.size();
    t.tokens_.push_back(std::move(a));
  }
  for (size_t i = 0; i < t.tokens_.size(); ++i) {
    t.by_first_byte_[static_cast<unsigned char>(t.tokens_[i].content[0])].push_back(i);
  }
  for (auto& v : t.by_first_byte_) {
    std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) {
      return t.tokens_[a].content.size() > t.tokens_[b].content.size();
    });
  }
  return t;
}

std::vector<AddedTokens::Segment> AddedTokens::Split(std::string_view text) const {
  std::vector<Segment> out;
  size_t text_start = 0;  // start of the pending text segment
  size_t i = 0;
  while (i < text.size()) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (size_t c : candidates) {
      const std::string& s = tokens_[c].content;
      if (text.compare(i, s.size(), s) == 0) {
        hit = &tokens_[c];
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    if (hit->lstrip) {
      while (b > text_start && IsAsciiSpace(text[b - 1])) --b;
    }
    if (hit->rstrip) {
      while (e < text.size() && IsAsciiSpace(text[e])) ++e;
    }
    if (b > text_start) out.push_back({text.substr(text_start, b - text_start), text_start, -1});
    out.push_back({text.substr(b, e - b), b, hit->id});
    i = e;
    text_start = e;
  }
  if (text_start < text.size()) {
    out.push_back({text.substr(text_start), text_start, -1});
  }
  return out;
}

const AddedToken* AddedTokens::ById(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::ByContent(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace treepo::model::hf
