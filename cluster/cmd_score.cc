// `treepo score`: rewards for responses.
//
// Reads --input, a JSONL file of {"response": str, "answer": str} (optional
// "response_tokens": int, used by the overlong penalty), and prints one
// {"reward", "extracted"} line per input line to stdout. A bad line is reported on stderr with
// its line number and skipped; the exit code is 1 if any line failed.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cluster/command.h"
#include "cluster/plugins.h"
#include "common/file_io.h"
#include "common/json_file.h"
#include "common/json_number.h"
#include "common/log.h"
#include "scheduler/reward/reward_fn.h"

namespace treepo::cluster {
namespace {

struct ScoreOptions {
  std::string input;
  scheduler::RewardOptions reward;
  std::vector<std::string> plugins;  // plug-in libraries to load first
};

// Scores one line; InvalidArgument when it is not a {"response","answer"} object.
Result<nlohmann::json> ScoreLine(const scheduler::RewardFn& fn, const std::string& line) {
  Result<nlohmann::json> parsed = ParseJsonText(line);
  if (!parsed.ok()) return InvalidArgument(parsed.status().message());
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return InvalidArgument("not a JSON object");
  auto response = j.find("response");
  auto answer = j.find("answer");
  if (response == j.end() || !response->is_string()) {
    return InvalidArgument("\"response\" missing or not a string");
  }
  if (answer == j.end() || !answer->is_string()) {
    return InvalidArgument("\"answer\" missing or not a string");
  }
  int tokens = -1;
  if (auto t = j.find("response_tokens"); t != j.end()) {
    TREEPO_ASSIGN_OR_RETURN(tokens, JsonToInt<int>(*t, "\"response_tokens\""));
  }
  const scheduler::RewardResult r =
      fn.Score(response->get<std::string>(), answer->get<std::string>(), tokens);
  nlohmann::json out;
  out["reward"] = r.reward;
  out["extracted"] = r.extracted;
  return out;
}

// Returns the number of lines that failed, or an error when the run cannot start.
Result<int> RunScore(const ScoreOptions& o) {
  TREEPO_RETURN_IF_ERROR(LoadPluginFiles(o.plugins));
  TREEPO_ASSIGN_OR_RETURN(auto fn, scheduler::MakeRewardFn(o.reward));
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(o.input, "--input"));
  std::ifstream in(o.input);
  if (!in) return NotFound("cannot open " + o.input);
  int failed = 0, scored = 0;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Result<nlohmann::json> r = ScoreLine(*fn, line);
    if (!r.ok()) {
      spdlog::error("{}:{}: {}", o.input, line_no, r.status().message());
      ++failed;
      continue;
    }
    std::cout << r->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    ++scored;
  }
  std::cout.flush();
  spdlog::info("score: {} lines scored, {} failed", scored, failed);
  return failed;
}

}  // namespace

void RegisterScore(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Rewards of responses (JSONL response/answer)");
  cmd->add_option("--input", opts->input, "JSONL file of {\"response\", \"answer\"}")->required();
  std::string names;
  for (std::string_view n : scheduler::RewardFnNames()) {
    names += names.empty() ? "" : ", ";
    names += n;
  }
  cmd->add_option("--reward", opts->reward.name, "one of: " + names + ", or a plug-in's")
      ->capture_default_str();
  cmd->add_option("--plugin", opts->plugins,
                  "plug-in library to load first (repeatable; docs/plugins.md)");
  cmd->add_option("--overlong-max-tokens", opts->reward.overlong_max_tokens,
                  "DAPO overlong penalty cap (0 = off)")
      ->capture_default_str();
  cmd->add_option("--overlong-buffer-tokens", opts->reward.overlong_buffer_tokens,
                  "DAPO overlong penalty buffer")
      ->capture_default_str();
  cmd->callback([opts, exit_code] {
    InitLogging("score");
    const Result<int> failed = RunScore(*opts);
    if (!failed.ok()) {
      spdlog::error("score: {}", failed.status().ToString());
      *exit_code = 1;
    } else if (*failed > 0) {
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
