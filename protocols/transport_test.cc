#include "protocols/transport.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <thread>
#include <zmq.hpp>

#include "protocols/codec.h"
#include "protocols/sample_messages.h"

namespace treepo::protocols {
namespace {

// Bound on waiting for an event that should come promptly on loopback.
constexpr int kEventBoundMs = 10000;

DealerOptions WithIdentity(std::string identity) {
  DealerOptions options;
  options.identity = std::move(identity);
  return options;
}

template <typename T>
Message Of(T payload) {
  Message m;
  m.payload = std::move(payload);
  return m;
}

TEST(TransportTest, RouterAndDealerExchangeMessagesOnLoopback) {
  Context context;
  Result<Router> router = Router::Bind(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  ASSERT_NE(router->endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  ASSERT_EQ(router->endpoint().find(":*"), std::string::npos) << router->endpoint();

  Result<Dealer> dealer = Dealer::Connect(context, router->endpoint(), WithIdentity("worker-a"));
  ASSERT_TRUE(dealer.ok()) << dealer.status().ToString();

  const std::vector<Message> samples = SampleMessages();
  for (const Message& m : samples) ASSERT_TRUE(dealer->Send(Encode(m)).ok());
  for (const Message& m : samples) {
    Result<std::optional<Router::Incoming>> in = router->Recv(kEventBoundMs);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    ASSERT_TRUE(in->has_value()) << "no message within the bound";
    EXPECT_EQ((*in)->peer, "worker-a");
    Result<Message> decoded = Decode((*in)->frame);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_TRUE(*decoded == m) << MessageTypeName(m.type());
  }

  const Message ack = Of(RegisterAck{3, 11, 500, WeightVersion(7)});
  ASSERT_TRUE(router->Send("worker-a", Encode(ack)).ok());
  Result<std::optional<std::vector<uint8_t>>> reply = dealer->Recv(kEventBoundMs);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  ASSERT_TRUE(reply->has_value());
  Result<Message> decoded = Decode(**reply);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(*decoded == ack);

  Status unknown = router->Send("nobody", Encode(ack));
  EXPECT_EQ(unknown.code(), StatusCode::kUnavailable) << unknown.ToString();
}

TEST(TransportTest, WakerInterruptsPollFromAnotherThread) {
  Context context;
  Result<Router> router = Router::Bind(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok());
  Result<Waker> waker = Waker::Create();
  ASSERT_TRUE(waker.ok());
  std::thread other([&] { ASSERT_TRUE(waker->Wake().ok()); });
  Result<PollResult> polled = router->Poll(-1, &*waker);
  other.join();
  ASSERT_TRUE(polled.ok());
  EXPECT_TRUE(polled->woken);
  EXPECT_FALSE(polled->readable);
  // The wake was consumed: a zero-timeout poll sees nothing.
  Result<PollResult> again = router->Poll(0, &*waker);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->woken);
}

TEST(TransportTest, RejectsBadArguments) {
  Context context;
  EXPECT_FALSE(Router::Bind(context, "nonsense://x").ok());
  Result<Dealer> no_id = Dealer::Connect(context, "tcp://127.0.0.1:1", {});
  EXPECT_EQ(no_id.status().code(), StatusCode::kInvalidArgument);
  Result<Router> first = Router::Bind(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(first.ok());
  Result<Router> second = Router::Bind(context, first->endpoint());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
  RouterOptions bad_key;
  bad_key.curve_server = CurveKeyPair{"short", "short"};
  EXPECT_EQ(Router::Bind(context, "tcp://127.0.0.1:*", bad_key).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TransportTest, CurveRouterTalksToKeyedDealerOnly) {
  Result<CurveKeyPair> server_keys = GenerateCurveKeyPair();
  if (!server_keys.ok() && server_keys.status().code() == StatusCode::kUnimplemented) {
    GTEST_SKIP() << server_keys.status().ToString();
  }
  ASSERT_TRUE(server_keys.ok());
  Result<CurveKeyPair> client_keys = GenerateCurveKeyPair();
  ASSERT_TRUE(client_keys.ok());
  ASSERT_EQ(server_keys->public_key.size(), 40u);

  Context context;
  RouterOptions router_options;
  router_options.curve_server = *server_keys;
  Result<Router> router = Router::Bind(context, "tcp://127.0.0.1:*", router_options);
  ASSERT_TRUE(router.ok()) << router.status().ToString();

  // An unkeyed client: its handshake fails (observed through a socket monitor) and
  // nothing it sends reaches the router.
  zmq::context_t raw;
  zmq::socket_t plain(raw, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.set(zmq::sockopt::routing_id, "intruder");
  ASSERT_EQ(zmq_socket_monitor(plain.handle(), "inproc://plain-monitor",
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
            0);
  zmq::socket_t monitor(raw, zmq::socket_type::pair);
  monitor.set(zmq::sockopt::rcvtimeo, kEventBoundMs);
  monitor.connect("inproc://plain-monitor");
  plain.connect(router->endpoint());
  const std::vector<uint8_t> hello = Encode(SampleMessages()[0]);
  plain.send(zmq::buffer(hello), zmq::send_flags::dontwait);
  zmq::message_t event;
  ASSERT_TRUE(monitor.recv(event)) << "no handshake failure reported within the bound";
  uint16_t event_id = 0;
  std::memcpy(&event_id, event.data(), sizeof(event_id));
  EXPECT_NE(event_id & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
            0);

  // Our Dealer without keys is refused the same way.
  Result<Dealer> unkeyed = Dealer::Connect(context, router->endpoint(), WithIdentity("anon"));
  ASSERT_TRUE(unkeyed.ok());
  ASSERT_TRUE(unkeyed->Send(hello).ok());

  DealerOptions keyed_options = WithIdentity("worker-k");
  keyed_options.curve = CurveClientKeys{server_keys->public_key, *client_keys};
  Result<Dealer> keyed = Dealer::Connect(context, router->endpoint(), keyed_options);
  ASSERT_TRUE(keyed.ok()) << keyed.status().ToString();
  ASSERT_TRUE(keyed->Send(hello).ok());

  // Only the keyed dealer's message arrives.
  Result<std::optional<Router::Incoming>> in = router->Recv(kEventBoundMs);
  ASSERT_TRUE(in.ok());
  ASSERT_TRUE(in->has_value());
  EXPECT_EQ((*in)->peer, "worker-k");
  EXPECT_EQ((*in)->frame, hello);
  ASSERT_TRUE(router->Send("worker-k", hello).ok());
  Result<std::optional<std::vector<uint8_t>>> reply = keyed->Recv(kEventBoundMs);
  ASSERT_TRUE(reply.ok() && reply->has_value());
  EXPECT_EQ(**reply, hello);
  Result<std::optional<Router::Incoming>> more = router->Recv(200);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(more->has_value()) << "unkeyed peer got through: " << (*more)->peer;
  EXPECT_EQ(router->Send("anon", hello).code(), StatusCode::kUnavailable);
}

TEST(TransportTest, MultipartMessagesAreDataNotErrors) {
  Context context;
  Result<Router> router = Router::Bind(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok());
  Result<Dealer> dealer = Dealer::Connect(context, router->endpoint(), WithIdentity("multi"));
  ASSERT_TRUE(dealer.ok());
  const std::vector<uint8_t> hello = Encode(SampleMessages()[0]);
  std::vector<std::vector<uint8_t>> many(40, std::vector<uint8_t>{1, 2});
  ASSERT_TRUE(dealer->SendParts({hello, hello, hello}).ok());
  ASSERT_TRUE(dealer->SendParts(many).ok());
  ASSERT_TRUE(dealer->Send(hello).ok());
  for (size_t parts : {3u, 40u}) {
    Result<std::optional<Router::Incoming>> in = router->Recv(kEventBoundMs);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    ASSERT_TRUE(in->has_value());
    EXPECT_EQ((*in)->peer, "multi");
    EXPECT_EQ((*in)->malformed.code(), StatusCode::kInvalidArgument);
    EXPECT_NE((*in)->malformed.message().find(std::to_string(parts) + " frames"), std::string::npos)
        << (*in)->malformed.ToString();
    EXPECT_TRUE((*in)->frame.empty());
  }
  // The next well-formed message still arrives.
  Result<std::optional<Router::Incoming>> good = router->Recv(kEventBoundMs);
  ASSERT_TRUE(good.ok() && good->has_value());
  EXPECT_TRUE((*good)->malformed.ok());
  EXPECT_EQ((*good)->frame, hello);

  // The Dealer drops multipart messages from the router and returns the next good one.
  ASSERT_TRUE(router->SendParts("multi", {hello, hello}).ok());
  EXPECT_EQ(router->SendParts("multi", {}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(router->Send("multi", hello).ok());
  Result<std::optional<std::vector<uint8_t>>> reply = dealer->Recv(kEventBoundMs);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ(**reply, hello);
  EXPECT_EQ(dealer->dropped_messages(), 1);
}

TEST(TransportTest, ZapAdmitsListedKeysAndTagsTheirRole) {
  Result<CurveKeyPair> server = GenerateCurveKeyPair();
  if (!server.ok() && server.status().code() == StatusCode::kUnimplemented) {
    GTEST_SKIP() << server.status().ToString();
  }
  ASSERT_TRUE(server.ok());
  Result<CurveKeyPair> worker = GenerateCurveKeyPair();
  Result<CurveKeyPair> learner = GenerateCurveKeyPair();
  Result<CurveKeyPair> stranger = GenerateCurveKeyPair();
  ASSERT_TRUE(worker.ok() && learner.ok() && stranger.ok());
  Context context;
  RouterOptions ro;
  ro.curve_server = *server;
  ro.curve_clients = std::map<std::string, std::string>{{worker->public_key, "worker"},
                                                        {learner->public_key, "learner"}};
  Result<Router> router = Router::Bind(context, "tcp://127.0.0.1:*", ro);
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  // A second keyed Router on the same Context gets its own ZAP domain.
  RouterOptions ro2 = ro;
  ro2.curve_clients = std::map<std::string, std::string>{{stranger->public_key, "other"}};
  Result<Router> router2 = Router::Bind(context, "tcp://127.0.0.1:*", ro2);
  ASSERT_TRUE(router2.ok()) << router2.status().ToString();

  auto connect = [&](const std::string& endpoint, const std::string& id, const CurveKeyPair& k) {
    DealerOptions o = WithIdentity(id);
    o.curve = CurveClientKeys{server->public_key, k};
    Result<Dealer> d = Dealer::Connect(context, endpoint, o);
    EXPECT_TRUE(d.ok());
    return std::move(*d);
  };
  const std::vector<uint8_t> hello = Encode(SampleMessages()[0]);
  Dealer s = connect(router->endpoint(), "s", *stranger);
  ASSERT_TRUE(s.Send(hello).ok());
  Dealer w = connect(router->endpoint(), "w", *worker);
  ASSERT_TRUE(w.Send(hello).ok());
  Dealer l = connect(router->endpoint(), "l", *learner);
  ASSERT_TRUE(l.Send(hello).ok());
  Dealer s2 = connect(router2->endpoint(), "s2", *stranger);
  ASSERT_TRUE(s2.Send(hello).ok());

  std::map<std::string, std::string> roles;
  while (roles.size() < 2) {
    Result<std::optional<Router::Incoming>> in = router->Recv(kEventBoundMs);
    ASSERT_TRUE(in.ok() && in->has_value()) << "a listed key did not get through";
    roles[(*in)->peer] = (*in)->user_id;
  }
  EXPECT_EQ(roles, (std::map<std::string, std::string>{{"l", "learner"}, {"w", "worker"}}));
  Result<std::optional<Router::Incoming>> in2 = router2->Recv(kEventBoundMs);
  ASSERT_TRUE(in2.ok() && in2->has_value());
  EXPECT_EQ((*in2)->user_id, "other");
  // The stranger's key is not listed on the first Router: nothing of it arrives.
  Result<std::optional<Router::Incoming>> more = router->Recv(300);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(more->has_value()) << "unlisted key got through: " << (*more)->peer;

  RouterOptions keys_without_server;
  keys_without_server.curve_clients = ro.curve_clients;
  EXPECT_EQ(Router::Bind(context, "tcp://127.0.0.1:*", keys_without_server).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TransportTest, LoopbackEndpoints) {
  for (const char* ep : {"tcp://127.0.0.1:*", "tcp://127.0.0.1:5555", "tcp://127.1.2.3:1",
                         "tcp://localhost:80", "tcp://[::1]:5", "ipc:///tmp/x", "inproc://y"}) {
    EXPECT_TRUE(IsLoopbackEndpoint(ep)) << ep;
  }
  for (const char* ep : {"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://eth0:1", "tcp://10.0.0.1:1",
                         "tcp://127.0.0.1.evil.com:1", "tcp://[::]:1", "tcp://128.0.0.1:1",
                         "udp://127.0.0.1:1", "tcp://127.0.0.1", ""}) {
    EXPECT_FALSE(IsLoopbackEndpoint(ep)) << ep;
  }
}

TEST(TransportTest, EscapeBytesPrintsOnlyPrintableAscii) {
  EXPECT_EQ(EscapeBytes("worker-1#123"), "worker-1#123");
  EXPECT_EQ(EscapeBytes(std::string("\0\x01"
                                    "a",
                                    3)),
            "0x000161");
  EXPECT_EQ(EscapeBytes("a\nb"), "0x610a62");
  EXPECT_EQ(EscapeBytes("q\"uote"), "0x7122756f7465");
  EXPECT_EQ(EscapeBytes(std::string(100, 'x'), 4), "xxxx...");
  EXPECT_EQ(EscapeBytes(""), "0x");
}

}  // namespace
}  // namespace treepo::protocols
