// tokenizer.json "decoder": turns the tokens of an id sequence back into text. Supported:
// ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and Sequence. Invalid UTF-8 that
// results (a byte-level sequence cut in the middle of a character, lone byte-fallback tokens)
// becomes U+FFFD as the Hugging Face implementation produces it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings (a decoder may merge them into fewer strings).
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// nullptr for a null `spec` (tokens are concatenated as they are).
Result<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& spec);

}  // namespace treepo::model::hf
