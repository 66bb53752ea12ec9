#include "scheduler/service/rollout_job.h"

#include <gtest/gtest.h>

#include <string>

namespace treepo::scheduler {
namespace {

Status Load(const std::string& assignment) {
  Config c;
  c.SetValue("tokenizer", "tok.bin");
  c.SetValue("prompts", "p.jsonl");
  c.SetValue("vocab_size", "512");
  if (!assignment.empty()) {
    EXPECT_TRUE(c.Set(assignment).ok());
  }
  RolloutJobOptions o;
  return LoadRolloutJobOptions(c, &o);
}

// Sampling parameters are refused where they are loaded, before any worker could drop a
// task batch over them and leave the rollout waiting.
TEST(RolloutJobTest, SamplingParametersOutOfRangeAreRefusedAtLoad) {
  EXPECT_TRUE(Load("").ok());
  EXPECT_TRUE(Load("temperature=0").ok());  // greedy
  for (const char* bad : {"temperature=-1", "temperature=nan", "temperature=inf", "top_p=0",
                          "top_p=1.5", "top_p=nan", "top_k=-1"}) {
    const Status s = Load(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(s.message().find(key), std::string::npos) << bad << ": " << s.message();
  }
  EXPECT_FALSE(Load("width=1000000000").ok());
}

// A worker names itself, so its name may be any bytes: the summary replaces what is not
// UTF-8 instead of throwing (which used to abort the scheduler and lose the summary).
TEST(RolloutJobTest, SummaryOfAWorkerWithANonUtf8NameIsWritten) {
  RolloutOutput out;
  WorkerUsage w;
  w.worker = WorkerId(3);
  w.name = "worker-\xff\xfe";
  out.stats.workers.push_back(w);
  std::string json;
  EXPECT_NO_THROW(json = RolloutSummaryJson(out, RolloutJobOptions()));
  EXPECT_NE(json.find("worker-\xef\xbf\xbd"), std::string::npos) << json;
}

}  // namespace
}  // namespace treepo::scheduler
