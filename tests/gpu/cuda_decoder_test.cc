// The CUDA decoder backend against the CPU one (common/compute/cpu_decoder.h) on the same
// bf16 weights: random small models covering both RoPE layouts, GQA, q/k/v biases, q/k norm
// and untied embeddings; the real stories260K; chunked prefill; the device KV pages.
// Tolerance: logits within 1e-2 relative (L2 norm of the difference over the reference's):
// the device rounds activations to bf16 before every GEMM and stores K and V in bf16.
#include "common/cuda/cuda_decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "common/compute/cpu_decoder.h"
#include "common/compute/decoder_backend.h"
#include "common/model/llama2c.h"
#include "common/model/weights.h"
#include "common/testing/paths.h"
#include "tests/gpu/gpu_test_util.h"

namespace treepo::cuda {
namespace {

using compute::DecoderBackend;
using compute::ForwardBatch;
using compute::KvShape;
using compute::SeqSlice;

constexpr double kLogitRelTol = 1e-2;

double RelErr(const float* got, const float* want, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

int Argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

// One sequence's part of a batch.
struct Part {
  std::vector<int32_t> table;
  int start = 0;
  std::vector<int32_t> tokens;
};

// Runs the parts as one batch; the logits of each part's last row, [parts, vocab].
std::vector<float> RunBatch(DecoderBackend& b, const std::vector<Part>& parts, int vocab) {
  std::vector<int32_t> tokens, logit_rows;
  std::vector<SeqSlice> seqs;
  for (const Part& p : parts) {
    tokens.insert(tokens.end(), p.tokens.begin(), p.tokens.end());
    logit_rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
    seqs.push_back({p.table, p.start, static_cast<int>(p.tokens.size())});
  }
  std::vector<float> logits(parts.size() * static_cast<size_t>(vocab));
  b.Forward(ForwardBatch{tokens, seqs, logit_rows}, logits.data());
  return logits;
}

// Random biases and norm weights (Random() gives zeros and ones), then rounded to bf16: the
// weights both backends hold.
std::shared_ptr<const model::ModelWeights> RandomModel(const model::ModelConfig& c, uint64_t seed) {
  auto w = model::ModelWeights::Random(c, seed);
  TREEPO_CHECK(w.ok()) << w.status().ToString();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.1f);
  auto fill = [&](size_t off, int n, float base) {
    if (off == model::ParamLayout::kNone) return;
    for (int i = 0; i < n; ++i) w->at(off)[i] = base + d(rng);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    const model::LayerOffsets& o = w->layout.layer(l);
    fill(o.bq, c.q_dim(), 0);
    fill(o.bk, c.kv_dim(), 0);
    fill(o.bv, c.kv_dim(), 0);
    fill(o.attn_norm, c.dim, 1);
    fill(o.ffn_norm, c.dim, 1);
    fill(o.q_norm, c.head_dim(), 1);
    fill(o.k_norm, c.head_dim(), 1);
  }
  fill(w->layout.final_norm(), c.dim, 1);
  return std::make_shared<const model::ModelWeights>(
      model::ModelWeights::ToHalf(*w, model::WeightDtype::kBF16));
}

KvShape ShapeFor(const model::ModelConfig& c, int num_pages, int page_size) {
  return {c.n_layers, num_pages, page_size, c.kv_dim()};
}

std::unique_ptr<DecoderBackend> Gpu(std::shared_ptr<const model::ModelWeights> w,
                                    const KvShape& kv) {
  auto b = CreateCudaDecoder(0, std::move(w), kv);
  TREEPO_CHECK(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

// Pages [seq * per_seq, (seq + 1) * per_seq) in reverse order: tables that are not the
// identity.
std::vector<int32_t> TableFor(int seq, int per_seq) {
  std::vector<int32_t> t(per_seq);
  for (int i = 0; i < per_seq; ++i) t[i] = seq * per_seq + per_seq - 1 - i;
  return t;
}

// Prefill of prompts of different lengths in one batch, then teacher-forced decode steps of
// every sequence together (the CPU's greedy token fed to both), logits compared each step.
void CompareWithCpu(std::shared_ptr<const model::ModelWeights> w, int page_size, int steps) {
  const model::ModelConfig& c = w->config;
  const int vocab = c.vocab_size;
  const std::vector<int> prompt_lens = {5, 17, 1, 9};
  const int per_seq = (17 + steps + page_size - 1) / page_size;
  const KvShape kv = ShapeFor(c, per_seq * static_cast<int>(prompt_lens.size()), page_size);
  auto cpu = compute::CreateCpuDecoder(w, kv);
  auto gpu = Gpu(w, kv);
  std::mt19937 rng(7);
  std::vector<Part> parts;
  for (size_t s = 0; s < prompt_lens.size(); ++s) {
    Part p;
    p.table = TableFor(static_cast<int>(s), per_seq);
    for (int i = 0; i < prompt_lens[s]; ++i) p.tokens.push_back(rng() % vocab);
    parts.push_back(p);
  }
  double worst = 0;
  for (int step = 0; step <= steps; ++step) {
    const std::vector<float> want = RunBatch(*cpu, parts, vocab);
    const std::vector<float> got = RunBatch(*gpu, parts, vocab);
    for (size_t s = 0; s < parts.size(); ++s) {
      const double e = RelErr(got.data() + s * vocab, want.data() + s * vocab, vocab);
      worst = std::max(worst, e);
      EXPECT_LE(e, kLogitRelTol) << "step " << step << " sequence " << s;
      Part& p = parts[s];
      p.start += static_cast<int>(p.tokens.size());
      p.tokens = {Argmax(want.data() + s * vocab, vocab)};
    }
  }
  std::printf("worst relative logit error %.3g (%s)\n", worst, c.ToString().c_str());
}

model::ModelConfig BaseConfig() {
  model::ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 96;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.vocab_size = 97;
  c.max_seq_len = 128;
  return c;
}

TEST(CudaDecoder, LlamaAdjacentPairsGqaMatchesCpu) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  CompareWithCpu(RandomModel(BaseConfig(), 1), /*page_size=*/4, /*steps=*/8);
}

TEST(CudaDecoder, QwenStyleRotateHalfBiasQkNormUntiedMatchesCpu) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  model::ModelConfig c = BaseConfig();
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_size = 32;  // q_dim 128 != dim
  c.rope_layout = model::RopeLayout::kRotateHalf;
  c.rope_theta = 1e6f;
  c.qkv_bias = true;
  c.qk_norm = true;
  c.tied_embeddings = false;
  c.vocab_size = 120;
  CompareWithCpu(RandomModel(c, 2), /*page_size=*/16, /*steps=*/8);
}

TEST(CudaDecoder, MultiHeadOneTokenPagesMatchesCpu) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  model::ModelConfig c = BaseConfig();
  c.dim = 96;
  c.n_heads = 6;
  c.n_kv_heads = 6;
  c.rope_layout = model::RopeLayout::kRotateHalf;
  c.qkv_bias = true;
  c.n_layers = 3;
  CompareWithCpu(RandomModel(c, 3), /*page_size=*/1, /*steps=*/6);
}

class Stories260kCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
    const std::filesystem::path model =
        std::filesystem::path(treepo::testing::SharedDir()) / "models/stories260K/stories260K.bin";
    if (!std::filesystem::exists(model)) {
      GTEST_SKIP() << "needs " << model << " (set TREEPO_SHARED_DIR)";
    }
    auto w = model::LoadLlama2cCheckpoint(model.string());
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    weights_ = std::make_shared<const model::ModelWeights>(
        model::ModelWeights::ToHalf(*w, model::WeightDtype::kBF16));
  }
  std::shared_ptr<const model::ModelWeights> weights_;
};

TEST_F(Stories260kCudaTest, GreedyDecodeMatchesCpuFor32Steps) {
  const model::ModelConfig& c = weights_->config;
  const int vocab = c.vocab_size, page_size = 16, steps = 32;
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 395};  // bos "Once upon a time"...
  const KvShape kv = ShapeFor(c, 8, page_size);
  auto cpu = compute::CreateCpuDecoder(weights_, kv);
  auto gpu = Gpu(weights_, kv);
  Part pc{TableFor(0, 8), 0, prompt}, pg = pc;
  std::vector<int32_t> cpu_tokens, gpu_tokens;
  double worst = 0;
  for (int step = 0; step < steps; ++step) {
    const std::vector<float> want = RunBatch(*cpu, {pc}, vocab);
    const std::vector<float> got = RunBatch(*gpu, {pg}, vocab);
    cpu_tokens.push_back(Argmax(want.data(), vocab));
    gpu_tokens.push_back(Argmax(got.data(), vocab));
    if (cpu_tokens == gpu_tokens) {  // the same prefix: the logits are comparable
      const double e = RelErr(got.data(), want.data(), vocab);
      worst = std::max(worst, e);
      EXPECT_LE(e, kLogitRelTol) << "step " << step;
    } else {
      std::vector<float> sorted = want;
      std::sort(sorted.rbegin(), sorted.rend());
      ADD_FAILURE() << "greedy tokens differ at step " << step << ": cpu " << cpu_tokens.back()
                    << ", gpu " << gpu_tokens.back() << " (cpu top-2 margin "
                    << sorted[0] - sorted[1] << ")";
      break;
    }
    pc.start += static_cast<int>(pc.tokens.size());
    pg.start += static_cast<int>(pg.tokens.size());
    pc.tokens = {cpu_tokens.back()};
    pg.tokens = {gpu_tokens.back()};
  }
  std::printf("stories260K: %zu greedy tokens agree, worst relative logit error %.3g\n",
              gpu_tokens.size(), worst);
  const compute::ForwardStats st = gpu->stats();
  EXPECT_GT(st.matmul_flops, 0.0);
  EXPECT_GT(st.matmul_seconds, 0.0);
}

TEST_F(Stories260kCudaTest, ChunkedPrefillEqualsPrefillAtOnce) {
  const model::ModelConfig& c = weights_->config;
  const int vocab = c.vocab_size, page_size = 8;
  std::vector<int32_t> prompt = {1};
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i) prompt.push_back(2 + rng() % (vocab - 2));
  const KvShape kv = ShapeFor(c, 6, page_size);
  auto whole = Gpu(weights_, kv);
  auto chunked = Gpu(weights_, kv);
  auto cpu = compute::CreateCpuDecoder(weights_, kv);
  const std::vector<int32_t> table = TableFor(0, 6);
  const std::vector<float> want = RunBatch(*cpu, {{table, 0, prompt}}, vocab);
  const std::vector<float> a = RunBatch(*whole, {{table, 0, prompt}}, vocab);
  std::vector<float> b;
  for (int start = 0; start < static_cast<int>(prompt.size());) {
    const int n = std::min<int>(start == 0 ? 13 : 9, static_cast<int>(prompt.size()) - start);
    b = RunBatch(*chunked, {{table, start, {prompt.begin() + start, prompt.begin() + start + n}}},
                 vocab);
    start += n;
  }
  EXPECT_LE(RelErr(b.data(), a.data(), vocab), 1e-3);
  EXPECT_LE(RelErr(a.data(), want.data(), vocab), kLogitRelTol);
  // The pages they wrote: the same K and V up to the GEMMs' order of summation.
  std::vector<float> pa(kv.page_floats()), pb(kv.page_floats());
  for (int32_t page : table) {
    whole->kv().Read(page, pa.data());
    chunked->kv().Read(page, pb.data());
    EXPECT_LE(RelErr(pb.data(), pa.data(), static_cast<int>(pa.size())), 1e-2) << page;
  }
}

TEST(CudaKvPages, ReadWriteRoundTripAndCopyOnWrite) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const model::ModelConfig c = BaseConfig();
  const KvShape kv = ShapeFor(c, 7, 5);
  auto gpu = Gpu(RandomModel(c, 4), kv);
  compute::KvPages& pages = gpu->kv();
  const size_t n = kv.page_floats();
  std::vector<float> out(n, 1.0f);
  pages.Read(6, out.data());
  EXPECT_EQ(out, std::vector<float>(n, 0.0f)) << "a fresh pool reads as zeros";

  const std::vector<float> a = testing::RandomFloats(n, 70), b = testing::RandomFloats(n, 71);
  pages.Write(2, a.data());
  pages.Write(5, b.data());
  pages.Read(2, out.data());
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], testing::RoundBf16(a[i])) << i;

  // Copy-on-write of a partial page: rows [0, 3) of page 2 into page 5, rows 3.. keep b.
  const int rows = 3;
  pages.CopyRows(2, 5, rows);
  pages.Read(5, out.data());
  const size_t per = static_cast<size_t>(kv.page_size) * kv.kv_dim;  // one layer's K or V
  for (int part = 0; part < 2 * kv.n_layers; ++part) {
    for (int j = 0; j < kv.page_size; ++j) {
      for (int e = 0; e < kv.kv_dim; ++e) {
        const size_t i = part * per + static_cast<size_t>(j) * kv.kv_dim + e;
        ASSERT_EQ(out[i], testing::RoundBf16(j < rows ? a[i] : b[i])) << part << "," << j;
      }
    }
  }
  pages.Read(2, out.data());  // the source is untouched
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], testing::RoundBf16(a[i])) << i;
}

TEST(CudaKvPages, MigratedPagesDecodeLikeTheOriginal) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  // Prefill on the CPU, move the pages to the device through Read/Write, decode there.
  const model::ModelConfig c = BaseConfig();
  auto w = RandomModel(c, 5);
  const KvShape kv = ShapeFor(c, 4, 8);
  auto cpu = compute::CreateCpuDecoder(w, kv);
  auto gpu = Gpu(w, kv);
  const std::vector<int32_t> table = {3, 1, 0};
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42, 7, 9, 11, 13, 2};
  RunBatch(*cpu, {{table, 0, prompt}}, c.vocab_size);
  std::vector<float> page(kv.page_floats());
  for (int32_t p : table) {
    cpu->kv().Read(p, page.data());
    gpu->kv().Write(p, page.data());
  }
  const int start = static_cast<int>(prompt.size());
  const std::vector<float> want = RunBatch(*cpu, {{table, start, {5}}}, c.vocab_size);
  const std::vector<float> got = RunBatch(*gpu, {{table, start, {5}}}, c.vocab_size);
  EXPECT_LE(RelErr(got.data(), want.data(), c.vocab_size), kLogitRelTol);
}

TEST(CudaDecoder, SetWeightsChecksTheShapeAndTakesNewValues) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const model::ModelConfig c = BaseConfig();
  const KvShape kv = ShapeFor(c, 4, 8);
  auto gpu = Gpu(RandomModel(c, 6), kv);
  model::ModelConfig other = c;
  other.hidden_dim = 128;
  const Status bad = gpu->SetWeights(RandomModel(other, 6));
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("hidden_dim 96 vs 128"), std::string::npos) << bad.message();
  EXPECT_EQ(gpu->SetWeights(nullptr).code(), StatusCode::kInvalidArgument);

  auto fresh = RandomModel(c, 8);
  ASSERT_TRUE(gpu->SetWeights(fresh).ok());
  auto cpu = compute::CreateCpuDecoder(fresh, kv);
  const std::vector<int32_t> table = {2, 0};
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6, 5};
  const std::vector<float> want = RunBatch(*cpu, {{table, 0, prompt}}, c.vocab_size);
  const std::vector<float> got = RunBatch(*gpu, {{table, 0, prompt}}, c.vocab_size);
  EXPECT_LE(RelErr(got.data(), want.data(), c.vocab_size), kLogitRelTol);
}

TEST(CudaDecoder, FactoryBuildsItByName) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const model::ModelConfig c = BaseConfig();
  compute::DecoderBackendOptions opts;
  opts.kind = "auto";
  auto b = compute::CreateDecoderBackend(opts, RandomModel(c, 9), ShapeFor(c, 2, 4));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->name(), "cuda");
  // A pool larger than the device (2^30 slots of 64 K and V values in 2 layers: 512 GiB):
  // kResourceExhausted, not a crash.
  model::ModelConfig wide = c;
  wide.n_kv_heads = 8;
  auto huge = CreateCudaDecoder(0, RandomModel(wide, 9), ShapeFor(wide, 1 << 25, 32));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted) << huge.status().ToString();
  EXPECT_NE(huge.status().message().find("KV pool"), std::string::npos);
}

}  // namespace
}  // namespace treepo::cuda
