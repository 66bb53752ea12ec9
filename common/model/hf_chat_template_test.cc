#include "common/model/hf_chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/model/hf_tokenizer_testing.h"
#include "common/testing/paths.h"

namespace treepo::model {
namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Qwen2.5, Qwen3, Llama 3 and Llama 3.1 templates against jinja2 as apply_chat_template sets
// it up (tests/reference/gen_chat_template_reference.py), byte for byte.
TEST(ChatTemplate, RendersLikeHuggingFace) {
  const ojson ref = ojson::parse(ReadFile(testing::TestDataPath("chat_template_reference.json")));
  int n = 0;
  for (const ojson& c : ref["cases"]) {
    const std::string name = c["template"];
    const std::string source = ReadFile(testing::TestDataPath("chat_templates/" + name));
    auto t = ChatTemplate::FromSource(source, json::parse(c["special_tokens"].dump()));
    ASSERT_TRUE(t.ok()) << name << ": " << t.status().ToString();
    auto r = t->Render(c["messages"], c["add_generation_prompt"].get<bool>(), c["extra"]);
    const std::string what = name + " / " + c["title"].get<std::string>() +
                             (c["add_generation_prompt"].get<bool>() ? " / generation prompt" : "");
    if (c["error"].is_string()) {
      EXPECT_FALSE(r.ok()) << what;
      continue;
    }
    ASSERT_TRUE(r.ok()) << what << ": " << r.status().ToString();
    EXPECT_EQ(*r, c["rendered"].get<std::string>()) << what;
    ++n;
  }
  EXPECT_GE(n, 60);
}

TEST(ChatTemplate, LoadsTheConfigOfARealTokenizer) {
  if (!testing::HfTokenizerPresent("qwen3")) GTEST_SKIP() << testing::kHfTokenizerSkip;
  auto t = ChatTemplate::Load(testing::HfTokenizerModelDir("qwen3") + "/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t->eos_token().has_value());
  EXPECT_EQ(*t->eos_token(), "<|im_end|>");
  auto r = t->Render(ojson::array({{{"role", "user"}, {"content", "Hi"}}}), true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RendersAMathPromptInChatForm) {
  auto t = ChatTemplate::FromSource(ReadFile(testing::TestDataPath("chat_templates/qwen2.5.jinja")),
                                    json::object());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ChatPromptOptions o;
  o.instruction_suffix = "\nPut the final answer in \\boxed{}.";
  auto r = t->RenderPrompt("What is 1+1?", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Qwen2.5 brings its own system message when none is given.
  EXPECT_EQ(*r,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nWhat is 1+1?\nPut the final answer in "
            "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n");
  o.system_prompt = "Reason step by step.";
  r = t->RenderPrompt("2*3?", o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r,
            "<|im_start|>system\nReason step by step.<|im_end|>\n<|im_start|>user\n2*3?\nPut the "
            "final answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ReportsBadInput) {
  auto t = ChatTemplate::FromSource("{{ raise_exception('no system role') }}", json::object());
  ASSERT_TRUE(t.ok());
  auto r = t->Render(ojson::array(), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no system role"), std::string::npos);
  EXPECT_FALSE(t->Render(ojson::object(), false).ok());
  EXPECT_FALSE(t->Render(ojson::array({{{"content", "no role"}}}), false).ok());
  EXPECT_FALSE(ChatTemplate::FromSource("{% if %}", json::object()).ok());
  const std::string dir = testing::FreshTempDir("chat_template_load");
  EXPECT_EQ(ChatTemplate::Load(dir).status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "</s>"})";
  EXPECT_EQ(ChatTemplate::Load(dir).status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"eos_token": {"content": "</s>"}, "chat_template": [{"name": "default", "template": "{{ eos_token }}"}]})";
  auto named = ChatTemplate::Load(dir + "/config.json");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(*named->Render(ojson::array(), false), "</s>");
}

}  // namespace
}  // namespace treepo::model
