// GPT-2's byte-level alphabet: each of the 256 byte values is shown as one printable code
// point ("Ġ" for a space), so that byte-level BPE vocabularies are plain strings.
#pragma once

#include <string>
#include <string_view>

namespace treepo::model::hf {

// Each byte of `bytes` replaced by its alphabet character (UTF-8 encoded).
std::string BytesToByteLevel(std::string_view bytes);

// The reverse of BytesToByteLevel for a token `s`: appends its bytes to `out` and returns
// true, or returns false (appending nothing) when `s` has a character outside the alphabet.
bool ByteLevelToBytes(std::string_view s, std::string* out);

}  // namespace treepo::model::hf
