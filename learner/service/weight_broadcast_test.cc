// The bucketed weight broadcast's protocol over a real CPU channel (Gloo, two ranks on
// threads): whole models arrive bit-exact, a plan mismatch stops both sides. The NCCL channel
// runs the same code on GPUs (tests/gpu_nccl).
#include "learner/service/weight_broadcast.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "common/testing/paths.h"

namespace treepo::learner {
namespace {

namespace fs = std::filesystem;

model::ModelConfig SmallConfig() {  // stories260K's shape, untied
  model::ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  c.tied_embeddings = false;
  return c;
}

class WeightBroadcastTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTempDir("weight_broadcast_test"); }
  void TearDown() override { fs::remove_all(dir_); }

  // body(rank, channel, collective) on two threads, each a Gloo rank.
  void RunRanks(
      const std::function<void(int, WeightBroadcastChannel&, collective::Collective&)>& body,
      int timeout_ms = 20000) {
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        collective::CollectiveOptions o;
        o.rank = r;
        o.world_size = 2;
        o.store_dir = dir_;
        o.run_id = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        o.timeout_ms = timeout_ms;
        Result<std::unique_ptr<collective::Collective>> c = collective::CreateCollective(o);
        ASSERT_TRUE(c.ok()) << c.status().ToString();
        std::unique_ptr<WeightBroadcastChannel> channel = CollectiveChannel(c->get());
        body(r, *channel, **c);
      });
    }
    for (std::thread& t : threads) t.join();
  }

  std::string dir_;
};

TEST_F(WeightBroadcastTest, WholeModelsArriveBitExactInFp32) {
  const model::ModelConfig config = SmallConfig();
  const model::ParamLayout layout(config);
  WeightBroadcastOptions o;
  o.dtype = model::WeightDtype::kF32;
  o.bucket_bytes = 64 << 10;  // the embedding and lm_head (128 KiB each) split
  RunRanks([&](int rank, WeightBroadcastChannel& channel, collective::Collective&) {
    Result<WeightBroadcaster> b = WeightBroadcaster::Create(&channel, layout, o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_GT(b->plan().buckets.size(), 10u);
    ReceivedWeights got;
    for (uint64_t v = 1; v <= 2; ++v) {
      const model::ModelWeights w = *model::ModelWeights::Random(config, 100 + v);
      if (rank == 0) {
        ASSERT_TRUE(b->Send(WeightVersion(v), w.data).ok());
        continue;
      }
      const Status s = b->Receive(got);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(got.version, WeightVersion(v));
      EXPECT_EQ(got.dtype, model::WeightDtype::kF32);
      ASSERT_EQ(got.f32.size(), w.data.size());
      EXPECT_EQ(std::memcmp(got.f32.data(), w.data.data(), w.data.size() * sizeof(float)), 0);
      EXPECT_TRUE(got.bf16.empty());
    }
  });
}

TEST_F(WeightBroadcastTest, Bf16IsTheRoundedModelAtAnyBucketSize) {
  const model::ModelConfig config = SmallConfig();
  const model::ParamLayout layout(config);
  WeightBroadcastOptions o;
  o.dtype = model::WeightDtype::kBF16;
  o.bucket_bytes = 33333;  // odd: buckets end inside tensors
  const model::ModelWeights w = *model::ModelWeights::Random(config, 5);
  RunRanks([&](int rank, WeightBroadcastChannel& channel, collective::Collective&) {
    Result<WeightBroadcaster> b = WeightBroadcaster::Create(&channel, layout, o);
    ASSERT_TRUE(b.ok());
    if (rank == 0) {
      ASSERT_TRUE(b->Send(WeightVersion(9), w.data).ok());
      return;
    }
    ReceivedWeights got;
    ASSERT_TRUE(b->Receive(got).ok());
    EXPECT_EQ(got.version, WeightVersion(9));
    ASSERT_EQ(got.bf16.size(), w.data.size());
    size_t differ = 0;
    for (size_t i = 0; i < w.data.size(); ++i)
      differ += got.bf16[i] != model::FloatToBf16(w.data[i]);
    EXPECT_EQ(differ, 0u);
  });
}

TEST_F(WeightBroadcastTest, AReceiverWithAnotherPlanRefusesAndTheSenderFails) {
  const model::ModelConfig config = SmallConfig();
  const model::ParamLayout layout(config);
  const model::ModelWeights w = *model::ModelWeights::Random(config, 1);
  Status sent, received;
  RunRanks(
      [&](int rank, WeightBroadcastChannel& channel, collective::Collective& c) {
        WeightBroadcastOptions o;
        o.bucket_bytes = rank == 0 ? 64 << 10 : 32 << 10;
        Result<WeightBroadcaster> b = WeightBroadcaster::Create(&channel, layout, o);
        ASSERT_TRUE(b.ok());
        if (rank == 0) {
          sent = b->Send(WeightVersion(1), w.data);
          // The buckets may all fit in the socket's buffers before the receiver hangs up;
          // then the next collective is where rank 0 finds it gone.
          if (sent.ok()) sent = c.Barrier();
        } else {
          ReceivedWeights got;
          received = b->Receive(got);
        }
      },
      2000);
  EXPECT_EQ(received.code(), StatusCode::kFailedPrecondition) << received.ToString();
  EXPECT_NE(received.message().find("another plan"), std::string::npos) << received.ToString();
  EXPECT_FALSE(sent.ok()) << "rank 0 went on as if rank 1 were there";
}

// Flips one bit of the n-th broadcast this rank receives, after the real transfer: what a
// corrupting link or a bad staging copy would leave.
class FlipOneBit final : public WeightBroadcastChannel {
 public:
  FlipOneBit(WeightBroadcastChannel* inner, int nth) : inner_(inner), nth_(nth) {}
  int rank() const override { return inner_->rank(); }
  Status BroadcastBytes(void* data, size_t bytes, int root) override {
    TREEPO_RETURN_IF_ERROR(inner_->BroadcastBytes(data, bytes, root));
    if (count_++ == nth_ && bytes > 0) static_cast<uint8_t*>(data)[bytes / 2] ^= 0x10;
    return OkStatus();
  }
  Status Abort(Status why) override { return inner_->Abort(std::move(why)); }

 private:
  WeightBroadcastChannel* inner_;
  int nth_;
  int count_ = 0;
};

TEST_F(WeightBroadcastTest, ACorruptedBucketIsDataLossNamingItsTensors) {
  const model::ModelConfig config = SmallConfig();
  const model::ParamLayout layout(config);
  const model::ModelWeights w = *model::ModelWeights::Random(config, 3);
  WeightBroadcastOptions o;
  o.bucket_bytes = 64 << 10;
  Status received;
  RunRanks([&](int rank, WeightBroadcastChannel& channel, collective::Collective&) {
    FlipOneBit flip(&channel, 2);  // the header is the 0th broadcast: this is bucket 1
    Result<WeightBroadcaster> b =
        WeightBroadcaster::Create(rank == 0 ? &channel : &flip, layout, o);
    ASSERT_TRUE(b.ok());
    if (rank == 0) {
      EXPECT_TRUE(b->Send(WeightVersion(4), w.data).ok());
    } else {
      ReceivedWeights got;
      received = b->Receive(got);
    }
  });
  EXPECT_EQ(received.code(), StatusCode::kDataLoss) << received.ToString();
  EXPECT_NE(received.message().find("bucket 1 of"), std::string::npos) << received.ToString();
  // bf16: the embedding (64 KiB) is bucket 0; bucket 1 starts with layer 0.
  EXPECT_NE(received.message().find("(model.layers.0.input_layernorm.weight .. "),
            std::string::npos)
      << received.ToString();
}

TEST_F(WeightBroadcastTest, RejectsMisuseAndBadOptions) {
  const model::ParamLayout layout(SmallConfig());
  collective::CollectiveOptions co;  // world 1
  std::unique_ptr<collective::Collective> single = collective::CreateCollective(co).value();
  std::unique_ptr<WeightBroadcastChannel> channel = CollectiveChannel(single.get());
  WeightBroadcastOptions o;
  Result<WeightBroadcaster> b = WeightBroadcaster::Create(channel.get(), layout, o);
  ASSERT_TRUE(b.ok());
  std::vector<float> short_params(layout.total() - 1);
  const Status s = b->Send(WeightVersion(1), short_params);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("parameters"), std::string::npos) << s.ToString();
  ReceivedWeights got;
  EXPECT_EQ(b->Receive(got).code(), StatusCode::kFailedPrecondition);

  o.dtype = model::WeightDtype::kF16;
  Result<WeightBroadcaster> f16 = WeightBroadcaster::Create(channel.get(), layout, o);
  EXPECT_EQ(f16.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f16.status().message().find("F16"), std::string::npos) << f16.status().ToString();
  o.dtype = model::WeightDtype::kBF16;
  o.bucket_bytes = 1;
  EXPECT_EQ(WeightBroadcaster::Create(channel.get(), layout, o).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner
