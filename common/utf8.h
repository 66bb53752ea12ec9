// UTF-8 helpers for every text that comes from outside (files, peers, models): validation,
// walking code points, encoding one, and the lossy conversion that replaces invalid bytes
// with U+FFFD the way Rust's String::from_utf8_lossy and the WHATWG decoder do (one
// replacement per maximal invalid subpart).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace treepo {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at the start of `s` (1..4), or 0 when the bytes there
// are not a valid sequence (or `s` is empty). Overlong forms and surrogates are invalid.
size_t ValidUtf8SequenceLength(std::string_view s);

// True when all of `s` is valid UTF-8.
bool IsValidUtf8(std::string_view s);

// Offset of the first byte that does not belong to a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are not well formed), or npos.
size_t FindInvalidUtf8(std::string_view text);

// `s` with every maximal invalid subpart replaced by U+FFFD.
std::string Utf8Lossy(std::string_view s);

// Appends the UTF-8 encoding of `cp` (precondition: a Unicode scalar value).
void AppendUtf8(uint32_t cp, std::string* out);

// Decodes the code point at `s[*pos]` and advances *pos. Precondition: `s` is valid UTF-8.
uint32_t NextCodepoint(std::string_view s, size_t* pos);

// Length in bytes of the UTF-8 character starting with byte `lead` (1 for invalid leads).
inline size_t Utf8CharLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace treepo
