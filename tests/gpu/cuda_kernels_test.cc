// Each CUDA kernel against its CPU reference (common/cpu/ops.h, or a plain double-precision
// loop for attention) on random inputs. Tolerances: fp32 outputs 1e-5 relative (the same
// arithmetic, another order of summation); bf16 outputs one bf16 rounding (2^-8 relative).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/cpu/ops.h"
#include "common/cuda/kernels.h"
#include "tests/gpu/gpu_test_util.h"

namespace treepo::cuda {
namespace {

using testing::Bf16BitsToFloat;
using testing::FromDevice;
using testing::RandomFloats;
using testing::RoundBf16;
using testing::ToBf16Bits;
using testing::ToDevice;

constexpr float kBf16Rel = 1.0f / 256;

// |a - b| <= rel * |b| + abs for every element.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float rel,
                 float abs, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (!(std::fabs(got[i] - want[i]) <= rel * std::fabs(want[i]) + abs)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
      ++bad;
    }
  }
}

TEST(CudaKernels, EmbedGathersWidenedRows) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const int vocab = 37, dim = 72, rows = 9;
  const std::vector<uint16_t> table = ToBf16Bits(RandomFloats(size_t{1} * vocab * dim, 1));
  const std::vector<int32_t> tokens = {0, 36, 5, 5, 17, 1, 30, 2, 9};
  DeviceBuffer dt = ToDevice(table), dtok = ToDevice(tokens);
  DeviceBuffer dx = ToDevice(std::vector<float>(size_t{1} * rows * dim));
  ASSERT_TRUE(
      LaunchEmbed(dtok.as<int32_t>(), dt.as<__nv_bfloat16>(), dx.as<float>(), rows, dim, nullptr)
          .ok());
  const std::vector<float> x = FromDevice<float>(dx, size_t{1} * rows * dim);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < dim; ++i) {
      ASSERT_EQ(x[r * dim + i], model::Bf16ToFloat(table[tokens[r] * dim + i])) << r << "," << i;
    }
  }
}

TEST(CudaKernels, RmsNormMatchesCpu) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  for (int n : {8, 64, 200, 896, 1536}) {
    const int rows = 7;
    const std::vector<float> x = RandomFloats(size_t{1} * rows * n, n, 3.0f);
    std::vector<float> w = RandomFloats(n, n + 1);
    std::vector<float> want(x.size());
    cpu::RmsNorm(x.data(), w.data(), want.data(), rows, n, 1e-5f);
    DeviceBuffer dx = ToDevice(x), dw = ToDevice(w), dout = ToDevice(std::vector<float>(x.size()));
    ASSERT_TRUE(LaunchRmsNorm(dx.as<float>(), n, nullptr, dw.as<float>(), dout.as<float>(), n, rows,
                              1, n, 1e-5f, nullptr)
                    .ok());
    ExpectClose(FromDevice<float>(dout, x.size()), want, 1e-5f, 1e-6f, "rmsnorm f32");
    // bf16 output: the CPU value rounded, within one rounding.
    DeviceBuffer db = ToDevice(std::vector<uint16_t>(x.size()));
    ASSERT_TRUE(LaunchRmsNorm(dx.as<float>(), n, nullptr, dw.as<float>(), db.as<__nv_bfloat16>(), n,
                              rows, 1, n, 1e-5f, nullptr)
                    .ok());
    ExpectClose(Bf16BitsToFloat(FromDevice<uint16_t>(db, x.size())), want, kBf16Rel, 1e-6f,
                "rmsnorm bf16");
  }
}

TEST(CudaKernels, RmsNormPerHeadInPlaceAndGathered) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  // q/k norm: groups of head_dim inside rows of width ld, in place.
  const int rows = 5, heads = 3, hd = 16, ld = heads * hd + 10;
  std::vector<float> x = RandomFloats(size_t{1} * rows * ld, 9, 2.0f);
  const std::vector<float> w = RandomFloats(hd, 10);
  std::vector<float> want = x;
  for (int r = 0; r < rows; ++r) {
    cpu::RmsNorm(x.data() + r * ld, w.data(), want.data() + r * ld, heads, hd, 1e-6f);
  }
  DeviceBuffer dx = ToDevice(x), dw = ToDevice(w);
  ASSERT_TRUE(LaunchRmsNorm(dx.as<float>(), ld, nullptr, dw.as<float>(), dx.as<float>(), ld, rows,
                            heads, hd, 1e-6f, nullptr)
                  .ok());
  ExpectClose(FromDevice<float>(dx, x.size()), want, 1e-5f, 1e-6f, "per-head norm");

  // Gathered rows (the final norm of the logit rows).
  const int dim = 40;
  const std::vector<float> y = RandomFloats(size_t{6} * dim, 11);
  const std::vector<float> wy = RandomFloats(dim, 12);
  const std::vector<int32_t> pick = {5, 0, 3};
  std::vector<float> want_y(pick.size() * dim);
  for (size_t i = 0; i < pick.size(); ++i) {
    cpu::RmsNorm(y.data() + pick[i] * dim, wy.data(), want_y.data() + i * dim, 1, dim, 1e-5f);
  }
  DeviceBuffer dy = ToDevice(y), dwy = ToDevice(wy), dpick = ToDevice(pick);
  DeviceBuffer dout = ToDevice(std::vector<float>(want_y.size()));
  ASSERT_TRUE(LaunchRmsNorm(dy.as<float>(), dim, dpick.as<int32_t>(), dwy.as<float>(),
                            dout.as<float>(), dim, 3, 1, dim, 1e-5f, nullptr)
                  .ok());
  ExpectClose(FromDevice<float>(dout, want_y.size()), want_y, 1e-5f, 1e-6f, "gathered norm");
}

TEST(CudaKernels, AddBiasAndSiluMulMatchCpu) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const int rows = 6, n = 100, ld = 130;
  std::vector<float> y = RandomFloats(size_t{1} * rows * ld, 20);
  const std::vector<float> b = RandomFloats(n, 21);
  std::vector<float> want = y;
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) want[r * ld + i] += b[i];
  }
  DeviceBuffer dy = ToDevice(y), db = ToDevice(b);
  ASSERT_TRUE(LaunchAddBias(dy.as<float>(), ld, db.as<float>(), rows, n, nullptr).ok());
  ExpectClose(FromDevice<float>(dy, y.size()), want, 0.0f, 0.0f, "bias");

  const int hid = 300;
  const std::vector<float> gu = RandomFloats(size_t{1} * rows * 2 * hid, 22, 3.0f);
  std::vector<float> want_h(size_t{1} * rows * hid);
  for (int r = 0; r < rows; ++r) {
    cpu::SiluMul(gu.data() + r * 2 * hid, gu.data() + r * 2 * hid + hid, want_h.data() + r * hid,
                 hid);
  }
  DeviceBuffer dgu = ToDevice(gu), dh = ToDevice(std::vector<uint16_t>(want_h.size()));
  ASSERT_TRUE(LaunchSiluMul(dgu.as<float>(), dh.as<__nv_bfloat16>(), rows, hid, nullptr).ok());
  ExpectClose(Bf16BitsToFloat(FromDevice<uint16_t>(dh, want_h.size())), want_h, kBf16Rel, 1e-6f,
              "silu*up");
}

TEST(CudaKernels, RopeMatchesCpuInBothLayouts) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  for (const model::RopeLayout layout :
       {model::RopeLayout::kAdjacentPairs, model::RopeLayout::kRotateHalf}) {
    model::ModelConfig c;
    c.dim = 256;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.rope_theta = 1e6f;
    c.rope_layout = layout;
    const int hd = c.head_dim(), rows = 9, ld = 4 * hd + 2 * 2 * hd;  // q | k | v
    const std::vector<int32_t> pos = {0, 1, 2, 17, 100, 511, 4095, 30000, 7};
    std::vector<float> x = RandomFloats(size_t{1} * rows * ld, 30);
    // The CPU reference on packed copies of q and k.
    std::vector<float> q(size_t{1} * rows * 4 * hd), k(size_t{1} * rows * 2 * hd);
    for (int r = 0; r < rows; ++r) {
      std::copy_n(x.begin() + r * ld, 4 * hd, q.begin() + r * 4 * hd);
      std::copy_n(x.begin() + r * ld + 4 * hd, 2 * hd, k.begin() + r * 2 * hd);
    }
    cpu::Rope(q.data(), pos.data(), rows, 4, c);
    cpu::Rope(k.data(), pos.data(), rows, 2, c);
    const std::vector<float> freq = model::RopeInvFrequencies(c);
    DeviceBuffer dx = ToDevice(x), dpos = ToDevice(pos), dfreq = ToDevice(freq);
    ASSERT_TRUE(LaunchRope(dx.as<float>(), ld, dpos.as<int32_t>(), rows, 4, hd, dfreq.as<float>(),
                           1.0f, layout, nullptr)
                    .ok());
    ASSERT_TRUE(LaunchRope(dx.as<float>() + 4 * hd, ld, dpos.as<int32_t>(), rows, 2, hd,
                           dfreq.as<float>(), 1.0f, layout, nullptr)
                    .ok());
    const std::vector<float> got = FromDevice<float>(dx, x.size());
    std::vector<float> gq(q.size()), gk(k.size()), gv, wv;
    for (int r = 0; r < rows; ++r) {
      std::copy_n(got.begin() + r * ld, 4 * hd, gq.begin() + r * 4 * hd);
      std::copy_n(got.begin() + r * ld + 4 * hd, 2 * hd, gk.begin() + r * 2 * hd);
      gv.insert(gv.end(), got.begin() + r * ld + 6 * hd, got.begin() + (r + 1) * ld);
      wv.insert(wv.end(), x.begin() + r * ld + 6 * hd, x.begin() + (r + 1) * ld);
    }
    // cosf/sinf on the device are within 2 ulp of the host's.
    ExpectClose(gq, q, 1e-5f, 1e-5f, "rope q");
    ExpectClose(gk, k, 1e-5f, 1e-5f, "rope k");
    ExpectClose(gv, wv, 0.0f, 0.0f, "v untouched");
  }
}

TEST(CudaKernels, KvAppendWritesRoundedRowsIntoTheirSlots) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const int rows = 5, kv_dim = 24, ld = 3 * kv_dim, slots_total = 4 * 8;
  const std::vector<float> x = RandomFloats(size_t{1} * rows * ld, 40);
  const std::vector<int32_t> slots = {9, 10, 31, 0, 17};
  const std::vector<uint16_t> sentinel(size_t{1} * slots_total * kv_dim, 0x3f80);  // 1.0
  DeviceBuffer dx = ToDevice(x), ds = ToDevice(slots);
  DeviceBuffer dk = ToDevice(sentinel), dv = ToDevice(sentinel);
  const float* k = dx.as<float>() + kv_dim;
  const float* v = dx.as<float>() + 2 * kv_dim;
  ASSERT_TRUE(LaunchKvAppend(k, v, ld, ds.as<int32_t>(), rows, kv_dim, dk.as<__nv_bfloat16>(),
                             dv.as<__nv_bfloat16>(), nullptr)
                  .ok());
  const std::vector<uint16_t> gk = FromDevice<uint16_t>(dk, sentinel.size());
  const std::vector<uint16_t> gv = FromDevice<uint16_t>(dv, sentinel.size());
  std::vector<uint16_t> wk = sentinel, wv = sentinel;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < kv_dim; ++j) {
      wk[slots[r] * kv_dim + j] = model::FloatToBf16(x[r * ld + kv_dim + j]);
      wv[slots[r] * kv_dim + j] = model::FloatToBf16(x[r * ld + 2 * kv_dim + j]);
    }
  }
  EXPECT_EQ(gk, wk);
  EXPECT_EQ(gv, wv);
}

TEST(CudaKernels, ConversionsRoundToNearestEven) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> x = RandomFloats(1000, 50, 100.0f);
  DeviceBuffer dx = ToDevice(x), db = ToDevice(std::vector<uint16_t>(x.size()));
  DeviceBuffer dy = ToDevice(std::vector<float>(x.size()));
  ASSERT_TRUE(LaunchF32ToBf16(dx.as<float>(), db.as<__nv_bfloat16>(), x.size(), nullptr).ok());
  ASSERT_TRUE(LaunchBf16ToF32(db.as<__nv_bfloat16>(), dy.as<float>(), x.size(), nullptr).ok());
  EXPECT_EQ(FromDevice<uint16_t>(db, x.size()), ToBf16Bits(x));
  const std::vector<float> y = FromDevice<float>(dy, x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], RoundBf16(x[i])) << i;
}

// Paged attention against a double-precision loop over the same bf16 K and V.
struct AttnCase {
  int n_heads, n_kv_heads, head_dim, page_size;
};

class PagedAttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(PagedAttentionTest, MatchesReferenceOnARaggedBatch) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const AttnCase p = GetParam();
  const int hd = p.head_dim, kv_dim = p.n_kv_heads * hd, q_dim = p.n_heads * hd;
  const int group = p.n_heads / p.n_kv_heads, ps = p.page_size;
  // Sequences: (context before, rows): a decode row on a long context, a prefill chunk from
  // 0, a prefill chunk after a prefix, a decode row at position 0.
  const std::vector<std::pair<int, int>> seqs = {{300, 1}, {0, 37}, {70, 20}, {0, 1}};
  int num_pages = 0;
  for (const auto& [start, n] : seqs) num_pages += (start + n + ps - 1) / ps;
  num_pages += 3;  // pages nobody uses
  std::vector<int32_t> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(p.head_dim + p.page_size));
  std::vector<int32_t> tables, bt_offset, ctx_len;
  std::vector<std::vector<int32_t>> seq_table;
  int next = 0;
  for (const auto& [start, n] : seqs) {
    const int pages = (start + n + ps - 1) / ps;
    std::vector<int32_t> t(perm.begin() + next, perm.begin() + next + pages);
    next += pages;
    for (int i = 0; i < n; ++i) {
      bt_offset.push_back(static_cast<int32_t>(tables.size()));
      ctx_len.push_back(start + i + 1);
    }
    tables.insert(tables.end(), t.begin(), t.end());
    seq_table.push_back(t);
  }
  const int rows = static_cast<int>(ctx_len.size());
  const size_t cache = static_cast<size_t>(num_pages) * ps * kv_dim;
  const std::vector<uint16_t> kc = ToBf16Bits(RandomFloats(cache, 60));
  const std::vector<uint16_t> vc = ToBf16Bits(RandomFloats(cache, 61));
  const int ld_q = q_dim + 2 * kv_dim;
  const std::vector<float> q = RandomFloats(static_cast<size_t>(rows) * ld_q, 62, 0.5f);

  std::vector<float> want(static_cast<size_t>(rows) * q_dim);
  for (int r = 0, si = 0, in_seq = 0; r < rows; ++r) {
    const std::vector<int32_t>& t = seq_table[si];
    for (int h = 0; h < p.n_heads; ++h) {
      const int kvh = h / group;
      std::vector<double> s(ctx_len[r]);
      double mx = -1e300;
      for (int j = 0; j < ctx_len[r]; ++j) {
        const size_t at = (static_cast<size_t>(t[j / ps]) * ps + j % ps) * kv_dim + kvh * hd;
        double d = 0;
        for (int e = 0; e < hd; ++e) {
          d += static_cast<double>(q[r * ld_q + h * hd + e]) * model::Bf16ToFloat(kc[at + e]);
        }
        s[j] = d / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int e = 0; e < hd; ++e) {
        double o = 0;
        for (int j = 0; j < ctx_len[r]; ++j) {
          const size_t at = (static_cast<size_t>(t[j / ps]) * ps + j % ps) * kv_dim + kvh * hd;
          o += s[j] * model::Bf16ToFloat(vc[at + e]);
        }
        want[static_cast<size_t>(r) * q_dim + h * hd + e] = static_cast<float>(o / sum);
      }
    }
    if (++in_seq == seqs[si].second) {
      ++si;
      in_seq = 0;
    }
  }

  DeviceBuffer dq = ToDevice(q), dk = ToDevice(kc), dv = ToDevice(vc), dt = ToDevice(tables);
  DeviceBuffer dbo = ToDevice(bt_offset), dctx = ToDevice(ctx_len);
  DeviceBuffer dout = ToDevice(std::vector<uint16_t>(want.size()));
  AttentionArgs a;
  a.q = dq.as<float>();
  a.ld_q = ld_q;
  a.k_cache = dk.as<__nv_bfloat16>();
  a.v_cache = dv.as<__nv_bfloat16>();
  a.block_tables = dt.as<int32_t>();
  a.bt_offset = dbo.as<int32_t>();
  a.ctx_len = dctx.as<int32_t>();
  a.out = dout.as<__nv_bfloat16>();
  a.rows = rows;
  a.n_heads = p.n_heads;
  a.n_kv_heads = p.n_kv_heads;
  a.head_dim = hd;
  a.page_size = ps;
  ASSERT_TRUE(LaunchPagedAttention(a, nullptr).ok());
  ExpectClose(Bf16BitsToFloat(FromDevice<uint16_t>(dout, want.size())), want, kBf16Rel, 1e-4f,
              "attention");
}

// Head dims of stories260K (8), Qwen2.5 (64, 128), the kernel's largest (256), and odd ones;
// GQA groups of 1, 2, 3, 4, 6, 7 (Qwen2.5-0.5B), 8 and 12 (over the 8 query heads one block
// takes): every instantiation of the kernel (2/4/8 heads x 2/4/8 dims per lane), partly
// filled; page sizes 1, 3, 4, 16.
INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(AttnCase{8, 8, 8, 16}, AttnCase{8, 4, 8, 1},
                                           AttnCase{14, 2, 64, 16}, AttnCase{12, 2, 128, 16},
                                           AttnCase{4, 2, 256, 4}, AttnCase{24, 2, 64, 16},
                                           AttnCase{4, 4, 40, 3}, AttnCase{6, 2, 96, 16},
                                           AttnCase{32, 8, 64, 16}, AttnCase{16, 2, 64, 4},
                                           AttnCase{8, 2, 200, 16}, AttnCase{16, 2, 256, 16},
                                           AttnCase{4, 4, 128, 16}),
                         [](const ::testing::TestParamInfo<AttnCase>& info) {
                           const AttnCase& c = info.param;
                           return "h" + std::to_string(c.n_heads) + "kv" +
                                  std::to_string(c.n_kv_heads) + "d" + std::to_string(c.head_dim) +
                                  "p" + std::to_string(c.page_size);
                         });

TEST(CudaKernels, LaunchersRejectBadShapes) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  AttentionArgs a;
  a.rows = 1;
  a.n_heads = 4;
  a.n_kv_heads = 3;
  a.head_dim = 8;
  a.page_size = 4;
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), StatusCode::kInvalidArgument);
  a.n_kv_heads = 2;
  a.head_dim = 512;
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchRope(nullptr, 8, nullptr, 1, 1, 7, nullptr, 1.0f, model::RopeLayout::kRotateHalf,
                       nullptr)
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::cuda
