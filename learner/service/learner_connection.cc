#include "learner/service/learner_connection.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/clock.h"
#include "common/log.h"
#include "protocols/codec.h"

namespace treepo::learner {

namespace pr = protocols;

Result<std::unique_ptr<LearnerConnection>> LearnerConnection::Connect(const ConnectionOptions& o,
                                                                      std::atomic<bool>* stop) {
  if (o.scheduler_endpoint.empty()) return InvalidArgument("learner: no scheduler endpoint");
  if (o.name.empty()) return InvalidArgument("learner: empty name");
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return InvalidArgument("learner: need 0 <= rank < world_size (rank " + std::to_string(o.rank) +
                           ", world_size " + std::to_string(o.world_size) + ")");
  }
  if (o.register_timeout_ms < 1) return InvalidArgument("register_timeout_ms must be >= 1");
  auto context = std::make_unique<pr::Context>();
  pr::DealerOptions dopt;
  // Unique per process: the Router hands an identity over to its newest connection, so a
  // second learner of the same name must not take over the first one's.
  dopt.identity =
      o.name + "#" + std::to_string(::getpid()) + "." + std::to_string(SteadyNowMs() % 1000000);
  dopt.socket.send_timeout_ms = 30000;  // weight chunks wait for room rather than fail
  TREEPO_ASSIGN_OR_RETURN(dopt.curve, pr::ResolveClientKeys(o.keys, o.scheduler_endpoint));
  TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer,
                          pr::Dealer::Connect(*context, o.scheduler_endpoint, dopt));
  std::unique_ptr<LearnerConnection> c(
      new LearnerConnection(std::move(context), std::move(dealer)));
  TREEPO_RETURN_IF_ERROR(c->Register(o, stop));
  return c;
}

Status LearnerConnection::Send(pr::Payload payload) {
  pr::Message m;
  m.sender = id_;
  m.epoch = epoch_;
  m.payload = std::move(payload);
  return dealer_.Send(pr::Encode(m));
}

Status LearnerConnection::SendHeartbeat() {
  pr::Heartbeat hb;
  hb.worker_id = WorkerId(id_);
  hb.epoch = epoch_;
  return Send(hb);
}

Result<std::optional<pr::Message>> LearnerConnection::Recv(int timeout_ms) {
  TREEPO_ASSIGN_OR_RETURN(auto frame, dealer_.Recv(timeout_ms));
  if (!frame) return std::optional<pr::Message>();
  Result<pr::Message> m = pr::Decode(*frame);
  if (!m.ok()) {
    if (++bad_frames_ == 1 || bad_frames_ == 10 || bad_frames_ % 100 == 0) {
      spdlog::warn("learner: dropping a bad frame from the scheduler ({} so far): {}", bad_frames_,
                   m.status().ToString());
    }
    return std::optional<pr::Message>();
  }
  return std::optional<pr::Message>(std::move(*m));
}

Status LearnerConnection::Register(const ConnectionOptions& o, std::atomic<bool>* stop) {
  const int64_t deadline = SteadyNowMs() + o.register_timeout_ms;
  pr::RegisterLearner reg;
  reg.learner_name = o.name;
  reg.rank = static_cast<uint32_t>(o.rank);
  reg.world_size = static_cast<uint32_t>(o.world_size);
  std::string refusal;  // the last AlreadyExists refusal
  while (SteadyNowMs() < deadline) {
    if (stop != nullptr && stop->load()) return Cancelled("stopped while registering");
    TREEPO_RETURN_IF_ERROR(Send(reg));
    const int64_t retry_until = std::min(deadline, SteadyNowMs() + 1000);
    while (SteadyNowMs() < retry_until) {
      TREEPO_ASSIGN_OR_RETURN(auto m, Recv(static_cast<int>(retry_until - SteadyNowMs())));
      if (!m) continue;
      if (const auto* ack = m->get_if<pr::RegisterAck>()) {
        id_ = ack->assigned_id;
        epoch_ = ack->epoch;
        scheduler_version_ = ack->weight_version.value();
        heartbeat_interval_ms_ =
            static_cast<int>(std::max<uint32_t>(1, ack->heartbeat_interval_ms));
        return OkStatus();
      }
      if (const auto* err = m->get_if<pr::ErrorReply>()) {
        // A key of another role or a registration that cannot fit the others: final.
        // Another learner connected on this rank: retried until the deadline, in case it is
        // on its way out.
        if (err->code == StatusCode::kInvalidArgument &&
            err->about == pr::MessageType::kRegisterLearner) {
          return InvalidArgument("the scheduler refused this learner: " + err->message);
        }
        if (err->code == StatusCode::kAlreadyExists && refusal.empty()) {
          spdlog::warn("learner: the scheduler refused the registration: {}", err->message);
        }
        if (err->code == StatusCode::kAlreadyExists) refusal = err->message;
      }
    }
  }
  if (!refusal.empty()) return AlreadyExists("the scheduler refused this learner: " + refusal);
  return DeadlineExceeded("no RegisterAck from the scheduler within " +
                          std::to_string(o.register_timeout_ms) + " ms");
}

}  // namespace treepo::learner
