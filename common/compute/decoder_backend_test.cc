// The backend seam: names and their errors, the CPU decoder against the forward it wraps, and
// page storage.
#include "common/compute/decoder_backend.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "common/compute/cpu_decoder.h"
#include "common/cpu/forward.h"

namespace treepo::compute {
namespace {

std::shared_ptr<const model::ModelWeights> SmallWeights() {
  model::ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 41;
  c.max_seq_len = 64;
  auto w = model::ModelWeights::Random(c, 5);
  EXPECT_TRUE(w.ok());
  return std::make_shared<const model::ModelWeights>(std::move(w).value());
}

TEST(DecoderBackendTest, NamesResolveOrFailWithAReason) {
  EXPECT_EQ(ResolveBackend("cpu").value(), "cpu");
  const auto bad = ResolveBackend("tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("cpu | cuda | auto"), std::string::npos);
  const auto chosen = ResolveBackend("auto");
  ASSERT_TRUE(chosen.ok());
  const auto cuda = ResolveBackend("cuda");
  if (CudaDeviceCount() > 0) {
    EXPECT_EQ(chosen.value(), "cuda");
    EXPECT_TRUE(cuda.ok());
  } else {
    // Without a device, auto is the CPU, and cuda says why it cannot be had.
    EXPECT_EQ(chosen.value(), "cpu");
    ASSERT_FALSE(cuda.ok());
    EXPECT_TRUE(cuda.status().code() == StatusCode::kUnimplemented ||
                cuda.status().code() == StatusCode::kFailedPrecondition)
        << cuda.status().ToString();
    EXPECT_NE(cuda.status().message().find("backend 'cuda'"), std::string::npos);
    EXPECT_FALSE(CreateDecoderBackend({"cuda", 0}, SmallWeights(), {2, 4, 4, 16}).ok());
  }
}

TEST(DecoderBackendTest, AKvShapeThatDoesNotFitTheModelIsRefused) {
  const auto w = SmallWeights();
  EXPECT_FALSE(CreateDecoderBackend({"cpu", 0}, w, {3, 8, 4, 16}).ok());  // layers
  EXPECT_FALSE(CreateDecoderBackend({"cpu", 0}, w, {2, 8, 4, 24}).ok());  // kv_dim
  EXPECT_FALSE(CreateDecoderBackend({"cpu", 0}, w, {2, 0, 4, 16}).ok());  // pages
  EXPECT_FALSE(CreateDecoderBackend({"cpu", 0}, nullptr, {2, 8, 4, 16}).ok());
}

// The CPU backend is cpu::Forward over its own pages: the same logits, bitwise, and the same
// K/V in the pages.
TEST(DecoderBackendTest, CpuBackendIsTheCpuForward) {
  const auto w = SmallWeights();
  const KvShape shape{2, 8, 4, w->config.kv_dim()};
  auto backend = CreateDecoderBackend({"cpu", 0}, w, shape);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_EQ((*backend)->name(), "cpu");
  HostKvPages reference(shape);
  const std::vector<int32_t> tokens = {3, 9, 27, 1, 30, 12, 7};
  const std::vector<int32_t> table_a = {0, 1}, table_b = {2, 3};
  const std::vector<SeqSlice> seqs = {{table_a, 0, 5}, {table_b, 0, 2}};
  const std::vector<int32_t> rows = {4, 6};
  const ForwardBatch batch{tokens, seqs, rows};
  std::vector<float> got(2 * w->config.vocab_size), want(got.size());
  (*backend)->Forward(batch, got.data());
  cpu::ForwardWorkspace ws;
  cpu::Forward(*w, reference.View(), batch, &ws, want.data());
  EXPECT_EQ(got, want);
  EXPECT_GT((*backend)->stats().matmul_flops, 0.0);
  std::vector<float> page(shape.page_floats()), ref_page(shape.page_floats());
  for (int32_t p : {0, 1, 2}) {
    (*backend)->kv().Read(p, page.data());
    reference.Read(p, ref_page.data());
    EXPECT_EQ(page, ref_page) << "page " << p;
  }
}

TEST(DecoderBackendTest, NewWeightsOfAnotherShapeAreRefused) {
  const auto w = SmallWeights();
  auto backend = CreateDecoderBackend({"cpu", 0}, w, {2, 4, 4, w->config.kv_dim()});
  ASSERT_TRUE(backend.ok());
  model::ModelConfig other = w->config;
  other.n_layers = 3;
  auto w3 = model::ModelWeights::Random(other, 1);
  ASSERT_TRUE(w3.ok());
  EXPECT_FALSE((*backend)
                   ->SetWeights(std::make_shared<const model::ModelWeights>(std::move(w3).value()))
                   .ok());
  EXPECT_TRUE((*backend)->SetWeights(w).ok());
}

TEST(HostKvPagesTest, WriteReadAndCopyRows) {
  const KvShape shape{2, 3, 4, 5};
  HostKvPages pages(shape);
  std::vector<float> in(shape.page_floats()), out(shape.page_floats());
  std::iota(in.begin(), in.end(), 1.0f);
  pages.Write(1, in.data());
  pages.Read(1, out.data());
  EXPECT_EQ(out, in);
  pages.Read(2, out.data());
  EXPECT_EQ(out, std::vector<float>(out.size(), 0.0f));  // fresh pages are zeros
  pages.CopyRows(1, 2, 3);                               // 3 of 4 positions
  pages.Read(2, out.data());
  const size_t rows = 4 * 5;
  for (size_t part = 0; part < 4; ++part) {  // K of layer 0, 1, then V of layer 0, 1
    for (size_t i = 0; i < rows; ++i) {
      const float want = i < 3 * 5 ? in[part * rows + i] : 0.0f;
      EXPECT_EQ(out[part * rows + i], want) << "part " << part << " row " << i / 5;
    }
  }
}

}  // namespace
}  // namespace treepo::compute
