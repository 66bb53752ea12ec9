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

// A task of query 1 whose parent's whole path is {1, 5, 6, 7} (3 KV positions).
protocols::SegmentTask Spec(uint64_t task, uint64_t parent, std::vector<uint64_t> children) {
  protocols::SegmentTask s;
  s.task_id = TaskId(task);
  s.query_id = QueryId(1);
  s.parent_node_id = NodeId(parent);
  for (uint64_t c : children) {
    s.child_node_ids.push_back(NodeId(c));
    s.child_seeds.push_back(c);
  }
  s.max_new_tokens = 4;
  s.prefix_tokens = {1, 5, 6, 7};
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
  limits.move_min_gain_ms = 100000;  // no move pays here
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

// A page report: `worker` has `free` of `total` pages after `seen` task batches.
void Report(Dispatcher* d, WorkerId worker, uint32_t total, uint32_t free, uint64_t seen) {
  d->OnPageReport(worker, total, free, seen);
}

TEST_F(DispatcherTest, TasksWaitForPagesInsteadOfBouncingBetweenFullWorkers) {
  Dispatcher d(&reg_, DispatchLimits{});
  // A root task of 3 children over a 3-position prompt, L = 4, 16-token pages: 1 page for the
  // prompt, 1 per child.
  EXPECT_EQ(Dispatcher::TaskPages(3, 3, 4, 16, true), 4);
  EXPECT_EQ(Dispatcher::TaskPages(15, 2, 4, 16, false), 4);  // each child crosses a page
  Report(&d, w1_, 100, 5, 0);
  Report(&d, w2_, 100, 2, 0);
  d.Enqueue(Spec(1, 0, {10, 11, 12}));
  d.Enqueue(Spec(2, 0, {13, 14, 15}));
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);  // 4 of w1's 5 pages; w2 has 2
  EXPECT_EQ(d.queued(), 1u);
  EXPECT_EQ(d.FreePages(w1_), 1);
  EXPECT_EQ(d.placement().tasks_waited, 1);
  // Nothing new: the task keeps waiting (counted once).
  EXPECT_TRUE(d.Assign().empty());
  EXPECT_EQ(d.placement().tasks_waited, 1);
  // w1 reports after its batch: the pages it took are in the report now, and more are free.
  Report(&d, w1_, 100, 50, 1);
  EXPECT_EQ(d.FreePages(w1_), 50);
  batches = d.Assign();
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  EXPECT_EQ(d.queued(), 0u);
}

TEST_F(DispatcherTest, BusyHolderKeepsItsWorkUnlessAnotherWorkerIsSoonerByEnough) {
  for (const std::string policy : {"wait", "cost"}) {
    SCOPED_TRACE(policy);
    DispatchLimits limits;
    limits.policy = policy;
    limits.assumed_tokens_per_s = 20.0;  // 4 tokens in flight on w1: 200 ms to wait
    Dispatcher d(&reg_, limits);
    d.holders().Add(NodeId(10), QueryId(1), w1_, 3);
    d.holders().Add(NodeId(11), QueryId(1), w1_, 3);
    d.Enqueue(Spec(2, 10, {20}));
    d.Enqueue(Spec(3, 11, {21}));
    auto batches = d.Assign();
    // Task 2 stays (nothing to wait for). Task 3: waiting 200 ms for w1 vs recomputing 3
    // positions on idle w2 (at 8 x 20 tokens/s: 19 ms) saves more than 50 ms and 25%.
    ASSERT_EQ(batches[w1_].tasks.size(), policy == "wait" ? 2u : 1u);
    EXPECT_TRUE(batches[w1_].tasks[0].prefix_tokens.empty());
    if (policy == "cost") {
      ASSERT_EQ(batches[w2_].tasks.size(), 1u);
      EXPECT_EQ(batches[w2_].tasks[0].prefix_tokens, (std::vector<int32_t>{1, 5, 6, 7}));
      EXPECT_EQ(d.placement().decided_recompute, 1);
      // w2 computed node 11 again; it holds it now too.
      ASSERT_TRUE(d.Complete(TaskId(3), w2_));
      EXPECT_EQ(d.holders().Holders(NodeId(11)), (std::vector<WorkerId>{w1_, w2_}));
    }
  }
}

TEST_F(DispatcherTest, MigrationWaitsForTheAckThenTheTaskFollowsItsParent) {
  protocols::RegisterWorker r1 = Reg("m1"), r2 = Reg("m2");
  r1.peer_endpoint = "tcp://127.0.0.1:1";
  r2.peer_endpoint = "tcp://127.0.0.1:2";
  r1.page_bytes = r2.page_bytes = 4096;
  std::optional<WorkerId> replaced;
  const WorkerId m1 = reg_.AddWorker("pm1", r1, &replaced).id;
  const WorkerId m2 = reg_.AddWorker("pm2", r2, &replaced).id;
  reg_.MarkDead(w1_);
  reg_.MarkDead(w2_);
  DispatchLimits limits;
  limits.policy = "migrate";
  limits.assumed_tokens_per_s = 20.0;
  Dispatcher d(&reg_, limits);
  d.holders().Add(NodeId(10), QueryId(1), m1, 3);
  d.holders().Add(NodeId(11), QueryId(1), m1, 3);
  d.Enqueue(Spec(2, 10, {20}));
  d.Enqueue(Spec(3, 11, {21}));
  auto batches = d.Assign();
  ASSERT_EQ(batches[m1].tasks.size(), 1u);
  EXPECT_EQ(batches.count(m2), 0u);  // task 3 waits for its parent's pages to move
  std::vector<MigrationOrder> moves = d.TakeMigrations();
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].nodes, std::vector<NodeId>{NodeId(11)});
  EXPECT_EQ(moves[0].from, m1);
  EXPECT_EQ(moves[0].to, m2);
  EXPECT_TRUE(d.Assign().empty());  // still moving
  EXPECT_EQ(d.holders().Holders(NodeId(11)), std::vector<WorkerId>{m1});
  d.MigrationDone(moves[0].transfer_id, true, 4096);
  EXPECT_EQ(d.holders().Holders(NodeId(11)), std::vector<WorkerId>{m2});
  EXPECT_EQ(d.TakeReleases()[m1], std::vector<NodeId>{NodeId(11)});  // the source copy goes
  batches = d.Assign();
  ASSERT_EQ(batches[m2].tasks.size(), 1u);
  EXPECT_TRUE(batches[m2].tasks[0].prefix_tokens.empty());
  EXPECT_EQ(d.placement().kv_migrations, 1);
  EXPECT_EQ(d.placement().kv_bytes_migrated, 4096);

  // A failed transfer leaves the holder map alone and the task is placed again.
  d.Enqueue(Spec(4, 10, {22}));
  d.Enqueue(Spec(5, 10, {23}));
  d.Assign();
  moves = d.TakeMigrations();
  if (!moves.empty()) {
    d.MigrationDone(moves[0].transfer_id, false, 0);
    EXPECT_EQ(d.placement().kv_migrations_failed, 1);
    EXPECT_FALSE(d.holders().Holders(NodeId(moves[0].nodes[0].value())).empty());
  }
}

TEST_F(DispatcherTest, ADrainingHoldersSubtreeMovesWithItsKvOrIsRecomputedElsewhere) {
  protocols::RegisterWorker r1 = Reg("m1"), r2 = Reg("m2");
  r1.peer_endpoint = "tcp://127.0.0.1:1";
  r2.peer_endpoint = "tcp://127.0.0.1:2";
  r1.page_bytes = r2.page_bytes = 4096;
  std::optional<WorkerId> replaced;
  const WorkerId m1 = reg_.AddWorker("pm1", r1, &replaced).id;
  const WorkerId m2 = reg_.AddWorker("pm2", r2, &replaced).id;
  reg_.MarkDead(w1_);
  reg_.MarkDead(w2_);
  DispatchLimits limits;
  limits.move_min_gain_ms = 100000;  // no move would pay for itself: only draining moves it
  Dispatcher d(&reg_, limits);
  d.holders().Add(NodeId(10), QueryId(1), m1, 3);
  reg_.Find(m1)->draining = true;
  EXPECT_FALSE(d.NeededForDrain(m1));
  d.Enqueue(Spec(2, 10, {20}));
  EXPECT_TRUE(d.NeededForDrain(m1));  // a queued task continues a node only it holds
  EXPECT_FALSE(d.NeededForDrain(m2));
  EXPECT_TRUE(d.Assign().empty());  // the task waits for its parent's pages to move
  std::vector<MigrationOrder> moves = d.TakeMigrations();
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].from, m1);
  EXPECT_EQ(moves[0].to, m2);
  EXPECT_TRUE(d.NeededForDrain(m1));  // the transfer is under way
  d.MigrationDone(moves[0].transfer_id, true, 4096);
  auto batches = d.Assign();
  ASSERT_EQ(batches.count(m1), 0u);
  ASSERT_EQ(batches[m2].tasks.size(), 1u);
  EXPECT_TRUE(batches[m2].tasks[0].prefix_tokens.empty());  // it runs on the moved KV
  EXPECT_FALSE(d.NeededForDrain(m1));

  // Without a peer endpoint on the other side the subtree is recomputed there instead.
  protocols::RegisterWorker r3 = Reg("m3");
  const WorkerId m3 = reg_.AddWorker("pm3", r3, &replaced).id;
  reg_.MarkDead(m2);
  d.holders().Add(NodeId(11), QueryId(1), m1, 3);
  d.Enqueue(Spec(3, 11, {21}));
  batches = d.Assign();
  EXPECT_TRUE(d.TakeMigrations().empty());
  ASSERT_EQ(batches[m3].tasks.size(), 1u);
  EXPECT_EQ(batches[m3].tasks[0].prefix_tokens, (std::vector<int32_t>{1, 5, 6, 7}));
}

TEST_F(DispatcherTest, AWorkerIsGivenOnlyTasksOfTheWeightVersionItRuns) {
  Dispatcher d(&reg_, DispatchLimits());
  reg_.Find(w1_)->weight_version = WeightVersion(3);
  protocols::SegmentTask t = Spec(1, 0, {10});
  t.weight_version = WeightVersion(3);
  d.Enqueue(t);
  auto batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches.begin()->first, w1_);  // w2 still runs version 0
  reg_.Find(w1_)->weight_version = WeightVersion(4);
  t.task_id = TaskId(2);
  t.child_node_ids = {NodeId(11)};
  d.Enqueue(t);
  EXPECT_TRUE(d.Assign().empty());  // nobody runs version 3 now: it waits
  reg_.Find(w2_)->weight_version = WeightVersion(3);
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches.begin()->first, w2_);
}

// Answers root task `task` (one child, 4 tokens) on `worker`, its prompt's positions prefilled
// as `prefilled` tokens in `prefill_ms`.
void AnswerRoot(Dispatcher* d, WorkerId worker, uint64_t task, uint32_t prefilled,
                double prefill_ms) {
  protocols::SegmentResult r;
  r.task_id = TaskId(task);
  r.worker_id = worker;
  protocols::ChildResult child;
  child.node_id = NodeId(10 * task);
  child.tokens = {1, 2, 3, 4};
  child.logprobs = {0, 0, 0, 0};
  r.children.push_back(child);
  r.prefilled_tokens = prefilled;
  r.prefill_ms = prefill_ms;
  ASSERT_TRUE(d->Complete(TaskId(task), worker, &r));
}

// A worker that joins a run whose workers are measured has no speed of its own until it runs
// tasks. It was estimated at the slowest measured decode speed x assumed_prefill_factor against
// the others' measured prefill speed, so it lost every root task for as long as the run lasted
// (`cluster scale workers=+1`: registered, followed every weight version, never given a task).
// Now it is estimated like the fastest, and takes a root at once.
TEST_F(DispatcherTest, AJoiningWorkerIsEstimatedLikeTheFastestAndTakesARootTask) {
  DispatchLimits limits;
  limits.measure_min_busy_ms = 1;
  Dispatcher d(&reg_, limits);
  d.Enqueue(Spec(1, 0, {10}));
  d.Enqueue(Spec(2, 0, {20}));
  auto batches = d.Assign();
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  // w1: 8 tokens in 10 ms (800 tokens/s), 300 prefilled in 1 ms; w2 half as fast.
  clock_.Advance(10);
  AnswerRoot(&d, w1_, 1, 300, 1.0);
  clock_.Advance(10);
  AnswerRoot(&d, w2_, 2, 300, 2.0);
  ASSERT_DOUBLE_EQ(d.TokensPerSecond(w2_), 400.0);
  std::optional<WorkerId> replaced;
  const WorkerId joiner = reg_.AddWorker("p3", Reg("joiner"), &replaced).id;
  EXPECT_DOUBLE_EQ(d.TokensPerSecond(joiner), 400.0);  // its deadlines stay cautious
  d.Enqueue(Spec(3, 0, {30}));
  d.Enqueue(Spec(4, 0, {40}));
  batches = d.Assign();
  EXPECT_EQ(batches[joiner].tasks.size(), 1u);
  EXPECT_EQ(batches[w1_].tasks.size(), 1u);  // the other to the fastest
  EXPECT_EQ(batches.count(w2_), 0u);
}

// Workers the cost model cannot tell apart (nothing measured) share the roots: a tie goes to
// the one that has done the least, not always to the first registered.
TEST_F(DispatcherTest, RootsTiedOnCostGoToTheWorkerThatHasDoneTheLeast) {
  DispatchLimits limits;
  limits.measure_min_busy_ms = 1000000;  // the assumed speeds throughout
  Dispatcher d(&reg_, limits);
  d.Enqueue(Spec(1, 0, {10}));
  d.Enqueue(Spec(2, 0, {20}));
  auto batches = d.Assign();
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  ASSERT_EQ(batches[w2_].tasks.size(), 1u);
  AnswerRoot(&d, w1_, 1, 3, 1.0);
  AnswerRoot(&d, w2_, 2, 3, 1.0);
  std::optional<WorkerId> replaced;
  const WorkerId joiner = reg_.AddWorker("p3", Reg("joiner"), &replaced).id;
  d.Enqueue(Spec(3, 0, {30}));
  batches = d.Assign();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches.begin()->first, joiner);
}

TEST_F(DispatcherTest, EvictsIdleNodesWhenNothingInFlightCanFreePages) {
  Dispatcher d(&reg_, DispatchLimits{});
  d.holders().Add(NodeId(30), QueryId(2), w1_, 3);  // no queued task forks these
  d.holders().Add(NodeId(31), QueryId(2), w1_, 3);
  d.holders().Add(NodeId(10), QueryId(1), w1_, 3);
  Report(&d, w1_, 10, 0, 0);
  Report(&d, w2_, 10, 0, 0);
  d.Enqueue(Spec(2, 10, {20}));  // one page
  EXPECT_TRUE(d.Assign().empty());
  // Both workers are full and nothing runs: w1 evicts the nodes no queued task forks (oldest
  // first) and keeps the parent the task needs.
  std::map<WorkerId, std::vector<NodeId>> releases = d.TakeReleases();
  EXPECT_EQ(releases[w1_], (std::vector<NodeId>{NodeId(30), NodeId(31)}));
  EXPECT_EQ(d.placement().kv_evictions, 2);
  EXPECT_TRUE(d.holders().Holders(NodeId(30)).empty());
  EXPECT_EQ(d.holders().Holders(NodeId(10)), std::vector<WorkerId>{w1_});
  // No second eviction before w1 reports what the first freed.
  d.Assign();
  EXPECT_TRUE(d.TakeReleases().empty());
  Report(&d, w1_, 10, 1, 0);
  Report(&d, w1_, 10, 1, 0);
  auto batches = d.Assign();
  ASSERT_EQ(batches[w1_].tasks.size(), 1u);
  EXPECT_TRUE(batches[w1_].tasks[0].prefix_tokens.empty());
}

TEST_F(DispatcherTest, ATaskWhoseChildrenFitNoPoolAtOnceIsSplit) {
  Dispatcher d(&reg_, DispatchLimits{});
  uint64_t next = 100;
  d.set_task_ids([&] { return TaskId(next++); });
  Report(&d, w1_, 3, 3, 0);
  Report(&d, w2_, 3, 3, 0);
  d.Enqueue(Spec(1, 0, {10, 11, 12, 13}));  // 1 + 4 pages: more than a whole pool
  auto batches = d.Assign();
  std::vector<TaskId> ids;
  size_t children = 0;
  for (const auto& [w, b] : batches) {
    for (const auto& t : b.tasks) {
      ids.push_back(t.task_id);
      children += t.child_node_ids.size();
      EXPECT_LE(t.child_node_ids.size(), 2u);
    }
  }
  // Two parts of 2 children (1 + 2 pages each), one on each worker.
  EXPECT_EQ(batches.size(), 2u);
  EXPECT_EQ(children, 4u);
  EXPECT_EQ(d.queued(), 0u);
  EXPECT_EQ(ids, (std::vector<TaskId>{TaskId(1), TaskId(100)}));
  EXPECT_FALSE(d.hopeless().has_value());
  ASSERT_FALSE(ids.empty());
  std::optional<InFlightTask> done = d.Complete(ids[0], batches.begin()->first);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->origin, TaskId(1));
}

TEST_F(DispatcherTest, ATaskTooLargeForEveryWorkerIsHopeless) {
  Dispatcher d(&reg_, DispatchLimits{});
  Report(&d, w1_, 2, 2, 0);
  Report(&d, w2_, 2, 2, 0);
  protocols::SegmentTask one = Spec(1, 0, {10});
  one.max_new_tokens = 40;  // 1 + 3 pages for one child: one path does not fit
  d.Enqueue(one);
  EXPECT_TRUE(d.Assign().empty());
  ASSERT_TRUE(d.hopeless().has_value());
  EXPECT_NE(d.hopeless()->find("more than any live worker has"), std::string::npos);
}

// Limits under which no move pays: tasks stay with their parent's holder while it has pages.
DispatchLimits Sticky() {
  DispatchLimits l;
  l.move_min_gain_ms = 100000;
  return l;
}

TEST_F(DispatcherTest, RejectionRetriesElsewhereAndLateResultsAreFenced) {
  Dispatcher d(&reg_, Sticky());
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
  Dispatcher d(&reg_, Sticky());
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
  protocols::SegmentTask big = Spec(1, 0, {10, 11, 12, 13});
  big.max_new_tokens = 50;  // 4 x 50 + a 4-token prompt = 204 tokens
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
  protocols::SegmentTask next = Spec(2, 10, {20});
  next.max_new_tokens = 50;  // 50 tokens (no prefix: w2 holds node 10)
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
