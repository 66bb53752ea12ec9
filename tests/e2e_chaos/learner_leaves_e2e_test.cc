// A learner does not outlive its head (real `treepo learner` process, tiny model, a scheduler
// played by a Router in this test): once the scheduler has echoed a heartbeat, its silence for
// learner.scheduler_timeout_ms ends the learner (its head died and nobody resumed the run);
// a scheduler that answers NOT_FOUND (a new head on the endpoint, which starts a learner of
// its own) ends it at once.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "protocols/codec.h"
#include "protocols/transport.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
namespace pr = protocols;
using cluster::ChildProcess;
using testing::ReadAll;

class LearnerLeavesE2eTest : public testing::TinyBaseSuite<LearnerLeavesE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_learner_leaves_e2e_";

 protected:
  // Plays the scheduler for a learner started against it: acknowledges its registration
  // (heartbeats every 100 ms) and answers its heartbeats with `answer` until the learner exits
  // or 60 s pass. Returns the learner's log.
  enum class Answer { kEchoOnceThenSilence, kNotFound };
  std::string Serve(Answer answer, const std::string& name, ChildProcess* learner,
                    int64_t* exit_after_answer_ms) {
    pr::Context ctx;
    Result<pr::Router> router = pr::Router::Bind(ctx, "tcp://127.0.0.1:*", pr::RouterOptions());
    EXPECT_TRUE(router.ok()) << router.status().ToString();
    if (!router.ok()) return "";
    const std::string log = (root_ / (name + ".log")).string();
    Result<ChildProcess> l =
        ChildProcess::Spawn({binary_, "learner", "--scheduler", router->endpoint(), "--set",
                             "model=" + (root_ / "base").string(), "--set",
                             "scheduler_timeout_ms=1500", "--set", "name=" + name},
                            log);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (!l.ok()) return "";
    *learner = std::move(*l);
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> answered;
    while (learner->Running() &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
      Result<std::optional<pr::Router::Incoming>> in = router->Recv(50);
      EXPECT_TRUE(in.ok());
      if (!in.ok() || !*in) continue;
      Result<pr::Message> m = pr::Decode((*in)->frame);
      if (!m.ok()) continue;
      pr::Message reply;
      if (m->get_if<pr::RegisterLearner>() != nullptr) {
        reply.payload = pr::RegisterAck{7, 3, 100, WeightVersion(0)};
      } else if (const auto* hb = m->get_if<pr::Heartbeat>(); hb != nullptr && !answered) {
        if (answer == Answer::kEchoOnceThenSilence) {
          reply.payload = *hb;
        } else {
          reply.payload = pr::ErrorReply{StatusCode::kNotFound, "no learner 7 is registered here",
                                         pr::MessageType::kHeartbeat};
        }
        answered = std::chrono::steady_clock::now();
      } else {
        continue;  // its weights, later heartbeats: unanswered
      }
      EXPECT_TRUE(router->Send((*in)->peer, pr::Encode(reply)).ok());
    }
    EXPECT_TRUE(learner->Wait(5000)) << "the learner still runs";
    EXPECT_TRUE(answered.has_value()) << "the learner sent no heartbeat";
    if (answered) {
      *exit_after_answer_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - *answered)
                                  .count();
    }
    return ReadAll(log);
  }
};

TEST_F(LearnerLeavesE2eTest, ASilentSchedulerEndsTheLearnerAfterItsTimeout) {
  ChildProcess learner;
  int64_t after_ms = -1;
  const std::string log = Serve(Answer::kEchoOnceThenSilence, "silent", &learner, &after_ms);
  EXPECT_NE(learner.exit_code(), 0) << log;
  EXPECT_NE(log.find("has been silent for"), std::string::npos) << log;
  // Not before the timeout (1.5 s after the echo), and not long after it.
  EXPECT_GE(after_ms, 1500) << log;
  EXPECT_LT(after_ms, 15000) << log;
}

TEST_F(LearnerLeavesE2eTest, ASchedulerThatDoesNotKnowTheLearnerEndsItAtOnce) {
  ChildProcess learner;
  int64_t after_ms = -1;
  const std::string log = Serve(Answer::kNotFound, "unknown", &learner, &after_ms);
  EXPECT_NE(learner.exit_code(), 0) << log;
  EXPECT_NE(log.find("does not know this learner"), std::string::npos) << log;
  EXPECT_LT(after_ms, 1500) << log;  // at once, not after the silence timeout
}

}  // namespace
}  // namespace treepo
