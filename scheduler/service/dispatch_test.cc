// Unit tests of the worker registry (fake clock) and the dispatcher (affinity, capacity
// fallback, prefix attachment, rejection, worker death, and task deadlines on a fake clock).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "scheduler/service/dispatcher.h"
#include "scheduler/service/worker_registry.h"

namespace treepo::scheduler {
namespace {

class FakeClock final : public Clock {
 public:
  int64_t NowMs() const override { return now_; }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  int64_t now_ = 1000;
};

protocols::RegisterWorker Reg(const std::string& name) {
  protocols::RegisterWorker r;
  r.worker_name = name;
  r.page_capacity = 100;
  r.page_size = 16;
  return r;
}

TaskSpec Spec(uint64_t task, uint64_t parent, std::vector<uint64_t> children) {
  TaskSpec s;
  s.task.task_id = TaskId(task);
  s.task.query_id = QueryId(1);
  s.task.parent_node_id = NodeId(parent);
  for (uint64_t c : children) {
    s.task.child_node_ids.push_back(NodeId(c));
    s.task.child_seeds.push_back(c);
  }
  s.task.max_new_tokens = 4;
  s.query = QueryId(1);
  s.parent_tokens = {1, 5, 6, 7};
  return s;
}

TEST(WorkerRegistryTest, DeathAfterHeartbeatTimeoutWithFakeClock) {
  FakeClock clock;
  WorkerRegistry reg(&clock, 500);
  std::optional<WorkerId> replaced;
  const WorkerEntry a = reg.AddWorker("pa", Reg("a"), &replaced);
  const WorkerEntry b = reg.AddWorker("pb", Reg("b"), &replaced);
  EXPECT_NE(a.epoch, b.epoch);
  EXPECT_EQ(reg.live_count(), 2);
  clock.Advance(400);
  ASSERT_TRUE(reg.Authenticate("pa", a.id.value(), a.epoch).ok());  // a is heard from
  clock.Advance(200);
  EXPECT_EQ(reg.ReapDead(), std::vector<WorkerId>{b.id});
  EXPECT_EQ(reg.LiveWorkers(), std::vector<WorkerId>{a.id});
  // Messages of the dead registration are fenced.
  EXPECT_EQ(reg.Authenticate("pb", b.id.value(), b.epoch).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(reg.Authenticate("pa", a.id.value(), a.epoch + 7).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(reg.Authenticate("px", 99, 1).status().code(), StatusCode::kNotFound);
  clock.Advance(501);
  EXPECT_EQ(reg.ReapDead(), std::vector<WorkerId>{a.id});
  EXPECT_EQ(reg.live_count(), 0);
}

TEST(WorkerRegistryTest, ReRegistrationOnSamePeerReplacesTheOldEntry) {
  FakeClock clock;
  WorkerRegistry reg(&clock, 500);
  std::optional<WorkerId> replaced;
  const WorkerEntry a = reg.AddWorker("pa", Reg("a"), &replaced);
  EXPECT_FALSE(replaced);
  const WorkerEntry a2 = reg.AddWorker("pa", Reg("a"), &replaced);
  ASSERT_TRUE(replaced);
  EXPECT_EQ(*replaced, a.id);
  EXPECT_NE(a2.id, a.id);
  EXPECT_EQ(reg.live_count(), 1);
}

TEST(WorkerRegistryTest, BusyTimeCountsIntervalsWithWorkInFlight) {
  FakeClock clock;
  WorkerRegistry reg(&clock, 500);
  std::optional<WorkerId> replaced;
  const WorkerId id = reg.AddWorker("pa", Reg("a"), &replaced).id;
  reg.AddInFlight(reg.Find(id), 1, 2);
  clock.Advance(30);
  reg.AddInFlight(reg.Find(id), -1, -2);
  clock.Advance(50);
  reg.AddInFlight(reg.Find(id), 1, 1);
  clock.Advance(20);
  EXPECT_DOUBLE_EQ(reg.BusyMs(id), 50.0);
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : reg_(&clock_, 500) {
    std::optional<WorkerId> replaced;
    w1_ = reg_.AddWorker("p1", Reg("w1"), &replaced).id;
    w2_ = reg_.AddWorker("p2", Reg("w2"), &replaced).id;
  }
  FakeClock clock_;
  WorkerRegistry reg_;
  WorkerId w1_, w2_;
};

TEST_F(DispatcherTest, RootTaskCarriesPromptAndChildrenStayOnTheirHolder) {
  DispatchLimits limits;
  Dispatcher d(&reg_, limits);
  d.Enqueue(Spec(1, 0, {10, 11}));
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  const WorkerId root_worker = batches.begin()->first;
  EXPECT_EQ(batches.begin()->second.tasks[0].prefix_tokens, (std::vector<int32_t>{1, 5, 6, 7}));
  ASSERT_TRUE(d.Complete(TaskId(1), root_worker));
  EXPECT_EQ(d.holders().Holders(NodeId(10)), std::vector<WorkerId>{root_worker});

  // Both children continue where their parents' pages are, without a prefix, even though the
  // other worker is idle.
  d.Enqueue(Spec(2, 10, {20}));
  d.Enqueue(Spec(3, 11, {21}));
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches.begin()->first, root_worker);
  ASSERT_EQ(batches.begin()->second.tasks.size(), 2u);  // one batch per worker per turn
  for (const auto& t : batches.begin()->second.tasks) EXPECT_TRUE(t.prefix_tokens.empty());
}

TEST_F(DispatcherTest, HolderAtCapacityFallsBackToLeastLoadedWithPrefix) {
  DispatchLimits limits;
  limits.max_tasks_per_worker = 1;
  Dispatcher d(&reg_, limits);
  d.holders().Add(NodeId(10), QueryId(1), w1_);
  d.holders().Add(NodeId(11), QueryId(1), w1_);
  d.Enqueue(Spec(2, 10, {20}));
  d.Enqueue(Spec(3, 11, {21}));
  d.Enqueue(Spec(4, 11, {22}));
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  EXPECT_TRUE(batches[w1_].tasks[0].prefix_tokens.empty());
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  EXPECT_EQ(batches[w2_].tasks[0].task_id, TaskId(3));
  EXPECT_EQ(batches[w2_].tasks[0].prefix_tokens, (std::vector<int32_t>{1, 5, 6, 7}));
  EXPECT_EQ(d.queued(), 1u);  // task 4 waits for room
  // w2 prefilled node 11: it holds it now too.
  ASSERT_TRUE(d.Complete(TaskId(3), w2_));
  EXPECT_EQ(d.holders().Holders(NodeId(11)), (std::vector<WorkerId>{w1_, w2_}));
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_TRUE(batches[w2_].tasks[0].prefix_tokens.empty());
}

TEST_F(DispatcherTest, SequenceLimitAndHeartbeatPagesSteerNewPrefixes) {
  DispatchLimits limits;
  limits.max_sequences_per_worker = 4;
  limits.min_free_pages = 8;
  Dispatcher d(&reg_, limits);
  protocols::Heartbeat hb;
  hb.worker_id = w2_;
  hb.free_pages = 2;
  reg_.RecordHeartbeat(reg_.Find(w2_), hb);
  d.Enqueue(Spec(1, 0, {10, 11, 12}));
  d.Enqueue(Spec(2, 0, {13, 14, 15}));
  auto batches = d.Assign();
  // w2 is short of pages, w1 has room for one task of 3.
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[w1_].tasks.size(), 1u);
  EXPECT_EQ(d.queued(), 1u);
}

TEST_F(DispatcherTest, RejectionRetriesElsewhereAndLateResultsAreFenced) {
  Dispatcher d(&reg_, DispatchLimits{});
  d.holders().Add(NodeId(10), QueryId(1), w1_);
  d.Enqueue(Spec(2, 10, {20}));
  d.Enqueue(Spec(5, 10, {25}));
  auto batches = d.Assign();
  ASSERT_EQ(batches[w1_].tasks.size(), 2u);
  ASSERT_TRUE(d.Reject(TaskId(2), w1_));
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  EXPECT_FALSE(batches[w2_].tasks[0].prefix_tokens.empty());
  EXPECT_FALSE(d.Complete(TaskId(2), w1_));  // no longer on w1
  EXPECT_TRUE(d.Complete(TaskId(2), w2_));
  EXPECT_FALSE(d.Complete(TaskId(2), w2_));  // duplicate
}

TEST_F(DispatcherTest, DeadWorkersTasksAreRequeuedWithPrefixAndItsNodesForgotten) {
  Dispatcher d(&reg_, DispatchLimits{});
  d.holders().Add(NodeId(10), QueryId(1), w1_);
  d.holders().Add(NodeId(11), QueryId(1), w1_);
  d.Enqueue(Spec(2, 10, {20}));
  d.Enqueue(Spec(3, 11, {21}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 2u);
  reg_.MarkDead(w1_);
  EXPECT_EQ(d.WorkerDied(w1_), 2);
  EXPECT_TRUE(d.holders().Holders(NodeId(10)).empty());
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[w2_].tasks.size(), 2u);
  EXPECT_EQ(batches[w2_].tasks[0].task_id, TaskId(2));
  for (const auto& t : batches[w2_].tasks) EXPECT_FALSE(t.prefix_tokens.empty());
  EXPECT_FALSE(d.Complete(TaskId(2), w1_));  // a late result of the dead worker
  EXPECT_EQ(reg_.Find(w2_)->in_flight_tasks, 2);
}

// Deadlines: a root task of 2 children x 4 new tokens + a 4-token prompt is 12 tokens.
DispatchLimits DeadlineLimits() {
  DispatchLimits l;
  l.deadline_floor_ms = 1000;
  l.deadline_multiplier = 2.0;
  l.assumed_tokens_per_s = 1000.0;  // 12 tokens: 24 ms expected, so the floor rules
  l.measure_min_busy_ms = 100;
  return l;
}

TEST_F(DispatcherTest, LateTaskGoesToAnotherWorkerAndTheLateResultIsDropped) {
  Dispatcher d(&reg_, DeadlineLimits());
  d.Enqueue(Spec(1, 0, {10, 11}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  clock_.Advance(999);
  EXPECT_TRUE(d.ExpireLate(clock_.NowMs()).late.empty());
  clock_.Advance(1);
  const Expiry e = d.ExpireLate(clock_.NowMs());
  ASSERT_EQ(e.late.size(), 1u);
  EXPECT_EQ(e.late[0], std::make_pair(TaskId(1), w1_));
  EXPECT_TRUE(e.fence.empty());
  EXPECT_FALSE(e.hopeless);
  EXPECT_EQ(reg_.Find(w1_)->in_flight_tasks, 0);
  // w1 is idle now but may still be running the task: it goes to w2, with the prompt.
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  EXPECT_FALSE(batches[w2_].tasks[0].prefix_tokens.empty());
  // w1's late answer is dropped, and w1 is told to free what it computed for nothing.
  EXPECT_FALSE(d.Complete(TaskId(1), w1_));
  auto releases = d.TakeReleases();
  EXPECT_EQ(releases[w1_], (std::vector<NodeId>{NodeId(10), NodeId(11)}));
  EXPECT_TRUE(d.TakeReleases().empty());
  ASSERT_TRUE(d.Complete(TaskId(1), w2_));
  EXPECT_EQ(d.holders().Holders(NodeId(10)), std::vector<WorkerId>{w2_});
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_EQ(d.queued(), 0u);
}

TEST_F(DispatcherTest, ALateResultCountsWhileItsTaskStillWaits) {
  reg_.MarkDead(w2_);
  Dispatcher d(&reg_, DeadlineLimits());
  d.WorkerDied(w2_);
  d.Enqueue(Spec(1, 0, {10, 11}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  clock_.Advance(1000);
  ASSERT_EQ(d.ExpireLate(clock_.NowMs()).late.size(), 1u);
  EXPECT_TRUE(d.Assign().empty());  // only w1 is left, and it may still be running it
  EXPECT_EQ(d.queued(), 1u);
  std::optional<InFlightTask> t = d.Complete(TaskId(1), w1_);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->worker, w1_);
  EXPECT_EQ(d.queued(), 0u);
  EXPECT_EQ(d.holders().Holders(NodeId(11)), std::vector<WorkerId>{w1_});
  EXPECT_TRUE(d.TakeReleases().empty());
}

TEST_F(DispatcherTest, MissesInARowFenceTheWorkerAndAnAnswerResetsTheCount) {
  DispatchLimits limits = DeadlineLimits();
  limits.max_missed_deadlines = 2;
  limits.measure_min_busy_ms = 1000000;  // the floor rules throughout
  Dispatcher d(&reg_, limits);
  d.holders().Add(NodeId(10), QueryId(1), w1_);  // tasks under node 10 go to w1 first
  // A miss on w1, then an answer from w1, then a miss: no two in a row.
  d.Enqueue(Spec(2, 10, {20}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  clock_.Advance(1000);
  Expiry e = d.ExpireLate(clock_.NowMs());
  ASSERT_EQ(e.late.size(), 1u);
  EXPECT_TRUE(e.fence.empty());
  ASSERT_EQ(d.Assign()[w2_].tasks.size(), 1u);
  ASSERT_TRUE(d.Complete(TaskId(2), w2_));
  d.Enqueue(Spec(3, 10, {21}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  ASSERT_TRUE(d.Complete(TaskId(3), w1_));
  d.Enqueue(Spec(4, 10, {22}));
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  clock_.Advance(1000);
  e = d.ExpireLate(clock_.NowMs());
  ASSERT_EQ(e.late.size(), 1u);
  EXPECT_TRUE(e.fence.empty());
  // A second miss in a row: w1 is to be fenced.
  d.Enqueue(Spec(5, 10, {23}));
  auto batches = d.Assign();  // task 4 to w2 (w1 may still run it), task 5 to w1
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  ASSERT_TRUE(d.Complete(TaskId(4), w2_));
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  clock_.Advance(1000);
  e = d.ExpireLate(clock_.NowMs());
  EXPECT_EQ(e.late, (std::vector<std::pair<TaskId, WorkerId>>{{TaskId(5), w1_}}));
  EXPECT_EQ(e.fence, std::vector<WorkerId>{w1_});
  reg_.MarkDead(w1_);
  EXPECT_EQ(d.WorkerDied(w1_), 0);  // its tasks were already taken back
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[w2_].tasks.size(), 1u);
  EXPECT_FALSE(d.Complete(TaskId(5), w1_));
  EXPECT_TRUE(d.TakeReleases().empty());  // nothing is sent to a dead worker
}

TEST_F(DispatcherTest, DeadlineFollowsTaskSizeMeasuredSpeedAndDoublesPerMiss) {
  DispatchLimits limits = DeadlineLimits();
  limits.deadline_floor_ms = 100;
  limits.assumed_tokens_per_s = 100.0;
  Dispatcher d(&reg_, limits);
  TaskSpec big = Spec(1, 0, {10, 11, 12, 13});
  big.task.max_new_tokens = 50;  // 4 x 50 + a 4-token prompt = 204 tokens
  d.Enqueue(big);
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 1u);
  EXPECT_DOUBLE_EQ(d.TokensPerSecond(w1_), 100.0);  // not measured yet
  // 204 tokens at 100 tokens/s, times 2: 4080 ms.
  clock_.Advance(4079);
  EXPECT_TRUE(d.ExpireLate(clock_.NowMs()).late.empty());
  clock_.Advance(1);
  ASSERT_EQ(d.ExpireLate(clock_.NowMs()).late.size(), 1u);
  // Its second dispatch has twice the budget: 8160 ms.
  ASSERT_EQ(d.Assign()[w2_].tasks.size(), 1u);
  clock_.Advance(8159);
  EXPECT_TRUE(d.ExpireLate(clock_.NowMs()).late.empty());
  ASSERT_TRUE(d.Complete(TaskId(1), w2_));
  // w2 did 204 tokens in 8159 ms of busy time: its own speed is used from now on.
  EXPECT_NEAR(d.TokensPerSecond(w2_), 204.0 * 1000.0 / 8159.0, 1e-9);
  // w1 answered nothing: it is given the slowest measured speed of the live workers.
  EXPECT_DOUBLE_EQ(d.TokensPerSecond(w1_), d.TokensPerSecond(w2_));
  TaskSpec next = Spec(2, 10, {20});
  next.task.max_new_tokens = 50;  // 50 tokens (no prefix: w2 holds node 10)
  d.Enqueue(next);
  ASSERT_EQ(d.Assign()[w2_].tasks.size(), 1u);
  const int64_t budget = static_cast<int64_t>(2.0 * 50.0 * 1000.0 / d.TokensPerSecond(w2_));
  clock_.Advance(budget - 1);
  EXPECT_TRUE(d.ExpireLate(clock_.NowMs()).late.empty());
  clock_.Advance(2);
  EXPECT_EQ(d.ExpireLate(clock_.NowMs()).late.size(), 1u);
}

TEST_F(DispatcherTest, ASilentWorkerLosesEveryTaskOnceItsLargestTaskAloneIsOverdue) {
  reg_.MarkDead(w2_);
  DispatchLimits limits = DeadlineLimits();
  limits.assumed_tokens_per_s = 10.0;    // one 8-token task: 800 ms expected, 1600 ms budget
  limits.measure_min_busy_ms = 1000000;  // the assumed speed throughout
  Dispatcher d(&reg_, limits);
  d.WorkerDied(w2_);
  for (uint64_t task : {1, 2, 3}) d.Enqueue(Spec(task, 0, {10 * task}));  // 4 + 1 x 4 tokens
  ASSERT_EQ(d.Assign()[w1_].tasks.size(), 3u);
  // Their own deadlines count the tokens queued ahead: 1600, 3200 and 4800 ms. An answer
  // restarts the silence.
  clock_.Advance(1500);
  ASSERT_TRUE(d.Complete(TaskId(1), w1_));
  clock_.Advance(1599);
  EXPECT_TRUE(d.ExpireLate(clock_.NowMs()).late.empty());
  // 1600 ms without an answer: tasks 2 and 3 both come back, though task 3's own deadline
  // (4800 ms) is far.
  clock_.Advance(1);
  const Expiry e = d.ExpireLate(clock_.NowMs());
  EXPECT_EQ(e.late, (std::vector<std::pair<TaskId, WorkerId>>{{TaskId(2), w1_}, {TaskId(3), w1_}}));
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_EQ(d.queued(), 2u);
}

TEST_F(DispatcherTest, ATaskThatMissesTooManyDeadlinesIsReportedAndNoDeadlineWhenOff) {
  DispatchLimits limits = DeadlineLimits();
  limits.max_task_deadline_misses = 2;
  limits.max_missed_deadlines = 100;
  Dispatcher d(&reg_, limits);
  d.Enqueue(Spec(1, 0, {10}));
  ASSERT_EQ(d.Assign().size(), 1u);
  clock_.Advance(1000);
  EXPECT_FALSE(d.ExpireLate(clock_.NowMs()).hopeless);
  ASSERT_EQ(d.Assign().size(), 1u);
  clock_.Advance(2000);
  EXPECT_EQ(d.ExpireLate(clock_.NowMs()).hopeless, std::optional<TaskId>(TaskId(1)));

  DispatchLimits off;
  off.deadline_floor_ms = 0;
  Dispatcher never(&reg_, off);
  never.Enqueue(Spec(7, 0, {70}));
  ASSERT_EQ(never.Assign().size(), 1u);
  clock_.Advance(int64_t{1} << 40);
  EXPECT_TRUE(never.ExpireLate(clock_.NowMs()).late.empty());
}

TEST(DispatchLimitsTest, DeadlineKnobsAreValidated) {
  DispatchLimits l;
  EXPECT_TRUE(l.Validate().ok());
  l.deadline_multiplier = 0;
  EXPECT_EQ(l.Validate().code(), StatusCode::kInvalidArgument);
  l = DispatchLimits{};
  l.assumed_tokens_per_s = std::nan("");
  EXPECT_EQ(l.Validate().code(), StatusCode::kInvalidArgument);
  l = DispatchLimits{};
  l.max_missed_deadlines = 0;
  EXPECT_EQ(l.Validate().code(), StatusCode::kInvalidArgument);
  l = DispatchLimits{};
  l.deadline_floor_ms = -1;
  EXPECT_EQ(l.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(HolderMapTest, RemoveQueryGroupsNodesByWorker) {
  HolderMap h;
  h.Add(NodeId(3), QueryId(1), WorkerId(1));
  h.Add(NodeId(4), QueryId(1), WorkerId(2));
  h.Add(NodeId(3), QueryId(1), WorkerId(2));
  h.Add(NodeId(9), QueryId(2), WorkerId(1));
  auto by = h.RemoveQuery(QueryId(1));
  EXPECT_EQ(by[WorkerId(1)], std::vector<NodeId>{NodeId(3)});
  EXPECT_EQ(by[WorkerId(2)], (std::vector<NodeId>{NodeId(3), NodeId(4)}));
  EXPECT_EQ(h.size(), 1u);
}

}  // namespace
}  // namespace treepo::scheduler
