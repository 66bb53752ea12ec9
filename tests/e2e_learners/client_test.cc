// libtreepo_client through its C interface against a fake scheduler (a real ZeroMQ Router
// speaking the protocol in this thread): registration, a tree batch turned into sequences
// with per-token arrays, weights published by name (and every bad publish refused by name,
// sending nothing), TrainDone, and Shutdown ending the batch loop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/model/safetensors.h"
#include "common/model/weights.h"
#include "common/testing/paths.h"
#include "learner/client/treepo_client.h"
#include "protocols/codec.h"
#include "protocols/transport.h"

namespace {

namespace fs = std::filesystem;
namespace pr = treepo::protocols;

constexpr int kBoundMs = 20000;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = treepo::testing::FreshTempDir("client_test");
    treepo::model::ModelConfig c;
    c.dim = 8;
    c.hidden_dim = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.n_kv_heads = 2;
    c.vocab_size = 20;
    c.max_seq_len = 32;
    auto w = treepo::model::ModelWeights::Random(c, 3);
    ASSERT_TRUE(w.ok());
    weights_ = std::move(*w);
    ASSERT_TRUE(treepo::model::SaveHfModel(weights_, dir_ + "/model").ok());
    auto r = pr::Router::Bind(ctx_, "tcp://127.0.0.1:*");
    ASSERT_TRUE(r.ok());
    router_.emplace(std::move(*r));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The next message from the client (decoded), with its peer.
  pr::Message Next() {
    auto in = router_->Recv(kBoundMs);
    EXPECT_TRUE(in.ok() && in->has_value()) << "no message from the client";
    if (!in.ok() || !in->has_value()) return {};
    peer_ = (*in)->peer;
    auto m = pr::Decode((*in)->frame);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : pr::Message{};
  }
  void Send(pr::Payload p) {
    pr::Message m;
    m.payload = std::move(p);
    ASSERT_TRUE(router_->Send(peer_, pr::Encode(m)).ok());
  }

  // Connects a client on another thread while this one plays the scheduler's registration.
  treepo_client* Connect() {
    auto fut = std::async(std::launch::async, [&] {
      treepo_client_options o;
      treepo_client_options_init(&o);
      const std::string model = dir_ + "/model";
      o.scheduler = router_->endpoint().c_str();
      o.model = model.c_str();
      o.name = "test-learner";
      char err[256];
      treepo_client* c = treepo_client_connect(&o, err, sizeof err);
      EXPECT_NE(c, nullptr) << err;
      return c;
    });
    const pr::Message reg = Next();
    const auto* r = reg.get_if<pr::RegisterLearner>();
    EXPECT_NE(r, nullptr);
    if (r != nullptr) {
      EXPECT_EQ(r->learner_name, "test-learner");
      EXPECT_EQ(r->world_size, 1u);
    }
    Send(pr::RegisterAck{7, 3, 500, treepo::WeightVersion(0)});
    return fut.get();
  }

  std::string dir_;
  treepo::model::ModelWeights weights_;
  pr::Context ctx_;
  std::optional<pr::Router> router_;
  std::string peer_;
};

TEST_F(ClientTest, BadOptionsFailWithAMessageAndNoConnection) {
  treepo_client_options o;
  treepo_client_options_init(&o);
  char err[256] = "";
  EXPECT_EQ(treepo_client_connect(&o, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("model"), std::string::npos) << err;
  const std::string model = dir_ + "/model";
  o.model = model.c_str();
  o.scheduler = router_->endpoint().c_str();
  o.estimator = "nope";
  EXPECT_EQ(treepo_client_connect(&o, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("nope"), std::string::npos) << err;
  EXPECT_EQ(treepo_client_abi_version(), TREEPO_CLIENT_ABI_VERSION);
}

TEST_F(ClientTest, BatchesWeightsAndShutdown) {
  treepo_client* c = Connect();
  ASSERT_NE(c, nullptr);
  const nlohmann::json model = nlohmann::json::parse(treepo_client_model_json(c));
  EXPECT_EQ(model["config"]["dim"], 8);
  EXPECT_EQ(model["tensors"].size(), weights_.layout.tensors().size());
  int64_t total = 0;
  const float* init = treepo_client_initial_weights(c, &total);
  ASSERT_EQ(total, static_cast<int64_t>(weights_.data.size()));
  EXPECT_EQ(std::vector<float>(init, init + total), weights_.data);

  // A tree: prompt [1 2 3], root segment [4 5] (v0) with children [6] and [7 8] (v1).
  treepo::TreeRecord t;
  t.query_id = "q";
  t.prompt_tokens = {1, 2, 3};
  t.nodes.push_back({1, std::nullopt, 1, {4, 5}, {-0.5f, -0.25f}, "", {}, 1, 0});
  t.nodes.push_back({2, 1, 2, {6}, {-1.0f}, "", treepo::FinishReason::kEos, 1, 1});
  t.nodes.push_back({3, 1, 2, {7, 8}, {-2.0f, -3.0f}, "", treepo::FinishReason::kEos, 1, 1});
  t.leaves.push_back({2, 1.0f, treepo::FinishReason::kEos, 3});
  t.leaves.push_back({3, 0.0f, treepo::FinishReason::kEos, 4});
  Send(pr::TreeBatch{5, {t}});
  treepo_batch* b = nullptr;
  ASSERT_EQ(treepo_client_next_batch(c, kBoundMs, &b), 1) << treepo_client_error(c);
  EXPECT_EQ(treepo_batch_step(b), 5u);
  ASSERT_EQ(treepo_batch_num_sequences(b), 2);
  ASSERT_EQ(treepo_batch_num_tokens(b), 6 + 7);
  const int64_t* off = treepo_batch_offsets(b);
  EXPECT_EQ(off[1], 6);
  EXPECT_EQ(off[2], 13);
  const std::vector<int32_t> tokens(treepo_batch_tokens(b), treepo_batch_tokens(b) + 13);
  EXPECT_EQ(tokens, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 7, 8}));
  EXPECT_EQ(treepo_batch_prompt_lens(b)[1], 3);
  EXPECT_EQ(treepo_batch_rewards(b)[0], 1.0f);
  EXPECT_EQ(treepo_batch_logprobs(b)[5], -1.0f);
  EXPECT_EQ(treepo_batch_logprobs(b)[12], -3.0f);
  EXPECT_EQ(treepo_batch_versions(b)[3], 0u);
  EXPECT_EQ(treepo_batch_versions(b)[5], 1u);
  // Prompt tokens carry no advantage; the better leaf's is higher; whitened: the token-
  // weighted mean over response tokens is 0.
  const float* adv = treepo_batch_advantages(b);
  double weighted = 0.0;
  for (int i = 0; i < 13; ++i) {
    const bool prompt = i < 3 || (i >= 6 && i < 9);
    if (prompt) {
      EXPECT_EQ(adv[i], 0.0f) << i;
    } else {
      weighted += adv[i];
    }
  }
  EXPECT_GT(adv[3], adv[9]);
  EXPECT_NEAR(weighted, 0.0, 1e-4);
  EXPECT_EQ(treepo_batch_num_trees(b), 1);
  EXPECT_NE(std::string(treepo_batch_trees_jsonl(b)).find("\"q\""), std::string::npos);
  treepo_batch_free(b);

  // Publishing: every tensor by name, once, with its size.
  std::vector<const char*> names;
  std::vector<const float*> data;
  std::vector<int64_t> numel;
  std::vector<float> next = weights_.data;
  for (float& x : next) x += 0.5f;
  for (const auto& ti : weights_.layout.tensors()) {
    names.push_back(ti.name.c_str());
    data.push_back(next.data() + ti.offset);
    numel.push_back(static_cast<int64_t>(ti.numel));
  }
  const int64_t n = static_cast<int64_t>(names.size());
  std::vector<const char*> bad = names;
  bad[0] = "model.nope.weight";
  EXPECT_EQ(treepo_client_publish(c, 1, n, bad.data(), data.data(), numel.data()), -1);
  EXPECT_NE(std::string(treepo_client_error(c)).find("model.nope.weight"), std::string::npos);
  EXPECT_EQ(treepo_client_publish(c, 1, n - 1, names.data(), data.data(), numel.data()), -1);
  EXPECT_NE(std::string(treepo_client_error(c)).find("missing"), std::string::npos);
  std::vector<int64_t> short_numel = numel;
  short_numel[1] -= 1;
  EXPECT_EQ(treepo_client_publish(c, 1, n, names.data(), data.data(), short_numel.data()), -1);
  EXPECT_NE(std::string(treepo_client_error(c)).find(names[1]), std::string::npos);
  ASSERT_EQ(treepo_client_publish(c, 1, n, names.data(), data.data(), numel.data()), 0)
      << treepo_client_error(c);
  // What arrives: the notice, then chunks that rebuild exactly the new flat buffer.
  const pr::Message first = Next();
  const auto* notice = first.get_if<pr::WeightVersionNotice>();
  ASSERT_NE(notice, nullptr) << "a refused publish sent something";
  EXPECT_EQ(notice->version.value(), 1u);
  std::vector<uint8_t> bytes;
  for (uint32_t i = 0; i < notice->n_chunks; ++i) {
    const pr::Message m = Next();
    const auto* chunk = m.get_if<pr::WeightChunk>();
    ASSERT_NE(chunk, nullptr);
    bytes.insert(bytes.end(), chunk->bytes.begin(), chunk->bytes.end());
  }
  ASSERT_EQ(bytes.size(), next.size() * sizeof(float));
  EXPECT_EQ(pr::Fnv1a64(bytes), notice->checksum);
  EXPECT_EQ(std::memcmp(bytes.data(), next.data(), bytes.size()), 0);

  const char* metric_names[] = {"loss"};
  const double values[] = {0.25};
  ASSERT_EQ(treepo_client_train_done(c, 5, 1, 1, metric_names, values), 0);
  const pr::Message done = Next();
  ASSERT_NE(done.get_if<pr::TrainDone>(), nullptr);
  EXPECT_EQ(done.sender, 7u);  // stamped with the assigned id and epoch
  EXPECT_EQ(done.epoch, 3u);
  EXPECT_EQ(done.get_if<pr::TrainDone>()->metrics[0].value, 0.25);

  EXPECT_EQ(treepo_client_next_batch(c, 50, &b), 0);  // nothing yet
  Send(pr::Shutdown{"done"});
  EXPECT_EQ(treepo_client_next_batch(c, kBoundMs, &b), 2);
  treepo_client_close(c);
}

}  // namespace
