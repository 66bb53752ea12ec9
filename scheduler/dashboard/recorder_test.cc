// The snapshot recorder against a real SchedulerService with a real worker connection on
// loopback: publication rate limit, worker rows from registration and heartbeats, events from
// registry changes (join, death, restart), trees growing as the queries' own trees do, the
// finished tree's leaves and cut paths, and the WebSocket deltas carrying only what changed.
#include "scheduler/dashboard/recorder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "protocols/codec.h"
#include "protocols/transport.h"
#include "scheduler/dashboard/api_json.h"

namespace treepo::scheduler::dashboard {
namespace {

namespace pr = protocols;
using SteadyClock = std::chrono::steady_clock;

class FakeClock final : public Clock {
 public:
  int64_t NowMs() const override { return now; }
  int64_t now = 1000;
};

class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto clock = std::make_unique<FakeClock>();
    clock_ = clock.get();
    auto s = SchedulerService::Create(SchedulerOptions{}, std::move(clock));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    service_ = std::move(*s);
    RecorderOptions o;
    o.publish_interval_ms = 250;
    o.finished_trees = 2;
    o.run_name = "test";
    recorder_ = std::make_unique<SnapshotRecorder>(o, &publisher_);
    service_->set_loop_observer(recorder_.get());
  }

  // Registers a worker named `name` on a new connection and returns its id.
  uint32_t RegisterWorker(pr::Dealer* dealer, const std::string& name, uint64_t* epoch) {
    pr::RegisterWorker reg;
    reg.worker_name = name;
    reg.page_capacity = 100;
    reg.page_size = 16;
    reg.registration_id = ++registration_;
    pr::Message m;
    m.payload = reg;
    EXPECT_TRUE(dealer->Send(pr::Encode(m)).ok());
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (SteadyClock::now() < deadline) {
      EXPECT_TRUE(service_->Pump(5).ok());
      auto r = dealer->Recv(0);
      if (r.ok() && *r) {
        auto ack = pr::Decode(**r);
        if (ack.ok() && ack->get_if<pr::RegisterAck>() != nullptr) {
          *epoch = ack->get_if<pr::RegisterAck>()->epoch;
          return ack->get_if<pr::RegisterAck>()->assigned_id;
        }
      }
    }
    ADD_FAILURE() << "no RegisterAck";
    return 0;
  }

  pr::Dealer Connect(const std::string& id) {
    pr::DealerOptions o;
    o.identity = id;
    auto d = pr::Dealer::Connect(ctx_, service_->endpoint(), o);
    EXPECT_TRUE(d.ok());
    return std::move(*d);
  }

  std::shared_ptr<const DashboardSnapshot> Publish() {
    recorder_->PublishNow(*service_);
    return publisher_.Latest();
  }

  static pr::SegmentTask Task(uint64_t id, uint64_t parent, std::vector<uint64_t> children) {
    pr::SegmentTask t;
    t.task_id = TaskId(id);
    t.query_id = QueryId(1);
    t.parent_node_id = NodeId(parent);
    for (uint64_t c : children) t.child_node_ids.push_back(NodeId(c));
    t.prefix_tokens = {1, 5, 6};
    return t;
  }

  static pr::SegmentResult Result(uint64_t task, uint32_t worker, std::vector<uint64_t> children,
                                  int tokens) {
    pr::SegmentResult r;
    r.task_id = TaskId(task);
    r.worker_id = WorkerId(worker);
    r.prefilled_tokens = 3;
    for (uint64_t c : children) {
      pr::ChildResult cr;
      cr.node_id = NodeId(c);
      cr.tokens.assign(static_cast<size_t>(tokens), 7);
      cr.logprobs.assign(static_cast<size_t>(tokens), -0.5f);
      r.children.push_back(cr);
    }
    return r;
  }

  pr::Context ctx_;
  FakeClock* clock_ = nullptr;
  std::unique_ptr<SchedulerService> service_;
  SnapshotPublisher publisher_;
  std::unique_ptr<SnapshotRecorder> recorder_;
  uint64_t registration_ = 0;
};

TEST_F(RecorderTest, PublishesOncePerIntervalOfLoopTime) {
  ASSERT_TRUE(service_->Pump(0).ok());
  ASSERT_NE(publisher_.Latest(), nullptr);
  const uint64_t first = publisher_.Latest()->seq;
  ASSERT_TRUE(service_->Pump(0).ok());
  EXPECT_EQ(publisher_.Latest()->seq, first) << "published again within publish_interval_ms";
  clock_->now += 249;
  ASSERT_TRUE(service_->Pump(0).ok());
  EXPECT_EQ(publisher_.Latest()->seq, first);
  clock_->now += 1;
  ASSERT_TRUE(service_->Pump(0).ok());
  EXPECT_EQ(publisher_.Latest()->seq, first + 1);
}

TEST_F(RecorderTest, ReaderKeepsItsSnapshotWhileNewOnesArePublished) {
  auto held = Publish();
  const uint64_t seq = held->seq;
  for (int i = 0; i < 5; ++i) Publish();
  EXPECT_EQ(held->seq, seq);
  EXPECT_EQ(publisher_.Latest()->seq, seq + 5);
}

TEST_F(RecorderTest, WorkersComeFromRegistrationAndHeartbeatsAndChangesBecomeEvents) {
  pr::Dealer d = Connect("w-a");
  uint64_t epoch = 0;
  const uint32_t id = RegisterWorker(&d, "worker-1", &epoch);
  ASSERT_NE(id, 0u);
  pr::Heartbeat hb;
  hb.worker_id = WorkerId(id);
  hb.epoch = epoch;
  hb.free_pages = 70;
  hb.used_pages = 30;
  hb.weight_version = WeightVersion(4);
  pr::Message m;
  m.sender = id;
  m.epoch = epoch;
  m.payload = hb;
  ASSERT_TRUE(d.Send(pr::Encode(m)).ok());
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < deadline && !service_->registry().Find(WorkerId(id))->load) {
    ASSERT_TRUE(service_->Pump(5).ok());
  }
  auto s = Publish();
  ASSERT_EQ(s->workers.size(), 1u);
  const WorkerView& w = s->workers[0];
  EXPECT_EQ(w.name, "worker-1");
  EXPECT_EQ(w.state, "idle");
  EXPECT_EQ(w.pages_capacity, 100u);
  EXPECT_EQ(w.pages_used, 30u);
  EXPECT_EQ(w.pages_free, 70u);
  EXPECT_EQ(w.weight_version, 4u);
  EXPECT_EQ(s->totals.live_workers, 1);
  ASSERT_FALSE(s->events->empty());
  EXPECT_EQ(s->events->back().kind, "join");

  EXPECT_EQ(service_->WorkerGone("worker-1"), 1);
  s = Publish();
  EXPECT_EQ(s->workers[0].state, "dead");
  EXPECT_EQ(s->events->back().kind, "death");
  EXPECT_EQ(s->totals.dead_workers, 1);

  pr::Dealer d2 = Connect("w-b");
  ASSERT_NE(RegisterWorker(&d2, "worker-1", &epoch), 0u);
  s = Publish();
  EXPECT_EQ(s->events->back().kind, "restart");
  EXPECT_EQ(s->workers.size(), 2u);
}

TEST_F(RecorderTest, TreesGrowWithTheQueryTreesAndFinishWithLeavesAndCutPaths) {
  recorder_->SetStep(3, 10);
  recorder_->OnRolloutStarted(1);
  QueryTree tree({1, 5, 6});  // the query's sampler tree, which the recorder reads
  recorder_->OnQueryOpened(0, &tree);
  tree.Add(NodeId(11), std::nullopt, 1, 4);
  tree.Add(NodeId(12), std::nullopt, 2, 4);
  recorder_->OnTaskSubmitted(0, Task(1, 0, {11, 12}));
  auto s = Publish();
  ASSERT_EQ(s->trees.size(), 1u);
  const uint64_t key = s->trees[0]->key;
  EXPECT_EQ(s->trees[0]->step, 3);
  EXPECT_EQ(s->trees[0]->prompt_tokens, (std::vector<int32_t>{1, 5, 6}));
  ASSERT_EQ(s->trees[0]->nodes.size(), 2u);
  EXPECT_TRUE(s->trees[0]->nodes[0]->pending);
  const uint64_t seq_pending = s->seq;

  InFlightTask inflight;
  inflight.task = Task(1, 0, {11, 12});
  clock_->now += 40;
  ASSERT_TRUE(service_->Pump(0).ok());  // the recorder reads the loop clock here
  for (uint64_t id : {11, 12}) {        // what the sampler does with the answer
    TreeNode& n = tree.at(NodeId(id));
    n.reported = true;
    n.worker = WorkerId(7);
    n.tokens.assign(4, 7);
  }
  recorder_->OnTaskResult(0, inflight, Result(1, 7, {11, 12}, 4));
  tree.Add(NodeId(13), NodeId(11), 3, 4);
  recorder_->OnTaskSubmitted(0, Task(2, 11, {13}));
  s = Publish();
  const TreeView& t = *s->trees[0];
  ASSERT_EQ(t.nodes.size(), 3u);
  EXPECT_FALSE(t.nodes[0]->pending);
  EXPECT_EQ(t.nodes[0]->worker, 7u);
  EXPECT_EQ(t.nodes[0]->tokens.size(), 4u);
  EXPECT_EQ(t.nodes[2]->depth, 2);
  EXPECT_EQ(t.nodes[2]->parent, 11u);
  EXPECT_EQ(s->totals.segments, 2);
  EXPECT_EQ(s->totals.tokens_decoded, 8);
  EXPECT_EQ(s->totals.tokens_prefilled, 3);
  EXPECT_EQ(s->latency.count, 1u);  // measured on the steady clock
  EXPECT_GE(s->latency.sum_s, 0.0);
  EXPECT_LT(s->latency.sum_s, 10.0);

  // The delta since the pending snapshot names both changed nodes and the new one, no more.
  nlohmann::json delta = DeltaJson(*s, seq_pending, {key});
  ASSERT_EQ(delta["trees"].size(), 1u);
  EXPECT_EQ(delta["trees"][0]["changed_nodes"].size(), 3u);
  nlohmann::json none = DeltaJson(*s, s->seq, {key});
  EXPECT_TRUE(none["trees"].empty());

  // Nothing changed: the next snapshot shares the tree; one answer: only that node is new.
  auto same = Publish();
  EXPECT_EQ(same->trees[0], s->trees[0]);
  tree.at(NodeId(13)).reported = true;
  tree.at(NodeId(13)).segment_finish = pr::SegmentFinish::kEos;
  auto one = Publish();
  ASSERT_EQ(one->trees[0]->nodes.size(), 3u);
  EXPECT_EQ(one->trees[0]->nodes[0], s->trees[0]->nodes[0]);
  EXPECT_EQ(one->trees[0]->nodes[1], s->trees[0]->nodes[1]);
  EXPECT_NE(one->trees[0]->nodes[2], s->trees[0]->nodes[2]);
  EXPECT_EQ(one->trees[0]->nodes[2]->finish, "eos");
  EXPECT_EQ(one->trees[0]->nodes[2]->seq, one->seq);
  EXPECT_EQ(DeltaJson(*one, same->seq, {key})["trees"][0]["changed_nodes"].size(), 1u);

  TreeRecord rec;
  rec.query_id = "q-1";
  rec.prompt = "1+1=";
  rec.nodes = {{11, std::nullopt, 1, {7, 7}, {}, "a", FinishReason::kNone, 7, 0},
               {12, std::nullopt, 1, {7}, {}, "b", FinishReason::kNone, 7, 0},
               {13, 11, 2, {7}, {}, "c", FinishReason::kEos, 7, 0}};
  rec.leaves = {{13, 1.0f, FinishReason::kEos, 3}};
  recorder_->OnQueryFinished(0, rec);
  s = Publish();
  ASSERT_EQ(s->trees.size(), 1u);
  const TreeView& f = *s->trees[0];
  EXPECT_TRUE(f.finished);
  EXPECT_EQ(f.key, key);
  EXPECT_DOUBLE_EQ(f.reward_mean, 1.0);
  EXPECT_FALSE(f.nodes[0]->pruned);  // has a child
  EXPECT_TRUE(f.nodes[1]->pruned);   // no child, not a leaf: cut
  EXPECT_TRUE(f.nodes[2]->leaf);
  EXPECT_EQ(f.nodes[2]->finish, "eos");
  EXPECT_EQ(f.nodes[2]->text, "c");
}

TEST_F(RecorderTest, FinishedTreesAreBoundedAndOutliveTheirRollout) {
  {
    // The rollout's trees go away once it ended: the views must be built by then.
    TreeRecord rec;
    rec.nodes = {{1, std::nullopt, 1, {7}, {}, "a", FinishReason::kEos, 1, 0}};
    rec.leaves = {{1, 0.0f, FinishReason::kEos, 1}};
    recorder_->OnRolloutStarted(3);
    for (size_t q = 0; q < 3; ++q) recorder_->OnQueryFinished(q, rec);
    recorder_->OnRolloutFinished();
  }
  auto s = Publish();
  ASSERT_EQ(s->trees.size(), 2u);
  EXPECT_EQ(s->trees[0]->key, 3u);  // newest first
  EXPECT_EQ(s->trees[1]->key, 2u);
  ASSERT_EQ(s->trees[0]->nodes.size(), 1u);
  EXPECT_EQ(s->trees[0]->nodes[0]->text, "a");
}

TEST_F(RecorderTest, MetricLinesFeedTheRlFiguresAndAreSharedBetweenSnapshots) {
  recorder_->AddMetricLine({{"step", 0}, {"eval", {{"accuracy", 0.25}}}});
  auto s1 = Publish();
  EXPECT_FALSE(s1->rl.active);
  recorder_->AddMetricLine({{"step", 0},
                            {"reward_mean", 0.5},
                            {"accuracy", 0.75},
                            {"learner_train_s", 1.5},
                            {"sync_s", 0.25}});
  auto s2 = Publish();
  EXPECT_TRUE(s2->rl.active);
  EXPECT_EQ(s2->rl.step, 0);
  EXPECT_DOUBLE_EQ(s2->rl.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(s2->rl.weight_sync_s, 0.25);
  ASSERT_EQ(s2->metrics->size(), 2u);
  auto s3 = Publish();
  EXPECT_EQ(s3->metrics.get(), s2->metrics.get()) << "unchanged history is shared, not copied";
  EXPECT_EQ(MetricsJson(*s3, 1)["lines"].size(), 1u);
  EXPECT_EQ(MetricsJson(*s3, 1)["next"], 2);
  EXPECT_EQ(MetricsJson(*s3, 9)["lines"].size(), 0u);
}

}  // namespace
}  // namespace treepo::scheduler::dashboard
