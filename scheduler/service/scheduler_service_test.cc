// The scheduler's receive path against real DEALERs on loopback: every bad message is
// answered, counted under its reason and survived; roles may send only their own types; a
// second learner is refused while the first is connected; a worker of another model is
// refused; resends of one registration are one registration.
#include "scheduler/service/scheduler_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocols/codec.h"
#include "protocols/transport.h"

namespace treepo::scheduler {
namespace {

namespace pr = protocols;
using SteadyClock = std::chrono::steady_clock;

constexpr int kBoundMs = 10000;

struct NullLearnerHandler final : LearnerHandler {
  void OnLearnerRegistered(const LearnerEntry&) override {}
  void OnLearnerMessage(const LearnerEntry&, const pr::Message&) override { ++messages; }
  void OnWorkerWeightAck(WorkerId, const pr::WeightAck&) override {}
  void OnWorkerRegistered(const WorkerEntry&) override { ++workers_registered; }
  int messages = 0;
  int workers_registered = 0;
};

class SchedulerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerOptions o;
    o.expected_model_fingerprint = 77;
    auto s = SchedulerService::Create(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    service_ = std::move(*s);
    service_->set_learner_handler(&learners_);
  }

  pr::Dealer Connect(const std::string& id) {
    pr::DealerOptions o;
    o.identity = id;
    auto d = pr::Dealer::Connect(ctx_, service_->endpoint(), o);
    EXPECT_TRUE(d.ok());
    return std::move(*d);
  }

  // Pumps until `dealer` gets a message (bounded); the message decoded.
  pr::Message Reply(pr::Dealer& dealer) {
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(kBoundMs);
    while (SteadyClock::now() < deadline) {
      EXPECT_TRUE(service_->Pump(5).ok());
      auto r = dealer.Recv(0);
      EXPECT_TRUE(r.ok());
      if (r.ok() && *r) {
        auto m = pr::Decode(**r);
        EXPECT_TRUE(m.ok()) << m.status().ToString();
        if (m.ok()) return *m;
      }
    }
    ADD_FAILURE() << "no reply within " << kBoundMs << " ms";
    return {};
  }

  static std::vector<uint8_t> Frame(pr::Payload p, uint32_t sender = 0, uint64_t epoch = 0) {
    pr::Message m;
    m.sender = sender;
    m.epoch = epoch;
    m.payload = std::move(p);
    return pr::Encode(m);
  }

  static StatusCode ErrorCode(const pr::Message& m) {
    const auto* e = m.get_if<pr::ErrorReply>();
    return e != nullptr ? e->code : StatusCode::kOk;
  }

  int64_t Bad(const std::string& reason) const {
    auto it = service_->counters().bad_by_reason.find(reason);
    return it == service_->counters().bad_by_reason.end() ? 0 : it->second;
  }

  pr::Context ctx_;
  NullLearnerHandler learners_;
  std::unique_ptr<SchedulerService> service_;
};

TEST_F(SchedulerServiceTest, BadMessagesAreAnsweredCountedAndSurvived) {
  pr::Dealer d = Connect("d");
  ASSERT_TRUE(d.SendParts({{1}, {2}, {3}}).ok());
  EXPECT_EQ(ErrorCode(Reply(d)), StatusCode::kInvalidArgument);
  EXPECT_EQ(Bad("multipart"), 1);
  ASSERT_TRUE(d.Send(std::vector<uint8_t>{1, 2, 3}).ok());
  EXPECT_EQ(ErrorCode(Reply(d)), StatusCode::kDataLoss);
  EXPECT_EQ(Bad("decode"), 1);
  pr::Heartbeat hb;
  hb.worker_id = WorkerId(9);
  hb.epoch = 1;
  ASSERT_TRUE(d.Send(Frame(hb, 9, 1)).ok());
  EXPECT_EQ(ErrorCode(Reply(d)), StatusCode::kNotFound);
  EXPECT_EQ(Bad("unregistered"), 1);
  EXPECT_EQ(service_->counters().bad_frames, 3);
}

TEST_F(SchedulerServiceTest, RolesMaySendOnlyTheirOwnMessages) {
  pr::Dealer w = Connect("w");
  ASSERT_TRUE(w.Send(Frame(pr::RegisterWorker{"w", 1, 64, 16, 77})).ok());
  const pr::Message ack = Reply(w);
  ASSERT_NE(ack.get_if<pr::RegisterAck>(), nullptr);
  const uint32_t wid = ack.get_if<pr::RegisterAck>()->assigned_id;
  const uint64_t wepoch = ack.get_if<pr::RegisterAck>()->epoch;
  ASSERT_TRUE(w.Send(Frame(pr::TrainDone{1, WeightVersion(1), {}}, wid, wepoch)).ok());
  EXPECT_EQ(ErrorCode(Reply(w)), StatusCode::kInvalidArgument);
  EXPECT_EQ(Bad("unexpected_type"), 1);

  pr::Dealer l = Connect("l");
  ASSERT_TRUE(l.Send(Frame(pr::RegisterLearner{"l", 0, 1, 0})).ok());
  const pr::Message lack = Reply(l);
  ASSERT_NE(lack.get_if<pr::RegisterAck>(), nullptr);
  const uint32_t lid = lack.get_if<pr::RegisterAck>()->assigned_id;
  const uint64_t lepoch = lack.get_if<pr::RegisterAck>()->epoch;
  pr::SegmentResultBatch forged;
  pr::SegmentResult r;
  r.task_id = TaskId(1);
  r.worker_id = WorkerId(wid);
  r.children.push_back(pr::ChildResult{NodeId(5), {1}, {-1.0f}, pr::SegmentFinish::kEos, {}});
  forged.results.push_back(r);
  ASSERT_TRUE(l.Send(Frame(forged, lid, lepoch)).ok());
  EXPECT_EQ(ErrorCode(Reply(l)), StatusCode::kInvalidArgument);
  EXPECT_EQ(Bad("unexpected_type"), 2);
  ASSERT_TRUE(l.Send(Frame(pr::TrainDone{1, WeightVersion(1), {}}, lid, lepoch)).ok());
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(kBoundMs);
  while (learners_.messages == 0 && SteadyClock::now() < deadline) {
    ASSERT_TRUE(service_->Pump(5).ok());
  }
  EXPECT_EQ(learners_.messages, 1);
  EXPECT_EQ(service_->counters().results, 0);

  // A second learner is refused while the first is connected.
  pr::Dealer l2 = Connect("l2");
  ASSERT_TRUE(l2.Send(Frame(pr::RegisterLearner{"l2", 0, 1, 0})).ok());
  EXPECT_EQ(ErrorCode(Reply(l2)), StatusCode::kAlreadyExists);
  EXPECT_EQ(Bad("second_learner"), 1);
  EXPECT_EQ(service_->registry().learners().size(), 1u);
}

// A learner's heartbeat is echoed (its silence tells the learner its head is gone); one from
// a learner this scheduler does not know (the head it replaced had it) is NOT_FOUND.
TEST_F(SchedulerServiceTest, LearnerHeartbeatsAreEchoedAndUnknownLearnersAreNotFound) {
  pr::Dealer l = Connect("l");
  ASSERT_TRUE(l.Send(Frame(pr::RegisterLearner{"l", 0, 1, 0})).ok());
  const pr::Message ack = Reply(l);
  ASSERT_NE(ack.get_if<pr::RegisterAck>(), nullptr);
  const uint32_t lid = ack.get_if<pr::RegisterAck>()->assigned_id;
  const uint64_t lepoch = ack.get_if<pr::RegisterAck>()->epoch;
  pr::Heartbeat hb;
  hb.worker_id = WorkerId(lid);
  hb.epoch = lepoch;
  ASSERT_TRUE(l.Send(Frame(hb, lid, lepoch)).ok());
  const pr::Message echo = Reply(l);
  ASSERT_NE(echo.get_if<pr::Heartbeat>(), nullptr);
  EXPECT_EQ(echo.get_if<pr::Heartbeat>()->epoch, lepoch);

  pr::Dealer old = Connect("old");
  hb.worker_id = WorkerId(lid + 5);
  ASSERT_TRUE(old.Send(Frame(hb, lid + 5, 1)).ok());
  EXPECT_EQ(ErrorCode(Reply(old)), StatusCode::kNotFound);
}

TEST_F(SchedulerServiceTest, DataParallelLearnersTakeOneRankEachOfOneWorldSize) {
  pr::Dealer r0 = Connect("r0");
  ASSERT_TRUE(r0.Send(Frame(pr::RegisterLearner{"r0", 0, 2, 0})).ok());
  ASSERT_NE(Reply(r0).get_if<pr::RegisterAck>(), nullptr);
  pr::Dealer r1 = Connect("r1");
  ASSERT_TRUE(r1.Send(Frame(pr::RegisterLearner{"r1", 1, 2, 0})).ok());
  ASSERT_NE(Reply(r1).get_if<pr::RegisterAck>(), nullptr);
  EXPECT_EQ(service_->registry().learners().size(), 2u);
  // Rank 1 again while the first rank 1 is alive: refused, retryable.
  pr::Dealer again = Connect("again");
  ASSERT_TRUE(again.Send(Frame(pr::RegisterLearner{"again", 1, 2, 0})).ok());
  EXPECT_EQ(ErrorCode(Reply(again)), StatusCode::kAlreadyExists);
  EXPECT_EQ(Bad("second_learner"), 1);
  // Another world size: refused for good.
  pr::Dealer odd = Connect("odd");
  ASSERT_TRUE(odd.Send(Frame(pr::RegisterLearner{"odd", 2, 3, 0})).ok());
  const pr::Message m = Reply(odd);
  EXPECT_EQ(ErrorCode(m), StatusCode::kInvalidArgument);
  EXPECT_NE(m.get_if<pr::ErrorReply>()->message.find("world size 3"), std::string::npos);
  EXPECT_EQ(Bad("learner_world_size"), 1);
  EXPECT_EQ(service_->registry().learners().size(), 2u);
}

TEST_F(SchedulerServiceTest, ALearnersResentRegistrationIsOneLearner) {
  // A learner that resent RegisterLearner before its RegisterAck came (a slow scheduler) goes
  // on with the first ack's id: the resends must not register a second learner that replaces
  // it (whose id the learner never uses, so its weights would be ignored).
  pr::Dealer l = Connect("l");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.Send(Frame(pr::RegisterLearner{"l", 0, 1, 0})).ok());
  std::vector<pr::RegisterAck> acks;
  for (int i = 0; i < 3; ++i) {
    const pr::Message m = Reply(l);
    ASSERT_NE(m.get_if<pr::RegisterAck>(), nullptr);
    acks.push_back(*m.get_if<pr::RegisterAck>());
  }
  for (const pr::RegisterAck& a : acks) EXPECT_EQ(a, acks.front());
  EXPECT_EQ(service_->registry().learners().size(), 1u);
}

TEST_F(SchedulerServiceTest, ResendsOfOneRegistrationGetOneAck) {
  // A worker started before its scheduler has resent RegisterWorker several times; the
  // frames queue and arrive together. They are one registration, not several (each new one
  // would fence the last and make the worker's first messages stale).
  pr::Dealer w = Connect("w");
  const pr::RegisterWorker reg{"w", 1, 64, 16, 77, /*registration_id=*/1234};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.Send(Frame(reg)).ok());
  std::vector<pr::RegisterAck> acks;
  for (int i = 0; i < 5; ++i) {
    const pr::Message m = Reply(w);
    ASSERT_NE(m.get_if<pr::RegisterAck>(), nullptr);
    acks.push_back(*m.get_if<pr::RegisterAck>());
  }
  for (const pr::RegisterAck& a : acks) EXPECT_EQ(a, acks.front());
  EXPECT_EQ(service_->registry().live_count(), 1);
  EXPECT_EQ(service_->counters().dead_workers, 0);
  // A new attempt (a worker that dropped its state) is a new registration.
  pr::RegisterWorker again = reg;
  again.registration_id = 5678;
  ASSERT_TRUE(w.Send(Frame(again)).ok());
  const pr::Message m = Reply(w);
  ASSERT_NE(m.get_if<pr::RegisterAck>(), nullptr);
  EXPECT_NE(m.get_if<pr::RegisterAck>()->epoch, acks.front().epoch);
  EXPECT_EQ(service_->registry().live_count(), 1);
}

TEST_F(SchedulerServiceTest, AWorkerOfAnotherModelIsRefused) {
  pr::Dealer w = Connect("w");
  ASSERT_TRUE(w.Send(Frame(pr::RegisterWorker{"w", 1, 64, 16, 78})).ok());
  const pr::Message m = Reply(w);
  ASSERT_EQ(ErrorCode(m), StatusCode::kInvalidArgument);
  EXPECT_NE(m.get_if<pr::ErrorReply>()->message.find("another model"), std::string::npos);
  EXPECT_EQ(Bad("fingerprint"), 1);
  EXPECT_EQ(service_->registry().live_count(), 0);
}

// A registered fake worker: its dealer, id and epoch.
struct FakeWorker {
  pr::Dealer dealer;
  uint32_t id = 0;
  uint64_t epoch = 0;
};

pr::SegmentTask RootTask(SchedulerService& s, uint64_t query) {
  pr::SegmentTask t;
  t.task_id = s.NextTaskId();
  t.query_id = QueryId(query);
  t.parent_node_id = NodeId(query << 32);
  t.prefix_tokens = {1, 2, 3};
  t.child_node_ids = {NodeId((query << 32) | 1)};
  t.child_seeds = {7};
  t.max_new_tokens = 4;
  return t;
}

class ElasticServiceTest : public SchedulerServiceTest {
 protected:
  FakeWorker Join(const std::string& name, uint64_t version = 0) {
    FakeWorker w{Connect(name)};
    pr::RegisterWorker reg;
    reg.worker_name = name;
    reg.page_capacity = 64;
    reg.page_size = 16;
    reg.model_fingerprint = 77;
    reg.weight_version = WeightVersion(version);
    EXPECT_TRUE(w.dealer.Send(Frame(reg)).ok());
    const pr::Message ack = Reply(w.dealer);
    EXPECT_NE(ack.get_if<pr::RegisterAck>(), nullptr);
    if (const auto* a = ack.get_if<pr::RegisterAck>()) {
      w.id = a->assigned_id;
      w.epoch = a->epoch;
    }
    return w;
  }
  // Pumps for `ms` and returns the messages `w` got.
  std::vector<pr::Message> Collect(FakeWorker& w, int ms) {
    std::vector<pr::Message> out;
    const auto until = SteadyClock::now() + std::chrono::milliseconds(ms);
    while (SteadyClock::now() < until) {
      EXPECT_TRUE(service_->Pump(5).ok());
      while (true) {
        auto r = w.dealer.Recv(0);
        if (!r.ok() || !*r) break;
        auto m = pr::Decode(**r);
        if (m.ok()) out.push_back(std::move(*m));
      }
    }
    return out;
  }
  static const pr::SegmentTaskBatch* Tasks(const std::vector<pr::Message>& ms) {
    for (const pr::Message& m : ms) {
      if (const auto* b = m.get_if<pr::SegmentTaskBatch>()) return b;
    }
    return nullptr;
  }
  static bool Has(const std::vector<pr::Message>& ms, pr::MessageType type) {
    for (const pr::Message& m : ms) {
      if (m.type() == type) return true;
    }
    return false;
  }
  pr::SegmentResultBatch Answer(const FakeWorker& w, const pr::SegmentTask& t) {
    pr::SegmentResultBatch b;
    pr::SegmentResult r;
    r.task_id = t.task_id;
    r.worker_id = WorkerId(w.id);
    pr::ChildResult c;
    c.node_id = t.child_node_ids[0];
    c.tokens = {5};
    c.logprobs = {-0.5f};
    c.weight_version = t.weight_version;
    r.children.push_back(c);
    b.results.push_back(r);
    return b;
  }
};

TEST_F(ElasticServiceTest, AWorkerTakesOnlyTasksOfTheWeightVersionItRuns) {
  service_->set_weight_version(WeightVersion(5));
  FakeWorker w = Join("late", 0);
  EXPECT_EQ(learners_.workers_registered, 1);
  service_->Submit(RootTask(*service_, 1));
  EXPECT_EQ(Tasks(Collect(w, 300)), nullptr) << "a worker on version 0 got tasks of version 5";
  ASSERT_TRUE(w.dealer.Send(Frame(pr::WeightAck{WeightVersion(5), true, ""}, w.id, w.epoch)).ok());
  const pr::SegmentTaskBatch* b = nullptr;
  std::vector<pr::Message> got;
  for (int i = 0; i < 20 && b == nullptr; ++i) {
    got = Collect(w, 100);
    b = Tasks(got);
  }
  ASSERT_NE(b, nullptr) << "no tasks once it runs version 5";
  EXPECT_EQ(b->tasks[0].weight_version, WeightVersion(5));
  // A worker that registers on the current version takes tasks at once.
  FakeWorker v = Join("current", 5);
  service_->Submit(RootTask(*service_, 2));
  EXPECT_EQ(service_->registry().Find(WorkerId(v.id))->weight_version, WeightVersion(5));
}

TEST_F(ElasticServiceTest, ADrainingWorkerFinishesItsTasksIsToldToGoAndForgottenOnDeregister) {
  FakeWorker a = Join("a"), b = Join("b");
  service_->Submit(RootTask(*service_, 1));
  std::vector<pr::Message> got_a, got_b;
  for (int i = 0; i < 50 && !Tasks(got_a) && !Tasks(got_b); ++i) {
    got_a = Collect(a, 20);
    got_b = Collect(b, 20);
  }
  ASSERT_TRUE(Tasks(got_a) || Tasks(got_b));
  FakeWorker& busy = Tasks(got_a) ? a : b;
  FakeWorker& other = Tasks(got_a) ? b : a;
  const pr::SegmentTask task = (Tasks(got_a) ? Tasks(got_a) : Tasks(got_b))->tasks[0];

  // The busy worker leaves: it keeps its task, new tasks go to the other one.
  ASSERT_TRUE(busy.dealer.Send(Frame(pr::Deregister{"test", true}, busy.id, busy.epoch)).ok());
  Collect(busy, 50);
  EXPECT_TRUE(service_->registry().Find(WorkerId(busy.id))->draining);
  service_->Submit(RootTask(*service_, 2));
  std::vector<pr::Message> busy_got = Collect(busy, 200);
  const std::vector<pr::Message> other_got = Collect(other, 200);
  const pr::SegmentTaskBatch* other_tasks = Tasks(other_got);
  EXPECT_EQ(Tasks(busy_got), nullptr) << "a draining worker got a new task";
  EXPECT_FALSE(Has(busy_got, pr::MessageType::kShutdown)) << "told to go with a task running";
  ASSERT_NE(other_tasks, nullptr);
  EXPECT_EQ(other_tasks->tasks[0].query_id, QueryId(2));

  // Its task done, it is told to go; its Deregister makes the registry forget it at once.
  ASSERT_TRUE(busy.dealer.Send(Frame(Answer(busy, task), busy.id, busy.epoch)).ok());
  bool told = false;
  for (int i = 0; i < 50 && !told; ++i) told = Has(Collect(busy, 20), pr::MessageType::kShutdown);
  ASSERT_TRUE(told);
  EXPECT_EQ(service_->counters().results, 1);
  EXPECT_EQ(service_->counters().drained_workers, 1);
  ASSERT_TRUE(busy.dealer.Send(Frame(pr::Deregister{"drained", false}, busy.id, busy.epoch)).ok());
  Collect(busy, 50);
  EXPECT_FALSE(service_->registry().Find(WorkerId(busy.id))->alive);
  EXPECT_EQ(service_->registry().live_count(), 1);
  EXPECT_EQ(service_->counters().left_workers, 1);
  EXPECT_EQ(service_->counters().dead_workers, 0);
  EXPECT_EQ(service_->counters().bad_frames, 0);
}

TEST_F(ElasticServiceTest, AWorkerThatLeavesAtOnceHasItsTasksRequeued) {
  FakeWorker a = Join("a");
  service_->Submit(RootTask(*service_, 1));
  const pr::SegmentTaskBatch* t = nullptr;
  std::vector<pr::Message> got;
  for (int i = 0; i < 50 && t == nullptr; ++i) {
    got = Collect(a, 20);
    t = Tasks(got);
  }
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(a.dealer.Send(Frame(pr::Deregister{"second signal", false}, a.id, a.epoch)).ok());
  Collect(a, 50);
  EXPECT_EQ(service_->registry().live_count(), 0);
  EXPECT_EQ(service_->dispatcher().in_flight(), 0u);
  EXPECT_EQ(service_->dispatcher().queued(), 1u);
  EXPECT_EQ(service_->counters().redispatched_tasks, 1);
}

TEST(LearnerLivenessTest, ALearnerThatHeartbeatsAndFallsSilentIsDeclaredDead) {
  struct Lost final : LearnerHandler {
    void OnLearnerRegistered(const LearnerEntry&) override {}
    void OnLearnerMessage(const LearnerEntry&, const pr::Message&) override {}
    void OnWorkerWeightAck(WorkerId, const pr::WeightAck&) override {}
    void OnLearnerLost(const LearnerEntry& l, const std::string& why) override {
      lost.push_back(l.id);
      reason = why;
    }
    std::vector<LearnerId> lost;
    std::string reason;
  } handler;
  SchedulerOptions o;
  o.heartbeat_interval_ms = 20;
  o.heartbeat_timeout_ms = 300;
  auto s = SchedulerService::Create(o);
  ASSERT_TRUE(s.ok());
  SchedulerService& service = **s;
  service.set_learner_handler(&handler);
  pr::Context ctx;
  pr::DealerOptions d;
  d.identity = "l";
  auto dealer = pr::Dealer::Connect(ctx, service.endpoint(), d);
  ASSERT_TRUE(dealer.ok());
  pr::Message reg;
  reg.payload = pr::RegisterLearner{"l", 0, 1, 0};
  ASSERT_TRUE(dealer->Send(pr::Encode(reg)).ok());
  uint32_t id = 0;
  uint64_t epoch = 0;
  for (int i = 0; i < 200 && id == 0; ++i) {
    ASSERT_TRUE(service.Pump(5).ok());
    auto r = dealer->Recv(0);
    if (r.ok() && *r) {
      auto m = pr::Decode(**r);
      if (m.ok() && m->get_if<pr::RegisterAck>()) {
        id = m->get_if<pr::RegisterAck>()->assigned_id;
        epoch = m->get_if<pr::RegisterAck>()->epoch;
      }
    }
  }
  ASSERT_NE(id, 0u);
  // A learner that never heartbeats is never timed out (outside learners).
  const auto quiet_until = SteadyClock::now() + std::chrono::milliseconds(600);
  while (SteadyClock::now() < quiet_until) ASSERT_TRUE(service.Pump(10).ok());
  EXPECT_TRUE(handler.lost.empty());
  // Heartbeats keep it alive; silence after one makes it dead within the timeout.
  pr::Message hb;
  hb.sender = id;
  hb.epoch = epoch;
  pr::Heartbeat beat;
  beat.worker_id = WorkerId(id);
  beat.epoch = epoch;
  hb.payload = beat;
  const auto beating_until = SteadyClock::now() + std::chrono::milliseconds(600);
  while (SteadyClock::now() < beating_until) {
    ASSERT_TRUE(dealer->Send(pr::Encode(hb)).ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(service.Pump(10).ok());
  }
  EXPECT_TRUE(handler.lost.empty());
  const auto silent_from = SteadyClock::now();
  while (handler.lost.empty() && SteadyClock::now() - silent_from < std::chrono::seconds(5)) {
    ASSERT_TRUE(service.Pump(10).ok());
  }
  ASSERT_EQ(handler.lost.size(), 1u);
  EXPECT_EQ(handler.lost[0], LearnerId(id));
  EXPECT_LT(SteadyClock::now() - silent_from, std::chrono::milliseconds(1500));
  EXPECT_NE(handler.reason.find("heartbeat_timeout_ms"), std::string::npos);
  EXPECT_EQ(service.counters().dead_learners, 1);
  EXPECT_EQ(service.counters().bad_frames, 0);
}

TEST_F(SchedulerServiceTest, ANonLoopbackBindWithoutKeysIsRefused) {
  SchedulerOptions o;
  o.bind_endpoint = "tcp://0.0.0.0:*";
  auto s = SchedulerService::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("reachable from the network"), std::string::npos);
  o.security.insecure = true;
  EXPECT_TRUE(SchedulerService::Create(o).ok());
}

}  // namespace
}  // namespace treepo::scheduler
