// tokenizer.json "normalizer": text rewriting applied before pre-tokenization (to the text
// between added tokens). Supported types: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace
// (string or regex pattern), Strip and Sequence; any other type is refused when loading.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace treepo::model::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Precondition: `text` is valid UTF-8; the result is too.
  virtual std::string Normalize(std::string text) const = 0;
};

// Builds the normalizer a tokenizer.json describes (`spec` is the "normalizer" value; null
// gives nullptr, meaning none). Unknown types and malformed fields are kInvalidArgument.
Result<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& spec);

}  // namespace treepo::model::hf
