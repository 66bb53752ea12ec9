#include "protocols/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/utf8.h"
#include "protocols/sample_messages.h"

namespace treepo::protocols {
namespace {

// Root struct data section: after the segment table (8 bytes) and the root pointer (8).
constexpr size_t kVersionOffset = 16;
constexpr size_t kTypeOffset = 18;

uint16_t ReadU16(const std::vector<uint8_t>& f, size_t at) {
  uint16_t v;
  std::memcpy(&v, f.data() + at, 2);
  return v;
}

void WriteU16(std::vector<uint8_t>& f, size_t at, uint16_t v) { std::memcpy(f.data() + at, &v, 2); }

template <typename T>
Message Of(T payload) {
  Message m;
  m.payload = std::move(payload);
  return m;
}

// Expects Decode to refuse `frame` with `code` and a message containing `reason`.
void ExpectRejected(const std::vector<uint8_t>& frame, StatusCode code, std::string_view reason,
                    const CodecOptions& options = {}) {
  Result<Message> r = Decode(frame, options);
  ASSERT_FALSE(r.ok()) << "accepted a frame that should fail with: " << reason;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(reason), std::string::npos) << r.status().ToString();
}

TEST(CodecTest, EveryMessageTypeRoundTrips) {
  std::vector<Message> samples = SampleMessages();
  ASSERT_EQ(samples.size(), kMaxMessageType);
  for (size_t i = 0; i < samples.size(); ++i) {
    const Message& m = samples[i];
    SCOPED_TRACE(std::string(MessageTypeName(m.type())));
    EXPECT_EQ(static_cast<size_t>(m.type()), i + 1);
    ASSERT_TRUE(Validate(m).ok()) << Validate(m).ToString();
    std::vector<uint8_t> frame = Encode(m);
    EXPECT_EQ(frame.size() % 8, 0u);
    Result<Message> back = Decode(frame);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == m);
    EXPECT_EQ(back->sender, m.sender);
    EXPECT_EQ(back->epoch, m.epoch);
  }
}

TEST(CodecTest, PageReportsAndPeerEndpointRoundTrip) {
  Message hb;
  hb.payload =
      Heartbeat{WorkerId(3), 11, 12, 3456, 1000, 3096, 987654321, WeightVersion(7), 4096, 5};
  Result<Message> back = Decode(Encode(hb));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == hb);
  EXPECT_EQ(back->get_if<Heartbeat>()->total_pages, 4096u);
  EXPECT_EQ(back->get_if<Heartbeat>()->batches_seen, 5u);

  Message rb = SampleMessages()[static_cast<size_t>(MessageType::kSegmentResultBatch) - 1];
  std::get<SegmentResultBatch>(rb.payload).free_pages = 17;
  std::get<SegmentResultBatch>(rb.payload).total_pages = 64;
  std::get<SegmentResultBatch>(rb.payload).batches_seen = 9;
  back = Decode(Encode(rb));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == rb);

  Message reg = SampleMessages()[0];
  std::get<RegisterWorker>(reg.payload).peer_endpoint = "tcp://10.0.0.2:5601";
  back = Decode(Encode(reg));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->get_if<RegisterWorker>()->peer_endpoint, "tcp://10.0.0.2:5601");
}

TEST(CodecTest, KvChunkWithBadChecksumOrSizeIsRefused) {
  Message m = SampleMessages()[static_cast<size_t>(MessageType::kKvChunk) - 1];
  auto& chunk = std::get<KvChunk>(m.payload);
  chunk.data[3] ^= 1;  // checksum no longer matches
  ExpectRejected(Encode(m), StatusCode::kDataLoss, "checksum");
  m = SampleMessages()[static_cast<size_t>(MessageType::kKvChunk) - 1];
  auto& chunk2 = std::get<KvChunk>(m.payload);
  chunk2.data.pop_back();
  chunk2.checksum = Fnv1a64(chunk2.data);
  ExpectRejected(Encode(m), StatusCode::kInvalidArgument, "bytes for");
  m = SampleMessages()[static_cast<size_t>(MessageType::kKvChunk) - 1];
  std::get<KvChunk>(m.payload).nodes[0].pages = {5};  // past total_pages
  ExpectRejected(Encode(m), StatusCode::kInvalidArgument, "page index");
}

TEST(CodecTest, DecodesUnalignedFrames) {
  const Message m = SampleMessages()[static_cast<size_t>(MessageType::kSegmentResultBatch) - 1];
  std::vector<uint8_t> frame = Encode(m);
  std::vector<uint8_t> shifted(frame.size() + 1);
  std::memcpy(shifted.data() + 1, frame.data(), frame.size());
  Result<Message> back = Decode(std::span<const uint8_t>(shifted).subspan(1));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == m);
}

TEST(CodecTest, RejectsTruncatedFrames) {
  for (const Message& m : SampleMessages()) {
    std::vector<uint8_t> frame = Encode(m);
    for (size_t len = 0; len < frame.size(); len += (len < 64 ? 1 : 8)) {
      std::vector<uint8_t> cut(frame.begin(), frame.begin() + len);
      EXPECT_FALSE(Decode(cut).ok()) << MessageTypeName(m.type()) << " cut to " << len;
    }
  }
  ExpectRejected({}, StatusCode::kDataLoss, "not a positive multiple of 8");
  ExpectRejected(std::vector<uint8_t>(13, 0), StatusCode::kDataLoss, "multiple of 8");
}

TEST(CodecTest, RejectsRandomAndFlippedFramesWithoutCrashing) {
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> frame(8 * (1 + rng() % 64));
    for (auto& b : frame) b = static_cast<uint8_t>(rng());
    Result<Message> r = Decode(frame);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  // Single-byte corruptions of valid frames: decode or reject, never crash.
  for (const Message& m : SampleMessages()) {
    const std::vector<uint8_t> frame = Encode(m);
    for (int i = 0; i < 200; ++i) {
      std::vector<uint8_t> bad = frame;
      bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
      Result<Message> r = Decode(bad);
      if (r.ok()) {
        EXPECT_TRUE(Validate(*r).ok());
      }
    }
  }
}

TEST(CodecTest, RejectsOversizedFramesAndChunks) {
  const std::vector<uint8_t> frame = Encode(SampleMessages()[0]);
  CodecOptions small;
  small.max_frame_bytes = frame.size() - 8;
  ExpectRejected(frame, StatusCode::kResourceExhausted, "exceeds the limit", small);

  WeightChunk chunk{WeightVersion(2), 0, 1, 0, std::vector<uint8_t>(4096, 7), 0};
  chunk.chunk_checksum = Fnv1a64(chunk.bytes);
  CodecOptions tight;
  tight.max_weight_chunk_bytes = 1024;
  ExpectRejected(Encode(Of(chunk)), StatusCode::kResourceExhausted, "chunk limit", tight);
  EXPECT_TRUE(Decode(Encode(Of(chunk))).ok());
}

TEST(CodecTest, RejectsTraversalAndTrailingBytes) {
  const std::vector<uint8_t> frame = Encode(SampleMessages()[11]);  // TreeBatch
  CodecOptions limited;
  limited.traversal_limit_words = 8;
  ExpectRejected(frame, StatusCode::kDataLoss, "malformed frame", limited);

  std::vector<uint8_t> padded = frame;
  padded.resize(frame.size() + 16, 0);
  ExpectRejected(padded, StatusCode::kDataLoss, "trailing bytes");
}

TEST(CodecTest, RejectsWrongVersionAndUnknownType) {
  Message m = SampleMessages()[3];  // Heartbeat
  std::vector<uint8_t> frame = Encode(m);
  ASSERT_EQ(ReadU16(frame, kVersionOffset), kProtocolVersion);
  ASSERT_EQ(ReadU16(frame, kTypeOffset), static_cast<uint16_t>(MessageType::kHeartbeat));

  std::vector<uint8_t> v2 = frame;
  WriteU16(v2, kVersionOffset, 2);
  ExpectRejected(v2, StatusCode::kFailedPrecondition, "protocol version 2");
  m.version = 0;
  ExpectRejected(Encode(m), StatusCode::kFailedPrecondition, "protocol version 0");

  std::vector<uint8_t> unknown = frame;
  WriteU16(unknown, kTypeOffset, 999);
  ExpectRejected(unknown, StatusCode::kUnimplemented, "unknown message type 999");
  WriteU16(unknown, kTypeOffset, 0);
  ExpectRejected(unknown, StatusCode::kUnimplemented, "unknown message type 0");

  std::vector<uint8_t> mismatch = frame;
  WriteU16(mismatch, kTypeOffset, static_cast<uint16_t>(MessageType::kShutdown));
  ExpectRejected(mismatch, StatusCode::kInvalidArgument, "does not match its payload");
}

TEST(CodecTest, RejectsInconsistentLengths) {
  const std::vector<Message> s = SampleMessages();
  auto task_batch = [&] { return std::get<SegmentTaskBatch>(s[4].payload); };
  auto result_batch = [&] { return std::get<SegmentResultBatch>(s[5].payload); };

  SegmentTaskBatch seeds = task_batch();
  seeds.tasks[0].child_seeds.pop_back();
  ExpectRejected(Encode(Of(seeds)), StatusCode::kInvalidArgument, "1 seeds for 2 children");

  SegmentTaskBatch zero_child = task_batch();
  zero_child.tasks[1].child_node_ids[0] = NodeId(0);
  ExpectRejected(Encode(Of(zero_child)), StatusCode::kInvalidArgument, "child node id is 0");

  SegmentTaskBatch no_task_id = task_batch();
  no_task_id.tasks[0].task_id = TaskId(0);
  ExpectRejected(Encode(Of(no_task_id)), StatusCode::kInvalidArgument, "task_id is 0");

  SegmentTaskBatch root_no_prefix = task_batch();
  root_no_prefix.tasks[0].prefix_tokens.clear();
  ExpectRejected(Encode(Of(root_no_prefix)), StatusCode::kInvalidArgument, "without prefix");

  SegmentTaskBatch bad_top_p = task_batch();
  bad_top_p.tasks[0].top_p = 0.0f;
  ExpectRejected(Encode(Of(bad_top_p)), StatusCode::kInvalidArgument, "top_p");

  ExpectRejected(Encode(Of(SegmentTaskBatch{})), StatusCode::kInvalidArgument, "no tasks");

  SegmentResultBatch logprobs = result_batch();
  logprobs.results[0].children[0].logprobs.push_back(-1.0f);
  ExpectRejected(Encode(Of(logprobs)), StatusCode::kInvalidArgument, "3 logprobs for 2 tokens");

  SegmentResultBatch no_worker = result_batch();
  no_worker.results[0].worker_id = WorkerId(0);
  ExpectRejected(Encode(Of(no_worker)), StatusCode::kInvalidArgument, "worker_id is 0");

  WeightChunk chunk = std::get<WeightChunk>(s[9].payload);
  WeightChunk index = chunk;
  index.chunk_index = 1;
  ExpectRejected(Encode(Of(index)), StatusCode::kInvalidArgument, "chunk index 1 >= n_chunks 1");
  WeightChunk overflow = chunk;
  overflow.offset = UINT64_MAX - 2;
  ExpectRejected(Encode(Of(overflow)), StatusCode::kInvalidArgument, "overflows");
  WeightChunk corrupt = chunk;
  corrupt.bytes[0] ^= 1;
  ExpectRejected(Encode(Of(corrupt)), StatusCode::kDataLoss, "checksum mismatch");

  TreeBatch trees = std::get<TreeBatch>(s[11].payload);
  TreeBatch orphan = trees;
  orphan.trees[0].nodes[1].parent = 999;
  ExpectRejected(Encode(Of(orphan)), StatusCode::kInvalidArgument, "before its parent");
  TreeBatch tree_logprobs = trees;
  tree_logprobs.trees[0].nodes[0].logprobs.clear();
  ExpectRejected(Encode(Of(tree_logprobs)), StatusCode::kInvalidArgument,
                 "0 logprobs for 2 tokens");
  TreeBatch leaf = trees;
  leaf.trees[0].leaves[0].node = 5;
  ExpectRejected(Encode(Of(leaf)), StatusCode::kInvalidArgument, "leaf names missing node 5");

  ExpectRejected(Encode(Of(RegisterAck{0, 1, 100, WeightVersion(0)})), StatusCode::kInvalidArgument,
                 "assigned_id is 0");
  ExpectRejected(Encode(Of(RegisterLearner{"l", 2, 2, 0})), StatusCode::kInvalidArgument,
                 "rank 2 >= world_size 2");
  ExpectRejected(Encode(Of(TaskRejected{TaskId(1), StatusCode::kOk, ""})),
                 StatusCode::kInvalidArgument, "not an error");
  ExpectRejected(Encode(Of(ReleaseNodes{{NodeId(3), NodeId(0)}})), StatusCode::kInvalidArgument,
                 "node id is 0");
}

TEST(CodecTest, Fnv1a64MatchesReferenceValues) {
  EXPECT_EQ(Fnv1a64({}), 0xcbf29ce484222325ULL);
  const uint8_t a[] = {'a'};
  EXPECT_EQ(Fnv1a64(a), 0xaf63dc4c8601ec8cULL);
  const uint8_t foobar[] = {'f', 'o', 'o', 'b', 'a', 'r'};
  EXPECT_EQ(Fnv1a64(foobar), 0x85944171f73967e8ULL);
  // Chaining over parts equals one pass.
  EXPECT_EQ(Fnv1a64(std::span<const uint8_t>(foobar).subspan(3),
                    Fnv1a64(std::span<const uint8_t>(foobar).first(3))),
            Fnv1a64(foobar));
}

TEST(CodecTest, RejectsNamesThatAreNotUtf8OrHoldControlCharacters) {
  ExpectRejected(Encode(Of(RegisterWorker{"w\xff\xfe", 1, 64, 16, 0})),
                 StatusCode::kInvalidArgument, "not valid UTF-8");
  ExpectRejected(Encode(Of(RegisterLearner{"\xc0\xafl", 0, 1, 0})), StatusCode::kInvalidArgument,
                 "not valid UTF-8");
  ExpectRejected(Encode(Of(RegisterWorker{"a\nb", 1, 64, 16, 0})), StatusCode::kInvalidArgument,
                 "control character");
  ExpectRejected(Encode(Of(TrainDone{1, WeightVersion(1), {{"lo\xffss", 1.0}}})),
                 StatusCode::kInvalidArgument, "not valid UTF-8");
  EXPECT_TRUE(Decode(Encode(Of(RegisterWorker{"w\xc3\xa9-\xe2\x82\xac", 1, 64, 16, 0}))).ok());
}

TEST(CodecTest, IsValidUtf8) {
  for (const char* ok : {"", "abc", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
    EXPECT_TRUE(IsValidUtf8(ok)) << ok;
  }
  for (const char* bad : {"\xff", "\xc3", "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80",
                          "\xf4\x90\x80\x80", "\xe2\x82", "a\x80"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

}  // namespace
}  // namespace treepo::protocols
