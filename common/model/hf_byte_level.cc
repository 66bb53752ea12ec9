#include "common/model/hf_byte_level.h"

#include <array>
#include <cstdint>

#include "common/utf8.h"

namespace treepo::model::hf {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_char;
  std::array<int16_t, 512> char_to_byte;  // code points < 512 only; -1 when none
};

const Tables& GetTables() {
  static const Tables t = [] {
    Tables t;
    t.char_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
      AppendUtf8(cp, &t.byte_to_char[b]);
      t.char_to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

std::string BytesToByteLevel(std::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += t.byte_to_char[b];
  return out;
}

bool ByteLevelToBytes(std::string_view s, std::string* out) {
  const Tables& t = GetTables();
  const size_t start = out->size();
  size_t pos = 0;
  while (pos < s.size()) {
    if (ValidUtf8SequenceLength(s.substr(pos)) == 0) {
      out->resize(start);
      return false;
    }
    const uint32_t cp = NextCodepoint(s, &pos);
    if (cp >= t.char_to_byte.size() || t.char_to_byte[cp] < 0) {
      out->resize(start);
      return false;
    }
    out->push_back(static_cast<char>(t.char_to_byte[cp]));
  }
  return true;
}

}  // namespace treepo::model::hf
