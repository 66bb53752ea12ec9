// Fuzz target: multipart messages from several fake peers into the real SchedulerService
// (its Router on loopback TCP, HandleIncoming, the registry and the dispatcher), with a fake
// clock so that heartbeat timeouts and re-dispatch happen too.
//
// Input: records (fuzz_input.h). op % 3 picks the peer (three DEALERs, one with an identity
// that is not printable); op / 3 % 6 picks what it does with the bytes:
//   0  send them as one raw frame
//   1  send them as a message of two frames (split in the middle)
//   2  decode them as a message, set sender/epoch to the peer's registration, send it
//      (raw when they do not decode)
//   3  answer the last task batch the peer got with results whose tokens come from the bytes
//   4  advance the clock by bytes[0] * 50 ms, queue a task, reap and dispatch
//   5  send an empty frame
// The service must stay up: Pump fails only when a worker refused a task for good (a rule
// of the rollout, not of the wire).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "protocols/codec.h"
#include "protocols/transport.h"
#include "scheduler/service/scheduler_service.h"
#include "tests/fuzz/fuzz_input.h"

namespace treepo::fuzz {
namespace {

namespace pr = protocols;
namespace sc = scheduler;

class FakeClock final : public sc::Clock {
 public:
  int64_t NowMs() const override { return now_ms; }
  int64_t now_ms = 1000;
};

struct Peer {
  std::optional<pr::Dealer> dealer;
  uint32_t id = 0;
  uint64_t epoch = 0;
  std::optional<pr::SegmentTaskBatch> last_batch;
};

struct Sink final : sc::ResultSink {
  void OnSegmentResult(const sc::InFlightTask&, const pr::SegmentResult&) override { ++results; }
  int64_t results = 0;
};

struct Learners final : sc::LearnerHandler {
  void OnLearnerRegistered(const sc::LearnerEntry&) override {}
  void OnLearnerMessage(const sc::LearnerEntry&, const pr::Message&) override {}
  void OnWorkerWeightAck(WorkerId, const pr::WeightAck&) override {}
};

// Takes every reply waiting at `peer`, remembering its registration and last task batch.
void DrainReplies(Peer* peer) {
  while (true) {
    auto r = peer->dealer->Recv(0);
    if (!r.ok()) __builtin_trap();  // the local socket failed: a harness bug
    if (!*r) return;
    Result<pr::Message> m = pr::Decode(**r);
    if (!m.ok()) __builtin_trap();  // the scheduler sent something that does not decode
    if (const auto* ack = m->get_if<pr::RegisterAck>()) {
      peer->id = ack->assigned_id;
      peer->epoch = ack->epoch;
    } else if (const auto* b = m->get_if<pr::SegmentTaskBatch>()) {
      peer->last_batch = *b;
    }
  }
}

}  // namespace
}  // namespace treepo::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace treepo;
  using namespace treepo::fuzz;
  static bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size > 64 * 1024) return 0;

  auto clock = std::make_unique<FakeClock>();
  FakeClock* now = clock.get();
  sc::SchedulerOptions so;
  so.heartbeat_interval_ms = 100;
  so.heartbeat_timeout_ms = 1000;
  so.max_task_attempts = 4;
  auto service = sc::SchedulerService::Create(so, std::move(clock));
  if (!service.ok()) __builtin_trap();
  Sink sink;
  Learners learners;
  (*service)->set_result_sink(&sink);
  (*service)->set_learner_handler(&learners);

  pr::Context ctx;
  Peer peers[3];
  const char* names[3] = {"peer-a", "peer-b", "\x01\xff peer"};
  for (int i = 0; i < 3; ++i) {
    pr::DealerOptions o;
    o.identity = names[i];
    auto d = pr::Dealer::Connect(ctx, (*service)->endpoint(), o);
    if (!d.ok()) __builtin_trap();
    peers[i].dealer.emplace(std::move(*d));
  }
  // The fuzz input never names these: node ids the scheduler would hand out.
  uint64_t next_node = 1;

  RecordReader reader(data, size);
  Record rec;
  int64_t sent = 0;
  while (reader.Next(&rec)) {
    Peer& peer = peers[rec.op % 3];
    const int kind = rec.op / 3 % 6;
    Status st;
    bool sends = true;
    switch (kind) {
      case 0:
        st = peer.dealer->Send(rec.bytes);
        break;
      case 1: {
        // Two or three parts from one DEALER: the Router sees a multipart message.
        const size_t half = rec.bytes.size() / 2;
        std::vector<uint8_t> a(rec.bytes.begin(), rec.bytes.begin() + half);
        std::vector<uint8_t> b(rec.bytes.begin() + half, rec.bytes.end());
        st = peer.dealer->SendParts({a, b});
        break;
      }
      case 2: {
        Result<pr::Message> m = pr::Decode(rec.bytes);
        if (m.ok()) {
          m->sender = peer.id;
          m->epoch = peer.epoch;
          st = peer.dealer->Send(pr::Encode(*m));
        } else {
          st = peer.dealer->Send(rec.bytes);
        }
        break;
      }
      case 3: {
        if (!peer.last_batch || peer.id == 0) {
          sends = false;
          break;
        }
        pr::SegmentResultBatch out;
        size_t b = 0;
        for (const pr::SegmentTask& t : peer.last_batch->tasks) {
          pr::SegmentResult r;
          r.task_id = t.task_id;
          r.worker_id = WorkerId(peer.id);
          for (NodeId n : t.child_node_ids) {
            pr::ChildResult c;
            c.node_id = n;
            const size_t len = b < rec.bytes.size() ? rec.bytes[b++] % 8 : 1;
            for (size_t k = 0; k < len; ++k) {
              c.tokens.push_back(b < rec.bytes.size() ? rec.bytes[b++] : 2);
              c.logprobs.push_back(-0.5f);
            }
            r.children.push_back(std::move(c));
          }
          out.results.push_back(std::move(r));
        }
        pr::Message m;
        m.sender = peer.id;
        m.epoch = peer.epoch;
        m.payload = std::move(out);
        st = peer.dealer->Send(pr::Encode(m));
        peer.last_batch.reset();
        break;
      }
      case 4: {
        sends = false;
        now->now_ms += 50 * (rec.bytes.empty() ? 1 : rec.bytes[0]);
        pr::SegmentTask task;
        task.task_id = (*service)->NextTaskId();
        task.query_id = QueryId(1 + next_node % 3);
        task.child_node_ids = {NodeId(next_node++)};
        task.child_seeds = {next_node};
        task.max_new_tokens = 4;
        task.prefix_tokens = {1, 2, 3};
        (*service)->Submit(std::move(task));
        break;
      }
      default:
        st = peer.dealer->Send(std::vector<uint8_t>());
        break;
    }
    if (!st.ok()) __builtin_trap();  // a local queue of 1000 messages cannot fill here
    if (sends) ++sent;
    // Pump until the scheduler has taken every message sent so far (bounded).
    for (int i = 0; i < 2000 && (*service)->counters().frames_in < sent; ++i) {
      Status p = (*service)->Pump(1);
      if (!p.ok()) {
        // Only a worker refusing a task for good may end the loop.
        if (p.message().find("refused by worker") == std::string::npos) __builtin_trap();
        return 0;
      }
    }
    if ((*service)->counters().frames_in < sent) __builtin_trap();  // a message was lost
    Status p = (*service)->Pump(0);
    if (!p.ok() && p.message().find("refused by worker") == std::string::npos) __builtin_trap();
    if (!p.ok()) return 0;
    for (Peer& q : peers) DrainReplies(&q);
  }
  return 0;
}
