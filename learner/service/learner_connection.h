// A learner's connection to the scheduler: the network side shared by the built-in learner
// (learner_service) and the outside-learner client library (learner/client): CURVE keys,
// RegisterLearner retried until RegisterAck, then messages stamped with the assigned id and
// epoch. Frames that do not decode are dropped (logged with a bound).
//
// Not thread-safe; one owner thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "protocols/curve_keys.h"
#include "protocols/messages.h"
#include "protocols/transport.h"

namespace treepo::learner {

struct ConnectionOptions {
  std::string scheduler_endpoint;  // "tcp://HOST:PORT"
  std::string name;                // the learner's name (non-empty)
  int rank = 0;                    // data-parallel rank, 0 <= rank < world_size
  int world_size = 1;
  int register_timeout_ms = 30000;   // give up registering after this
  protocols::ClientKeyOptions keys;  // CURVE (required off loopback, docs/security.md)
};

class LearnerConnection {
 public:
  // Connects and registers. kInvalidArgument: refused for good (a key of another role, an
  // invalid registration); kAlreadyExists: another learner held this rank until the
  // deadline; kDeadlineExceeded: no answer; kCancelled: *stop became true (stop may be null).
  static Result<std::unique_ptr<LearnerConnection>> Connect(const ConnectionOptions& options,
                                                            std::atomic<bool>* stop);

  Status Send(protocols::Payload payload);
  // The next decoded message; nullopt when none came within timeout_ms or it did not decode.
  Result<std::optional<protocols::Message>> Recv(int timeout_ms);

  // A Heartbeat (id and epoch): the scheduler then declares this learner dead when it is silent
  // longer than its heartbeat timeout. Only a learner that can keep heartbeating (also while
  // it trains) should send one.
  Status SendHeartbeat();
  // The heartbeat period the scheduler gave in RegisterAck.
  int heartbeat_interval_ms() const { return heartbeat_interval_ms_; }

  uint32_t id() const { return id_; }
  // The weight version the scheduler announced in RegisterAck.
  uint64_t scheduler_version() const { return scheduler_version_; }

 private:
  LearnerConnection(std::unique_ptr<protocols::Context> context, protocols::Dealer dealer)
      : context_(std::move(context)), dealer_(std::move(dealer)) {}
  Status Register(const ConnectionOptions& o, std::atomic<bool>* stop);

  std::unique_ptr<protocols::Context> context_;  // outlives the dealer (declared first)
  protocols::Dealer dealer_;
  uint32_t id_ = 0;
  uint64_t epoch_ = 0;
  uint64_t scheduler_version_ = 0;
  int heartbeat_interval_ms_ = 500;
  int64_t bad_frames_ = 0;
};

}  // namespace treepo::learner
