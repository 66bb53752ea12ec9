#include "common/cpu/forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "common/cpu/fixed_matmul.h"
#include "common/cpu/ops.h"
#include "common/cpu/parallel_for.h"

namespace treepo::cpu {
namespace {

template <typename T>
void Grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// y[m, n] = beta * y + x[m, k] . w[n, k]^T in the fixed per-element order (batch-invariant),
// timed into `stats` when given.
void MatMul(const float* x, const model::MatrixRef& w, float* y, int m, int n, int k, float beta) {
  if (w.dtype == model::WeightDtype::kF32) {
    FixedOrderMatMulWt(x, w.f32, y, m, n, k, beta);
  } else {
    FixedOrderMatMulWt16(x, w.half, w.dtype, y, m, n, k, beta);
  }
}

void Linear(const float* x, const model::MatrixRef& w, float* y, int m, int n, int k, float beta,
            ForwardStats* stats) {
  if (stats == nullptr) {
    MatMul(x, w, y, m, n, k, beta);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  MatMul(x, w, y, m, n, k, beta);
  stats->matmul_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats->matmul_flops += 2.0 * m * n * k;
}

void AddBias(float* y, const float* b, int rows, int n) {
  for (int r = 0; r < rows; ++r) {
    float* yr = y + static_cast<size_t>(r) * n;
    for (int i = 0; i < n; ++i) yr[i] += b[i];
  }
}

// Dot product with 8 independent partial sums, so that the compiler vectorises it without
// -ffast-math (a single running sum is a serial dependency chain).
inline float Dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int d = 0;
  for (; d + 8 <= n; d += 8) {
    for (int i = 0; i < 8; ++i) acc[i] += a[d + i] * b[d + i];
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// Causal attention of one row at position `pos` over positions [0, pos] of a sequence.
// q, out: [n_heads * head_dim]; scores: scratch of n_heads * (pos + 1).
// Every row (a decode token or a row of a prefill chunk) goes through here, visiting
// positions 0..pos in order, so a row's output depends on its own query and the KV of its
// prefix alone: not on the chunk it came in, the batch, or the page size.
// Compiled for AVX2 too (AttendRow picks one on first use): the code pins the order of every
// sum (Dot's eight partial sums, softmax, the value accumulation in t order) and
// floating-point contraction is off, so both versions give the same bits; AVX2 only runs
// lanes wider.
__attribute__((always_inline)) inline void AttendRowBody(const model::ModelConfig& c,
                                                         const KvView& kv, int layer,
                                                         std::span<const int32_t> block_table,
                                                         int pos, const float* q, float* out,
                                                         float* scores) {
  const int hd = c.head_dim(), n_heads = c.n_heads, group = c.heads_per_kv();
  const int ctx = pos + 1, page_size = kv.page_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* k_base = kv.k[layer];
  const float* v_base = kv.v[layer];
  // Scores, streaming each K row once for all heads: scores[h * ctx + t].
  for (int t0 = 0; t0 < ctx; t0 += page_size) {
    const float* page =
        k_base + static_cast<size_t>(block_table[t0 / page_size]) * kv.page_stride();
    const int n = std::min(page_size, ctx - t0);
    for (int j = 0; j < n; ++j) {
      const float* krow = page + static_cast<size_t>(j) * kv.kv_dim;
      for (int h = 0; h < n_heads; ++h) {
        const float* qh = q + h * hd;
        const float* kh = krow + (h / group) * hd;
        scores[h * ctx + t0 + j] = Dot(qh, kh, hd) * scale;
      }
    }
  }
  for (int h = 0; h < n_heads; ++h) SoftmaxInPlace(scores + h * ctx, ctx);
  std::memset(out, 0, sizeof(float) * n_heads * hd);
  for (int t0 = 0; t0 < ctx; t0 += page_size) {
    const float* page =
        v_base + static_cast<size_t>(block_table[t0 / page_size]) * kv.page_stride();
    const int n = std::min(page_size, ctx - t0);
    for (int j = 0; j < n; ++j) {
      const float* vrow = page + static_cast<size_t>(j) * kv.kv_dim;
      for (int h = 0; h < n_heads; ++h) {
        const float p = scores[h * ctx + t0 + j];
        const float* vh = vrow + (h / group) * hd;
        float* oh = out + h * hd;
        for (int d = 0; d < hd; ++d) oh[d] += p * vh[d];
      }
    }
  }
}

__attribute__((target("avx2"))) void AttendRowAvx2(const model::ModelConfig& c, const KvView& kv,
                                                   int layer, std::span<const int32_t> block_table,
                                                   int pos, const float* q, float* out,
                                                   float* scores) {
  AttendRowBody(c, kv, layer, block_table, pos, q, out, scores);
}

void AttendRowPortable(const model::ModelConfig& c, const KvView& kv, int layer,
                       std::span<const int32_t> block_table, int pos, const float* q, float* out,
                       float* scores) {
  AttendRowBody(c, kv, layer, block_table, pos, q, out, scores);
}

// Dispatch by a flag set on first use, not an ifunc (target_clones): an ifunc resolver runs
// while the program is being relocated, before a sanitizer's runtime is up.
void AttendRow(const model::ModelConfig& c, const KvView& kv, int layer,
               std::span<const int32_t> block_table, int pos, const float* q, float* out,
               float* scores) {
  static const bool kAvx2 = __builtin_cpu_supports("avx2");
  if (kAvx2) {
    AttendRowAvx2(c, kv, layer, block_table, pos, q, out, scores);
  } else {
    AttendRowPortable(c, kv, layer, block_table, pos, q, out, scores);
  }
}

// Attention over fewer (rows x context x dim) multiply-adds runs on the calling thread.
constexpr int64_t kMinParallelAttendWork = int64_t{1} << 20;

}  // namespace

void ForwardWorkspace::Reserve(const model::ModelConfig& c, int rows, int max_context) {
  const size_t r = static_cast<size_t>(std::max(rows, 1));
  Grow(x_, r * c.dim);
  Grow(xb_, r * c.dim);
  Grow(q_, r * c.q_dim());
  Grow(k_, r * c.kv_dim());
  Grow(v_, r * c.kv_dim());
  Grow(att_, r * c.q_dim());
  Grow(hb_, r * c.hidden_dim);
  Grow(hb2_, r * c.hidden_dim);
  Grow(final_, r * c.dim);
  Grow(positions_, r);
  Grow(row_seq_, r);
  Grow(scores_, static_cast<size_t>(c.n_heads) * std::max(max_context, 1));
}

void Forward(const model::ModelWeights& w, const KvView& kv, const ForwardBatch& batch,
             ForwardWorkspace* ws, float* logits, ForwardStats* stats) {
  const model::ModelConfig& c = w.config;
  const model::ParamLayout& L = w.layout;
  const int rows = static_cast<int>(batch.tokens.size());
  const int dim = c.dim, qd = c.q_dim(), kv_dim = c.kv_dim(), hid = c.hidden_dim;
  TREEPO_CHECK_EQ(kv.n_layers, c.n_layers);
  TREEPO_CHECK_EQ(kv.kv_dim, kv_dim);
  if (rows == 0) return;

  int max_context = 0, total = 0;
  for (const SeqSlice& s : batch.seqs) {
    TREEPO_CHECK_GE(s.num_rows, 1);
    TREEPO_CHECK_GE(s.start_pos, 0);
    const int end = s.start_pos + s.num_rows;
    TREEPO_CHECK_LE(end, static_cast<int>(s.block_table.size()) * kv.page_size);
    max_context = std::max(max_context, end);
    total += s.num_rows;
  }
  TREEPO_CHECK_EQ(total, rows);
  ws->Reserve(c, rows, max_context);
  int32_t* positions = ws->positions_.data();
  int32_t* row_seq = ws->row_seq_.data();
  for (int r = 0, si = 0; const SeqSlice& s : batch.seqs) {
    for (int i = 0; i < s.num_rows; ++i, ++r) {
      positions[r] = s.start_pos + i;
      row_seq[r] = si;
    }
    ++si;
  }
  // Attention work is about rows x context; split it when there is enough of it.
  int64_t attend_work = 0;
  for (const SeqSlice& s : batch.seqs) {
    attend_work += static_cast<int64_t>(s.num_rows) * (s.start_pos + s.num_rows);
  }
  const int attend_tasks =
      attend_work * c.dim < kMinParallelAttendWork ? 1 : std::min(rows, 4 * CpuThreads());
  const size_t scores_per_task = static_cast<size_t>(c.n_heads) * max_context;
  Grow(ws->scores_, scores_per_task * attend_tasks);

  float* x = ws->x_.data();
  for (int r = 0; r < rows; ++r) {
    const int32_t tok = batch.tokens[r];
    TREEPO_CHECK(tok >= 0 && tok < c.vocab_size) << "token " << tok;
    w.MatrixRow(L.embed(), tok, dim, x + static_cast<size_t>(r) * dim);
  }

  float *xb = ws->xb_.data(), *q = ws->q_.data(), *k = ws->k_.data(), *v = ws->v_.data();
  float *att = ws->att_.data(), *hb = ws->hb_.data(), *hb2 = ws->hb2_.data();
  for (int l = 0; l < c.n_layers; ++l) {
    const model::LayerOffsets& o = L.layer(l);
    RmsNorm(x, w.Vector(o.attn_norm), xb, rows, dim, c.norm_eps);
    Linear(xb, w.Matrix(o.wq), q, rows, qd, dim, 0.0f, stats);
    Linear(xb, w.Matrix(o.wk), k, rows, kv_dim, dim, 0.0f, stats);
    Linear(xb, w.Matrix(o.wv), v, rows, kv_dim, dim, 0.0f, stats);
    if (o.bq != model::ParamLayout::kNone) {
      AddBias(q, w.Vector(o.bq), rows, qd);
      AddBias(k, w.Vector(o.bk), rows, kv_dim);
      AddBias(v, w.Vector(o.bv), rows, kv_dim);
    }
    if (o.q_norm != model::ParamLayout::kNone) {  // per head, in place
      RmsNorm(q, w.Vector(o.q_norm), q, rows * c.n_heads, c.head_dim(), c.norm_eps);
      RmsNorm(k, w.Vector(o.k_norm), k, rows * c.n_kv_heads, c.head_dim(), c.norm_eps);
    }
    Rope(q, positions, rows, c.n_heads, c);
    Rope(k, positions, rows, c.n_kv_heads, c);
    // Write this batch's K and V into the pages, then attend per sequence.
    for (int r = 0; const SeqSlice& s : batch.seqs) {
      for (int i = 0; i < s.num_rows; ++i, ++r) {
        std::memcpy(kv.KRow(l, s.block_table, s.start_pos + i), k + static_cast<size_t>(r) * kv_dim,
                    sizeof(float) * kv_dim);
        std::memcpy(kv.VRow(l, s.block_table, s.start_pos + i), v + static_cast<size_t>(r) * kv_dim,
                    sizeof(float) * kv_dim);
      }
    }
    // Attention row by row; tasks take contiguous row ranges, each with its own scores.
    ParallelFor(attend_tasks, [&](int t) {
      float* scores = ws->scores_.data() + static_cast<size_t>(t) * scores_per_task;
      const int r0 = static_cast<int>(static_cast<int64_t>(rows) * t / attend_tasks);
      const int r1 = static_cast<int>(static_cast<int64_t>(rows) * (t + 1) / attend_tasks);
      for (int r = r0; r < r1; ++r) {
        const SeqSlice& s = batch.seqs[row_seq[r]];
        AttendRow(c, kv, l, s.block_table, positions[r], q + static_cast<size_t>(r) * qd,
                  att + static_cast<size_t>(r) * qd, scores);
      }
    });
    Linear(att, w.Matrix(o.wo), x, rows, dim, qd, 1.0f, stats);  // residual: x += att . wo^T
    RmsNorm(x, w.Vector(o.ffn_norm), xb, rows, dim, c.norm_eps);
    Linear(xb, w.Matrix(o.w1), hb, rows, hid, dim, 0.0f, stats);
    Linear(xb, w.Matrix(o.w3), hb2, rows, hid, dim, 0.0f, stats);
    for (int r = 0; r < rows; ++r) {  // per row: the same elementwise code for every row
      const size_t off = static_cast<size_t>(r) * hid;
      SiluMul(hb + off, hb2 + off, hb + off, static_cast<size_t>(hid));
    }
    Linear(hb, w.Matrix(o.w2), x, rows, dim, hid, 1.0f, stats);  // residual
  }

  const int n_out = static_cast<int>(batch.logit_rows.size());
  if (n_out == 0) return;
  float* fin = ws->final_.data();
  for (int i = 0; i < n_out; ++i) {
    const int32_t r = batch.logit_rows[i];
    TREEPO_CHECK(r >= 0 && r < rows) << "logit row " << r;
    std::memcpy(fin + static_cast<size_t>(i) * dim, x + static_cast<size_t>(r) * dim,
                sizeof(float) * dim);
  }
  RmsNorm(fin, w.Vector(L.final_norm()), fin, n_out, dim, c.norm_eps);
  Linear(fin, w.Matrix(L.lm_head()), logits, n_out, c.vocab_size, dim, 0.0f, stats);
}

}  // namespace treepo::cpu
