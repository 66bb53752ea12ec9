#include "learner/service/weight_buckets.h"

#include <gtest/gtest.h>

#include <random>

namespace treepo::learner {
namespace {

model::ModelConfig TinyConfig() {
  model::ModelConfig c;
  c.dim = 4;
  c.hidden_dim = 8;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 6;
  c.max_seq_len = 16;
  return c;
}

model::ModelConfig SmallConfig() {  // stories260K's shape
  model::ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  return c;
}

// The tiny layout's tensors (numel): embed 24, attn_norm 4, q 16, k 8, v 8, o 16,
// ffn_norm 4, gate 32, down 32, up 32, final norm 4 = 180. At 20 elements a bucket, worked by
// hand from the rules in the header.
TEST(WeightBucketsTest, TinyLayoutCutAsTheRulesSay) {
  const model::ParamLayout layout(TinyConfig());
  ASSERT_EQ(layout.total(), 180u);
  Result<WeightBucketPlan> plan = PlanWeightBuckets(layout, 80, 4);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const std::vector<WeightBucket> want = {
      {0, 20, {{0, 0, 20}}},                // the embedding (24) is larger: split
      {20, 8, {{0, 20, 4}, {1, 0, 4}}},     // its tail and the norm; q (16) does not fit
      {28, 16, {{2, 0, 16}}},               // q; k (8) does not fit
      {44, 16, {{3, 0, 8}, {4, 0, 8}}},     // k, v; o does not fit
      {60, 20, {{5, 0, 16}, {6, 0, 4}}},    // o and ffn_norm fill it
      {80, 20, {{7, 0, 20}}},               // gate (32): split
      {100, 20, {{7, 20, 12}, {8, 0, 8}}},  // down (32) is larger: fills what is left
      {120, 20, {{8, 8, 20}}},
      {140, 20, {{8, 28, 4}, {9, 0, 16}}},    // up (32) likewise
      {160, 20, {{9, 16, 16}, {10, 0, 4}}}};  // its tail and the final norm
  EXPECT_EQ(plan->buckets, want);
  EXPECT_EQ(plan->total_elements, 180u);

  // bf16 at 40 bytes a bucket is the same cut; the fingerprint tells the sizes apart.
  Result<WeightBucketPlan> half = PlanWeightBuckets(layout, 40, 2);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->buckets, want);
  EXPECT_NE(half->Fingerprint(), plan->Fingerprint());
  // A bucket size that is not a multiple of the element rounds down.
  EXPECT_EQ(PlanWeightBuckets(layout, 83, 4)->buckets, want);
}

TEST(WeightBucketsTest, OneBigBucketHoldsTheWholeModel) {
  const model::ParamLayout layout(TinyConfig());
  Result<WeightBucketPlan> plan = PlanWeightBuckets(layout, size_t{1} << 30, 2);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->buckets.size(), 1u);
  EXPECT_EQ(plan->buckets[0].count, 180u);
  EXPECT_EQ(plan->buckets[0].pieces.size(), layout.tensors().size());
}

TEST(WeightBucketsTest, AnySizeTilesTheBufferWithinTheCap) {
  const model::ParamLayout layout(SmallConfig());
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t elem = trial % 2 == 0 ? 4 : 2;
    const size_t bucket_bytes = elem + rng() % (200000 * elem);
    Result<WeightBucketPlan> plan = PlanWeightBuckets(layout, bucket_bytes, elem);
    ASSERT_TRUE(plan.ok());
    const size_t cap = bucket_bytes / elem;
    size_t at = 0;
    std::vector<size_t> buckets_of_tensor(layout.tensors().size(), 0);
    for (const WeightBucket& b : plan->buckets) {
      EXPECT_EQ(b.offset, at);
      EXPECT_GE(b.count, 1u);
      EXPECT_LE(b.count, cap);
      size_t sum = 0;
      for (const BucketPiece& p : b.pieces) {
        const model::TensorInfo& t = layout.tensors()[p.tensor];
        EXPECT_EQ(t.offset + p.tensor_begin, at + sum) << "pieces follow the flat buffer";
        EXPECT_LE(p.tensor_begin + p.count, t.numel);
        sum += p.count;
        ++buckets_of_tensor[p.tensor];
      }
      EXPECT_EQ(sum, b.count);
      at += b.count;
    }
    EXPECT_EQ(at, layout.total());
    for (size_t t = 0; t < layout.tensors().size(); ++t) {
      const size_t numel = layout.tensors()[t].numel;
      if (numel <= cap) {
        EXPECT_EQ(buckets_of_tensor[t], 1u) << layout.tensors()[t].name << " fits, is split";
      } else {
        // Split: what is left of one bucket, then whole buckets, then a tail.
        EXPECT_GE(buckets_of_tensor[t], (numel + cap - 1) / cap);
        EXPECT_LE(buckets_of_tensor[t], (numel + cap - 1) / cap + 1);
      }
    }
    // Deterministic.
    EXPECT_EQ(PlanWeightBuckets(layout, bucket_bytes, elem)->buckets, plan->buckets);
  }
}

TEST(WeightBucketsTest, RejectsSizesBelowOneElement) {
  const model::ParamLayout layout(TinyConfig());
  Result<WeightBucketPlan> plan = PlanWeightBuckets(layout, 3, 4);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("bucket_bytes 3"), std::string::npos);
  EXPECT_FALSE(PlanWeightBuckets(layout, 8, 0).ok());
}

TEST(WeightBucketsTest, ChecksumIsWordWiseFnv1a) {
  // FNV-1a 64 over the little-endian words, then the tail bytes: worked out independently.
  const uint64_t offset = 14695981039346656037ull, prime = 1099511628211ull;
  std::vector<uint8_t> bytes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  uint64_t want = offset;
  want = (want ^ 0x0807060504030201ull) * prime;
  want = (want ^ 9) * prime;
  want = (want ^ 10) * prime;
  EXPECT_EQ(BucketChecksum(bytes), want);
  EXPECT_EQ(BucketChecksum({}), offset);
  bytes[3] ^= 1;
  EXPECT_NE(BucketChecksum(bytes), want);
}

TEST(WeightBucketsTest, DescribesABucketByItsTensors) {
  const model::ParamLayout layout(TinyConfig());
  const WeightBucketPlan plan = *PlanWeightBuckets(layout, 80, 4);
  EXPECT_EQ(DescribeBucket(layout, plan.buckets[0]), "model.embed_tokens.weight[0:20]");
  EXPECT_EQ(DescribeBucket(layout, plan.buckets[3]),
            "model.layers.0.self_attn.k_proj.weight .. model.layers.0.self_attn.v_proj.weight");
}

}  // namespace
}  // namespace treepo::learner
