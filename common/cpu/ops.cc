#include "common/cpu/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/cpu/parallel_for.h"

namespace treepo::cpu {

void MatMulWt(const float* x, const float* w, float* y, int m, int n, int k, float beta) {
  if (m == 1) {  // one row (a lone decode token): sgemv is several times faster than sgemm
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, beta, y, n);
}

void MatMul(const float* x, const float* w, float* y, int m, int n, int k, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, x, k, w, n, beta, y, n);
}

void MatMulTn(const float* dy, const float* x, float* g, int m, int n, int k, float beta) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy, n, x, k, beta, g, k);
}

void RmsNorm(const float* x, const float* w, float* out, int rows, int n, float eps,
             float* inv_rms) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * n;
    float* o = out + static_cast<size_t>(r) * n;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
    if (inv_rms) inv_rms[r] = inv;
    for (int i = 0; i < n; ++i) o[i] = xr[i] * inv * w[i];
  }
}

void Rope(float* x, const int32_t* positions, int rows, int n_heads, int head_dim,
          const float* inv_freq, float scale, model::RopeLayout layout, bool inverse) {
  const int half = head_dim / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  for (int r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    float* row = x + static_cast<size_t>(r) * n_heads * head_dim;
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      const float c = scale * std::cos(angle), s = sign * scale * std::sin(angle);
      for (int h = 0; h < n_heads; ++h) {
        float* v = row + h * head_dim;
        const int a = layout == model::RopeLayout::kAdjacentPairs ? 2 * i : i;
        const int b = layout == model::RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
  }
}

void Rope(float* x, const int32_t* positions, int rows, int n_heads, const model::ModelConfig& c,
          bool inverse) {
  // Frequencies of the last config seen on this thread: no allocation per call once warm.
  thread_local model::ModelConfig cached;
  thread_local std::vector<float> freq;
  thread_local bool have = false;
  if (!have || cached.head_dim() != c.head_dim() || cached.rope_theta != c.rope_theta ||
      !(cached.rope_scaling == c.rope_scaling)) {
    cached = c;
    freq = model::RopeInvFrequencies(c);
    have = true;
  }
  const float scale = static_cast<float>(c.rope_scaling.attention_factor);
  Rope(x, positions, rows, n_heads, c.head_dim(), freq.data(), scale, c.rope_layout, inverse);
}

void SiluMul(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float SoftmaxInPlace(float* x, int n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
  return mx + static_cast<float>(std::log(sum));
}

void SetBlasThreads(int n) {
  if (n > 0) {
    openblas_set_num_threads(n);
    SetCpuThreads(n);
  }
}

}  // namespace treepo::cpu
