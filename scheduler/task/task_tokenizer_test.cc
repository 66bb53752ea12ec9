#include "scheduler/task/task_tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "common/model/tokenizer_test_util.h"
#include "scheduler/task/arithmetic_task.h"

namespace treepo::scheduler {
namespace {

TEST(TaskTokenizerTest, SmallVocabularyInLlama2cLayout) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->vocab_size(), 363);
  EXPECT_EQ(tok->piece(0), "<unk>");
  EXPECT_EQ(tok->piece(3), "<0x00>");
  EXPECT_EQ(tok->piece(258), "<0xFF>");
  for (int i = 259; i < tok->vocab_size(); ++i) {
    EXPECT_TRUE(tok->piece(i).size() == 1 || tok->piece(i)[0] != ' ') << i;
  }
}

TEST(TaskTokenizerTest, BoxMergesIntoOneToken) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> ids = EncodeContinuation(*tok, " \\boxed{12}");
  ASSERT_EQ(ids.size(), 5u);  // " ", "\boxed{", "1", "2", "}"
  EXPECT_EQ(tok->piece(ids[1]), "\\boxed{");
  const std::vector<int32_t> q = tok->Encode("Q: 1+2=?\nA:", true);
  EXPECT_EQ(tok->piece(q[2]), "Q:");
  EXPECT_EQ(tok->piece(q.back()), "A:");
}

TEST(TaskTokenizerTest, EveryProblemRoundTrips) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  ArithmeticOptions o;
  o.min_digits = 1;
  o.max_digits = 4;
  o.max_terms = 5;
  o.subtract_prob = 0.4;
  o.multiply_prob = 0.2;
  auto task = ArithmeticTask::Create(o);
  ASSERT_TRUE(task.ok());
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    const ArithmeticProblem p = task->Generate(rng);
    const std::string text = p.prompt + p.solution;
    std::vector<int32_t> whole = tok->Encode(text, true);
    for (size_t j = 1; j < whole.size(); ++j) ASSERT_GE(whole[j], 259) << "byte token in " << text;
    EXPECT_EQ(tok->Decode(whole), text);
    // Prompt then continuation gives the same ids as encoding the whole text.
    std::vector<int32_t> split = tok->Encode(p.prompt, true);
    split.erase(split.begin());  // BOS
    const std::vector<int32_t> cont = EncodeContinuation(*tok, p.solution);
    std::vector<int32_t> joined = {tok->bos_id()};
    joined.insert(joined.end(), split.begin(), split.end());
    joined.insert(joined.end(), cont.begin(), cont.end());
    ASSERT_EQ(joined, whole) << text;
    joined.push_back(tok->eos_id());
    EXPECT_EQ(tok->Decode(joined), text);
  }
}

// The merge-queue encoder gives llama2.c's tokens on the task's problems and random text.
TEST(TaskTokenizerTest, EncodesLikeLlama2csLoop) {
  auto tok = BuildTaskTokenizer();
  ASSERT_TRUE(tok.ok());
  const model::testing::ReferenceEncoder ref(*tok);
  auto task = ArithmeticTask::Create(ArithmeticOptions{});
  ASSERT_TRUE(task.ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i) {
    const ArithmeticProblem p = task->Generate(rng);
    const std::string text = p.prompt + p.solution;
    ASSERT_EQ(tok->Encode(text, true), ref.Encode(text, true)) << text;
  }
  for (int i = 0; i < 1000; ++i) {
    const size_t bytes = i % 10 == 0 ? rng() % 800 : rng() % 100;
    const std::string text = model::testing::RandomText(*tok, rng, bytes);
    ASSERT_EQ(tok->Encode(text, i % 2 == 0), ref.Encode(text, i % 2 == 0)) << text;
  }
}

}  // namespace
}  // namespace treepo::scheduler
