// ZeroMQ transport: a Router (the scheduler's side: many peers, addressed by identity) and a
// Dealer (a worker's or learner's side: one connection, its own identity). Frames are byte
// vectors; protocols/codec.h turns them into messages. zmq stays behind this header.
//
// Threads: each socket belongs to one thread (the actor's loop). Other threads reach that
// loop through a Waker, whose Wake() is thread-safe: the loop passes the Waker to Poll or
// Recv, which then return early, and drains its own in-process queue.
//
// Every zmq failure is a Status: kResourceExhausted (send queue full: back off),
// kUnavailable (peer unknown or gone, address in use: retry later), kInvalidArgument (bad
// endpoint, identity or key), kCancelled (context shut down), kInternal (anything else).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treepo::protocols {

// A CurveZMQ key pair, Z85-encoded (40 characters each).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};
// kUnimplemented when libzmq was built without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();

// Client side of CURVE: the server's public key and this client's own pair.
struct CurveClientKeys {
  std::string server_public_key;
  CurveKeyPair client;
};

// Settings common to both socket kinds.
struct SocketOptions {
  int send_hwm = 1000;  // messages queued per peer before sends fail (or block)
  int recv_hwm = 1000;  // messages queued per peer before the peer is held back
  // Inbound messages larger than this drop the connection (ZMQ_MAXMSGSIZE); -1 = no limit.
  // Default: the codec's 64 MiB frame limit plus room for the identity.
  int64_t max_message_bytes = (int64_t{64} << 20) + 4096;
  // How long Send waits on a full queue: 0 = fail at once with kResourceExhausted,
  // -1 = wait indefinitely.
  int send_timeout_ms = 0;
  // How long closing the socket waits to deliver messages still queued (ZMQ_LINGER): 0 =
  // drop them at once. A process's last words (Deregister) need a few hundred ms.
  int linger_ms = 0;
};

struct RouterOptions {
  SocketOptions socket;
  std::optional<CurveKeyPair> curve_server;  // set: only CURVE clients that know its key
  // With curve_server: the client public keys (Z85) admitted, each with the role name that
  // Incoming::user_id reports for its messages. Checked by a ZAP handler on the Context
  // before the handshake completes; any other key is refused. Unset: any CURVE client that
  // knows the server key is admitted (user_id empty).
  std::optional<std::map<std::string, std::string>> curve_clients;
};

struct DealerOptions {
  SocketOptions socket;
  // Routing identity the Router sees: 1..255 bytes, not starting with a zero byte.
  std::string identity;
  std::optional<CurveClientKeys> curve;  // required when the Router uses CURVE
};

// The sockets of one process share a Context. Thread-safe. Destroy it after its sockets.
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  friend class Router;
  friend class Dealer;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Wakes a loop blocked in Poll/Recv from another thread (an eventfd underneath).
class Waker {
 public:
  static Result<Waker> Create();
  Waker(Waker&& other) noexcept;
  Waker& operator=(Waker&& other) noexcept;
  ~Waker();

  // Thread-safe. Wakes the next (or current) Poll/Recv given this Waker; wakes coalesce.
  Status Wake() const;

 private:
  friend class Router;
  friend class Dealer;
  explicit Waker(int fd) : fd_(fd) {}
  void Drain() const;
  int fd_ = -1;
};

struct PollResult {
  bool readable = false;  // a message is waiting
  bool woken = false;     // the Waker fired (and was reset)
};

class Router;
class Dealer;
// What PollBoth found waiting.
struct PairPoll {
  bool dealer = false;
  bool router = false;
};
// Waits up to timeout_ms (-1 = forever) for a message on either socket (a worker's scheduler
// connection and its peer endpoint).
Result<PairPoll> PollBoth(Dealer& dealer, Router& router, int timeout_ms);

class Router {
 public:
  struct Incoming {
    std::string peer;  // the Dealer's identity (any bytes: print it with EscapeBytes)
    std::vector<uint8_t> frame;
    // The role the ZAP handler gave this connection's key (RouterOptions::curve_clients);
    // empty without CURVE authentication.
    std::string user_id;
    // Not OK when the message was not exactly one frame after the identity: `frame` is then
    // empty and the message is data to count and answer, not an error of the socket.
    Status malformed;
  };

  // Binds to `endpoint` ("tcp://127.0.0.1:*" picks a free port; see endpoint()).
  static Result<Router> Bind(Context& context, const std::string& endpoint,
                             const RouterOptions& options = {});
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;
  ~Router();  // closes with SocketOptions::linger_ms (default 0: unsent messages are dropped)

  // The bound endpoint with the port resolved, e.g. "tcp://127.0.0.1:40123".
  const std::string& endpoint() const;

  // Waits up to timeout_ms (-1 = forever) for a message or a wake.
  Result<PollResult> Poll(int timeout_ms, const Waker* waker = nullptr);
  // Receives one message; nullopt when none came within timeout_ms or the Waker fired.
  // A peer message that is not one frame is returned with Incoming::malformed set (its
  // parts discarded); an error Status means the socket itself failed.
  Result<std::optional<Incoming>> Recv(int timeout_ms, const Waker* waker = nullptr);
  // kUnavailable when no peer with that identity is connected.
  Status Send(std::string_view peer, std::span<const uint8_t> frame);
  // One message of several frames to `peer`; for tests and fuzz targets (see Dealer).
  Status SendParts(std::string_view peer, const std::vector<std::vector<uint8_t>>& parts);

 private:
  friend Result<PairPoll> PollBoth(Dealer& dealer, Router& router, int timeout_ms);
  struct Impl;
  explicit Router(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Dealer {
 public:
  // Connects (in the background; zmq reconnects on its own) to a Router's endpoint.
  static Result<Dealer> Connect(Context& context, const std::string& endpoint,
                                const DealerOptions& options);
  Dealer(Dealer&&) noexcept;
  Dealer& operator=(Dealer&&) noexcept;
  ~Dealer();  // closes with SocketOptions::linger_ms (default 0)

  Result<PollResult> Poll(int timeout_ms, const Waker* waker = nullptr);
  // nullopt when nothing came within timeout_ms (-1 = forever) or the Waker fired. A message
  // of more or fewer than one frame is dropped and counted (dropped_messages()), never an
  // error; an error Status means the socket itself failed.
  Result<std::optional<std::vector<uint8_t>>> Recv(int timeout_ms, const Waker* waker = nullptr);
  // Messages Recv dropped because they were not one frame.
  int64_t dropped_messages() const;
  // Queues the frame (sent once connected); kResourceExhausted when the queue is full.
  Status Send(std::span<const uint8_t> frame);
  // Queues one message of several frames. The protocol never does this: it is how tests
  // and fuzz targets play a peer that misbehaves.
  Status SendParts(const std::vector<std::vector<uint8_t>>& parts);

 private:
  friend Result<PairPoll> PollBoth(Dealer& dealer, Router& router, int timeout_ms);
  struct Impl;
  explicit Dealer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True for endpoints only this host can reach: tcp:// on 127.0.0.0/8, [::1] or localhost,
// and ipc:// or inproc://. Anything else (0.0.0.0, *, an interface, a public address) is
// reachable from the network and needs CURVE keys (docs/security.md).
bool IsLoopbackEndpoint(std::string_view endpoint);

// `bytes` printable: itself when every byte is printable ASCII (no backslash or quotes),
// else "0x" and hex; longer than max_bytes: cut, with "..." appended. For peer identities
// and other peer-chosen strings in logs and JSON.
std::string EscapeBytes(std::string_view bytes, size_t max_bytes = 64);

}  // namespace treepo::protocols
