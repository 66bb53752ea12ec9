// The host-side logic of the CUDA backend, on any machine (no device needed): batch planning,
// weight packing, error mapping.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "common/cuda/batch_plan.h"
#include "common/cuda/cuda_check.h"
#include "common/cuda/device_weights.h"
#include "common/cuda/weight_pack.h"
#include "common/model/dtype.h"
#include "common/model/weights.h"

namespace treepo::cuda {
namespace {

using compute::ForwardBatch;
using compute::SeqSlice;

model::ModelConfig SmallConfig() {
  model::ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 50;
  c.max_seq_len = 64;
  c.qkv_bias = true;
  return c;
}

TEST(BatchPlan, FlattensAMixedBatch) {
  // A prefill chunk of 3 rows at position 4 and a decode row at position 9, page size 4.
  const std::vector<int32_t> table_a = {7, 2, 5};  // positions 0..11
  const std::vector<int32_t> table_b = {1, 0, 3, 6};
  const std::vector<int32_t> tokens = {11, 12, 13, 21};
  const std::vector<SeqSlice> seqs = {{table_a, 4, 3}, {table_b, 9, 1}};
  const std::vector<int32_t> logit_rows = {2, 3};
  ForwardBatch b{tokens, seqs, logit_rows};
  BatchPlan p;
  PlanBatch(b, 50, 4, 8, &p);
  ASSERT_EQ(p.rows, 4);
  ASSERT_EQ(p.n_out, 2);
  EXPECT_EQ(p.max_context, 10);
  auto at = [&](size_t off, int i) { return p.ints[off + i]; };
  for (int i = 0; i < 4; ++i) EXPECT_EQ(at(p.tokens, i), tokens[i]);
  EXPECT_EQ(at(p.positions, 0), 4);
  EXPECT_EQ(at(p.positions, 2), 6);
  EXPECT_EQ(at(p.positions, 3), 9);
  EXPECT_EQ(at(p.slots, 0), 2 * 4 + 0);  // position 4: page table_a[1] = 2, row 0
  EXPECT_EQ(at(p.slots, 2), 2 * 4 + 2);
  EXPECT_EQ(at(p.slots, 3), 3 * 4 + 1);  // position 9: page table_b[2] = 3, row 1
  for (int i = 0; i < 3; ++i) EXPECT_EQ(at(p.ctx_len, i), 5 + i);
  EXPECT_EQ(at(p.ctx_len, 3), 10);
  // Only the pages used are copied: 2 of table_a (positions < 7), 3 of table_b (< 10).
  ASSERT_EQ(p.ints.size() - p.block_tables, 5u);
  EXPECT_EQ(at(p.bt_offset, 0), 0);
  EXPECT_EQ(at(p.bt_offset, 3), 2);
  EXPECT_EQ(at(p.block_tables, 0), 7);
  EXPECT_EQ(at(p.block_tables, 1), 2);
  EXPECT_EQ(at(p.block_tables, 2), 1);
  EXPECT_EQ(at(p.block_tables, 4), 3);
  EXPECT_EQ(at(p.logit_rows, 0), 2);
  EXPECT_EQ(at(p.logit_rows, 1), 3);
}

TEST(BatchPlanDeathTest, RejectsBadBatches) {
  const std::vector<int32_t> table = {0, 1};
  const std::vector<int32_t> one = {3};
  BatchPlan p;
  {
    const std::vector<int32_t> bad_token = {50};
    const std::vector<SeqSlice> seqs = {{table, 0, 1}};
    EXPECT_DEATH(PlanBatch({bad_token, seqs, {}}, 50, 4, 8, &p), "token 50");
  }
  {
    const std::vector<SeqSlice> seqs = {{table, 8, 1}};  // position 8 needs a third page
    EXPECT_DEATH(PlanBatch({one, seqs, {}}, 50, 4, 8, &p), "block table");
  }
  {
    const std::vector<int32_t> far = {9};
    const std::vector<SeqSlice> seqs = {{far, 0, 1}};
    EXPECT_DEATH(PlanBatch({one, seqs, {}}, 50, 4, 8, &p), "page 9 of 8");
  }
  {
    const std::vector<SeqSlice> seqs = {{table, 0, 1}};
    const std::vector<int32_t> rows = {1};
    EXPECT_DEATH(PlanBatch({one, seqs, rows}, 50, 4, 8, &p), "logit row 1");
  }
  {
    const std::vector<SeqSlice> seqs = {{table, 0, 2}};  // 2 rows, 1 token
    EXPECT_DEATH(PlanBatch({one, seqs, {}}, 50, 4, 8, &p), "total");
  }
}

TEST(WeightPack, FusesQkvAndGateUpInLayoutOrder) {
  auto w = model::ModelWeights::Random(SmallConfig(), 3);
  ASSERT_TRUE(w.ok());
  const model::ModelConfig& c = w->config;
  const model::LayerOffsets& o = w->layout.layer(1);
  const LayerParts parts = LayerTensorParts(*w, 1);
  const std::vector<uint16_t> qkv = PackBf16(*w, parts.wqkv);
  ASSERT_EQ(qkv.size(), static_cast<size_t>(c.q_dim() + 2 * c.kv_dim()) * c.dim);
  const size_t q = static_cast<size_t>(c.q_dim()) * c.dim, kv = size_t{1} * c.kv_dim() * c.dim;
  for (size_t i = 0; i < q; ++i) ASSERT_EQ(qkv[i], model::FloatToBf16(w->at(o.wq)[i])) << i;
  for (size_t i = 0; i < kv; ++i) {
    ASSERT_EQ(qkv[q + i], model::FloatToBf16(w->at(o.wk)[i])) << i;
    ASSERT_EQ(qkv[q + kv + i], model::FloatToBf16(w->at(o.wv)[i])) << i;
  }
  const std::vector<uint16_t> gu = PackBf16(*w, parts.w13);
  const size_t h = static_cast<size_t>(c.hidden_dim) * c.dim;
  ASSERT_EQ(gu.size(), 2 * h);
  EXPECT_EQ(gu[0], model::FloatToBf16(w->at(o.w1)[0]));
  EXPECT_EQ(gu[h], model::FloatToBf16(w->at(o.w3)[0]));
  EXPECT_EQ(gu[2 * h - 1], model::FloatToBf16(w->at(o.w3)[h - 1]));
  // Biases: q | k | v as fp32.
  const std::vector<float> b = PackF32(*w, parts.bqkv);
  ASSERT_EQ(b.size(), static_cast<size_t>(c.q_dim() + 2 * c.kv_dim()));
}

TEST(WeightPack, KeepsBf16BitsAndRoundsF16) {
  auto w = model::ModelWeights::Random(SmallConfig(), 4);
  ASSERT_TRUE(w.ok());
  const size_t off = w->layout.layer(0).wo, n = 32 * 32;
  const model::ModelWeights b = model::ModelWeights::ToHalf(*w, model::WeightDtype::kBF16);
  const std::vector<uint16_t> from_bf16 = PackBf16(b, {{off, n}});
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(from_bf16[i], b.half[off + i]) << i;
  const model::ModelWeights f = model::ModelWeights::ToHalf(*w, model::WeightDtype::kF16);
  const std::vector<uint16_t> from_f16 = PackBf16(f, {{off, n}});
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(from_f16[i], model::FloatToBf16(model::F16ToFloat(f.half[off + i]))) << i;
  }
  // Norms come out as fp32 from 16-bit storage too.
  const std::vector<float> norm = PackF32(b, {{b.layout.final_norm(), 32}});
  EXPECT_EQ(norm[0], 1.0f);
}

TEST(DeviceWeights, NamesTheFirstArchitectureDifference) {
  model::ModelConfig a = SmallConfig(), b = SmallConfig();
  EXPECT_EQ(DeviceWeights::ArchitectureDifference(a, b), "");
  b.rope_theta = 5e5f;  // not part of the device layout
  EXPECT_EQ(DeviceWeights::ArchitectureDifference(a, b), "");
  b.n_kv_heads = 4;
  EXPECT_EQ(DeviceWeights::ArchitectureDifference(a, b), "n_kv_heads 2 vs 4");
  b = a;
  b.qk_norm = true;
  EXPECT_EQ(DeviceWeights::ArchitectureDifference(a, b), "qk_norm 0 vs 1");
}

TEST(CudaCheck, MapsErrorsToStatusCodesWithTheCallAndPlace) {
  const Status oom = CudaStatus(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)", "f.cc", 12);
  EXPECT_EQ(oom.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(oom.message().find("cudaMalloc(&p, n) at f.cc:12"), std::string::npos) << oom.message();
  EXPECT_NE(oom.message().find("cudaErrorMemoryAllocation"), std::string::npos);
  EXPECT_EQ(CudaStatus(cudaErrorNoDevice, "x", "f.cc", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CudaStatus(cudaErrorIllegalAddress, "x", "f.cc", 1).code(), StatusCode::kInternal);
  const Status cb = CublasStatus(CUBLAS_STATUS_ALLOC_FAILED, "cublasCreate(&h)", "g.cc", 3);
  EXPECT_EQ(cb.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(cb.message().find("CUBLAS_STATUS_ALLOC_FAILED"), std::string::npos);
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_INVALID_VALUE, "x", "g.cc", 3).code(),
            StatusCode::kInternal);
}

}  // namespace
}  // namespace treepo::cuda
