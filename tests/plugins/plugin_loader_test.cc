// The plug-in loader (common/plugin/plugin_loader.h) and the registries it fills, with the
// example plug-ins and the broken ones built beside this test (CMakeLists.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "cluster/plugins.h"
#include "common/config.h"
#include "learner/advantage/advantage.h"
#include "scheduler/reward/reward_fn.h"
#include "scheduler/tree/policies.h"
#include "scheduler/tree/stop_rules.h"
#include "worker/engine/engine.h"
#include "worker/engine/sampler.h"

namespace treepo {
namespace {

bool Has(const std::vector<std::string>& names, const std::string& n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

TEST(PluginLoaderTest, ExampleRewardScoresThroughTheRegistry) {
  ASSERT_TRUE(cluster::LoadPluginFiles({EXAMPLE_REWARD_SO}).ok());
  EXPECT_TRUE(Has(scheduler::RewardFnNames(), "boxed_exact"));
  EXPECT_EQ(scheduler::RewardFnNames().front(), "math");  // built-ins first
  scheduler::RewardOptions o;
  o.name = "boxed_exact";
  auto fn = scheduler::MakeRewardFn(o);
  ASSERT_TRUE(fn.ok()) << fn.status().ToString();
  EXPECT_EQ((*fn)->name(), "boxed_exact");
  scheduler::RewardResult r = (*fn)->Score("so \\boxed{1} then \\boxed{ 18 }", " 18");
  EXPECT_EQ(r.reward, 1.0f);
  EXPECT_EQ(r.extracted, "18");
  EXPECT_EQ((*fn)->Score("\\boxed{17}", "18").reward, 0.0f);
  EXPECT_EQ((*fn)->Score("no box", "18").reward, -1.0f);
  // The overlong wrapper applies to a plug-in's reward like to a built-in's.
  o.overlong_max_tokens = 10;
  o.overlong_buffer_tokens = 4;
  auto penalised = scheduler::MakeRewardFn(o);
  ASSERT_TRUE(penalised.ok());
  EXPECT_FLOAT_EQ((*penalised)->Score("\\boxed{18}", "18", 8).reward, 1.0f - 2.0f / 4.0f);
  // Loading the same library again (every process loads the configured list) is a no-op.
  EXPECT_TRUE(cluster::LoadPluginFiles({EXAMPLE_REWARD_SO}).ok());
}

TEST(PluginLoaderTest, ExampleEstimatorComputesThroughTheRegistry) {
  ASSERT_TRUE(cluster::LoadPluginFiles({EXAMPLE_ESTIMATOR_SO}).ok());
  auto est = learner::MakeAdvantageEstimator("centered_return");
  ASSERT_TRUE(est.ok()) << est.status().ToString();
  EXPECT_TRUE((*est)->whiten());
  learner::QueryLeaves q;
  q.query_id = "q1";
  const float rewards[] = {1.0f, -1.0f, -1.0f, 0.5f};
  for (int i = 0; i < 4; ++i) {
    learner::LeafSample l;
    l.node = 10 + i;
    l.reward = rewards[i];
    l.path = {1, static_cast<uint64_t>(10 + i)};
    l.tokens = 3;
    q.leaves.push_back(l);
  }
  const std::vector<double> a = (*est)->Compute(q);
  const double mean = (1.0 - 1.0 - 1.0 + 0.5) / 4;
  ASSERT_EQ(a.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(a[i], rewards[i] - mean) << i;
  EXPECT_TRUE((*est)->Compute(learner::QueryLeaves{}).empty());
}

TEST(PluginLoaderTest, ConfigListLoadsEveryLibrary) {
  Config c;
  ASSERT_TRUE(
      c.Set(std::string("plugins=") + EXAMPLE_REWARD_SO + ", " + EXAMPLE_ESTIMATOR_SO).ok());
  auto paths = cluster::LoadConfiguredPlugins(c);
  ASSERT_TRUE(paths.ok()) << paths.status().ToString();
  EXPECT_EQ(paths->size(), 2u);
  EXPECT_TRUE(c.CheckAllConsumed().ok());
  Config none;
  auto empty = cluster::LoadConfiguredPlugins(none);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

void ExpectRefused(const std::string& path, StatusCode code, const std::string& why) {
  const Status st = cluster::LoadPluginFiles({path});
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_NE(st.message().find(path), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
}

TEST(PluginLoaderTest, BadLibrariesAreRefusedWithTheReason) {
  ExpectRefused("/nonexistent/libnothing.so", StatusCode::kNotFound, "no such file");
  ExpectRefused(BAD_ABI_SO, StatusCode::kFailedPrecondition, "ABI version");
  ExpectRefused(NOT_A_PLUGIN_SO, StatusCode::kFailedPrecondition, "not a treepo plug-in");
  ExpectRefused(BAD_DUPLICATE_SO, StatusCode::kInvalidArgument, "'math' is already registered");
  ExpectRefused(BAD_INIT_SO, StatusCode::kInvalidArgument, "failed with code 7");
  // A file that is not a shared library at all.
  ExpectRefused(std::string(TREEPO_SOURCE_DIR_DEFAULT) + "/tests/plugins/example_reward.c",
                StatusCode::kFailedPrecondition, "cannot load");
  // The built-in reward is untouched by the refused duplicate.
  auto math = scheduler::MakeRewardFn({});
  ASSERT_TRUE(math.ok());
  EXPECT_EQ((*math)->Score("\\boxed{18}", "18").reward, 1.0f);
}

// Stop rules and branching policies through the same C descriptors a plug-in hands over.
int32_t StopOnX(void*, const TreepoSegmentView* s) {
  for (size_t i = 0; i < s->text.size; ++i) {
    if (s->text.data[i] == 'X') return TREEPO_STOP_REPETITION;
  }
  return TREEPO_STOP_NONE;
}

void AllButOneToFirst(void*, int32_t total, const TreepoBranchPath*, size_t n, int32_t* counts) {
  for (size_t i = 0; i < n; ++i) counts[i] = 1;
  counts[0] += total - static_cast<int32_t>(n);
}

TEST(PluginLoaderTest, StopRuleAndBranchingDescriptorsJoinTheirRegistries) {
  char name[] = "stop_on_x";
  ASSERT_TRUE(scheduler::RegisterStopRulePlugin({name, nullptr, StopOnX}).ok());
  name[0] = '?';  // the registry copied the name
  scheduler::StopOptions so;
  so.extra_rules = {"stop_on_x"};
  auto rules = scheduler::MakeStopRules(so);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_EQ(rules->rules().back()->name(), "stop_on_x");
  scheduler::SegmentView v;
  v.text = "abXc";
  v.response_tokens = 4;
  v.depth = 1;
  v.max_depth = 4;
  v.max_response_tokens = 64;
  EXPECT_EQ(rules->Check(v), FinishReason::kRepetition);
  v.text = "abc";
  EXPECT_EQ(rules->Check(v), std::nullopt);
  so.extra_rules = {"stop_on_y"};
  auto unknown = scheduler::MakeStopRules(so);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("stop_on_x"), std::string::npos);

  ASSERT_TRUE(scheduler::RegisterBranchingPlugin({"first_heavy", nullptr, AllButOneToFirst}).ok());
  EXPECT_EQ(scheduler::RegisterBranchingPlugin({"first_heavy", nullptr, AllButOneToFirst}).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(scheduler::RegisterBranchingPlugin({"no_fn", nullptr, nullptr}).code(),
            StatusCode::kInvalidArgument);
  scheduler::BranchingOptions bo;
  bo.policy = "first_heavy";
  auto policy = scheduler::MakeBranchingPolicy(bo);
  ASSERT_TRUE(policy.ok());
  std::vector<scheduler::BranchPath> paths(3);
  EXPECT_EQ((*policy)->Split(7, paths), (std::vector<int>{5, 1, 1}));
}

// A sampler plug-in that always takes the last token; its log-prob under softmax(logits).
TreepoSample LastToken(void*, const float* logits, int32_t vocab, const TreepoSamplingParams*,
                       uint64_t) {
  double sum = 0.0;
  for (int32_t i = 0; i < vocab; ++i) sum += std::exp(logits[i]);
  return {vocab - 1, static_cast<float>(logits[vocab - 1] - std::log(sum))};
}

TEST(PluginLoaderTest, SamplerDescriptorDrivesTheEngine) {
  ASSERT_TRUE(worker::RegisterSamplerPlugin({"last_token", nullptr, LastToken}).ok());
  auto sampler = worker::TokenSamplers().Make("last_token");
  ASSERT_TRUE(sampler.ok());
  const float logits[] = {0.0f, 1.0f, std::log(2.0f)};
  std::mt19937_64 rng(1);
  const worker::Sample s = (*sampler)->Draw(logits, 3, {}, &rng);
  EXPECT_EQ(s.token, 2);
  EXPECT_NEAR(s.logprob, std::log(2.0 / (1.0 + std::exp(1.0) + 2.0)), 1e-6);
  // An engine built with it decodes the last token every time; an unknown name is refused.
  model::ModelConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2;
  c.vocab_size = 9, c.max_seq_len = 32;
  auto w = model::ModelWeights::Random(c, 3);
  ASSERT_TRUE(w.ok());
  auto weights = std::make_shared<const model::ModelWeights>(std::move(*w));
  worker::EngineOptions eo;
  eo.kv.page_size = 4;
  eo.kv.num_pages = 16;
  eo.sampler = "no_such_sampler";
  auto bad = worker::Engine::Create(weights, WeightVersion(0), eo);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("last_token"), std::string::npos);
  eo.sampler = "last_token";
  auto engine = worker::Engine::Create(weights, WeightVersion(0), eo);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  worker::SegmentRequest req;
  req.task = TaskId(1);
  req.prefix_tokens = {1, 2, 3};
  req.children = {NodeId(11)};
  req.seeds = {5};
  req.max_new_tokens = 4;
  req.sampling.stop_at_eos = false;
  req.keep_kv = false;
  ASSERT_TRUE((*engine)->Submit(req).ok());
  std::vector<int32_t> tokens;
  for (const worker::SegmentResult& r : (*engine)->RunUntilIdle()) {
    for (const worker::ChildResult& ch : r.children) tokens = ch.tokens;
  }
  EXPECT_EQ(tokens, (std::vector<int32_t>{8, 8, 8, 8}));
}

}  // namespace
}  // namespace treepo
