#include "protocols/transport.h"

#include <gtest/gtest.h>

#include <cstring>
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

}  // namespace
}  // namespace treepo::protocols
