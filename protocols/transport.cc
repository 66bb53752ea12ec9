#include "protocols/transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <zmq.hpp>

namespace treepo::protocols {
namespace {

Status ZmqStatus(std::string_view what, int err) {
  std::string message = std::string(what) + ": " + zmq_strerror(err);
  switch (err) {
    case EAGAIN:
      return ResourceExhausted(std::move(message));
    case EHOSTUNREACH:
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case ECONNREFUSED:
      return Unavailable(std::move(message));
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENODEV:
      return InvalidArgument(std::move(message));
    case ETERM:
      return Cancelled(std::move(message));
    default:
      return Internal(std::move(message));
  }
}

Status ApplySocketOptions(zmq::socket_t& s, const SocketOptions& o) {
  try {
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndhwm, o.send_hwm);
    s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
    s.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
    s.set(zmq::sockopt::sndtimeo, o.send_timeout_ms);
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq socket options", e.num());
  }
  return OkStatus();
}

Status CheckKey(std::string_view what, const std::string& key) {
  if (key.size() != 40) return InvalidArgument(std::string(what) + " must be 40 Z85 characters");
  return OkStatus();
}

// Waits for the socket to become readable or the waker to fire.
Result<PollResult> PollSocket(zmq::socket_t& s, int timeout_ms, const Waker* waker, int waker_fd) {
  zmq_pollitem_t items[2] = {{s.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, waker_fd, ZMQ_POLLIN, 0}};
  const int n_items = waker != nullptr ? 2 : 1;
  const int rc = zmq_poll(items, n_items, timeout_ms);
  PollResult result;
  if (rc < 0) {
    if (zmq_errno() == EINTR) return result;  // a signal: the caller's loop polls again
    return ZmqStatus("zmq poll", zmq_errno());
  }
  result.readable = (items[0].revents & ZMQ_POLLIN) != 0;
  result.woken = n_items == 2 && (items[1].revents & ZMQ_POLLIN) != 0;
  return result;
}

// Receives every part of one message without blocking; empty when none is waiting.
Result<std::vector<zmq::message_t>> RecvParts(zmq::socket_t& s) {
  std::vector<zmq::message_t> parts;
  try {
    do {
      zmq::message_t part;
      if (!s.recv(part, zmq::recv_flags::dontwait)) return parts;
      parts.push_back(std::move(part));
    } while (parts.back().more());
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq recv", e.num());
  }
  return parts;
}

std::vector<uint8_t> Bytes(const zmq::message_t& m) {
  const auto* p = static_cast<const uint8_t*>(m.data());
  return std::vector<uint8_t>(p, p + m.size());
}

}  // namespace

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char public_key[41] = {};
  char secret_key[41] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    if (zmq_errno() == ENOTSUP) return Unimplemented("libzmq was built without CURVE");
    return ZmqStatus("zmq_curve_keypair", zmq_errno());
  }
  return CurveKeyPair{public_key, secret_key};
}

// ---- Context ----

struct Context::Impl {
  zmq::context_t context;
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

// ---- Waker ----

Result<Waker> Waker::Create() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Internal(std::string("eventfd: ") + std::strerror(errno));
  return Waker(fd);
}

Waker::Waker(Waker&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

Waker& Waker::operator=(Waker&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Waker::~Waker() {
  if (fd_ >= 0) close(fd_);
}

Status Waker::Wake() const {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: a wake is already pending.
  if (write(fd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    return Internal(std::string("waker write: ") + std::strerror(errno));
  }
  return OkStatus();
}

void Waker::Drain() const {
  uint64_t count = 0;
  while (read(fd_, &count, sizeof(count)) > 0) {
  }
}

// ---- Router ----

struct Router::Impl {
  zmq::socket_t socket;
  std::string endpoint;
};

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;
Router::~Router() = default;

Result<Router> Router::Bind(Context& context, const std::string& endpoint,
                            const RouterOptions& options) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->socket = zmq::socket_t(context.impl_->context, zmq::socket_type::router);
    TREEPO_RETURN_IF_ERROR(ApplySocketOptions(impl->socket, options.socket));
    impl->socket.set(zmq::sockopt::router_mandatory, 1);
    impl->socket.set(zmq::sockopt::router_handover, 1);  // a reconnecting peer takes its id back
    if (options.curve_server) {
      TREEPO_RETURN_IF_ERROR(CheckKey("CURVE server secret key", options.curve_server->secret_key));
      impl->socket.set(zmq::sockopt::curve_server, 1);
      impl->socket.set(zmq::sockopt::curve_secretkey, options.curve_server->secret_key);
    }
    impl->socket.bind(endpoint);
    impl->endpoint = impl->socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq bind " + endpoint, e.num());
  }
  return Router(std::move(impl));
}

const std::string& Router::endpoint() const { return impl_->endpoint; }

Result<PollResult> Router::Poll(int timeout_ms, const Waker* waker) {
  TREEPO_ASSIGN_OR_RETURN(PollResult r,
                          PollSocket(impl_->socket, timeout_ms, waker, waker ? waker->fd_ : -1));
  if (r.woken) waker->Drain();
  return r;
}

Result<std::optional<Router::Incoming>> Router::Recv(int timeout_ms, const Waker* waker) {
  TREEPO_ASSIGN_OR_RETURN(PollResult r, Poll(timeout_ms, waker));
  if (!r.readable) return std::optional<Incoming>();
  TREEPO_ASSIGN_OR_RETURN(std::vector<zmq::message_t> parts, RecvParts(impl_->socket));
  if (parts.empty()) return std::optional<Incoming>();
  std::string peer = parts[0].to_string();
  if (parts.size() != 2) {
    return InvalidArgument("peer sent a message of " + std::to_string(parts.size() - 1) +
                           " frames; expected 1");
  }
  return std::optional<Incoming>(Incoming{std::move(peer), Bytes(parts[1])});
}

Status Router::Send(std::string_view peer, std::span<const uint8_t> frame) {
  try {
    zmq::message_t id(peer.data(), peer.size());
    if (!impl_->socket.send(id, zmq::send_flags::sndmore)) {
      return ResourceExhausted("zmq send: queue to peer is full");
    }
    zmq::message_t body(frame.data(), frame.size());
    // The identity part is queued, so the body cannot fail on a full queue (atomic parts).
    if (!impl_->socket.send(body, zmq::send_flags::none)) {
      return ResourceExhausted("zmq send: queue to peer is full");
    }
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq send to peer '" + std::string(peer) + "'", e.num());
  }
  return OkStatus();
}

// ---- Dealer ----

struct Dealer::Impl {
  zmq::socket_t socket;
};

Dealer::Dealer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dealer::Dealer(Dealer&&) noexcept = default;
Dealer& Dealer::operator=(Dealer&&) noexcept = default;
Dealer::~Dealer() = default;

Result<Dealer> Dealer::Connect(Context& context, const std::string& endpoint,
                               const DealerOptions& options) {
  if (options.identity.empty() || options.identity.size() > 255 || options.identity[0] == '\0') {
    return InvalidArgument("dealer identity must be 1..255 bytes, not starting with a zero byte");
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->socket = zmq::socket_t(context.impl_->context, zmq::socket_type::dealer);
    TREEPO_RETURN_IF_ERROR(ApplySocketOptions(impl->socket, options.socket));
    impl->socket.set(zmq::sockopt::routing_id, options.identity);
    if (options.curve) {
      TREEPO_RETURN_IF_ERROR(CheckKey("CURVE server public key", options.curve->server_public_key));
      TREEPO_RETURN_IF_ERROR(CheckKey("CURVE client public key", options.curve->client.public_key));
      TREEPO_RETURN_IF_ERROR(CheckKey("CURVE client secret key", options.curve->client.secret_key));
      impl->socket.set(zmq::sockopt::curve_serverkey, options.curve->server_public_key);
      impl->socket.set(zmq::sockopt::curve_publickey, options.curve->client.public_key);
      impl->socket.set(zmq::sockopt::curve_secretkey, options.curve->client.secret_key);
    }
    impl->socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq connect " + endpoint, e.num());
  }
  return Dealer(std::move(impl));
}

Result<PollResult> Dealer::Poll(int timeout_ms, const Waker* waker) {
  TREEPO_ASSIGN_OR_RETURN(PollResult r,
                          PollSocket(impl_->socket, timeout_ms, waker, waker ? waker->fd_ : -1));
  if (r.woken) waker->Drain();
  return r;
}

Result<std::optional<std::vector<uint8_t>>> Dealer::Recv(int timeout_ms, const Waker* waker) {
  using Out = std::optional<std::vector<uint8_t>>;
  TREEPO_ASSIGN_OR_RETURN(PollResult r, Poll(timeout_ms, waker));
  if (!r.readable) return Out();
  TREEPO_ASSIGN_OR_RETURN(std::vector<zmq::message_t> parts, RecvParts(impl_->socket));
  if (parts.empty()) return Out();
  if (parts.size() != 1) {
    return InvalidArgument("router sent a message of " + std::to_string(parts.size()) +
                           " frames; expected 1");
  }
  return Out(Bytes(parts[0]));
}

Status Dealer::Send(std::span<const uint8_t> frame) {
  try {
    zmq::message_t body(frame.data(), frame.size());
    if (!impl_->socket.send(body, zmq::send_flags::none)) {
      return ResourceExhausted("zmq send: queue to router is full");
    }
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq send", e.num());
  }
  return OkStatus();
}

}  // namespace treepo::protocols
