// gpu_decoder_bench: decode and prefill speed of the CUDA decoder backend on models shaped like
// Qwen2.5-0.5B and Qwen2.5-1.5B (random bf16 weights drawn here: no downloads),
// against the H200's peaks: decode as achieved memory bandwidth (the weights and the KV read
// per step over the step time) as a share of 4.8 TB/s, prefill as TFLOP/s as a share of the
// bf16 dense peak of 989 TFLOP/s. Prints one table; --json FILE writes the rows.
//
// Decode: `batch` sequences, each with `--ctx` positions already in its pages (the pool is
// zeroed: the values do not change the work), one token per sequence per step, logits of every
// row copied to the host (as the engine gets them: "ms/step", "tokens/s"); then the same steps
// asking for no logits ("no-logit ms": no LM head, no copy to the host), which is what the
// bandwidth column is computed from (the layers' weights and the KV read per step). Prefill:
// `--prefill-seqs` sequences of
// `--prefill-len` tokens in one forward, logits of each last row.
//
// Usage: gpu_decoder_bench [--models 0.5b,1.5b] [--ctx N] [--steps N] [--prefill-len N]
//        [--prefill-seqs N] [--layers N] [--json FILE]
// Exits 0 with a message where there is no CUDA device.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "common/cuda/cuda_decoder.h"
#include "common/model/dtype.h"
#include "common/model/weights.h"

namespace {

namespace compute = treepo::compute;
namespace model = treepo::model;
using Clock = std::chrono::steady_clock;

constexpr double kPeakBandwidth = 4.8e12;  // H200 HBM3e, bytes/s
constexpr double kPeakBf16 = 989e12;       // H200 dense bf16 tensor FLOP/s

double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

model::ModelConfig Qwen25(const std::string& size) {
  model::ModelConfig c;
  c.vocab_size = 151936;
  c.max_seq_len = 32768;
  c.rope_theta = 1e6f;
  c.norm_eps = 1e-6f;
  c.rope_layout = model::RopeLayout::kRotateHalf;
  c.qkv_bias = true;
  c.tied_embeddings = true;
  if (size == "0.5b") {
    c.dim = 896;
    c.hidden_dim = 4864;
    c.n_layers = 24;
    c.n_heads = 14;
    c.n_kv_heads = 2;
  } else {
    c.dim = 1536;
    c.hidden_dim = 8960;
    c.n_layers = 28;
    c.n_heads = 12;
    c.n_kv_heads = 2;
  }
  return c;
}

// Bytes of the bf16 matrices a forward with logits reads (every layer's, and the LM head).
double WeightBytes(const model::ModelConfig& c) {
  const double d = c.dim, q = c.q_dim(), kv = c.kv_dim(), h = c.hidden_dim;
  const double layer = d * (q + 2 * kv) + q * d + 2 * h * d + h * d;
  return 2.0 * (c.n_layers * layer + static_cast<double>(c.vocab_size) * d);
}

struct Row {
  std::string model, phase;
  int batch = 0, ctx = 0;
  double ms = 0, ms_no_logits = 0, tokens_per_s = 0, gbps = 0, bw_share = 0, tflops = 0,
         flop_share = 0;
  double gemm_tflops = 0;
};

// Random bf16 weights drawn on every core: matrices uniform with ModelWeights::Random's
// standard deviation (0.02), norms 1, biases 0. (ModelWeights::Random draws fp32 normals on one
// thread: about a minute for the 1.5B shape, most of the bench's time budget.)
model::ModelWeights RandomBf16(const model::ModelConfig& c, uint64_t seed) {
  model::ModelWeights w;
  w.config = c;
  w.layout = model::ParamLayout(c);
  w.dtype = model::WeightDtype::kBF16;
  w.half.resize(w.layout.total());
  const size_t n = w.half.size();
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t x = seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(t) + 1;
      const float half_width = 0.02f * std::sqrt(3.0f);
      for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        x += 0x9e3779b97f4a7c15ull;  // splitmix64
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float u = static_cast<float>(z >> 40) / static_cast<float>(1ull << 24);  // [0, 1)
        w.half[i] = model::FloatToBf16((2.0f * u - 1.0f) * half_width);
      }
    });
  }
  for (std::thread& th : pool) th.join();
  for (const model::TensorInfo& t : w.layout.tensors()) {
    if (t.shape.size() != 1) continue;
    const bool bias = t.name.find("bias") != std::string::npos;
    std::fill_n(w.half.begin() + t.offset, t.numel, model::FloatToBf16(bias ? 0.0f : 1.0f));
  }
  w.IndexVectors();
  return w;
}

std::vector<int32_t> Table(int seq, int pages_per_seq) {
  std::vector<int32_t> t(pages_per_seq);
  for (int i = 0; i < pages_per_seq; ++i) t[i] = seq * pages_per_seq + i;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string models = "0.5b,1.5b", json_path;
  int ctx = 512, steps = 20, prefill_len = 1024, prefill_seqs = 4, layers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto need = [&]() {
      if (v == nullptr) {
        std::fprintf(stderr, "gpu_decoder_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      ++i;
      return std::string(v);
    };
    if (a == "--models") {
      models = need();
    } else if (a == "--ctx") {
      ctx = std::stoi(need());
    } else if (a == "--steps") {
      steps = std::stoi(need());
    } else if (a == "--prefill-len") {
      prefill_len = std::stoi(need());
    } else if (a == "--prefill-seqs") {
      prefill_seqs = std::stoi(need());
    } else if (a == "--layers") {
      layers = std::stoi(need());
    } else if (a == "--json") {
      json_path = need();
    } else {
      std::fprintf(stderr, "gpu_decoder_bench: unknown option %s (see the file's header)\n",
                   a.c_str());
      return 2;
    }
  }
  if (ctx < 1 || steps < 1 || prefill_len < 1 || prefill_seqs < 1 || layers < 0) {
    std::fprintf(stderr, "gpu_decoder_bench: sizes must be positive\n");
    return 2;
  }
  if (treepo::cuda::DeviceCount() == 0) {
    std::printf("gpu_decoder_bench: no CUDA device; nothing to measure\n");
    return 0;
  }

  const std::vector<int> batches = {1, 8, 32, 64, 128, 256};
  const int page_size = 16;
  std::vector<Row> rows;
  std::stringstream names(models);
  for (std::string name; std::getline(names, name, ',');) {
    if (name != "0.5b" && name != "1.5b") {
      std::fprintf(stderr, "gpu_decoder_bench: unknown model %s (0.5b | 1.5b)\n", name.c_str());
      return 2;
    }
    model::ModelConfig c = Qwen25(name);
    if (layers > 0) c.n_layers = layers;
    const std::string label = "qwen2.5-" + name + "-shape" +
                              (layers > 0 ? "/" + std::to_string(layers) + "L" : std::string());
    auto t0 = Clock::now();
    if (const treepo::Status st = c.Validate(); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    auto weights = std::make_shared<const model::ModelWeights>(RandomBf16(c, 1));
    std::fprintf(stderr, "%s: random weights in %.1f s\n", label.c_str(), Seconds(t0));

    // One pool for the largest decode batch, reused by prefill.
    const int max_batch = batches.back();
    const int pages_per_seq = (std::max(ctx + steps + 4, prefill_len) + page_size - 1) / page_size;
    const int num_pages = pages_per_seq * std::max(max_batch, prefill_seqs);
    t0 = Clock::now();
    auto made =
        treepo::cuda::CreateCudaDecoder(0, weights, {c.n_layers, num_pages, page_size, c.kv_dim()});
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return 1;
    }
    std::unique_ptr<compute::DecoderBackend> gpu = std::move(made).value();
    std::fprintf(stderr, "%s: on the device in %.1f s\n", label.c_str(), Seconds(t0));

    std::vector<std::vector<int32_t>> tables;
    for (int s = 0; s < std::max(max_batch, prefill_seqs); ++s) {
      tables.push_back(Table(s, pages_per_seq));
    }
    std::vector<float> logits;
    for (int batch : batches) {
      std::vector<int32_t> tokens(batch), logit_rows(batch);
      std::vector<compute::SeqSlice> seqs(batch);
      logits.resize(static_cast<size_t>(batch) * c.vocab_size);
      auto step = [&](int i, bool want_logits) {
        for (int s = 0; s < batch; ++s) {
          tokens[s] = (s * 7919 + i * 104729) % c.vocab_size;
          logit_rows[s] = s;
          seqs[s] = {tables[s], ctx + (i % 4), 1};
        }
        const std::span<const int32_t> out =
            want_logits ? std::span<const int32_t>(logit_rows) : std::span<const int32_t>();
        gpu->Forward({tokens, seqs, out}, logits.data());
      };
      for (int i = 0; i < 3; ++i) step(i, true);  // warm-up: scratch buffers, cuBLAS heuristics
      auto t = Clock::now();
      for (int i = 0; i < steps; ++i) step(i, true);
      const double sec = Seconds(t) / steps;
      t = Clock::now();
      for (int i = 0; i < steps; ++i) step(i, false);
      const double sec_layers = Seconds(t) / steps;
      const double kv_bytes = 2.0 * 2.0 * batch * (ctx + 2.0) * c.n_layers * c.kv_dim();
      const double layer_bytes = WeightBytes(c) - 2.0 * c.vocab_size * c.dim;
      Row r;
      r.model = label;
      r.phase = "decode";
      r.batch = batch;
      r.ctx = ctx;
      r.ms = sec * 1e3;
      r.ms_no_logits = sec_layers * 1e3;
      r.tokens_per_s = batch / sec;
      r.gbps = (layer_bytes + kv_bytes) / sec_layers / 1e9;
      r.bw_share = r.gbps * 1e9 / kPeakBandwidth;
      rows.push_back(r);
    }

    // Prefill: prefill_seqs sequences of prefill_len tokens in one forward.
    {
      const int n_rows = prefill_seqs * prefill_len;
      std::vector<int32_t> tokens(n_rows), logit_rows(prefill_seqs);
      std::vector<compute::SeqSlice> seqs(prefill_seqs);
      for (int i = 0; i < n_rows; ++i) tokens[i] = (i * 7919) % c.vocab_size;
      for (int s = 0; s < prefill_seqs; ++s) {
        seqs[s] = {tables[s], 0, prefill_len};
        logit_rows[s] = (s + 1) * prefill_len - 1;
      }
      logits.resize(static_cast<size_t>(prefill_seqs) * c.vocab_size);
      gpu->Forward({tokens, seqs, logit_rows}, logits.data());  // warm-up
      const int reps = 3;
      const compute::ForwardStats before = gpu->stats();
      const auto t = Clock::now();
      for (int i = 0; i < reps; ++i) gpu->Forward({tokens, seqs, logit_rows}, logits.data());
      const double sec = Seconds(t) / reps;
      const compute::ForwardStats after = gpu->stats();
      const double gemm_flops = (after.matmul_flops - before.matmul_flops) / reps;
      const double gemm_sec = (after.matmul_seconds - before.matmul_seconds) / reps;
      // Causal attention: q.k and p.v over (L + 1) / 2 positions on average per row.
      const double attn_flops = 4.0 * n_rows * (prefill_len + 1) / 2.0 * c.q_dim() * c.n_layers;
      Row r;
      r.model = label;
      r.phase = "prefill";
      r.batch = prefill_seqs;
      r.ctx = prefill_len;
      r.ms = sec * 1e3;
      r.tokens_per_s = n_rows / sec;
      r.tflops = (gemm_flops + attn_flops) / sec / 1e12;
      r.flop_share = r.tflops * 1e12 / kPeakBf16;
      r.gemm_tflops = gemm_sec > 0 ? gemm_flops / gemm_sec / 1e12 : 0;
      rows.push_back(r);
    }
  }

  std::printf("%-26s %-8s %6s %6s %10s %13s %12s %9s %7s %9s %7s %10s\n", "model", "phase", "batch",
              "ctx", "ms/step", "no-logit ms", "tokens/s", "GB/s", "%4.8TB", "TFLOP/s", "%989",
              "GEMM TF/s");
  for (const Row& r : rows) {
    if (r.phase == "decode") {
      std::printf("%-26s %-8s %6d %6d %10.3f %13.3f %12.0f %9.0f %6.1f%% %9s %7s %10s\n",
                  r.model.c_str(), r.phase.c_str(), r.batch, r.ctx, r.ms, r.ms_no_logits,
                  r.tokens_per_s, r.gbps, 100 * r.bw_share, "-", "-", "-");
    } else {
      std::printf("%-26s %-8s %6d %6d %10.3f %13s %12.0f %9s %7s %9.1f %6.1f%% %10.1f\n",
                  r.model.c_str(), r.phase.c_str(), r.batch, r.ctx, r.ms, "-", r.tokens_per_s, "-",
                  "-", r.tflops, 100 * r.flop_share, r.gemm_tflops);
    }
  }
  if (!json_path.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const Row& r : rows) {
      j.push_back({{"model", r.model},
                   {"phase", r.phase},
                   {"batch", r.batch},
                   {"ctx", r.ctx},
                   {"ms_per_step", r.ms},
                   {"ms_per_step_no_logits", r.ms_no_logits},
                   {"tokens_per_s", r.tokens_per_s},
                   {"gb_per_s", r.gbps},
                   {"bandwidth_share", r.bw_share},
                   {"tflops", r.tflops},
                   {"flop_share", r.flop_share},
                   {"gemm_tflops", r.gemm_tflops}});
    }
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
