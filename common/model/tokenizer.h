// Tokenizers. The llama2.c format (SentencePiece-style BPE by merge score with byte fallback)
// is what stories260K and the built-in task use.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace treepo::model {

class Tokenizer {
 public:
  // Loads a llama2.c tokenizer file for a model of `vocab_size` tokens. A truncated file, a
  // negative or oversized length, or a vocabulary of the wrong size is refused.
  static Result<Tokenizer> LoadLlama2c(const std::string& path, int vocab_size);
  // Builds one from pieces and scores (ids are positions). Pieces 0..2 are <unk>, <s>, </s>
  // and 3..258 the byte tokens <0x00>..<0xFF>, as in llama2.c; anything else (fewer than 259
  // pieces, a wrong byte token, an empty piece, a non-finite score) is refused. A duplicated
  // piece encodes as its lowest id.
  static Result<Tokenizer> FromPieces(std::vector<std::string> pieces, std::vector<float> scores);

  Status SaveLlama2c(const std::string& path) const;

  // Encodes like llama2.c's `encode`: optional BOS, a leading space before non-empty text,
  // UTF-8 characters (unknown ones as byte tokens), then greedy merges by highest score
  // (leftmost pair on ties; a merge scoring -1e10 or less never happens, as in llama2.c). The
  // leading space is the piece " " (its byte token if absent). Unlike llama2.c's C strings, a
  // NUL byte in `text` is encoded (as <0x00>), not an end. The result is llama2.c's token for
  // token, in O(n log n) time and O(n) memory for n bytes (llama2.c's loop is quadratic): the
  // candidate merges sit in a priority queue over a linked list of symbols.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const;
  // Text of `token` when it follows `prev` (drops the leading space after BOS; byte tokens
  // become their raw byte). BOS/EOS and ids outside the vocabulary decode to "".
  std::string DecodeToken(int32_t prev, int32_t token) const;
  // Concatenated DecodeToken over `tokens`, with `prev` the token before the first.
  std::string Decode(const std::vector<int32_t>& tokens, int32_t prev = 1) const;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  // Precondition: 0 <= id < vocab_size().
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  int bos_id() const { return 1; }
  int eos_id() const { return 2; }

 private:
  // Hashes std::string and std::string_view alike, so lookups take a view.
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  // Id of `piece` (the lowest id if duplicated), or -1.
  int32_t Lookup(std::string_view piece) const;
  // Applies the merges to `tokens` (initial symbols) in place.
  void MergePairs(std::vector<int32_t>* tokens) const;
  // Appends DecodeToken(prev, token) to `out`.
  void AppendToken(int32_t prev, int32_t token, std::string* out) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  int max_token_length_ = 0;
  // Piece -> lowest id with that piece, for lookup during encoding.
  std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> index_;
};

}  // namespace treepo::model
