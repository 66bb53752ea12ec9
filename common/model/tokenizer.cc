#include "common/model/tokenizer.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>

namespace treepo::model {
namespace {

static_assert(std::endian::native == std::endian::little, "llama2.c files are little-endian");

constexpr int kNumSpecial = 3;  // <unk>, <s>, </s>
constexpr int kMinVocab = kNumSpecial + 256;
constexpr int32_t kMaxPieceBytes = 1 << 16;

std::string BytePiece(int byte) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", byte);
  return buf;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte a "<0xHH>" piece stands for, if it is one.
std::optional<char> ParseBytePiece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return {};
  const int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
  if (hi < 0 || lo < 0) return {};
  return static_cast<char>(hi * 16 + lo);
}

// Reads exactly `n` bytes or reports where the file ended.
class Reader {
 public:
  explicit Reader(std::vector<char> bytes) : bytes_(std::move(bytes)) {}
  bool Read(void* dst, size_t n) {
    if (bytes_.size() - pos_ < n) return false;
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<char> bytes_;
  size_t pos_ = 0;
};

}  // namespace

Result<Tokenizer> Tokenizer::FromPieces(std::vector<std::string> pieces,
                                        std::vector<float> scores) {
  if (pieces.size() != scores.size()) {
    return InvalidArgument("tokenizer: " + std::to_string(pieces.size()) + " pieces but " +
                           std::to_string(scores.size()) + " scores");
  }
  if (pieces.size() < kMinVocab || pieces.size() > (1u << 22)) {
    return InvalidArgument("tokenizer: vocabulary of " + std::to_string(pieces.size()) +
                           " pieces; need at least 259 (3 special + 256 byte tokens)");
  }
  Tokenizer t;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].empty() || pieces[i].size() > kMaxPieceBytes) {
      return InvalidArgument("tokenizer: piece " + std::to_string(i) + " has length " +
                             std::to_string(pieces[i].size()) + " (must be 1.." +
                             std::to_string(kMaxPieceBytes) + ")");
    }
    if (!std::isfinite(scores[i])) {
      return InvalidArgument("tokenizer: piece " + std::to_string(i) + " has a non-finite score");
    }
    t.max_token_length_ = std::max(t.max_token_length_, static_cast<int>(pieces[i].size()));
  }
  for (int b = 0; b < 256; ++b) {
    const std::string want = BytePiece(b);
    const std::optional<char> got = ParseBytePiece(pieces[kNumSpecial + b]);
    if (!got || static_cast<unsigned char>(*got) != b) {
      return InvalidArgument("tokenizer: piece " + std::to_string(kNumSpecial + b) + " is '" +
                             pieces[kNumSpecial + b] + "', expected byte token " + want);
    }
  }
  t.index_.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    // emplace keeps the first: a duplicated piece resolves to its lowest id.
    t.index_.emplace(pieces[i], static_cast<int32_t>(i));
  }
  t.pieces_ = std::move(pieces);
  t.scores_ = std::move(scores);
  return t;
}

Result<Tokenizer> Tokenizer::LoadLlama2c(const std::string& path, int vocab_size) {
  const std::string where = "llama2.c tokenizer " + path + ": ";
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(where + "cannot open");
  if (vocab_size < kMinVocab || vocab_size > (1 << 22)) {
    return InvalidArgument(where + "vocab_size " + std::to_string(vocab_size) +
                           " out of range (259..4194304)");
  }
  Reader r(
      std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  int32_t max_len = 0;
  if (!r.Read(&max_len, 4)) return DataLoss(where + "truncated header");
  if (max_len <= 0 || max_len > kMaxPieceBytes) {
    return DataLoss(where + "max_token_length " + std::to_string(max_len) + " out of range");
  }
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    int32_t len = 0;
    if (!r.Read(&scores[i], 4) || !r.Read(&len, 4)) {
      return DataLoss(where + "truncated at token " + std::to_string(i) + " of " +
                      std::to_string(vocab_size) + " (file has " + std::to_string(r.size()) +
                      " bytes)");
    }
    if (len <= 0 || len > max_len) {
      return DataLoss(where + "token " + std::to_string(i) + " has length " + std::to_string(len) +
                      " (max_token_length " + std::to_string(max_len) + ")");
    }
    pieces[i].resize(len);
    if (!r.Read(pieces[i].data(), len)) {
      return DataLoss(where + "truncated inside token " + std::to_string(i));
    }
  }
  if (r.pos() != r.size()) {
    return DataLoss(where + std::to_string(r.size() - r.pos()) + " bytes left after " +
                    std::to_string(vocab_size) +
                    " tokens: the file holds a different vocabulary size");
  }
  Result<Tokenizer> t = FromPieces(std::move(pieces), std::move(scores));
  if (!t.ok()) return DataLoss(where + t.status().message());
  t->max_token_length_ = max_len;
  return t;
}

Status Tokenizer::SaveLlama2c(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return NotFound("cannot create " + path);
  const int32_t max_len = max_token_length_;
  out.write(reinterpret_cast<const char*>(&max_len), 4);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const int32_t len = static_cast<int32_t>(pieces_[i].size());
    out.write(reinterpret_cast<const char*>(&scores_[i]), 4);
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(pieces_[i].data(), len);
  }
  out.close();
  if (!out) return DataLoss("writing " + path + " failed");
  return OkStatus();
}

int32_t Tokenizer::Lookup(std::string_view piece) const {
  auto it = index_.find(piece);
  return it != index_.end() ? it->second : -1;
}

namespace {

// llama2.c starts its search for the best pair at this score, so a merge whose result scores
// this or lower never happens.
constexpr float kNoMergeScore = -1e10f;

// A symbol of the text being merged: a token covering the initial positions [self, next).
// `Index` is int32_t, or int64_t for texts of 2^31 symbols or more.
template <typename Index>
struct Symbol {
  int32_t id;  // token id; kDeadSymbol once merged into its left neighbour
  Index prev;  // previous live symbol, -1 for the first
  Index next;  // next live symbol, the symbol count for the last
};
constexpr int32_t kDeadSymbol = -1;

// A possible merge of the live symbol `left` with its right neighbour, recorded when that pair
// formed. Merging only ever widens a symbol, and a symbol's token is a function of the
// positions it covers, so the pair is still the same iff `left` is alive and its right
// neighbour still ends at `right_end`; any other entry is stale and skipped.
template <typename Index>
struct Candidate {
  float score;      // score of `merged`
  int32_t merged;   // id of the concatenated piece
  Index left;       // position of the left symbol
  Index right_end;  // where the right symbol ended when the pair formed
};

// Heap order: the highest score first, then the leftmost pair (llama2.c's tie-break).
template <typename Index>
bool PopsAfter(const Candidate<Index>& a, const Candidate<Index>& b) {
  if (a.score != b.score) return a.score < b.score;
  return a.left > b.left;
}

// Applies llama2.c's merges to `tokens` in place. `lookup(piece)` is the id of a piece or -1.
template <typename Index, typename Lookup>
void MergeSymbols(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                  const Lookup& lookup, std::vector<int32_t>* tokens) {
  const Index n = static_cast<Index>(tokens->size());
  if (n < 2) return;
  std::vector<Symbol<Index>> symbols(n);
  for (Index i = 0; i < n; ++i) symbols[i] = Symbol<Index>{(*tokens)[i], i - 1, i + 1};
  std::vector<Candidate<Index>> heap;
  heap.reserve(n);
  std::string concat;
  // The candidate for `left` and its right neighbour, if their concatenation is a piece that
  // llama2.c would merge.
  auto candidate = [&](Index left, Candidate<Index>* out) {
    const Index right = symbols[left].next;
    if (right >= n) return false;
    concat = pieces[symbols[left].id];
    concat += pieces[symbols[right].id];
    const int32_t id = lookup(concat);
    if (id < 0 || !(scores[id] > kNoMergeScore)) return false;
    *out = Candidate<Index>{scores[id], id, left, symbols[right].next};
    return true;
  };
  Candidate<Index> c;
  for (Index i = 0; i + 1 < n; ++i) {
    if (candidate(i, &c)) heap.push_back(c);
  }
  std::make_heap(heap.begin(), heap.end(), PopsAfter<Index>);
  auto push = [&](Index left) {
    if (!candidate(left, &c)) return;
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), PopsAfter<Index>);
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), PopsAfter<Index>);
    const Candidate<Index> best = heap.back();
    heap.pop_back();
    Symbol<Index>& left = symbols[best.left];
    if (left.id == kDeadSymbol || left.next >= n || symbols[left.next].next != best.right_end) {
      continue;  // stale: one side was merged since this pair formed
    }
    Symbol<Index>& right = symbols[left.next];
    left.id = best.merged;
    left.next = right.next;
    if (right.next < n) symbols[right.next].prev = best.left;
    right.id = kDeadSymbol;
    if (left.prev >= 0) push(left.prev);
    push(best.left);
  }
  size_t out = 0;
  for (Index i = 0; i < n; i = symbols[i].next) (*tokens)[out++] = symbols[i].id;
  tokens->resize(out);
}

}  // namespace

void Tokenizer::MergePairs(std::vector<int32_t>* tokens) const {
  auto lookup = [this](std::string_view piece) { return Lookup(piece); };
  if (tokens->size() < static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    MergeSymbols<int32_t>(pieces_, scores_, lookup, tokens);
  } else {
    MergeSymbols<int64_t>(pieces_, scores_, lookup, tokens);
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> tokens;
  tokens.reserve(text.size() + 2);
  if (add_bos) tokens.push_back(bos_id());
  if (!text.empty()) {
    const int32_t space = Lookup(" ");
    tokens.push_back(space >= 0 ? space : ' ' + kNumSpecial);
  }
  // UTF-8 characters: a leading byte and at most three continuation bytes, as llama2.c.
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80 && j - i < 4) {
      ++j;
    }
    const int32_t id = Lookup(text.substr(i, j - i));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t k = i; k < j; ++k) {
        tokens.push_back(static_cast<unsigned char>(text[k]) + kNumSpecial);
      }
    }
    i = j;
  }
  MergePairs(&tokens);
  return tokens;
}

void Tokenizer::AppendToken(int32_t prev, int32_t token, std::string* out) const {
  if (token < 0 || token >= vocab_size() || token == bos_id() || token == eos_id()) return;
  const std::string& piece = pieces_[token];
  if (std::optional<char> byte = ParseBytePiece(piece)) {
    out->push_back(*byte);
  } else if (prev == bos_id() && piece[0] == ' ') {
    out->append(piece, 1);
  } else {
    out->append(piece);
  }
}

std::string Tokenizer::DecodeToken(int32_t prev, int32_t token) const {
  std::string out;
  AppendToken(prev, token, &out);
  return out;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& tokens, int32_t prev) const {
  std::string out;
  for (int32_t t : tokens) {
    AppendToken(prev, t, &out);
    prev = t;
  }
  return out;
}

}  // namespace treepo::model
