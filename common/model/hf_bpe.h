// tokenizer.json "model" of type BPE: a vocabulary, ranked merges, and the options the
// Hugging Face implementation knows (unk_token, fuse_unk, byte_fallback, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix). Dropout is ignored (encoding is
// deterministic). Merging uses a priority queue over adjacent pairs (lowest rank first, then
// leftmost), O(n log n) in the word length; results per word are cached.
// Thread-safe: Encode may be called concurrently (the cache has its own lock).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

class BpeModel {
 public:
  // Parses the "model" object. Merges are "a b" strings or [a, b] pairs; a merge whose parts
  // or result are missing from the vocabulary, a negative id, or a non-BPE type is refused.
  static Result<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word (valid UTF-8).
  void Encode(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr for an id without a token.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id.
  int32_t id_end() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  BpeModel() = default;
  void EncodeUncached(std::string_view word, std::vector<int32_t>* out) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<int32_t, 256> byte_ids_{};  // id of "<0xXX>", -1 when absent

  // The cache stops growing at kCacheCapacity words and skips words longer than
  // kMaxCachedWordBytes, so its memory stays bounded whatever the input.
  static constexpr size_t kCacheCapacity = 100000;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mu_;  // guards cache_
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace treepo::model::hf
