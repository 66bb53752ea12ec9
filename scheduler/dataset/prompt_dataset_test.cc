#include "scheduler/dataset/prompt_dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "common/testing/paths.h"
#include "scheduler/dataset/task_source.h"

namespace treepo::scheduler {
namespace {

TEST(PromptDatasetTest, ParsesIdsAnswersAndDefaults) {
  const std::string text =
      "{\"id\": 7, \"prompt\": \"a\", \"answer\": \"1\"}\n"
      "\n"
      "{\"id\": \"x\", \"prompt\": \"b\"}\n"
      "{\"prompt\": \"c\", \"answer\": 27.0}\n"
      "{\"prompt\": \"d\", \"answer\": \"so 2+2=4\\n#### 1,004\"}\n"
      "{\"prompt\": \"e\", \"answer\": [\"2\", \"3\"]}\n";
  auto r = ParsePromptLines(text, PromptFileOptions{}, "t.jsonl");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].id, "7");
  EXPECT_EQ((*r)[0].answer, "1");
  EXPECT_EQ((*r)[1].id, "x");
  EXPECT_FALSE((*r)[1].answer.has_value());
  EXPECT_EQ((*r)[2].id, "4");  // line number
  EXPECT_EQ((*r)[2].answer, "27");
  EXPECT_EQ((*r)[3].answer, "1004");  // auto mode finds ####
  EXPECT_EQ((*r)[4].answer, "2, 3");
}

TEST(PromptDatasetTest, BadLinesNameTheirLine) {
  PromptFileOptions o;
  auto bad_json = ParsePromptLines("{\"prompt\": \"a\"}\n{oops\n", o, "f.jsonl");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.status().message().find("f.jsonl:2"), std::string::npos);
  auto no_prompt = ParsePromptLines("{\"question\": \"a\"}\n", o, "f.jsonl");
  ASSERT_FALSE(no_prompt.ok());
  EXPECT_NE(no_prompt.status().message().find("f.jsonl:1"), std::string::npos);
  EXPECT_FALSE(ParsePromptLines("[1, 2]\n", o, "f").ok());
  EXPECT_FALSE(ParsePromptLines("{\"prompt\": \"a\", \"id\": 1.5}\n", o, "f").ok());
  o.answer_mode = AnswerMode::kLastBoxed;
  auto no_box = ParsePromptLines("{\"prompt\": \"a\", \"answer\": \"3\"}\n", o, "f.jsonl");
  ASSERT_FALSE(no_box.ok());
  EXPECT_NE(no_box.status().message().find("f.jsonl:1"), std::string::npos);
  EXPECT_EQ(LoadPromptFile("/nonexistent/x.jsonl", o).status().code(), StatusCode::kNotFound);
}

TEST(PromptDatasetTest, BadBytesAndDirectoriesSayWhatTheyAre) {
  PromptFileOptions o;
  auto latin1 = ParsePromptLines("{\"prompt\": \"caf\xe9\"}\n", o, "f.jsonl");
  ASSERT_FALSE(latin1.ok());
  EXPECT_NE(latin1.status().message().find("f.jsonl:1: not valid UTF-8"), std::string::npos)
      << latin1.status().message();
  auto big_id = ParsePromptLines("{\"prompt\": \"a\", \"id\": 1e30}\n", o, "f");
  ASSERT_FALSE(big_id.ok());
  auto float_id = ParsePromptLines("{\"prompt\": \"a\", \"id\": 1e12}\n", o, "f");
  ASSERT_TRUE(float_id.ok()) << float_id.status().ToString();
  EXPECT_EQ((*float_id)[0].id, "1000000000000");
  const std::string dir = ::treepo::testing::FreshTempDir("prompt_dir_test");
  const Status s = LoadPromptFile(dir, o).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s.message();
  std::filesystem::remove_all(dir);
}

TEST(PromptDatasetTest, Extractors) {
  EXPECT_EQ(ExtractLastBoxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c"), "\\frac{1}{2}");
  EXPECT_EQ(ExtractLastBoxed("\\fbox{9}"), "9");
  EXPECT_FALSE(ExtractLastBoxed("\\boxed{unclosed").has_value());
  EXPECT_FALSE(ExtractLastBoxed("none").has_value());
  EXPECT_EQ(ExtractHashAnswer("x\n#### 18 "), "18");
  EXPECT_FALSE(ExtractHashAnswer("18").has_value());
  EXPECT_EQ(*ParseAnswerMode("gsm8k_hash"), AnswerMode::kHashTail);
  EXPECT_FALSE(ParseAnswerMode("nope").ok());
}

TEST(PromptDatasetTest, LoadsEveryMathEvalSet) {
  const std::string dir = testing::SharedDir() + "/data/math-eval";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " absent";
  const std::pair<const char*, size_t> sets[] = {{"aime24", 30},         {"amc23", 40},
                                                 {"math500", 500},       {"minerva_math", 272},
                                                 {"olympiadbench", 675}, {"gsm8k", 1319}};
  for (const auto& [name, count] : sets) {
    const std::string path = dir + "/" + name + ".jsonl";
    if (!std::filesystem::exists(path)) continue;
    auto options = MathEvalOptions(name);
    ASSERT_TRUE(options.ok());
    auto records = LoadPromptFile(path, *options);
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    EXPECT_EQ(records->size(), count) << name;
    std::set<std::string> ids;
    for (const PromptRecord& r : *records) {
      EXPECT_FALSE(r.prompt.empty()) << name;
      ASSERT_TRUE(r.answer.has_value()) << name << " " << r.id;
      EXPECT_FALSE(r.answer->empty()) << name << " " << r.id;
      ids.insert(r.id);
    }
    EXPECT_EQ(ids.size(), count) << name << ": ids not unique";
  }
  auto gsm = LoadPromptFile(dir + "/gsm8k.jsonl", *MathEvalOptions("gsm8k"));
  ASSERT_TRUE(gsm.ok()) << gsm.status().ToString();
  EXPECT_EQ((*gsm)[0].answer, "18");
  EXPECT_FALSE(MathEvalOptions("nope").ok());
}

TEST(DatasetCursorTest, InOrderAcrossEpochs) {
  DatasetCursor c(3, /*shuffle=*/false, 0);
  std::vector<int64_t> got;
  for (int i = 0; i < 7; ++i) got.push_back(c.Next());
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(c.position().epoch, 2);
  EXPECT_EQ(c.position().offset, 1);
}

TEST(DatasetCursorTest, ShuffledIsAPermutationPerEpochAndResumable) {
  DatasetCursor c(50, /*shuffle=*/true, 42);
  std::vector<int64_t> epoch0, epoch1;
  for (int i = 0; i < 50; ++i) epoch0.push_back(c.Next());
  for (int i = 0; i < 20; ++i) epoch1.push_back(c.Next());
  const DatasetCursor::Position saved = c.position();
  std::vector<int64_t> rest;
  for (int i = 0; i < 30; ++i) rest.push_back(c.Next());
  EXPECT_EQ(std::set<int64_t>(epoch0.begin(), epoch0.end()).size(), 50u);
  EXPECT_NE(std::vector<int64_t>(epoch0.begin(), epoch0.begin() + 20), epoch1);
  DatasetCursor d(50, /*shuffle=*/true, 42);
  ASSERT_TRUE(d.Seek(saved).ok());
  for (int i = 0; i < 30; ++i) EXPECT_EQ(d.Next(), rest[i]);
  epoch1.insert(epoch1.end(), rest.begin(), rest.end());
  EXPECT_EQ(std::set<int64_t>(epoch1.begin(), epoch1.end()).size(), 50u);
  EXPECT_FALSE(d.Seek({0, 51}).ok());
  DatasetCursor other_seed(50, true, 43);
  std::vector<int64_t> o;
  for (int i = 0; i < 50; ++i) o.push_back(other_seed.Next());
  EXPECT_NE(o, epoch0);
}

TEST(TaskSourceTest, ArithmeticRecordsServeAsPrompts) {
  auto task = ArithmeticTask::Create(ArithmeticOptions{});
  ASSERT_TRUE(task.ok());
  const auto train = ArithmeticRecords(*task, Split::kTrain, 100, 1);
  const auto held = ArithmeticRecords(*task, Split::kHeldOut, 20, 1);
  ASSERT_EQ(train.size(), 100u);
  ASSERT_EQ(held.size(), 20u);
  EXPECT_EQ(train[0].id, "train-0");
  EXPECT_EQ(held[19].id, "heldout-19");
  EXPECT_TRUE(train[0].prompt.starts_with("Q: "));
  EXPECT_TRUE(train[0].answer.has_value());
}

}  // namespace
}  // namespace treepo::scheduler
