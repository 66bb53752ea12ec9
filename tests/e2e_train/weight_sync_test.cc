// Weight sync across components: what the learner's publisher sends, the worker's intake
// reassembles into the same weights (and refuses when a chunk is corrupted).
#include <gtest/gtest.h>

#include <vector>

#include "learner/service/learner_test_inputs.h"
#include "learner/service/weight_publisher.h"
#include "protocols/codec.h"
#include "worker/service/weight_intake.h"

namespace treepo {
namespace {

namespace pr = protocols;

model::ModelWeights Model(uint64_t seed) { return learner::test_inputs::SmallModel(seed); }

std::vector<pr::Message> Publish(const model::ModelWeights& w, WeightVersion v, size_t chunk) {
  std::vector<pr::Message> sent;
  learner::MessageWeightPublisher pub(
      [&](pr::Payload p) {
        pr::Message m;
        m.payload = std::move(p);
        auto d = pr::Decode(pr::Encode(m));
        if (!d.ok()) return d.status();
        sent.push_back(std::move(*d));
        return OkStatus();
      },
      chunk);
  EXPECT_TRUE(pub.Publish(v, w.data).ok());
  return sent;
}

TEST(WeightSyncTest, WorkerIntakeReassemblesWhatTheLearnerPublishes) {
  const model::ModelWeights current = Model(1), next = Model(2);
  const std::vector<pr::Message> sent = Publish(next, WeightVersion(5), 1000);
  ASSERT_GT(sent.size(), 3u);
  worker::WeightIntake intake;
  ASSERT_TRUE(intake.Begin(*sent[0].get_if<pr::WeightVersionNotice>(), current).ok());
  for (size_t i = 1; i < sent.size(); ++i) {
    ASSERT_TRUE(intake.Add(*sent[i].get_if<pr::WeightChunk>()).ok());
  }
  ASSERT_TRUE(intake.Complete());
  auto w = intake.Finish(current);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->data, next.data);
}

// A worker that holds bf16 weights takes the learner's fp32 version in as bf16 (rounded to
// nearest even), ready for the same engine.
TEST(WeightSyncTest, ABf16WorkerRoundsTheFp32VersionToBf16) {
  const model::ModelWeights current =
      model::ModelWeights::ToHalf(Model(1), model::WeightDtype::kBF16);
  const model::ModelWeights next = Model(2);
  const std::vector<pr::Message> sent = Publish(next, WeightVersion(6), 1000);
  worker::WeightIntake intake;
  ASSERT_TRUE(intake.Begin(*sent[0].get_if<pr::WeightVersionNotice>(), current).ok());
  for (size_t i = 1; i < sent.size(); ++i) {
    ASSERT_TRUE(intake.Add(*sent[i].get_if<pr::WeightChunk>()).ok());
  }
  auto w = intake.Finish(current);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->dtype, model::WeightDtype::kBF16);
  EXPECT_TRUE((*w)->complete());
  EXPECT_EQ((*w)->half, model::ModelWeights::ToHalf(next, model::WeightDtype::kBF16).half);
  const model::LayerOffsets& o = (*w)->layout.layer(0);
  EXPECT_EQ((*w)->Vector(o.attn_norm)[3],
            model::Bf16ToFloat(model::FloatToBf16(next.data[o.attn_norm + 3])));
}

TEST(WeightSyncTest, CorruptedChunkIsRefusedByTheWholeBufferChecksum) {
  const model::ModelWeights current = Model(1), next = Model(2);
  std::vector<pr::Message> sent = Publish(next, WeightVersion(5), 1 << 20);
  worker::WeightIntake intake;
  ASSERT_TRUE(intake.Begin(*sent[0].get_if<pr::WeightVersionNotice>(), current).ok());
  pr::WeightChunk c = *sent[1].get_if<pr::WeightChunk>();
  c.bytes[3] ^= 0x40;  // the chunk's own checksum is only checked by Decode
  ASSERT_TRUE(intake.Add(c).ok());
  for (size_t i = 2; i < sent.size(); ++i) {
    ASSERT_TRUE(intake.Add(*sent[i].get_if<pr::WeightChunk>()).ok());
  }
  ASSERT_TRUE(intake.Complete());
  EXPECT_EQ(intake.Finish(current).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace treepo
