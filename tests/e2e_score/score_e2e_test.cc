// `treepo score` end to end: runs the binary ($TREEPO_BINARY_DIR/cluster/treepo) on JSONL
// files as a user would and checks stdout (one {"reward","extracted"} line per good input
// line, in order), stderr (each bad line named by file and line number) and the exit code.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/paths.h"

namespace {

namespace fs = std::filesystem;

struct CmdRun {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class ScoreE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = treepo::testing::TreepoBinary();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    dir_ = fs::temp_directory_path() /
           ("treepo_score_e2e_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Writes `lines` (each followed by '\n') to <dir>/<name>; returns the path.
  std::string WriteInput(const std::string& name, const std::vector<std::string>& lines) {
    const fs::path p = dir_ / name;
    std::ofstream out(p);
    for (const std::string& l : lines) out << l << "\n";
    return p.string();
  }

  // Runs `treepo score <args>` through the shell, stdout and stderr captured separately.
  CmdRun Score(const std::string& args) {
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    const std::string cmd =
        "'" + binary_ + "' score " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
    CmdRun r;
    const int st = std::system(cmd.c_str());
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = ReadFile(out);
    r.err = ReadFile(err);
    return r;
  }

  std::string binary_;
  fs::path dir_;
};

// Parses every stdout line as a JSON object with exactly "reward" and "extracted".
std::vector<nlohmann::json> ParseOutput(const std::string& out) {
  std::vector<nlohmann::json> rows;
  for (const std::string& line : Lines(out)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "stdout line is not JSON: " << line;
    if (j.is_discarded()) continue;
    EXPECT_TRUE(j.is_object()) << line;
    EXPECT_EQ(j.size(), 2u) << line;
    EXPECT_TRUE(j.contains("reward") && j["reward"].is_number()) << line;
    EXPECT_TRUE(j.contains("extracted") && j["extracted"].is_string()) << line;
    rows.push_back(std::move(j));
  }
  return rows;
}

TEST_F(ScoreE2eTest, GoodLinesScoredInOrderWithMathReward) {
  const std::string input = WriteInput(
      "good.jsonl", {R"({"response": "So the answer is \\boxed{42}.", "answer": "42"})",
                     R"({"response": "I think \\boxed{41}", "answer": "42"})",
                     R"({"response": "no box here, just 42", "answer": "42"})",
                     R"({"response": "half: \\boxed{\\frac{1}{2}}", "answer": "0.5"})", "",
                     R"({"response": "\\boxed{7}", "answer": "7", "response_tokens": 3})"});
  const CmdRun r = Score("--input '" + input + "' --reward math");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = ParseOutput(r.out);
  ASSERT_EQ(rows.size(), 5u) << r.out;  // the blank line is skipped, not an error
  EXPECT_EQ(rows[0]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[0]["extracted"].get<std::string>(), "42");
  EXPECT_EQ(rows[1]["reward"].get<double>(), -1.0);
  EXPECT_EQ(rows[1]["extracted"].get<std::string>(), "41");
  EXPECT_EQ(rows[2]["reward"].get<double>(), -1.0);
  EXPECT_EQ(rows[2]["extracted"].get<std::string>(), "");
  EXPECT_EQ(rows[3]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[4]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[4]["extracted"].get<std::string>(), "7");
}

TEST_F(ScoreE2eTest, DefaultRewardIsMath) {
  const std::string input =
      WriteInput("default.jsonl", {R"({"response": "\\boxed{3}", "answer": "3"})",
                                   R"({"response": "\\boxed{3}", "answer": "4"})"});
  const CmdRun with_flag = Score("--input '" + input + "' --reward math");
  const CmdRun without = Score("--input '" + input + "'");
  EXPECT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(without.out, with_flag.out);
  const std::vector<nlohmann::json> rows = ParseOutput(without.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[1]["reward"].get<double>(), -1.0);
}

TEST_F(ScoreE2eTest, MalformedLinesAreReportedByLineAndOthersStillScored) {
  const std::string input =
      WriteInput("mixed.jsonl",
                 {R"({"response": "\\boxed{1}", "answer": "1"})", R"(this is not json)",
                  R"({"response": "\\boxed{2}", "answer": "3"})", R"({"response": "\\boxed{5}"})",
                  R"({"response": "\\boxed{5}", "answer": "5"})"});
  const CmdRun r = Score("--input '" + input + "' --reward math");
  EXPECT_EQ(r.exit_code, 1);
  const std::vector<nlohmann::json> rows = ParseOutput(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[0]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[0]["extracted"].get<std::string>(), "1");
  EXPECT_EQ(rows[1]["reward"].get<double>(), -1.0);
  EXPECT_EQ(rows[1]["extracted"].get<std::string>(), "2");
  EXPECT_EQ(rows[2]["reward"].get<double>(), 1.0);
  EXPECT_EQ(rows[2]["extracted"].get<std::string>(), "5");
  // Each bad line is named on stderr as file:line; good lines are not.
  EXPECT_NE(r.err.find(input + ":2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(input + ":4:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("answer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(input + ":1:"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(input + ":3:"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(input + ":5:"), std::string::npos) << r.err;
}

TEST_F(ScoreE2eTest, MissingInputFileFails) {
  const CmdRun r = Score("--input '" + (dir_ / "absent.jsonl").string() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("absent.jsonl"), std::string::npos) << r.err;
}

TEST_F(ScoreE2eTest, UnknownRewardNameFails) {
  const std::string input =
      WriteInput("one.jsonl", {R"({"response": "\\boxed{1}", "answer": "1"})"});
  const CmdRun r = Score("--input '" + input + "' --reward no_such_reward");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("no_such_reward"), std::string::npos) << r.err;
}

}  // namespace
