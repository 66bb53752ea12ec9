#include "common/cpu/fixed_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "common/check.h"
#include "common/cpu/parallel_for.h"
#include "common/model/dtype.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TREEPO_FIXED_MATMUL_AVX2 1
#endif

namespace treepo::cpu {
namespace {

constexpr int kLanes = 8;

using model::WeightDtype;

// A weight element widened to fp32 (exact for every format).
template <WeightDtype D, typename T>
inline float Widen(T v) {
  if constexpr (D == WeightDtype::kF32) {
    return v;
  } else {
    return model::HalfToFloat(v, D);
  }
}

inline float Finish(float acc_sum, float* y, float beta) {
  return beta == 0.0f ? acc_sum : *y + acc_sum;
}

// The reference arithmetic, element by element.
template <WeightDtype D, typename T>
void PortableBlock(const float* x, const T* w, float* y, int m, int n, int k, int ldy, int j0,
                   int j1, float beta) {
  for (int j = j0; j < j1; ++j) {
    const T* wj = w + static_cast<size_t>(j) * k;
    for (int i = 0; i < m; ++i) {
      const float* xi = x + static_cast<size_t>(i) * k;
      float acc[kLanes] = {};
      for (int kk = 0; kk < k; kk += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const bool in = kk + l < k;
          acc[l] = std::fma(in ? xi[kk + l] : 0.0f, in ? Widen<D>(wj[kk + l]) : 0.0f, acc[l]);
        }
      }
      const float s =
          ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
      float* out = y + static_cast<size_t>(i) * ldy + j;
      *out = Finish(s, out, beta);
    }
  }
  (void)n;
}

#ifdef TREEPO_FIXED_MATMUL_AVX2

__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));  // [(0+4)+(2+6), (1+5)+(3+7)]
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// HorizontalSum of a, b, c and d (the same additions, the same bits) in lanes 0..3, four at
// a time: the reduction is a large share of the work when k is small.
__attribute__((target("avx2,fma"))) inline __m128 HorizontalSum4(__m256 a, __m256 b, __m256 c,
                                                                 __m256 d) {
  // [a0+a4 a1+a5 a2+a6 a3+a7 | b0+b4 b1+b5 b2+b6 b3+b7], likewise c and d.
  const __m256 ab =
      _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  const __m256 cd =
      _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
  // [A0 A1 C0 C1 | B0 B1 D0 D1] with A0 = (a0+a4)+(a2+a6), A1 = (a1+a5)+(a3+a7).
  const __m256 w = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  // Lanes 0, 2, 4, 6: A0+A1, C0+C1, B0+B1, D0+D1.
  const __m256 z = _mm256_add_ps(w, _mm256_shuffle_ps(w, w, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm256_castps256_ps128(
      _mm256_permutevar8x32_ps(z, _mm256_setr_epi32(0, 4, 2, 6, 0, 0, 0, 0)));
}

// Eight weights widened to fp32.
template <WeightDtype D, typename T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 LoadW(const T* p) {
  if constexpr (D == WeightDtype::kF32) {
    return _mm256_loadu_ps(p);
  } else if constexpr (D == WeightDtype::kBF16) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
}

// The first `n` (< 8) weights at p widened, the other lanes 0.
template <WeightDtype D, typename T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 LoadWTail(const T* p, int n,
                                                                 __m256i tail_mask) {
  if constexpr (D == WeightDtype::kF32) {
    (void)n;
    return _mm256_maskload_ps(p, tail_mask);
  } else {
    alignas(16) T tmp[kLanes] = {};
    for (int i = 0; i < n; ++i) tmp[i] = p[i];
    return LoadW<D>(tmp);
  }
}

// An R x C tile of y: rows i.., columns j.. .
template <WeightDtype D, typename T, int R, int C>
__attribute__((target("avx2,fma,f16c"))) void Tile(const float* x, const T* w, float* y, int k,
                                                   int ldy, float beta, __m256i tail_mask) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int kk = 0;
  for (; kk + kLanes <= k; kk += kLanes) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + static_cast<size_t>(r) * k + kk);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = LoadW<D>(w + static_cast<size_t>(c) * k + kk);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  if (kk < k) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r)
      xv[r] = _mm256_maskload_ps(x + static_cast<size_t>(r) * k + kk, tail_mask);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = LoadWTail<D>(w + static_cast<size_t>(c) * k + kk, k - kk, tail_mask);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* out = y + static_cast<size_t>(r) * ldy;
    if constexpr (C == 4) {
      const __m128 sum = HorizontalSum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      _mm_storeu_ps(out, beta == 0.0f ? sum : _mm_add_ps(_mm_loadu_ps(out), sum));
    } else {
      for (int c = 0; c < C; ++c) out[c] = Finish(HorizontalSum(acc[r][c]), out + c, beta);
    }
  }
}

constexpr int kTileRows = 3, kTileCols = 4;
constexpr int kRowBlock = 48;  // a multiple of kTileRows

template <WeightDtype D, typename T, int C>
__attribute__((target("avx2,fma,f16c"))) void ColumnBlock(const float* x, const T* w, float* y,
                                                          int m, int k, int ldy, float beta,
                                                          __m256i mask) {
  int i = 0;
  for (; i + kTileRows <= m; i += kTileRows) {
    Tile<D, T, kTileRows, C>(x + static_cast<size_t>(i) * k, w, y + static_cast<size_t>(i) * ldy, k,
                             ldy, beta, mask);
  }
  const float* xi = x + static_cast<size_t>(i) * k;
  float* yi = y + static_cast<size_t>(i) * ldy;
  if (m - i == 2) Tile<D, T, 2, C>(xi, w, yi, k, ldy, beta, mask);
  if (m - i == 1) Tile<D, T, 1, C>(xi, w, yi, k, ldy, beta, mask);
}

template <WeightDtype D, typename T>
__attribute__((target("avx2,fma,f16c"))) void Avx2Block(const float* x, const T* w, float* y, int m,
                                                        int k, int ldy, int j0, int j1,
                                                        float beta) {
  alignas(32) int32_t lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = l < k % kLanes ? -1 : 0;
  const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
  // Row blocks that stay in L2 while the columns stream past them.
  for (int i0 = 0; i0 < m; i0 += kRowBlock) {
    const int rows = std::min(kRowBlock, m - i0);
    const float* xb = x + static_cast<size_t>(i0) * k;
    float* yb = y + static_cast<size_t>(i0) * ldy;
    int j = j0;
    for (; j + kTileCols <= j1; j += kTileCols) {
      ColumnBlock<D, T, kTileCols>(xb, w + static_cast<size_t>(j) * k, yb + j, rows, k, ldy, beta,
                                   mask);
    }
    const T* wj = w + static_cast<size_t>(j) * k;
    switch (j1 - j) {
      case 3:
        ColumnBlock<D, T, 3>(xb, wj, yb + j, rows, k, ldy, beta, mask);
        break;
      case 2:
        ColumnBlock<D, T, 2>(xb, wj, yb + j, rows, k, ldy, beta, mask);
        break;
      case 1:
        ColumnBlock<D, T, 1>(xb, wj, yb + j, rows, k, ldy, beta, mask);
        break;
      default:
        break;
    }
  }
}

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
}

#endif  // TREEPO_FIXED_MATMUL_AVX2

// Columns per task when the columns are split across threads (a multiple of the tile width).
constexpr int kColumnsPerTask = 64;
// Products smaller than this many multiply-adds run on the calling thread alone.
constexpr double kMinParallelMacs = 1 << 20;

}  // namespace

namespace {

template <WeightDtype D, typename T>
void MatMul(const float* x, const T* w, float* y, int m, int n, int k, float beta) {
  TREEPO_CHECK(beta == 0.0f || beta == 1.0f) << "beta " << beta;
  if (m <= 0 || n <= 0) return;
  auto block = [&](int j0, int j1) {
#ifdef TREEPO_FIXED_MATMUL_AVX2
    if (HasAvx2Fma()) {
      Avx2Block<D>(x, w, y, m, k, n, j0, j1, beta);
      return;
    }
#endif
    PortableBlock<D>(x, w, y, m, n, k, n, j0, j1, beta);
  };
  const int tasks = (n + kColumnsPerTask - 1) / kColumnsPerTask;
  if (tasks == 1 || static_cast<double>(m) * n * k < kMinParallelMacs || CpuThreads() == 1) {
    block(0, n);
    return;
  }
  ParallelFor(tasks,
              [&](int t) { block(t * kColumnsPerTask, std::min(n, (t + 1) * kColumnsPerTask)); });
}

}  // namespace

void FixedOrderMatMulWtPortable(const float* x, const float* w, float* y, int m, int n, int k,
                                float beta) {
  TREEPO_CHECK(beta == 0.0f || beta == 1.0f) << "beta " << beta;
  PortableBlock<WeightDtype::kF32>(x, w, y, m, n, k, n, 0, n, beta);
}

void FixedOrderMatMulWt(const float* x, const float* w, float* y, int m, int n, int k, float beta) {
  MatMul<WeightDtype::kF32>(x, w, y, m, n, k, beta);
}

void FixedOrderMatMulWt16(const float* x, const uint16_t* w, model::WeightDtype dtype, float* y,
                          int m, int n, int k, float beta) {
  if (dtype == WeightDtype::kBF16) {
    MatMul<WeightDtype::kBF16>(x, w, y, m, n, k, beta);
  } else {
    TREEPO_CHECK(dtype == WeightDtype::kF16);
    MatMul<WeightDtype::kF16>(x, w, y, m, n, k, beta);
  }
}

void FixedOrderMatMulWt16Portable(const float* x, const uint16_t* w, model::WeightDtype dtype,
                                  float* y, int m, int n, int k, float beta) {
  TREEPO_CHECK(beta == 0.0f || beta == 1.0f) << "beta " << beta;
  if (dtype == WeightDtype::kBF16) {
    PortableBlock<WeightDtype::kBF16>(x, w, y, m, n, k, n, 0, n, beta);
  } else {
    PortableBlock<WeightDtype::kF16>(x, w, y, m, n, k, n, 0, n, beta);
  }
}

}  // namespace treepo::cpu
