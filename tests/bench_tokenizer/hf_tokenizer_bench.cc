// tokenizer.json encoding speed: encodes about 1 MB of mixed text (English prose, numbers,
// code, CJK, emoji, whitespace runs) with our HfTokenizer and with transformers.js in node
// (hf_tokenizer_bench.mjs), checks that both give the same ids, and prints MB/s side by side.
// Ours is timed twice: with an empty per-word cache, then with it filled.
//
// Usage: hf_tokenizer_bench [--model qwen3|llama3] [--bytes N] [--json FILE]
// Needs tests/reference/setup_hf_tokenizers.sh to have run (and node for the reference).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

#include "common/model/hf_tokenizer.h"
#include "common/model/hf_tokenizer_testing.h"
#include "common/testing/paths.h"

namespace {

std::string MakeText(size_t bytes) {
  static const char* const kWords[] = {
      "the",         "of",          "and",     "to",       "in",        "is",      "that",
      "for",         "it",          "as",      "was",      "with",      "be",      "by",
      "on",          "not",         "he",      "this",     "are",       "or",      "his",
      "from",        "at",          "which",   "but",      "have",      "an",      "had",
      "they",        "you",         "were",    "their",    "one",       "all",     "we",
      "can",         "her",         "has",     "there",    "been",      "if",      "more",
      "when",        "will",        "would",   "who",      "so",        "no",      "equation",
      "triangle",    "probability", "integer", "solution", "therefore", "compute", "don't",
      "it's",        "we'll",       "café",    "naïve",    "Straße",    "数学",    "问题",
      "答案",        "東京",        "😀",       "🎉",        "👍🏽",  "x^2",     "\\frac{1}{2}",
      "\\boxed{42}", "3.14159",     "2024",    "1,000",    "f(x)",      "a_{n+1}", "==",
      "->",          "{",           "}",       "(",        ")",         ";",       ":",
      "?",           "!",           "\"",      "'"};
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < bytes) {
    const int r = static_cast<int>(rng() % 100);
    text += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
    if (r < 70) {
      text += " ";
    } else if (r < 80) {
      text += ", ";
    } else if (r < 88) {
      text += ". ";
    } else if (r < 94) {
      text += "\n";
    } else if (r < 97) {
      text += "\n\n    ";
    } else {
      text += std::to_string(rng() % 100000) + " ";
    }
  }
  return text;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "qwen3", json_out;
  size_t bytes = 1 << 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") {
      model = argv[i + 1];
    } else if (a == "--bytes") {
      bytes = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (a == "--json") {
      json_out = argv[i + 1];
    } else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (!treepo::testing::HfTokenizerPresent(model)) {
    std::cerr << model << " tokenizer " << treepo::testing::kHfTokenizerSkip << "\n";
    return 1;
  }
  const std::string dir = treepo::testing::HfTokenizerModelDir(model);
  const auto t_load = std::chrono::steady_clock::now();
  auto tok = treepo::model::HfTokenizer::Load(dir);
  if (!tok.ok()) {
    std::cerr << tok.status().ToString() << "\n";
    return 1;
  }
  const double load_s = Seconds(std::chrono::steady_clock::now() - t_load);
  const std::string text = MakeText(bytes);
  const double mb = static_cast<double>(text.size()) / 1e6;

  auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->Encode(text, false);
  const double cold_s = Seconds(std::chrono::steady_clock::now() - t0);
  t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids2 = tok->Encode(text, false);
  const double warm_s = Seconds(std::chrono::steady_clock::now() - t0);

  // The reference, in node, on the same text.
  const std::string tmp = (std::filesystem::temp_directory_path() /
                           ("treepo_hf_tokenizer_bench_" + std::to_string(::getpid()) + ".txt"))
                              .string();
  std::ofstream(tmp, std::ios::binary) << text;
  const std::string script =
      treepo::testing::SourceDir() + "/tests/bench_tokenizer/hf_tokenizer_bench.mjs";
  const std::string cmd = "node '" + script + "' '" + treepo::testing::HfTokenizersDir() +
                          "/node_modules' '" + dir + "' '" + tmp + "'";
  std::string ref_out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) ref_out.append(buf, n);
    pclose(p);
  }
  std::filesystem::remove(tmp);
  const nlohmann::json ref = nlohmann::json::parse(ref_out, nullptr, false);
  const bool have_ref = ref.is_object() && ref.contains("seconds");
  const double ref_s = have_ref ? ref["seconds"].get<double>() : 0;
  const bool same = have_ref && ref["ids"].get<std::vector<int32_t>>() == ids;

  std::printf("tokenizer %s, text %.2f MB, %zu tokens (load %.2f s)\n", model.c_str(), mb,
              ids.size(), load_s);
  std::printf("%-28s %10s %10s\n", "encoder", "seconds", "MB/s");
  std::printf("%-28s %10.3f %10.2f\n", "treepo (empty cache)", cold_s, mb / cold_s);
  std::printf("%-28s %10.3f %10.2f\n", "treepo (filled cache)", warm_s, mb / warm_s);
  if (have_ref) {
    std::printf("%-28s %10.3f %10.2f\n", "transformers.js (node)", ref_s, mb / ref_s);
    std::printf("ratio treepo/transformers.js (empty cache): %.2fx; same ids: %s\n", ref_s / cold_s,
                same ? "yes" : "NO");
  } else {
    std::printf("transformers.js reference unavailable (node or packages missing)\n");
  }
  if (!json_out.empty()) {
    nlohmann::json j = {{"model", model},          {"bytes", text.size()},
                        {"tokens", ids.size()},    {"treepo_cold_s", cold_s},
                        {"treepo_warm_s", warm_s}, {"reference_s", have_ref ? ref_s : -1},
                        {"same_ids", same},        {"repeat_equal", ids == ids2}};
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  return have_ref && !same ? 1 : 0;
}
