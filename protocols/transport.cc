#include "protocols/transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "common/log.h"

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
    s.set(zmq::sockopt::linger, o.linger_ms);
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

// The parts of one message, received without blocking. At most kMaxKeptParts are kept (a
// peer may send any number); `count` counts them all.
constexpr size_t kMaxKeptParts = 3;
struct Parts {
  std::vector<zmq::message_t> kept;
  size_t count = 0;
};

// Receives every part of one message without blocking; count 0 when none is waiting.
Result<Parts> RecvParts(zmq::socket_t& s) {
  Parts parts;
  try {
    bool more = true;
    while (more) {
      zmq::message_t part;
      if (!s.recv(part, zmq::recv_flags::dontwait)) return parts;
      ++parts.count;
      more = part.more();
      if (parts.kept.size() < kMaxKeptParts) parts.kept.push_back(std::move(part));
    }
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq recv", e.num());
  }
  return parts;
}

// The ZAP property of a received message ("" when absent).
std::string MessageProperty(zmq::message_t& m, const char* name) {
  const char* v = zmq_msg_gets(m.handle(), name);
  return v != nullptr ? std::string(v) : std::string();
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

// The ZAP handler (RFC 27) of a Context: one thread with a REP socket on
// inproc://zeromq.zap.01 answering the handshakes of every Router of the Context that has
// curve_clients, each under its own ZAP domain.
struct Context::Impl {
  zmq::context_t context;
  std::mutex mu;                                                      // guards domains
  std::map<std::string, std::map<std::string, std::string>> domains;  // domain -> key -> role
  int next_domain = 0;                                                // guarded by mu
  std::thread zap_thread;
  std::atomic<bool> zap_stop{false};
  std::atomic<int64_t> zap_refused{0};

  ~Impl() {
    if (zap_thread.joinable()) {
      zap_stop.store(true);
      zap_thread.join();
    }
  }

  // Starts the handler once; later calls only add the domain.
  Status AddDomain(std::map<std::string, std::string> clients, std::string* domain) {
    std::lock_guard<std::mutex> lock(mu);
    *domain = "treepo-" + std::to_string(next_domain++);
    domains[*domain] = std::move(clients);
    if (zap_thread.joinable()) return OkStatus();
    zmq::socket_t rep;
    try {
      rep = zmq::socket_t(context, zmq::socket_type::rep);
      rep.set(zmq::sockopt::linger, 0);
      rep.bind("inproc://zeromq.zap.01");
    } catch (const zmq::error_t& e) {
      return ZmqStatus("zap handler bind", e.num());
    }
    zap_thread = std::thread([this, rep = std::move(rep)]() mutable { ServeZap(rep); });
    return OkStatus();
  }

  void ServeZap(zmq::socket_t& rep) {
    while (!zap_stop.load()) {
      zmq_pollitem_t item = {rep.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 100) <= 0) continue;
      // Request (RFC 27): version, request id, domain, address, routing id, mechanism,
      // credentials (for CURVE: the client's 32-byte public key).
      std::vector<zmq::message_t> request;
      try {
        bool more = true;
        while (more && request.size() < 16) {
          zmq::message_t part;
          if (!rep.recv(part, zmq::recv_flags::dontwait)) break;
          more = part.more();
          request.push_back(std::move(part));
        }
        std::string status = "400", text = "refused", user_id;
        if (request.size() >= 7 && request[5].to_string() == "CURVE" && request[6].size() == 32) {
          char z85[41] = {};
          zmq_z85_encode(z85, static_cast<const uint8_t*>(request[6].data()), 32);
          std::lock_guard<std::mutex> lock(mu);
          auto d = domains.find(request[2].to_string());
          if (d != domains.end()) {
            auto k = d->second.find(z85);
            if (k != d->second.end()) {
              status = "200";
              text = "OK";
              user_id = k->second;
            } else {
              text = "unknown client key";
            }
          }
          if (status != "200") {
            const int64_t n = ++zap_refused;
            // Logged with a bound: the 1st, 10th, 100th, ... refusal.
            if (n == 1 || n == 10 || n == 100 || n % 1000 == 0) {
              spdlog::warn("refused a CURVE client from {} with an unknown key {} ({} refused)",
                           EscapeBytes(request[3].to_string()), z85, n);
            }
          }
        }
        const std::string version = "1.0";
        const std::string id = request.size() >= 2 ? request[1].to_string() : "";
        rep.send(zmq::buffer(version), zmq::send_flags::sndmore);
        rep.send(zmq::buffer(id), zmq::send_flags::sndmore);
        rep.send(zmq::buffer(status), zmq::send_flags::sndmore);
        rep.send(zmq::buffer(text), zmq::send_flags::sndmore);
        rep.send(zmq::buffer(user_id), zmq::send_flags::sndmore);
        rep.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        spdlog::warn("zap handler: {}", e.what());
      }
    }
  }
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
      if (options.curve_clients) {
        for (const auto& [key, role] : *options.curve_clients) {
          TREEPO_RETURN_IF_ERROR(CheckKey("CURVE client public key", key));
        }
        std::string domain;
        TREEPO_RETURN_IF_ERROR(context.impl_->AddDomain(*options.curve_clients, &domain));
        impl->socket.set(zmq::sockopt::zap_domain, domain);
      }
    } else if (options.curve_clients) {
      return InvalidArgument("CURVE client keys given without a server key pair");
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
  TREEPO_ASSIGN_OR_RETURN(Parts parts, RecvParts(impl_->socket));
  if (parts.count == 0) return std::optional<Incoming>();
  Incoming in;
  in.peer = parts.kept[0].to_string();
  // The identity part is made by the ROUTER itself; ZAP metadata rides on the peer's parts.
  if (parts.kept.size() >= 2) in.user_id = MessageProperty(parts.kept[1], "User-Id");
  if (parts.count != 2) {
    in.malformed =
        InvalidArgument("message of " + std::to_string(parts.count - 1) + " frames; expected 1");
  } else {
    in.frame = Bytes(parts.kept[1]);
  }
  return std::optional<Incoming>(std::move(in));
}

Status Router::Send(std::string_view peer, std::span<const uint8_t> frame) {
  if (peer.empty()) return Unavailable("zmq send: empty peer identity");
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
    return ZmqStatus("zmq send to peer " + EscapeBytes(peer), e.num());
  }
  return OkStatus();
}

// ---- Dealer ----

struct Dealer::Impl {
  zmq::socket_t socket;
  int64_t dropped = 0;
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
  while (true) {
    TREEPO_ASSIGN_OR_RETURN(Parts parts, RecvParts(impl_->socket));
    if (parts.count == 0) return Out();
    if (parts.count == 1) return Out(Bytes(parts.kept[0]));
    const int64_t n = ++impl_->dropped;
    if (n == 1 || n == 10 || n == 100 || n % 1000 == 0) {
      spdlog::warn("dropped a message of {} frames from the router ({} dropped)", parts.count, n);
    }
  }
}

int64_t Dealer::dropped_messages() const { return impl_->dropped; }

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

Status Router::SendParts(std::string_view peer, const std::vector<std::vector<uint8_t>>& parts) {
  if (peer.empty()) return Unavailable("zmq send: empty peer identity");
  if (parts.empty()) return InvalidArgument("a message has at least one frame");
  try {
    zmq::message_t id(peer.data(), peer.size());
    if (!impl_->socket.send(id, zmq::send_flags::sndmore)) {
      return ResourceExhausted("zmq send: queue to peer is full");
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      zmq::message_t m(parts[i].data(), parts[i].size());
      const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!impl_->socket.send(m, flags)) return ResourceExhausted("zmq send: queue is full");
    }
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq send to peer " + EscapeBytes(peer), e.num());
  }
  return OkStatus();
}

Status Dealer::SendParts(const std::vector<std::vector<uint8_t>>& parts) {
  if (parts.empty()) return InvalidArgument("a message has at least one frame");
  try {
    for (size_t i = 0; i < parts.size(); ++i) {
      zmq::message_t m(parts[i].data(), parts[i].size());
      const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!impl_->socket.send(m, flags)) return ResourceExhausted("zmq send: queue is full");
    }
  } catch (const zmq::error_t& e) {
    return ZmqStatus("zmq send", e.num());
  }
  return OkStatus();
}

Result<PairPoll> PollBoth(Dealer& dealer, Router& router, int timeout_ms) {
  zmq_pollitem_t items[2] = {{dealer.impl_->socket.handle(), 0, ZMQ_POLLIN, 0},
                             {router.impl_->socket.handle(), 0, ZMQ_POLLIN, 0}};
  PairPoll result;
  if (zmq_poll(items, 2, timeout_ms) < 0) {
    if (zmq_errno() == EINTR) return result;  // a signal: the caller's loop polls again
    return ZmqStatus("zmq poll", zmq_errno());
  }
  result.dealer = (items[0].revents & ZMQ_POLLIN) != 0;
  result.router = (items[1].revents & ZMQ_POLLIN) != 0;
  return result;
}

bool IsLoopbackEndpoint(std::string_view endpoint) {
  if (endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://")) return true;
  constexpr std::string_view kTcp = "tcp://";
  if (!endpoint.starts_with(kTcp)) return false;
  std::string_view host = endpoint.substr(kTcp.size());
  // A connect endpoint may name a source: "tcp://SRC;HOST:PORT"; the host is what counts.
  if (const size_t semi = host.find(';'); semi != std::string_view::npos) {
    host = host.substr(semi + 1);
  }
  const size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) return false;
  host = host.substr(0, colon);
  if (host == "localhost" || host == "[::1]" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  // 127.a.b.c, digits and dots only.
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

std::string EscapeBytes(std::string_view bytes, size_t max_bytes) {
  const std::string_view cut = bytes.substr(0, max_bytes);
  bool printable = !cut.empty();
  for (char c : cut) {
    if (c < 0x20 || c > 0x7e || c == '\\' || c == '"' || c == '\'') printable = false;
  }
  std::string out;
  if (printable) {
    out = std::string(cut);
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    out = "0x";
    for (unsigned char c : cut) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (bytes.size() > max_bytes) out += "...";
  return out;
}

}  // namespace treepo::protocols
