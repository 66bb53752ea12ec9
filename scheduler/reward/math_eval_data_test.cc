// The math reward over the real evaluation sets in ../shared/data/math-eval: every reference
// solution must score correct against its own answer, and wrong against another problem's
// different answer. Skips when the folder is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/testing/paths.h"
#include "scheduler/reward/reward_fn.h"
#include "scheduler/tree/stop_rules.h"

namespace treepo::scheduler {
namespace {

std::string DataPath(const std::string& file) {
  return treepo::testing::SharedDir() + "/data/math-eval/" + file;
}

std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

struct Case {
  std::string response;
  std::string answer;
  std::string id;
};

// Own-answer pass rate (in %) and the number of wrong "other answer" matches; prints misses.
void Check(const std::vector<Case>& cases, double min_rate, const std::string& set) {
  auto fn = std::move(MakeRewardFn(RewardOptions{})).value();
  int correct = 0, cross_checked = 0, cross_wrong = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const RewardResult r = fn->Score(cases[i].response, cases[i].answer);
    if (r.reward > 0) {
      ++correct;
    } else {
      std::printf("[%s] miss %s: answer \"%s\" extracted \"%s\"\n", set.c_str(),
                  cases[i].id.c_str(), cases[i].answer.c_str(), r.extracted.c_str());
    }
    // The next problem whose answer differs after normalisation and in value.
    for (size_t k = 1; k < cases.size(); ++k) {
      const Case& other = cases[(i + k) % cases.size()];
      const std::string a = NormalizeMathAnswer(other.answer);
      const std::string b = NormalizeMathAnswer(cases[i].answer);
      if (a == b) continue;
      auto x = ParseMathNumber(a), y = ParseMathNumber(b);
      if (x && y && *x == *y) continue;
      ++cross_checked;
      if (fn->Score(cases[i].response, other.answer).reward > 0) ++cross_wrong;
      break;
    }
  }
  const double rate = 100.0 * correct / cases.size();
  std::printf("[%s] own answer correct: %d / %zu = %.2f%%; other answers matched: %d / %d\n",
              set.c_str(), correct, cases.size(), rate, cross_wrong, cross_checked);
  EXPECT_GE(rate, min_rate) << set;
  EXPECT_EQ(cross_wrong, 0) << set;
}

TEST(MathEvalDataTest, Math500SolutionsMatchTheirAnswers) {
  const std::string path = DataPath("math500.jsonl");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  std::vector<Case> cases;
  for (const auto& row : ReadJsonl(path)) {
    cases.push_back({row.at("solution").get<std::string>(), row.at("answer").get<std::string>(),
                     row.at("unique_id").get<std::string>()});
  }
  ASSERT_EQ(cases.size(), 500u);
  Check(cases, 97.0, "math500");
}

TEST(MathEvalDataTest, MinervaSolutionsMatchTheirAnswers) {
  const std::string path = DataPath("minerva_math.jsonl");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  std::vector<Case> cases;
  for (const auto& row : ReadJsonl(path)) {
    const std::string sol = row.at("solution").get<std::string>();
    auto boxed = LastBoxedContent(sol);
    ASSERT_TRUE(boxed.has_value()) << row.at("idx");
    cases.push_back({sol, *boxed, row.at("idx").dump()});
  }
  Check(cases, 99.0, "minerva_math");
}

TEST(MathEvalDataTest, Gsm8kBoxedAnswers) {
  const std::string path = DataPath("gsm8k.jsonl");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  std::vector<Case> cases;
  for (const auto& row : ReadJsonl(path)) {
    const std::string a = row.at("answer").get<std::string>();
    const size_t hash = a.rfind("####");
    ASSERT_NE(hash, std::string::npos);
    std::string n = a.substr(hash + 4);
    n.erase(0, n.find_first_not_of(' '));
    cases.push_back({"The answer is \\boxed{" + n + "}.", n, row.at("idx").dump()});
  }
  Check(cases, 100.0, "gsm8k");
}

}  // namespace
}  // namespace treepo::scheduler
