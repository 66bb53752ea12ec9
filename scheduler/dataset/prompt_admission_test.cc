#include "scheduler/dataset/prompt_admission.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "scheduler/service/rollout_job.h"
#include "scheduler/service/tree_driver.h"
#include "scheduler/task/task_tokenizer.h"

namespace treepo::scheduler {
namespace {

TEST(PromptAdmissionTest, RoomForTheResponse) {
  EXPECT_EQ(*MaxPromptTokens(512, 24), 488);
  EXPECT_EQ(*MaxPromptTokens(512, 511), 1);  // BOS only
  EXPECT_EQ(MaxPromptTokens(512, 512).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MaxPromptTokens(16, 64).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(MaxPromptTokens(16, 64).status().message().find("16 positions"), std::string::npos);
  EXPECT_EQ(*MaxPromptTokens(0, 64), std::numeric_limits<int64_t>::max());  // context unknown
}

PromptRecord Record(const std::string& id, const std::string& prompt) {
  return PromptRecord{id, prompt, "1", {}};
}

TEST(PromptAdmissionTest, TokenizesEveryPromptAndSkipsTheTooLongOnes) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  // The task tokenizer: BOS, the dummy space, then one token per character here.
  std::vector<PromptRecord> records = {Record("a", "xyz"), Record("b", std::string(100, 'x')),
                                       Record("c", "xyzw"), Record("d", ""), Record("e", "xyzwv")};
  AdmittedPrompts out = AdmitPrompts(records, *tok, /*max_prompt_tokens=*/6);
  ASSERT_EQ(out.records.size(), 3u);
  EXPECT_EQ(out.records[0].id, "a");
  EXPECT_EQ(out.records[1].id, "c");  // 6 tokens: at the limit
  EXPECT_EQ(out.records[2].id, "d");
  EXPECT_EQ(out.records[0].prompt_tokens, tok->Encode("xyz", true));
  EXPECT_EQ(out.records[1].prompt_tokens.size(), 6u);
  EXPECT_EQ(out.records[2].prompt_tokens, std::vector<int32_t>{tok->bos_id()});
  EXPECT_EQ(out.records[0].answer, "1");
  ASSERT_EQ(out.skipped.size(), 2u);
  EXPECT_EQ(out.skipped[0].index, 1u);
  EXPECT_EQ(out.skipped[0].id, "b");
  EXPECT_EQ(out.skipped[0].tokens, 102);
  EXPECT_EQ(out.skipped[1].index, 4u);
  EXPECT_EQ(out.skipped[1].tokens, 7);
}

// The query driver takes the tokens made at load time instead of tokenizing on the
// scheduler's loop.
TEST(PromptAdmissionTest, TheDriverUsesTheLoadTimeTokens) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  auto tokenizer = std::make_shared<const model::Tokenizer>(std::move(*tok));
  PromptRecord r = Record("a", "1+1=?");
  r.prompt_tokens = {1, 300, 301, 302};  // not what Encode gives: must be used as is
  auto records = std::make_shared<const std::vector<PromptRecord>>(std::vector<PromptRecord>{r});
  RolloutJobOptions job;
  auto setup = MakeTreeDriverSetup(job, records, tokenizer);
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  auto driver = setup->factory(0);
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  auto tasks = (*driver)->TakeTasks();
  ASSERT_TRUE(tasks.ok());
  ASSERT_FALSE(tasks->empty());
  EXPECT_EQ((*tasks)[0].prefix_tokens, r.prompt_tokens);
}

}  // namespace
}  // namespace treepo::scheduler
