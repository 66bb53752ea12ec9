#include "common/model/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/utf8.h"

namespace treepo::model {

Result<HfTokenizer> HfTokenizer::Load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string file =
      fs::is_directory(path, ec) ? (fs::path(path) / "tokenizer.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound("cannot open " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json spec = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) {
    return DataLoss(file + ": not a JSON object");
  }
  auto t = FromJson(spec);
  if (!t.ok()) return t.status().WithContext(file);
  return t;
}

Result<HfTokenizer> HfTokenizer::FromJson(const nlohmann::json& spec) {
  if (!spec.is_object()) return InvalidArgument("tokenizer.json: an object is expected");
  static const nlohmann::json kNull;
  const auto field = [&](const char* key) -> const nlohmann::json& {
    const auto it = spec.find(key);
    return it == spec.end() ? kNull : *it;
  };
  HfTokenizer t;
  try {
    TREEPO_ASSIGN_OR_RETURN(t.added_, hf::AddedTokens::FromJson(field("added_tokens")));
    TREEPO_ASSIGN_OR_RETURN(t.normalizer_, hf::MakeNormalizer(field("normalizer")));
    TREEPO_ASSIGN_OR_RETURN(t.pre_tokenizer_, hf::MakePreTokenizer(field("pre_tokenizer")));
    TREEPO_ASSIGN_OR_RETURN(t.model_, hf::BpeModel::FromJson(field("model")));
    TREEPO_ASSIGN_OR_RETURN(t.post_, hf::MakePostProcessor(field("post_processor")));
    TREEPO_ASSIGN_OR_RETURN(t.decoder_, hf::MakeDecoder(field("decoder")));
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("tokenizer.json: ") + e.what());
  }
  t.vocab_size_ = t.model_->id_end();
  for (const hf::AddedToken& a : t.added_.all()) t.vocab_size_ = std::max(t.vocab_size_, a.id + 1);
  for (const auto* ids : {&t.post_.prefix, &t.post_.suffix}) {
    for (int32_t id : *ids) {
      if (id < 0 || id >= t.vocab_size_) {
        return InvalidArgument("post_processor: id " + std::to_string(id) +
                               " is outside the vocabulary");
      }
    }
  }
  return t;
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string owned;
  if (!treepo::IsValidUtf8(text)) {
    owned = treepo::Utf8Lossy(text);
    text = owned;
  }
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = post_.prefix;
  std::vector<std::string> pieces;
  for (const hf::AddedTokens::Segment& seg : added_.Split(text)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string normalized(seg.text);
    if (normalizer_) normalized = normalizer_->Normalize(std::move(normalized));
    pieces.clear();
    if (!normalized.empty()) pieces.push_back(std::move(normalized));
    if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&pieces, /*first_segment=*/seg.offset == 0);
    for (const std::string& p : pieces) model_->Encode(p, &ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), post_.suffix.begin(), post_.suffix.end());
  return ids;
}

std::string HfTokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const hf::AddedToken* a = added_.ById(id)) {
      if (skip_special_tokens && a->special) continue;
      tokens.push_back(a->content);
    } else if (const std::string* s = model_->IdToToken(id)) {
      tokens.push_back(*s);
    }
  }
  if (decoder_) decoder_->DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return treepo::IsValidUtf8(out) ? out : treepo::Utf8Lossy(out);
}

std::optional<int32_t> HfTokenizer::TokenToId(std::string_view token) const {
  if (const hf::AddedToken* a = added_.ByContent(token)) return a->id;
  return model_->TokenToId(token);
}

std::optional<std::string> HfTokenizer::IdToToken(int32_t id) const {
  if (const hf::AddedToken* a = added_.ById(id)) return a->content;
  if (const std::string* s = model_->IdToToken(id)) return *s;
  return std::nullopt;
}

bool HfTokenizer::IsSpecial(int32_t id) const {
  const hf::AddedToken* a = added_.ById(id);
  return a != nullptr && a->special;
}

}  // namespace treepo::model
