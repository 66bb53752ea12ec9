// Unit tests of the worker registry (fake clock) and the dispatcher (affinity, capacity
// fallback, prefix attachment, rejection and worker death).
#include <gtest/gtest.h>

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
