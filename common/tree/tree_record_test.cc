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

// Numbers past a field's type are errors naming the field, never wrapped or zeroed values.
TEST(TreeRecordTest, OutOfRangeNumbersAreErrors) {
  const std::string j = TreeRecordToJson(Sample());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = j;
    s.replace(s.find(from), from.size(), to);
    return TreeRecordFromJson(s);
  };
  auto big_id = with("\"id\":10", "\"id\":18446744073709551621");  // 2^64 + 5
  ASSERT_FALSE(big_id.ok());
  EXPECT_NE(big_id.status().message().find("field \"id\""), std::string::npos)
      << big_id.status().message();
  auto big_depth = with("\"depth\":1", "\"depth\":1e12");
  ASSERT_FALSE(big_depth.ok());
  EXPECT_NE(big_depth.status().message().find("1000000000000.0 is outside"), std::string::npos)
      << big_depth.status().message();
  EXPECT_FALSE(with("\"tokens\":[3,4]", "\"tokens\":[3,4294967300]").ok());
  EXPECT_FALSE(with("\"worker\":1", "\"worker\":-1").ok());
  EXPECT_FALSE(with("\"parent\":10", "\"parent\":1e30").ok());
}

TEST(TreeRecordTest, NonUtf8LinesSaySo) {
  std::string j = TreeRecordToJson(Sample());
  j.replace(j.find("1+1="), 4, "1+1\xff");
  auto r = TreeRecordFromJson(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not valid UTF-8"), std::string::npos)
      << r.status().message();
}

// The writer streams to "<path>.partial"; Commit renames it. A run killed before Commit
// leaves every appended tree in the .partial file (here: the writer is moved away, as a
// killed process never runs its destructor, by leaking it).
TEST(TreeRecordTest, StreamingWriterKeepsFinishedTreesBeforeCommit) {
  const std::string dir = ::treepo::testing::FreshTempDir("tree_stream_test");
  const std::string path = dir + "/trees.jsonl";
  auto* w = new TreeFileWriter(std::move(TreeFileWriter::Open(path)).value());
  ASSERT_TRUE(w->Append(Sample()).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  auto partial = ReadTreeFile(path + ".partial");
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  EXPECT_EQ(partial->size(), 1u);
  ASSERT_TRUE(w->Append(Sample()).ok());
  ASSERT_TRUE(w->Commit().ok());
  delete w;
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  EXPECT_EQ(ReadTreeFile(path)->size(), 2u);
  {
    auto dropped = TreeFileWriter::Open(dir + "/dropped.jsonl");
    ASSERT_TRUE(dropped.ok());
    ASSERT_TRUE(dropped->Append(Sample()).ok());
  }  // destroyed uncommitted (an error path): nothing is left
  EXPECT_FALSE(std::filesystem::exists(dir + "/dropped.jsonl.partial"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/dropped.jsonl"));
  std::filesystem::create_directories(dir + "/adir");
  EXPECT_EQ(ReadTreeFile(dir + "/adir").status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace treepo
