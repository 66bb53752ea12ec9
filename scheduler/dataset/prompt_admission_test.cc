#include "scheduler/dataset/prompt_admission.h"

#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <memory>

#include "common/model/hf_tokenizer_testing.h"
#include "common/testing/paths.h"
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
  auto encoder = PromptEncoder::Create(model::WrapTokenizer(*tok), ChatModeOptions(), "");
  ASSERT_TRUE(encoder.ok()) << encoder.status().ToString();
  auto admitted = AdmitPrompts(records, *encoder, /*max_prompt_tokens=*/6);
  ASSERT_TRUE(admitted.ok()) << admitted.status().ToString();
  AdmittedPrompts& out = *admitted;
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
  std::shared_ptr<const model::TextTokenizer> tokenizer = model::WrapTokenizer(std::move(*tok));
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

// A model directory with the task tokenizer and a small chat template in tokenizer_config.json.
std::string ChatModelDir(const std::string& name, const std::string& chat_template) {
  const std::string dir = testing::FreshTempDir(name);
  nlohmann::json config = {{"chat_template", chat_template}, {"eos_token", "</s>"}};
  std::ofstream(dir + "/tokenizer_config.json") << config.dump();
  return dir;
}

constexpr const char* kTemplate =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

TEST(PromptEncoderTest, ChatModeRendersThePromptAsAUserMessage) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  std::shared_ptr<const model::TextTokenizer> tokenizer = model::WrapTokenizer(std::move(*tok));
  const std::string dir = ChatModelDir("chat_mode", kTemplate);
  ChatModeOptions chat;
  chat.enabled = true;
  chat.system_prompt = "Be brief.";
  chat.instruction_suffix = " Box it.";
  auto e = PromptEncoder::Create(tokenizer, chat, dir);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(e->chat());
  EXPECT_EQ(*e->Render("1+1=?"), "<system>Be brief.\n<user>1+1=? Box it.\n<assistant>");
  // Tokenized without the sequence start: the template writes what the model needs.
  EXPECT_EQ(*e->Encode("1+1=?"),
            tokenizer->Encode("<system>Be brief.\n<user>1+1=? Box it.\n<assistant>", false));
  // Without a system prompt the conversation is the user's message alone.
  chat.system_prompt.clear();
  e = PromptEncoder::Create(tokenizer, chat, dir);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e->Render("x"), "<user>x Box it.\n<assistant>");
  // Admission measures the rendered prompt.
  std::vector<PromptRecord> records = {Record("a", "x"), Record("b", "xxxxxxxxxxxxxxxxxxxx")};
  auto admitted = AdmitPrompts(records, *e, /*max_prompt_tokens=*/30);
  ASSERT_TRUE(admitted.ok());
  ASSERT_EQ(admitted->records.size(), 1u);
  EXPECT_EQ(admitted->records[0].prompt, "x");  // the record keeps the raw prompt
  EXPECT_EQ(admitted->records[0].prompt_tokens, *e->Encode("x"));
  EXPECT_EQ(admitted->skipped.size(), 1u);
}

TEST(PromptEncoderTest, BadChatSettingsAreRefused) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  std::shared_ptr<const model::TextTokenizer> tokenizer = model::WrapTokenizer(std::move(*tok));
  ChatModeOptions chat;
  chat.instruction_suffix = "x";  // without chat = true
  auto e = PromptEncoder::Create(tokenizer, chat, "");
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("chat = true"), std::string::npos);
  chat = ChatModeOptions();
  chat.enabled = true;
  chat.enable_thinking = "maybe";
  e = PromptEncoder::Create(tokenizer, chat, "");
  EXPECT_NE(e.status().message().find("enable_thinking"), std::string::npos);
  // No tokenizer_config.json: chat mode cannot run.
  chat.enable_thinking.clear();
  e = PromptEncoder::Create(tokenizer, chat, testing::FreshTempDir("no_chat_template"));
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_NE(e.status().message().find("chat template"), std::string::npos);
  // A template that raises on a prompt fails the set, naming the record.
  chat.enabled = true;
  const std::string dir =
      ChatModelDir("chat_raise",
                   "{% if messages[0].content == 'bad' %}{{ raise_exception('no') }}{% endif %}ok");
  e = PromptEncoder::Create(tokenizer, chat, dir);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  auto admitted = AdmitPrompts({Record("good", "fine"), Record("q7", "bad")}, *e, 100);
  EXPECT_EQ(admitted.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(admitted.status().message().find("q7"), std::string::npos);
}

// The real Qwen3 tokenizer and template: the prompt becomes
// <|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n, with special tokens as single ids.
TEST(PromptEncoderTest, Qwen3ChatPrompt) {
  if (!testing::HfTokenizerPresent("qwen3")) GTEST_SKIP() << testing::kHfTokenizerSkip;
  const std::string dir = testing::HfTokenizerModelDir("qwen3");
  auto tokenizer = LoadModelTokenizer("", dir, 0);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  ChatModeOptions chat;
  chat.enabled = true;
  chat.instruction_suffix = "\nPut the final answer in \\boxed{}.";
  chat.enable_thinking = "false";
  auto e = PromptEncoder::Create(*tokenizer, chat, dir);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string text = *e->Render("What is 2+3?");
  EXPECT_EQ(text,
            "<|im_start|>user\nWhat is 2+3?\nPut the final answer in \\boxed{}.<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  const std::vector<int32_t> ids = *e->Encode("What is 2+3?");
  EXPECT_EQ(ids.front(), *(*tokenizer)->TokenToId("<|im_start|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *(*tokenizer)->TokenToId("<|im_end|>")), 1);
  EXPECT_EQ((*tokenizer)->Decode(ids, false), text);
}

}  // namespace
}  // namespace treepo::scheduler
