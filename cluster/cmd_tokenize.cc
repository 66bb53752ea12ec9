// `treepo tokenize`: text to token ids and back with a model's tokenizer.
//
// --tokenizer is a tokenizer.json, a model directory (its tokenizer.json, else tokenizer.bin)
// or a llama2.c tokenizer.bin (with --vocab-size). The input is --text, --text-file, or stdin.
// Encoding prints one JSON array of ids per input line (the line's newline is not encoded;
// --whole encodes the input as one text). --decode reads one JSON array of ids per line and
// prints each decoded text on its own line. A bad line is reported on stderr with its line
// number and skipped; the exit code is 1 if any line failed.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cluster/command.h"
#include "common/log.h"
#include "common/model/text_tokenizer.h"

namespace treepo::cluster {
namespace {

struct TokenizeOptions {
  std::string tokenizer;      // tokenizer.json, model directory, or tokenizer.bin
  std::string text;           // the input, when given inline
  std::string text_file;      // else the input file ("" and no --text: stdin)
  bool decode = false;        // ids -> text instead of text -> ids
  bool whole = false;         // encode the whole input as one text, not line by line
  bool add_special = false;   // add the tokenizer's sequence-start tokens (BOS)
  bool skip_special = false;  // leave special tokens out when decoding
  int vocab_size = 0;         // llama2.c tokenizer.bin only
};

Result<std::string> ReadInput(const TokenizeOptions& o) {
  if (!o.text.empty() && !o.text_file.empty()) {
    return InvalidArgument("--text and --text-file are exclusive");
  }
  if (!o.text.empty()) return o.text;
  std::stringstream ss;
  if (o.text_file.empty()) {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(o.text_file, std::ios::binary);
    if (!in) return NotFound("cannot open " + o.text_file);
    ss << in.rdbuf();
  }
  return ss.str();
}

std::vector<std::string> SplitLines(const std::string& input) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    lines.push_back(input.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Ids of one decode line; InvalidArgument when it is not a JSON array of integers.
Result<std::vector<int32_t>> ParseIds(const std::string& line, int vocab_size) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return InvalidArgument("not a JSON array");
  std::vector<int32_t> ids;
  for (const auto& v : j) {
    if (!v.is_number_integer()) return InvalidArgument("not an array of integers");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= vocab_size) {
      return InvalidArgument("id " + std::to_string(id) + " outside the vocabulary [0, " +
                             std::to_string(vocab_size) + ")");
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

// Returns the number of lines that failed.
Result<int> RunTokenize(const TokenizeOptions& o) {
  TREEPO_ASSIGN_OR_RETURN(auto tok, model::LoadTextTokenizer(o.tokenizer, o.vocab_size));
  TREEPO_ASSIGN_OR_RETURN(std::string input, ReadInput(o));
  int failed = 0;
  if (!o.decode) {
    const std::vector<std::string> lines =
        o.whole ? std::vector<std::string>{input} : SplitLines(input);
    for (const std::string& line : lines) {
      std::cout << nlohmann::json(tok->Encode(line, o.add_special)).dump() << "\n";
    }
  } else {
    const std::vector<std::string> lines = SplitLines(input);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
      auto ids = ParseIds(lines[i], tok->vocab_size());
      if (!ids.ok()) {
        spdlog::error("line {}: {}", i + 1, ids.status().message());
        ++failed;
        continue;
      }
      std::cout << tok->Decode(*ids, o.skip_special) << "\n";
    }
  }
  std::cout.flush();
  return failed;
}

}  // namespace

void RegisterTokenize(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd =
      app.add_subcommand("tokenize", "Text to token ids (one JSON array per line) and back");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json, a model directory, or a llama2.c tokenizer.bin")
      ->required();
  cmd->add_option("--text", opts->text, "input text (default: --text-file, else stdin)");
  cmd->add_option("--text-file", opts->text_file, "input file");
  cmd->add_flag("--decode", opts->decode, "read JSON arrays of ids, print their text");
  cmd->add_flag("--whole", opts->whole, "encode the whole input as one text");
  cmd->add_flag("--add-special-tokens", opts->add_special,
                "add the tokenizer's sequence-start tokens (e.g. BOS)");
  cmd->add_flag("--skip-special-tokens", opts->skip_special,
                "leave special tokens out when decoding");
  cmd->add_option("--vocab-size", opts->vocab_size, "vocabulary size (llama2.c tokenizer.bin)");
  cmd->callback([opts, exit_code] {
    InitLogging("tokenize", "warn");
    Result<int> failed = RunTokenize(*opts);
    if (!failed.ok()) {
      spdlog::error("tokenize: {}", failed.status().ToString());
      *exit_code = 1;
      return;
    }
    *exit_code = *failed > 0 ? 1 : 0;
  });
}

}  // namespace treepo::cluster
