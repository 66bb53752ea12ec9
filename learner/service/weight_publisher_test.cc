#include "learner/service/weight_publisher.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "protocols/codec.h"

namespace treepo::learner {
namespace {

namespace pr = protocols;

TEST(WeightPublisherTest, ChunksCoverTheBufferWithChecksums) {
  std::vector<uint8_t> bytes(10);
  std::iota(bytes.begin(), bytes.end(), 1);
  const WeightMessages m = ChunkWeights(WeightVersion(7), bytes, 4);
  EXPECT_EQ(m.notice.version, WeightVersion(7));
  EXPECT_EQ(m.notice.total_bytes, 10u);
  EXPECT_EQ(m.notice.n_chunks, 3u);
  EXPECT_EQ(m.notice.checksum, pr::Fnv1a64(bytes));
  ASSERT_EQ(m.chunks.size(), 3u);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < m.chunks.size(); ++i) {
    const pr::WeightChunk& c = m.chunks[i];
    EXPECT_EQ(c.chunk_index, i);
    EXPECT_EQ(c.n_chunks, 3u);
    EXPECT_EQ(c.offset, i * 4);
    EXPECT_EQ(c.bytes.size(), i < 2 ? 4u : 2u);
    EXPECT_EQ(c.chunk_checksum, pr::Fnv1a64(c.bytes));
    pr::Message msg;
    msg.payload = c;
    EXPECT_TRUE(pr::Validate(msg).ok());
    joined.insert(joined.end(), c.bytes.begin(), c.bytes.end());
  }
  EXPECT_EQ(joined, bytes);
}

TEST(WeightPublisherTest, EmptyBufferIsOneEmptyChunk) {
  const WeightMessages m = ChunkWeights(WeightVersion(1), {}, 4);
  EXPECT_EQ(m.notice.n_chunks, 1u);
  ASSERT_EQ(m.chunks.size(), 1u);
  EXPECT_TRUE(m.chunks[0].bytes.empty());
}

TEST(WeightPublisherTest, PublishSendsNoticeThenChunksThatDecodeAndReassemble) {
  std::vector<float> params(1000);
  for (size_t i = 0; i < params.size(); ++i) params[i] = 0.5f * static_cast<float>(i) - 3.0f;
  std::vector<pr::Message> sent;
  MessageWeightPublisher pub(
      [&](pr::Payload p) {
        pr::Message m;
        m.payload = std::move(p);
        auto d = pr::Decode(pr::Encode(m));  // through the wire format
        if (!d.ok()) return d.status();
        sent.push_back(std::move(*d));
        return OkStatus();
      },
      /*chunk_bytes=*/1024);
  ASSERT_TRUE(pub.Publish(WeightVersion(3), params).ok());
  ASSERT_EQ(sent.size(), 1u + 4u);  // 4000 bytes in 1 KiB chunks
  const auto* notice = sent[0].get_if<pr::WeightVersionNotice>();
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->total_bytes, 4000u);
  std::vector<uint8_t> bytes(notice->total_bytes);
  uint64_t chained = pr::kFnv64Offset;
  for (size_t i = 1; i < sent.size(); ++i) {
    const auto* c = sent[i].get_if<pr::WeightChunk>();
    ASSERT_NE(c, nullptr);
    std::copy(c->bytes.begin(), c->bytes.end(), bytes.begin() + static_cast<long>(c->offset));
    chained = pr::Fnv1a64(c->bytes, chained);
  }
  EXPECT_EQ(chained, notice->checksum);
  std::vector<float> back(params.size());
  std::memcpy(back.data(), bytes.data(), bytes.size());
  EXPECT_EQ(back, params);
}

TEST(WeightPublisherTest, StopsAtTheFirstFailedSend) {
  int calls = 0;
  MessageWeightPublisher pub(
      [&](pr::Payload) { return ++calls == 2 ? ResourceExhausted("queue full") : OkStatus(); }, 8);
  std::vector<float> params(16);
  EXPECT_EQ(pub.Publish(WeightVersion(1), params).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace treepo::learner
