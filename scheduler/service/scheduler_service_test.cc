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
  int messages = 0;
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
