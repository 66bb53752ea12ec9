#include "common/model/hf_bpe.h"

#include <cstdio>
#include <queue>

#include "common/utf8.h"

namespace treepo::model::hf {
namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string OptionalString(const nlohmann::json& model, const char* key) {
  if (!model.contains(key) || !model[key].is_string()) return "";
  return model[key].get<std::string>();
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  if (!model.is_object()) return InvalidArgument("model: an object is expected");
  if (model.value("type", std::string("BPE")) != "BPE") {
    return InvalidArgument("model type '" + model.value("type", std::string()) +
                           "' is not supported (only BPE)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return InvalidArgument("model: \"vocab\" must be an object");
  }
  std::unique_ptr<BpeModel> m(new BpeModel());
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 30)) {
      return InvalidArgument("model: vocab entry '" + token + "' has an invalid id");
    }
    const int32_t i = id.get<int32_t>();
    m->vocab_.emplace(token, i);
    if (static_cast<size_t>(i) >= m->id_to_token_.size()) {
      m->id_to_token_.resize(i + 1);
      m->has_token_.resize(i + 1, false);
    }
    m->id_to_token_[i] = token;
    m->has_token_[i] = true;
  }
  m->continuing_subword_prefix_ = OptionalString(model, "continuing_subword_prefix");
  m->end_of_word_suffix_ = OptionalString(model, "end_of_word_suffix");
  m->fuse_unk_ = model.value("fuse_unk", false);
  m->byte_fallback_ = model.value("byte_fallback", false);
  m->ignore_merges_ = model.value("ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = m->vocab_.find(model["unk_token"].get<std::string>());
    if (it == m->vocab_.end()) return InvalidArgument("model: unk_token is not in the vocab");
    m->unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = m->vocab_.find(std::string_view(name));
    m->byte_ids_[b] = it == m->vocab_.end() ? -1 : it->second;
  }
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return InvalidArgument("model: \"merges\" must be an array");
  }
  const size_t prefix_len = m->continuing_subword_prefix_.size();
  int32_t rank = 0;
  for (const auto& merge : model["merges"]) {
    std::string a, b;
    if (merge.is_string()) {
      const std::string s = merge.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return InvalidArgument("model: merge '" + s + "' is not two tokens separated by a space");
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      a = merge[0].get<std::string>();
      b = merge[1].get<std::string>();
    } else {
      return InvalidArgument("model: merge " + std::to_string(rank) + " is malformed");
    }
    const auto ia = m->vocab_.find(a);
    const auto ib = m->vocab_.find(b);
    std::string merged =
        a +
        (b.compare(0, prefix_len, m->continuing_subword_prefix_) == 0 ? b.substr(prefix_len) : b);
    const auto im = m->vocab_.find(merged);
    if (ia == m->vocab_.end() || ib == m->vocab_.end() || im == m->vocab_.end()) {
      return InvalidArgument("model: merge '" + a + " " + b + "' uses a token not in the vocab");
    }
    m->merges_.emplace(PairKey(ia->second, ib->second), std::make_pair(rank, im->second));
    ++rank;
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_end() || !has_token_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  EncodeUncached(word, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() < kCacheCapacity && word.size() <= kMaxCachedWordBytes) {
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::EncodeUncached(std::string_view word, std::vector<int32_t>* out) const {
  // Symbols as a doubly linked list over a vector; `id < 0` marks a merged-away symbol.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  bool last_was_unk = false;
  const auto push = [&](int32_t id) {
    const int32_t n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, -1});
    if (n > 0) syms[n - 1].next = n;
  };
  std::string piece;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t len = Utf8CharLength(static_cast<unsigned char>(word[pos]));
    const std::string_view ch = word.substr(pos, len);
    const bool first = pos == 0;
    pos += len;
    const bool last = pos >= word.size();
    piece.clear();
    if (!first) piece += continuing_subword_prefix_;
    piece += ch;
    if (last) piece += end_of_word_suffix_;
    const auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      push(it->second);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : ch) all = all && byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) push(byte_ids_[c]);
        last_was_unk = false;
        continue;
      }
    }
    if (!unk_id_) continue;  // no unknown token: the character is dropped
    if (!(fuse_unk_ && last_was_unk)) push(*unk_id_);
    last_was_unk = true;
  }

  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto consider = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = syms[left].next;
    if (right < 0) return;
    const auto it = merges_.find(PairKey(syms[left].id, syms[right].id));
    if (it != merges_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = syms[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const auto it = merges_.find(PairKey(left.id, syms[right_pos].id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale
    left.id = top.new_id;
    left.next = syms[right_pos].next;
    syms[right_pos].id = -1;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out->push_back(syms[i].id);
}

}  // namespace treepo::model::hf
