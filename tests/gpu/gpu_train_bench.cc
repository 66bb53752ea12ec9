// gpu_train_bench: the learner's training step (forward, backward of a per-token objective,
// AdamW) on the CUDA backend next to the CPU backend (learner/train_backend.h), on a model of
// random weights with a Llama shape. Prints one table: per backend, ms per step, training
// tokens/s, and model TFLOP/s (6 x parameters x tokens + causal attention, over wall time).
// Without a device it prints a message and exits 0.
//
// Usage: gpu_train_bench [--dim N] [--layers N] [--hidden N] [--heads N] [--kv-heads N]
//        [--vocab N] [--seqs N] [--len N] [--steps N] [--cpu-steps N (0: no CPU column)]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/cuda/device.h"
#include "common/model/weights.h"
#include "learner/train_backend.h"

namespace {

using namespace treepo;

struct Args {
  int dim = 1024, layers = 12, hidden = 2816, heads = 16, kv_heads = 4, vocab = 32000;
  int seqs = 4, len = 512, steps = 10, cpu_steps = 1;
};

// N(0, 0.02)-sized uniform matrices, ones for norms, drawn on every core.
model::ModelWeights RandomWeights(const model::ModelConfig& c) {
  auto z = model::ModelWeights::Zeros(c);
  if (!z.ok()) {
    std::fprintf(stderr, "bad model shape: %s\n", z.status().ToString().c_str());
    std::exit(2);
  }
  model::ModelWeights w = std::move(*z);
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  const size_t n = w.data.size();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_real_distribution<float> u(-0.0346f, 0.0346f);  // std 0.02
      for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) w.data[i] = u(rng);
    });
  }
  for (std::thread& th : pool) th.join();
  for (const model::TensorInfo& ti : w.layout.tensors()) {
    if (ti.shape.size() == 1) std::fill_n(w.data.begin() + ti.offset, ti.numel, 1.0f);
  }
  return w;
}

struct Row {
  std::string backend;
  double ms = 0, tokens_per_s = 0, tflops = 0;
};

Row Run(const std::string& kind, const model::ModelWeights& w, const Args& a, int steps) {
  learner::AdamWOptions o;
  o.lr = 1e-5f;
  auto b = learner::CreateTrainBackend({kind, 0}, w, o);
  if (!b.ok()) {
    std::fprintf(stderr, "%s: %s\n", kind.c_str(), b.status().ToString().c_str());
    std::exit(1);
  }
  std::mt19937 rng(7);
  std::vector<int32_t> tokens(static_cast<size_t>(a.seqs) * a.len);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % w.config.vocab_size);
  const std::vector<int> lens(a.seqs, a.len);
  const std::vector<float> dlogp(tokens.size(), -1.0f / tokens.size());
  std::vector<float> logp;
  auto step = [&] {
    const Status f = (*b)->Forward({tokens, lens}, &logp, nullptr);
    const Status g = f.ok() ? (*b)->Backward(dlogp, {}) : f;
    const Status s = g.ok() ? (*b)->Step().status() : g;
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", kind.c_str(), s.ToString().c_str());
      std::exit(1);
    }
  };
  step();  // warm-up: allocations, cuBLAS heuristics
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  const model::ModelConfig& c = w.config;
  const double n_tok = static_cast<double>(tokens.size());
  // 6 flops per parameter and token (forward 2, backward 4), and causal attention: per layer
  // and sequence 4 n^2/2 hd heads forward (scores and values), twice that backward.
  const double att = 3.0 * c.n_layers * a.seqs * 2.0 * a.len * double(a.len) * c.q_dim();
  Row r;
  r.backend = kind;
  r.ms = s * 1e3;
  r.tokens_per_s = n_tok / s;
  r.tflops = (6.0 * w.layout.total() * n_tok + att) / s / 1e12;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--dim")
      a.dim = v;
    else if (k == "--layers")
      a.layers = v;
    else if (k == "--hidden")
      a.hidden = v;
    else if (k == "--heads")
      a.heads = v;
    else if (k == "--kv-heads")
      a.kv_heads = v;
    else if (k == "--vocab")
      a.vocab = v;
    else if (k == "--seqs")
      a.seqs = v;
    else if (k == "--len")
      a.len = v;
    else if (k == "--steps")
      a.steps = v;
    else if (k == "--cpu-steps")
      a.cpu_steps = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (treepo::cuda::DeviceCount() == 0) {
    std::printf("gpu_train_bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  model::ModelConfig c;
  c.dim = a.dim;
  c.n_layers = a.layers;
  c.hidden_dim = a.hidden;
  c.n_heads = a.heads;
  c.n_kv_heads = a.kv_heads;
  c.vocab_size = a.vocab;
  c.max_seq_len = std::max(a.len, 16);
  c.tied_embeddings = false;
  const model::ModelWeights w = RandomWeights(c);
  std::printf("model: dim %d, %d layers, hidden %d, %d heads (%d KV), vocab %d: %.1fM params\n",
              a.dim, a.layers, a.hidden, a.heads, a.kv_heads, a.vocab, w.layout.total() / 1e6);
  std::printf("batch: %d sequences x %d tokens per step\n\n", a.seqs, a.len);
  std::vector<Row> rows;
  rows.push_back(Run("cuda", w, a, a.steps));
  if (a.cpu_steps > 0) rows.push_back(Run("cpu", w, a, a.cpu_steps));
  std::printf("| backend | ms / step | tokens / s | model TFLOP/s |\n|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %.1f | %.0f | %.2f |\n", r.backend.c_str(), r.ms, r.tokens_per_s, r.tflops);
  }
  if (rows.size() == 2) std::printf("\ncuda / cpu: %.1fx\n", rows[1].ms / rows[0].ms);
  return 0;
}
