// configs/default.toml against the option structs' defaults, for the keys of the RL loop's
// waits and the scheduler's task deadlines: the example config must say what the code does.
#include <gtest/gtest.h>

#include "common/config.h"
#include "common/testing/paths.h"
#include "scheduler/rl/rl_loop.h"

namespace treepo::scheduler {
namespace {

TEST(RlOptionsTest, DefaultTomlMatchesTheStructDefaultsForTimeoutsAndDeadlines) {
  Result<Config> c = Config::LoadTomlFile(testing::SourceDir() + "/configs/default.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (const char* key : {"sync.wait_learner_timeout_ms", "sync.train_timeout_ms",
                          "scheduler.wait_workers_timeout_ms", "scheduler.task_deadline_floor_ms",
                          "scheduler.task_deadline_multiplier", "scheduler.assumed_tokens_per_s",
                          "scheduler.max_missed_deadlines", "scheduler.max_task_deadline_misses",
                          "learner.on_failure", "learner.max_restarts"}) {
    EXPECT_TRUE(c->Has(key)) << key << " is not documented in configs/default.toml";
  }
  RlOptions loaded;
  ASSERT_TRUE(LoadRlOptions(*c, &loaded).ok());
  const RlOptions defaults;
  EXPECT_EQ(loaded.wait_learner_timeout_ms, defaults.wait_learner_timeout_ms);
  EXPECT_EQ(loaded.train_timeout_ms, defaults.train_timeout_ms);
  EXPECT_EQ(loaded.learner_on_failure, defaults.learner_on_failure);
  EXPECT_EQ(loaded.max_learner_restarts, defaults.max_learner_restarts);
  EXPECT_EQ(loaded.rollout.wait_workers_timeout_ms, defaults.rollout.wait_workers_timeout_ms);
  const DispatchLimits& l = loaded.rollout.service.dispatch;
  const DispatchLimits& d = defaults.rollout.service.dispatch;
  EXPECT_EQ(l.deadline_floor_ms, d.deadline_floor_ms);
  EXPECT_DOUBLE_EQ(l.deadline_multiplier, d.deadline_multiplier);
  EXPECT_DOUBLE_EQ(l.assumed_tokens_per_s, d.assumed_tokens_per_s);
  EXPECT_EQ(l.max_missed_deadlines, d.max_missed_deadlines);
  EXPECT_EQ(l.max_task_deadline_misses, d.max_task_deadline_misses);
  EXPECT_TRUE(loaded.rollout.service.Validate().ok());
}

TEST(RlOptionsTest, DefaultTomlDocumentsTheDashboardWithTheStructDefaults) {
  Result<Config> c = Config::LoadTomlFile(testing::SourceDir() + "/configs/default.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (const char* key :
       {"dashboard.enabled", "dashboard.bind", "dashboard.token", "dashboard.publish_interval_ms",
        "dashboard.push_interval_ms", "dashboard.finished_trees", "dashboard.max_events",
        "dashboard.max_connections"}) {
    EXPECT_TRUE(c->Has(key)) << key << " is not documented in configs/default.toml";
  }
  RlOptions loaded;
  ASSERT_TRUE(LoadRlOptions(*c, &loaded).ok());
  const dashboard::DashboardOptions& l = loaded.rollout.dashboard;
  const dashboard::DashboardOptions d;
  EXPECT_TRUE(l.enabled);  // on for `train`; the struct (and `rollout`) default is off
  EXPECT_EQ(l.bind, d.bind);
  EXPECT_EQ(l.token, d.token);
  EXPECT_EQ(l.publish_interval_ms, d.publish_interval_ms);
  EXPECT_EQ(l.push_interval_ms, d.push_interval_ms);
  EXPECT_EQ(l.finished_trees, d.finished_trees);
  EXPECT_EQ(l.max_events, d.max_events);
  EXPECT_EQ(l.max_connections, d.max_connections);
  EXPECT_TRUE(l.Validate().ok());
}

TEST(RlOptionsTest, BadDeadlineKeysAreRejected) {
  Config c;
  ASSERT_TRUE(c.Set("scheduler.task_deadline_multiplier=-1").ok());
  RlOptions o;
  ASSERT_TRUE(LoadRlOptions(c, &o).ok());
  EXPECT_EQ(o.rollout.service.Validate().code(), StatusCode::kInvalidArgument);
  Config t;
  ASSERT_TRUE(t.Set("sync.train_timeout_ms=0").ok());
  RlOptions o2;
  ASSERT_TRUE(LoadRlOptions(t, &o2).ok());
  EXPECT_EQ(o2.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::scheduler
