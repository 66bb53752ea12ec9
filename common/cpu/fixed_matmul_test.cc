// FixedOrderMatMulWt: each row of y is bitwise the same whatever m, the row's place, the
// column range and the thread count; the SIMD path equals the portable one; both are close
// to a double-precision product.
#include "common/cpu/fixed_matmul.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/cpu/parallel_for.h"

namespace treepo::cpu {
namespace {

std::vector<float> Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool RowEqual(const float* a, const float* b, int n) {
  return std::memcmp(a, b, sizeof(float) * n) == 0;
}

class FixedMatMulTest : public ::testing::TestWithParam<std::pair<int, int>> {
 protected:
  void TearDown() override { SetCpuThreads(0); }
};

TEST_P(FixedMatMulTest, RowsDoNotDependOnTheBatchOrThreads) {
  const auto [n, k] = GetParam();
  const int m_max = 70;
  const std::vector<float> x = Random(static_cast<size_t>(m_max) * k, n * 31 + k);
  const std::vector<float> w = Random(static_cast<size_t>(n) * k, n + 7 * k);
  // Reference: every row alone, one thread.
  SetCpuThreads(1);
  std::vector<float> alone(static_cast<size_t>(m_max) * n);
  for (int i = 0; i < m_max; ++i) {
    FixedOrderMatMulWt(x.data() + static_cast<size_t>(i) * k, w.data(),
                       alone.data() + static_cast<size_t>(i) * n, 1, n, k);
  }
  // Double-precision check of the reference.
  for (int i = 0; i < m_max; i += 13) {
    for (int j = 0; j < n; ++j) {
      double s = 0, mag = 0;
      for (int d = 0; d < k; ++d) {
        const double p = static_cast<double>(x[i * k + d]) * w[j * k + d];
        s += p;
        mag += std::abs(p);
      }
      ASSERT_NEAR(alone[i * n + j], s, 1e-5 * mag + 1e-30) << i << "," << j;
    }
  }
  for (int threads : {1, 2, 3, 8}) {
    SetCpuThreads(threads);
    for (int m : {1, 2, 3, 4, 5, 7, 32, 64, 70}) {
      for (int offset : {0, 70 - m}) {  // which rows of x form the batch
        std::vector<float> y(static_cast<size_t>(m) * n);
        FixedOrderMatMulWt(x.data() + static_cast<size_t>(offset) * k, w.data(), y.data(), m, n, k);
        for (int i = 0; i < m; ++i) {
          ASSERT_TRUE(RowEqual(y.data() + static_cast<size_t>(i) * n,
                               alone.data() + static_cast<size_t>(offset + i) * n, n))
              << "m " << m << " row " << offset + i << " threads " << threads;
        }
        if (m == 70 && threads == 1) {
          std::vector<float> p(y.size());
          FixedOrderMatMulWtPortable(x.data(), w.data(), p.data(), m, n, k);
          ASSERT_EQ(0, std::memcmp(p.data(), y.data(), sizeof(float) * y.size()))
              << "portable path differs";
        }
      }
    }
  }
}

TEST_P(FixedMatMulTest, BetaOneAccumulates) {
  const auto [n, k] = GetParam();
  const int m = 9;
  const std::vector<float> x = Random(static_cast<size_t>(m) * k, 1);
  const std::vector<float> w = Random(static_cast<size_t>(n) * k, 2);
  const std::vector<float> y0 = Random(static_cast<size_t>(m) * n, 3);
  std::vector<float> prod(y0.size()), acc = y0, acc_portable = y0;
  FixedOrderMatMulWt(x.data(), w.data(), prod.data(), m, n, k);
  FixedOrderMatMulWt(x.data(), w.data(), acc.data(), m, n, k, 1.0f);
  FixedOrderMatMulWtPortable(x.data(), w.data(), acc_portable.data(), m, n, k, 1.0f);
  for (size_t i = 0; i < y0.size(); ++i) {
    ASSERT_EQ(acc[i], y0[i] + prod[i]) << i;
    ASSERT_EQ(acc_portable[i], acc[i]) << i;
  }
}

// 16-bit weights: the product equals the fp32 product over the widened weights, bit for bit,
// on the SIMD and the portable path, with any thread count and beta.
TEST_P(FixedMatMulTest, SixteenBitWeightsEqualTheirFp32Widening) {
  const auto [n, k] = GetParam();
  const int m = 11;
  const std::vector<float> x = Random(static_cast<size_t>(m) * k, 5);
  const std::vector<float> w32 = Random(static_cast<size_t>(n) * k, 6);
  const std::vector<float> y0 = Random(static_cast<size_t>(m) * n, 7);
  for (model::WeightDtype d : {model::WeightDtype::kBF16, model::WeightDtype::kF16}) {
    std::vector<uint16_t> w16(w32.size());
    std::vector<float> widened(w32.size());
    for (size_t i = 0; i < w32.size(); ++i) {
      w16[i] = model::FloatToHalf(w32[i], d);
      widened[i] = model::HalfToFloat(w16[i], d);
    }
    for (int threads : {1, 3}) {
      SetCpuThreads(threads);
      for (float beta : {0.0f, 1.0f}) {
        std::vector<float> want = y0, got = y0, portable = y0;
        FixedOrderMatMulWt(x.data(), widened.data(), want.data(), m, n, k, beta);
        FixedOrderMatMulWt16(x.data(), w16.data(), d, got.data(), m, n, k, beta);
        FixedOrderMatMulWt16Portable(x.data(), w16.data(), d, portable.data(), m, n, k, beta);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), sizeof(float) * want.size()))
            << model::DtypeName(d) << " threads " << threads << " beta " << beta;
        ASSERT_EQ(0, std::memcmp(want.data(), portable.data(), sizeof(float) * want.size()))
            << model::DtypeName(d) << " portable";
      }
    }
  }
}

// (n, k): tails in both dimensions, the stories260K and 512-dim shapes.
INSTANTIATE_TEST_SUITE_P(Shapes, FixedMatMulTest,
                         ::testing::Values(std::pair{1, 1}, std::pair{5, 3}, std::pair{13, 17},
                                           std::pair{64, 64}, std::pair{172, 64},
                                           std::pair{512, 64}, std::pair{300, 260},
                                           std::pair{1376, 512}));

TEST(ParallelForTest, RunsEveryIndexOnce) {
  for (int threads : {1, 2, 5}) {
    SetCpuThreads(threads);
    for (int n : {0, 1, 3, 100}) {
      std::vector<int> hits(n, 0);
      ParallelFor(n, [&](int i) { ++hits[i]; });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << threads << " " << n << " " << i;
    }
  }
  SetCpuThreads(0);
}

}  // namespace
}  // namespace treepo::cpu
