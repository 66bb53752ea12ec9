#include "common/tree/tree_record.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/testing/paths.h"

namespace treepo {
namespace {

TreeRecord Sample() {
  TreeRecord t;
  t.query_id = "q1";
  t.prompt = "1+1=";
  t.answer = "2";
  t.prompt_tokens = {1, 5};
  TreeNodeRecord a{10, std::nullopt, 1, {3, 4}, {-0.5f, -0.25f}, "ab", FinishReason::kNone, 1, 2};
  TreeNodeRecord b{11, 10, 2, {6}, {-1.0f}, "c", FinishReason::kEos, 2, 2};
  TreeNodeRecord c{12, 10, 2, {7, 8}, {-1.0f, -2.0f}, "de", FinishReason::kMaxTokens, 1, 2};
  t.nodes = {a, b, c};
  t.leaves = {{11, 1.0f, FinishReason::kEos, 3}, {12, -1.0f, FinishReason::kMaxTokens, 3}};
  return t;
}

TEST(TreeRecordTest, RoundTripAndPaths) {
  const TreeRecord t = Sample();
  ASSERT_TRUE(t.Validate().ok());
  auto back = TreeRecordFromJson(TreeRecordToJson(t));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(TreeRecordToJson(*back), TreeRecordToJson(t));
  EXPECT_FALSE(back->nodes[0].parent.has_value());
  EXPECT_EQ(back->nodes[2].finish, FinishReason::kMaxTokens);
  EXPECT_EQ(t.PathTo(12), (std::vector<uint64_t>{10, 12}));
  EXPECT_EQ(t.ResponseTokens(t.leaves[1]), (std::vector<int32_t>{3, 4, 7}));  // truncated to 3
  EXPECT_EQ(t.ResponseLogprobs(t.leaves[0]), (std::vector<float>{-0.5f, -0.25f, -1.0f}));
  EXPECT_TRUE(t.PathTo(99).empty());
}

TEST(TreeRecordTest, ValidationErrors) {
  auto expect_bad = [](TreeRecord t, const std::string& needle) {
    const Status s = t.Validate();
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
  };
  TreeRecord t = Sample();
  t.nodes[1].parent = 99;
  expect_bad(t, "parent 99");
  t = Sample();
  t.nodes[1].depth = 3;
  expect_bad(t, "depth");
  t = Sample();
  t.nodes[2].id = 11;
  expect_bad(t, "duplicate");
  t = Sample();
  t.nodes[0].logprobs.pop_back();
  expect_bad(t, "logprobs");
  t = Sample();
  t.leaves[0].node = 7;
  expect_bad(t, "unknown node");
  t = Sample();
  t.leaves[0].response_tokens = 9;
  expect_bad(t, "response_tokens");
}

TEST(TreeRecordTest, BadJsonNamesTheField) {
  EXPECT_FALSE(TreeRecordFromJson("{").ok());
  EXPECT_FALSE(TreeRecordFromJson("[]").ok());
  std::string j = TreeRecordToJson(Sample());
  const std::string bad = std::string(j).replace(j.find("\"depth\""), 7, "\"dpth\"");
  auto r = TreeRecordFromJson(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nodes[0]"), std::string::npos) << r.status().ToString();
  const std::string bad_reason = std::string(j).replace(j.find("\"eos\""), 5, "\"zzz\"");
  EXPECT_FALSE(TreeRecordFromJson(bad_reason).ok());
  EXPECT_FALSE(ParseFinishReason("").ok());
  EXPECT_EQ(*ParseFinishReason("max_depth"), FinishReason::kMaxDepth);
}

TEST(TreeRecordTest, FileRoundTripNamesBadLine) {
  const std::string path = ::treepo::testing::FreshTempDir("tree_record_test") + "/trees.jsonl";
  ASSERT_TRUE(WriteTreeFile(path, {Sample(), Sample()}).ok());
  auto trees = ReadTreeFile(path);
  ASSERT_TRUE(trees.ok());
  EXPECT_EQ(trees->size(), 2u);
  {
    std::ofstream out(path, std::ios::app);
    out << "{\"query_id\": 3}\n";
  }
  auto bad = ReadTreeFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":3"), std::string::npos) << bad.status().ToString();
  std::remove(path.c_str());
  EXPECT_EQ(ReadTreeFile(path).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace treepo
