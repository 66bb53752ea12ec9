// The llama2.c encoder as llama2.c writes it (quadratic: every round scans all adjacent pairs
// for the best merge; this is the code Tokenizer::Encode had before its merge queue), kept as
// the reference that Tokenizer::Encode must match token for
// token, and random texts that exercise it. Header-only; tests and benchmarks only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/model/tokenizer.h"

namespace treepo::model::testing {

class ReferenceEncoder {
 public:
  explicit ReferenceEncoder(const Tokenizer& tokenizer) : tok_(tokenizer) {
    for (int32_t i = 0; i < tokenizer.vocab_size(); ++i)
      sorted_.emplace_back(tokenizer.piece(i), i);
    std::sort(sorted_.begin(), sorted_.end());  // by (piece, id): duplicates give the lowest id
  }

  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const {
    std::vector<int32_t> tokens;
    if (add_bos) tokens.push_back(tok_.bos_id());
    if (!text.empty()) {
      const int32_t space = Lookup(" ");
      tokens.push_back(space >= 0 ? space : ' ' + 3);
    }
    for (size_t i = 0; i < text.size();) {
      size_t j = i + 1;
      while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80 && j - i < 4) {
        ++j;
      }
      const int32_t id = Lookup(text.substr(i, j - i));
      if (id >= 0) {
        tokens.push_back(id);
      } else {
        for (size_t k = i; k < j; ++k) tokens.push_back(static_cast<unsigned char>(text[k]) + 3);
      }
      i = j;
    }
    std::string merged;
    while (true) {
      float best_score = -1e10f;
      int32_t best_id = -1;
      size_t best_idx = 0;
      for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        merged = tok_.piece(tokens[i]);
        merged += tok_.piece(tokens[i + 1]);
        const int32_t id = Lookup(merged);
        if (id >= 0 && tok_.score(id) > best_score) {
          best_score = tok_.score(id);
          best_id = id;
          best_idx = i;
        }
      }
      if (best_id < 0) break;
      tokens[best_idx] = best_id;
      tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
    }
    return tokens;
  }

 private:
  int32_t Lookup(std::string_view piece) const {
    auto it = std::lower_bound(
        sorted_.begin(), sorted_.end(), piece,
        [](const std::pair<std::string, int32_t>& e, std::string_view p) { return e.first < p; });
    return it != sorted_.end() && it->first == piece ? it->second : -1;
  }

  const Tokenizer& tok_;
  std::vector<std::pair<std::string, int32_t>> sorted_;  // (piece, id), sorted
};

// A random text of about `bytes` bytes mixing what an encoder must handle: runs of the
// vocabulary's own pieces (so that long merge chains happen), ASCII words, whitespace runs
// (spaces, tabs, newlines), 2-, 3- and 4-byte UTF-8 characters, NUL bytes, and invalid UTF-8
// (stray continuation bytes, over-long continuation runs, lone lead bytes).
inline std::string RandomText(const Tokenizer& tok, std::mt19937_64& rng, size_t bytes) {
  static const char* const kUnicode[] = {"é", "ï", "ß", "中", "文", "€", "😀", "🙂", "ñ", "Ω"};
  std::string out;
  auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  while (out.size() < bytes) {
    switch (pick(8)) {
      case 0:
      case 1: {  // pieces of the vocabulary (not special or byte tokens)
        if (tok.vocab_size() <= 259) break;
        const int n = 1 + static_cast<int>(pick(6));
        for (int k = 0; k < n; ++k)
          out += tok.piece(259 + static_cast<int32_t>(pick(tok.vocab_size() - 259)));
        break;
      }
      case 2: {  // an ASCII word
        const int n = 1 + static_cast<int>(pick(8));
        for (int k = 0; k < n; ++k) out += static_cast<char>('a' + pick(26));
        out += ' ';
        break;
      }
      case 3: {  // a whitespace run
        const char ws[] = {' ', ' ', ' ', '\t', '\n'};
        const int n = 1 + static_cast<int>(pick(12));
        for (int k = 0; k < n; ++k) out += ws[pick(5)];
        break;
      }
      case 4:
        out += kUnicode[pick(std::size(kUnicode))];
        break;
      case 5: {  // invalid UTF-8 and control bytes
        const int kind = static_cast<int>(pick(4));
        if (kind == 0) out += static_cast<char>(0x80 + pick(64));          // stray continuation
        if (kind == 1) out += std::string("\xE2\x82\xAC\x80\x80\x80", 6);  // too many
        if (kind == 2) out += static_cast<char>(0xC0 + pick(64));          // lone lead byte
        if (kind == 3) out += std::string(1, '\0');
        break;
      }
      case 6:  // punctuation and digits
        out += "0123456789.,;:!?'\"()[]{}+-*/=<>"[pick(31)];
        break;
      default:  // any printable ASCII character
        out += static_cast<char>(' ' + pick(95));
        break;
    }
  }
  return out;
}

}  // namespace treepo::model::testing
