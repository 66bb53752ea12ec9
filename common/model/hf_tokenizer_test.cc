#include "common/model/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/model/hf_byte_level.h"
#include "common/model/hf_tokenizer_testing.h"
#include "common/model/text_tokenizer.h"
#include "common/testing/paths.h"
#include "common/utf8.h"

namespace treepo::model {
namespace {

using nlohmann::json;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string Hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

TEST(HfUtf8, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(treepo::Utf8Lossy("abc"), "abc");
  EXPECT_EQ(treepo::Utf8Lossy("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(treepo::Utf8Lossy("\xE4\xB8"), "\xEF\xBF\xBD");  // one truncated 3-byte character
  EXPECT_EQ(treepo::Utf8Lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(treepo::Utf8Lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(treepo::Utf8Lossy("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(treepo::Utf8Lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(treepo::IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(HfByteLevel, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string shown = hf::BytesToByteLevel(all);
  EXPECT_EQ(hf::BytesToByteLevel(" "), "\xC4\xA0");  // "Ġ"
  std::string back;
  ASSERT_TRUE(hf::ByteLevelToBytes(shown, &back));
  EXPECT_EQ(back, all);
  std::string none;
  EXPECT_FALSE(hf::ByteLevelToBytes("\xE4\xB8\xAD", &none));  // 中 is not in the alphabet
  EXPECT_TRUE(none.empty());
}

json SentencePieceStyle() { return testing::SentencePieceStyleTokenizerJson(); }

TEST(HfTokenizer, SentencePieceStyleMergesAndFallsBackToBytes) {
  auto t = HfTokenizer::FromJson(SentencePieceStyle());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const int32_t kBar = 259, kA = 260, kB = 261, kBarA = 262, kBarAb = 264;
  // "▁ab▁ab": "▁ a" (rank 0) merges at both places before "▁a b" (rank 2).
  EXPECT_EQ(t->Encode("ab ab", false), (std::vector<int32_t>{kBarAb, kBarAb}));
  EXPECT_EQ(t->Encode("ab ab", true), (std::vector<int32_t>{1, kBarAb, kBarAb}));
  // "é" is not in the vocabulary: its two bytes.
  EXPECT_EQ(t->Encode("\xC3\xA9", false), (std::vector<int32_t>{kBar, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->Encode("ba", false), (std::vector<int32_t>{kBar, kB, kA}));
  EXPECT_EQ(t->Encode("a<s>a", false), (std::vector<int32_t>{kBarA, 1, kBarA}));
  EXPECT_EQ(t->Decode({kBarAb, kBarAb}, false), "ab ab");
  EXPECT_EQ(t->Decode({1, kBarAb, 3 + 0xC3, 3 + 0xA9}, true), "ab\xC3\xA9");
  EXPECT_EQ(t->Decode({1, kBarAb}, false), "<s> ab");
  // A lone lead byte: one U+FFFD per byte token.
  EXPECT_EQ(t->Decode({kA, 3 + 0xC3}, false), "a\xEF\xBF\xBD");
  EXPECT_EQ(t->Decode({kA, 3 + 0xE4, 3 + 0xB8}, false), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t->Decode({kA, 99999, -5}, false), "a");
  EXPECT_EQ(t->vocab_size(), 265);
  EXPECT_EQ(t->TokenToId("<s>"), 1);
  EXPECT_TRUE(t->IsSpecial(1));
  EXPECT_FALSE(t->IsSpecial(kA));
}

TEST(HfTokenizer, MetaspacePreTokenizerPrependsFirstOnly) {
  json spec = SentencePieceStyle();
  spec["normalizer"] = nullptr;
  spec["pre_tokenizer"] = {{"type", "Metaspace"},
                           {"replacement", "\xE2\x96\x81"},
                           {"prepend_scheme", "first"},
                           {"split", false}};
  spec["decoder"] = {
      {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}};
  auto t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const int32_t kBar = 259, kA = 260, kBarA = 262, kBarAb = 264;
  EXPECT_EQ(t->Encode("a<s>a", false), (std::vector<int32_t>{kBarA, 1, kA}));
  EXPECT_EQ(t->Encode("ab a", false), (std::vector<int32_t>{kBarAb, kBarA}));
  EXPECT_EQ(t->Encode(" a", false), (std::vector<int32_t>{kBarA}));
  EXPECT_EQ(t->Decode({kBarAb, kBarA}, false), "ab a");
  spec["pre_tokenizer"]["split"] = true;
  spec["pre_tokenizer"]["prepend_scheme"] = "always";
  auto s = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(s.ok());
  // " a" already starts with "▁"; "▁▁a" splits before each "▁" (merged with what follows).
  EXPECT_EQ(s->Encode(" a", false), (std::vector<int32_t>{kBarA}));
  EXPECT_EQ(s->Encode("  a", false), (std::vector<int32_t>{kBar, kBarA}));
}

TEST(HfTokenizer, RefusesBadInputWithClearErrors) {
  const auto message = [](const json& spec) {
    auto t = HfTokenizer::FromJson(spec);
    return t.ok() ? std::string("ok") : t.status().message();
  };
  json spec = SentencePieceStyle();
  spec["normalizer"] = {{"type", "Precompiled"}};
  EXPECT_NE(message(spec).find("normalizer type 'Precompiled' is not supported"),
            std::string::npos);
  spec = SentencePieceStyle();
  spec["model"]["merges"].push_back("a zz");
  EXPECT_NE(message(spec).find("merge 'a zz' uses a token not in the vocab"), std::string::npos);
  spec = SentencePieceStyle();
  spec["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(message(spec).find("regex '(unclosed'"), std::string::npos);
  spec = SentencePieceStyle();
  spec["model"]["type"] = "Unigram";
  EXPECT_NE(message(spec).find("model type 'Unigram' is not supported"), std::string::npos);
  spec = SentencePieceStyle();
  spec["added_tokens"] = {{{"id", -1}, {"content", "x"}}};
  EXPECT_NE(message(spec).find("added_tokens"), std::string::npos);
  spec = SentencePieceStyle();
  spec["model"]["vocab"] = "not an object";
  EXPECT_NE(message(spec).find("vocab"), std::string::npos);

  const std::string dir = testing::FreshTempDir("hf_tokenizer_bad");
  EXPECT_EQ(HfTokenizer::Load(dir + "/missing.json").status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/tokenizer.json") << "{ not json";
  EXPECT_EQ(HfTokenizer::Load(dir).status().code(), StatusCode::kDataLoss);
}

TEST(HfTokenizer, InvalidUtf8InputReadsAsReplacementCharacter) {
  auto t = HfTokenizer::FromJson(SentencePieceStyle());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Encode("a\xFF", false), t->Encode("a\xEF\xBF\xBD", false));
}

// With byte fallback every string survives a round trip (invalid UTF-8 as U+FFFD).
TEST(HfTokenizer, ByteFallbackRoundTripsRandomBytes) {
  auto t = HfTokenizer::FromJson(SentencePieceStyle());
  ASSERT_TRUE(t.ok());
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int j = 0; j < n; ++j) {
      const int r = static_cast<int>(rng() % 4);
      s.push_back(r == 0 ? 'a' : r == 1 ? ' ' : static_cast<char>(0x80 + rng() % 0x80));
    }
    EXPECT_EQ(t->Decode(t->Encode(s, true), true), treepo::Utf8Lossy(s)) << Hex(s);
  }
}

TEST(HfTokenizer, SplitBehaviours) {
  json spec = SentencePieceStyle();
  spec["normalizer"] = nullptr;
  spec["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", "b"}}}, {"behavior", "MergedWithPrevious"}};
  auto t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const int32_t kA = 260, kB = 261, kAb = 263;
  EXPECT_EQ(t->Encode("abab", false), (std::vector<int32_t>{kAb, kAb}));
  spec["pre_tokenizer"]["behavior"] = "Isolated";
  t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Encode("abab", false), (std::vector<int32_t>{kA, kB, kA, kB}));
  spec["pre_tokenizer"]["behavior"] = "MergedWithNext";
  spec["pre_tokenizer"]["pattern"] = {{"String", "a"}};
  t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Encode("abab", false), (std::vector<int32_t>{kAb, kAb}));
  EXPECT_EQ(t->Encode("aab", false), (std::vector<int32_t>{kA, kAb}));  // "a" | "ab"
  spec["pre_tokenizer"]["pattern"] = {{"String", "b"}};
  spec["pre_tokenizer"]["behavior"] = "Removed";
  t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Encode("abba", false), (std::vector<int32_t>{kA, kA}));
}

// The real Qwen3 and Llama 3 tokenizers against transformers.js's encodings and decodings
// (tests/reference/hf_tokenizer_reference.mjs).
class RealTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(RealTokenizer, EncodeAndDecodeEqualTheReference) {
  const std::string name = GetParam();
  if (!testing::HfTokenizerPresent(name)) GTEST_SKIP() << name << " " << testing::kHfTokenizerSkip;
  auto t = HfTokenizer::Load(testing::HfTokenizerModelDir(name));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const json ref = ReadJson(testing::TestDataPath("hf_tokenizer_reference.json"));
  const json& cases = ref["tokenizers"][name];
  int n = 0;
  for (const json& c : cases["encode"]) {
    const std::string text = c["text"];
    EXPECT_EQ(t->Encode(text, false), c["ids"].get<std::vector<int32_t>>())
        << "text " << json(text).dump() << " (" << Hex(text) << ")";
    ++n;
  }
  EXPECT_GE(n, 300);
  for (const json& c : cases["decode"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t->Decode(ids, c["skip_special"].get<bool>()), c["text"].get<std::string>())
        << "ids " << c["ids"].dump() << " skip " << c["skip_special"];
  }
  if (name == "llama3") {  // no normalizer: decoding an encoding gives the text back
    for (const json& c : cases["encode"]) {
      const std::string text = c["text"];
      EXPECT_EQ(t->Decode(t->Encode(text, false), false), text);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, RealTokenizer, ::testing::Values("qwen3", "llama3"));

TEST(HfTokenizer, Llama3TemplateProcessingAddsBeginOfText) {
  if (!testing::HfTokenizerPresent("llama3")) GTEST_SKIP() << testing::kHfTokenizerSkip;
  const json ref = ReadJson(testing::TestDataPath("hf_tokenizer_reference.json"));
  const json& bos = ref["tokenizers"]["llama3_bos"];
  json spec = ReadJson(testing::HfTokenizerModelDir("llama3") + "/tokenizer.json");
  spec["post_processor"] = bos["post_processor"];
  auto t = HfTokenizer::FromJson(spec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (const json& c : bos["encode_special"]) {
    EXPECT_EQ(t->Encode(c["text"].get<std::string>(), true), c["ids"].get<std::vector<int32_t>>())
        << json(c["text"]).dump();
  }
}

TEST(HfTokenizer, SpecialTokensAreOneIdEach) {
  if (!testing::HfTokenizerPresent("qwen3")) GTEST_SKIP() << testing::kHfTokenizerSkip;
  auto t = HfTokenizer::Load(testing::HfTokenizerModelDir("qwen3"));
  ASSERT_TRUE(t.ok());
  const auto im_start = t->TokenToId("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_EQ(*im_start, 151644);
  const std::vector<int32_t> ids = t->Encode("<|im_start|>user\n", false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 151644);
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/true), "user\n");
}

TEST(TextTokenizer, FindsTokenizerJsonBesideConfig) {
  const std::string dir = testing::FreshTempDir("text_tokenizer_find");
  EXPECT_EQ(FindTokenizerFile(dir).status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/config.json") << "{}";
  std::ofstream(dir + "/tokenizer.json") << SentencePieceStyle().dump();
  auto found = FindTokenizerFile(dir + "/config.json");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, dir + "/tokenizer.json");
  auto t = LoadTextTokenizer(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->format(), "tokenizer.json");
  EXPECT_EQ((*t)->Decode((*t)->Encode("ab ab", true), true), "ab ab");
  EXPECT_EQ(LoadTextTokenizer(dir + "/model.bin").status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/tokenizer.bin") << "x";
  EXPECT_EQ(LoadTextTokenizer(dir + "/tokenizer.bin").status().code(),
            StatusCode::kInvalidArgument);  // llama2.c needs the vocabulary size
}

}  // namespace
}  // namespace treepo::model
