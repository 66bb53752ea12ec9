// Frames written by protocol v1 must keep decoding to the same values.
//
// tests/data/protocol_v1_golden.bin is SampleMessages() encoded at v1, as a sequence of
// [uint32 little-endian length][frame]. Regenerate it (and the fuzz seeds in
// tests/data/fuzz_corpus/) only with a deliberate version bump or the first time:
//   TREEPO_REGENERATE_GOLDEN=1 ./protocol_golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/testing/paths.h"
#include "protocols/codec.h"
#include "protocols/sample_messages.h"

namespace treepo::protocols {
namespace {

namespace fs = std::filesystem;

// v1's golden frames are the first kV1Messages samples; messages appended since (KvMigrate,
// ...) are checked by codec_test's round trips. Appended fields of v1 messages are zero in
// the samples, so the old frames still decode to them.
constexpr size_t kV1Messages = 15;

fs::path DataDir() { return fs::path(treepo::testing::SourceDir()) / "tests" / "data"; }

void WriteFile(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

void Regenerate(const fs::path& dir) {
  std::vector<uint8_t> golden;
  fs::create_directories(dir / "fuzz_corpus");
  const std::vector<Message> samples = SampleMessages();
  for (size_t k = 0; k < samples.size(); ++k) {
    const Message& m = samples[k];
    const std::vector<uint8_t> frame = Encode(m);
    const auto n = static_cast<uint32_t>(frame.size());
    if (k < kV1Messages) {
      for (int i = 0; i < 4; ++i) golden.push_back(static_cast<uint8_t>(n >> (8 * i)));
      golden.insert(golden.end(), frame.begin(), frame.end());
    }
    WriteFile(dir / "fuzz_corpus" / (std::string(MessageTypeName(m.type())) + ".bin"), frame);
  }
  WriteFile(dir / "protocol_v1_golden.bin", golden);
}

TEST(ProtocolGoldenTest, V1FramesStillDecode) {
  const fs::path dir = DataDir();
  if (std::getenv("TREEPO_REGENERATE_GOLDEN") != nullptr) Regenerate(dir);

  std::ifstream in(dir / "protocol_v1_golden.bin", std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing " << (dir / "protocol_v1_golden.bin");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  std::vector<Message> decoded;
  size_t at = 0;
  while (at < bytes.size()) {
    ASSERT_LE(at + 4, bytes.size());
    const uint32_t n = bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 |
                       static_cast<uint32_t>(bytes[at + 3]) << 24;
    at += 4;
    ASSERT_LE(at + n, bytes.size());
    Result<Message> m = Decode(std::span<const uint8_t>(bytes).subspan(at, n));
    ASSERT_TRUE(m.ok()) << "frame " << decoded.size() << ": " << m.status().ToString();
    decoded.push_back(std::move(m).value());
    at += n;
  }

  const std::vector<Message> all = SampleMessages();
  const std::vector<Message> expected(all.begin(), all.begin() + kV1Messages);
  ASSERT_EQ(decoded.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(decoded[i] == expected[i])
        << "frame " << i << " (" << MessageTypeName(expected[i].type()) << ")";
  }
  // A few values spelled out, independent of SampleMessages().
  const auto* tasks = decoded[4].get_if<SegmentTaskBatch>();
  ASSERT_NE(tasks, nullptr);
  ASSERT_EQ(tasks->tasks.size(), 2u);
  EXPECT_EQ(tasks->tasks[0].task_id, TaskId(21));
  EXPECT_EQ(tasks->tasks[0].child_seeds, (std::vector<uint64_t>{99, 100}));
  EXPECT_FLOAT_EQ(tasks->tasks[0].top_p, 0.95f);
  const auto* trees = decoded[11].get_if<TreeBatch>();
  ASSERT_NE(trees, nullptr);
  EXPECT_EQ(trees->step, 42u);
  EXPECT_EQ(trees->trees[0].query_id, "gsm8k-0017");
  EXPECT_EQ(trees->trees[0].nodes[1].parent, std::optional<uint64_t>(101));
  EXPECT_EQ(trees->trees[0].nodes[1].finish, FinishReason::kEos);
  EXPECT_EQ(decoded[3].sender, 3u);
  EXPECT_EQ(decoded[3].epoch, 11u);
}

}  // namespace
}  // namespace treepo::protocols
