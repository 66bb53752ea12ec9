// The CUDA backend chosen where no device is usable fails with a clear Status, never a crash.
// Runs everywhere (CI has the toolkit, no GPU); where a device is present, the checks that
// need its absence are skipped and the bad-ordinal ones still run.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "common/check.h"
#include "common/compute/decoder_backend.h"
#include "common/cuda/cuda_decoder.h"
#include "common/model/weights.h"

namespace treepo {
namespace {

std::shared_ptr<const model::ModelWeights> TinyModel(int head_size = 0) {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 20;
  c.max_seq_len = 32;
  c.head_size = head_size;
  auto w = model::ModelWeights::Random(c, 1);
  TREEPO_CHECK(w.ok()) << w.status().ToString();
  return std::make_shared<const model::ModelWeights>(std::move(w).value());
}

compute::KvShape KvFor(const model::ModelWeights& w) {
  return {w.config.n_layers, 4, 8, w.config.kv_dim()};
}

TEST(CudaNoDevice, TheBuildListsTheCudaBackend) {
  const auto names = compute::DecoderBackends();
  EXPECT_NE(std::find(names.begin(), names.end(), "cuda"), names.end());
}

TEST(CudaNoDevice, ResolveAndCreateFailCleanly) {
  if (cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(compute::CudaDeviceCount(), 0);
  const Result<std::string> r = compute::ResolveBackend("cuda");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("no CUDA device"), std::string::npos) << r.status().message();
  const Result<std::string> a = compute::ResolveBackend("auto");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "cpu");

  auto w = TinyModel();
  compute::DecoderBackendOptions opts;
  opts.kind = "cuda";
  auto b = compute::CreateDecoderBackend(opts, w, KvFor(*w));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  // Straight to the CUDA factory: the same answer, no crash.
  auto d = cuda::CreateCudaDecoder(0, w, KvFor(*w));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(d.status().message().find("no CUDA device"), std::string::npos);
  // auto still gives a working CPU backend.
  opts.kind = "auto";
  auto cpu = compute::CreateDecoderBackend(opts, w, KvFor(*w));
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  EXPECT_EQ((*cpu)->name(), "cpu");
}

TEST(CudaNoDevice, BadOrdinalsAndShapesAreRejected) {
  auto w = TinyModel();
  for (int device : {-1, cuda::DeviceCount(), 1000}) {
    auto d = cuda::CreateCudaDecoder(device, w, KvFor(*w));
    ASSERT_FALSE(d.ok()) << device;
    EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition) << d.status().ToString();
  }
  auto none = cuda::CreateCudaDecoder(0, nullptr, KvFor(*w));
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  compute::KvShape wrong = KvFor(*w);
  wrong.kv_dim += 1;
  auto mismatch = cuda::CreateCudaDecoder(0, w, wrong);
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  auto wide = TinyModel(/*head_size=*/512);  // head_dim over the attention kernel's 256
  auto big = cuda::CreateCudaDecoder(0, wide, KvFor(*wide));
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("head_dim 512"), std::string::npos);
}

}  // namespace
}  // namespace treepo
