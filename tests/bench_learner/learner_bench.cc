// learner_bench: training tokens/s of the CPU learner (TrainModel forward + backward of the
// mean next-token NLL + global-norm clip + AdamW) against PyTorch on the CPU with the same
// model shape, batch and thread count, in one run. PyTorch runs as a subprocess
// (torch_train_bench.py). Prints a table; --json FILE writes the rows.
//
// Usage: learner_bench [--threads 2] [--batch 8] [--seq 256] [--steps 3] [--json FILE]
//                      [--rounds 2] [--python /usr/bin/python3] [--no-torch]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cpu/ops.h"
#include "common/model/llama2c.h"
#include "learner/adamw.h"
#include "learner/model_train.h"

namespace {

using treepo::model::ModelConfig;
using treepo::model::ModelWeights;

struct Args {
  int threads = 2, batch = 8, seq = 256, steps = 3;
  int rounds = 2;  // ours and torch alternate this many times; the best of each is reported
  std::string json, python = "/usr/bin/python3";
  bool torch = true;
};

struct Row {
  std::string name;
  ModelConfig config;
  double ours = 0.0, torch = 0.0;  // tokens/s
};

double OursTokensPerSecond(ModelWeights w, const Args& a) {
  treepo::learner::TrainModel model(&w);
  treepo::learner::AdamWOptions ao;
  ao.lr = 1e-4f;
  treepo::learner::AdamW opt(w.layout, ao);
  const int rows = a.batch * a.seq, vocab = w.config.vocab_size;
  std::vector<int32_t> tokens(rows);
  uint64_t s = 12345;
  for (int32_t& t : tokens) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    t = static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(vocab));
  }
  const std::vector<int> lens(a.batch, a.seq);
  std::vector<float> logp, grad(w.layout.total(), 0.0f);
  // Mean NLL over the predicted tokens: dL/dlogp = -1 / count (last rows are ignored).
  const std::vector<float> dlogp(rows, -1.0f / static_cast<float>(a.batch * (a.seq - 1)));
  auto step = [&] {
    const treepo::Status st = model.Forward({tokens, lens}, &logp, nullptr);
    if (!st.ok()) {
      std::fprintf(stderr, "forward: %s\n", st.ToString().c_str());
      std::exit(1);
    }
    model.Backward(dlogp, {}, grad.data());
    opt.Step(w.data.data(), grad.data());
  };
  step();  // warm-up: buffers grow once
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.steps; ++i) step();
  const double dt =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / a.steps;
  return rows / dt;
}

double TorchTokensPerSecond(const ModelConfig& c, const Args& a) {
  char cmd[1024];
  std::snprintf(cmd, sizeof(cmd),
                "%s %s --dim %d --hidden %d --layers %d --heads %d --kv-heads %d --vocab %d "
                "--batch %d --seq %d --threads %d --steps %d %s",
                a.python.c_str(), TREEPO_BENCH_SCRIPT, c.dim, c.hidden_dim, c.n_layers, c.n_heads,
                c.n_kv_heads, c.vocab_size, a.batch, a.seq, a.threads, a.steps,
                c.tied_embeddings ? "--tied" : "");
  FILE* p = popen(cmd, "r");
  if (!p) return 0.0;
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  if (pclose(p) != 0) {
    std::fprintf(stderr, "torch benchmark failed: %s\n", out.c_str());
    return 0.0;
  }
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("tokens_per_s")) return 0.0;
  return j["tokens_per_s"].get<double>();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--no-torch") {
      a.torch = false;
      continue;
    }
    std::map<std::string, int*> ints = {{"--threads", &a.threads},
                                        {"--batch", &a.batch},
                                        {"--seq", &a.seq},
                                        {"--steps", &a.steps},
                                        {"--rounds", &a.rounds}};
    std::map<std::string, std::string*> strings = {{"--json", &a.json}, {"--python", &a.python}};
    if (ints.count(k)) {
      *ints[k] = std::atoi(next().c_str());
    } else if (strings.count(k)) {
      *strings[k] = next();
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.threads < 1 || a.batch < 1 || a.seq < 2 || a.steps < 1 || a.rounds < 1) {
    std::fprintf(stderr, "--threads, --batch, --steps, --rounds must be >= 1, --seq >= 2\n");
    return 2;
  }
  treepo::cpu::SetBlasThreads(a.threads);

  std::vector<std::pair<std::string, ModelWeights>> models;
  ModelConfig c;
  c.dim = 256;
  c.hidden_dim = 688;
  c.n_layers = 6;
  c.n_heads = 8;
  c.n_kv_heads = 8;
  c.vocab_size = 4096;
  c.max_seq_len = std::max(a.seq, 256);
  c.rope_layout = treepo::model::RopeLayout::kRotateHalf;
  c.tied_embeddings = false;
  auto synth = ModelWeights::Random(c, 1);
  if (!synth.ok()) return 1;
  models.emplace_back("synthetic-256x6", std::move(*synth));
  const char* env = std::getenv("TREEPO_SHARED_DIR");
  const std::string shared = env ? env : TREEPO_BENCH_SHARED_DIR;
  const std::string bin = shared + "/models/stories260K/stories260K.bin";
  if (std::filesystem::exists(bin)) {
    auto w = treepo::model::LoadLlama2cCheckpoint(bin);
    if (w.ok() && w->config.max_seq_len >= a.seq) models.emplace_back("stories260K", std::move(*w));
  }

  std::vector<Row> rows;
  std::printf("%-16s %-36s %6s %6s %12s %12s %7s\n", "model", "shape", "batch", "seq", "ours tok/s",
              "torch tok/s", "ratio");
  for (auto& [name, w] : models) {
    Row r;
    r.name = name;
    r.config = w.config;
    // Alternating rounds and keeping the best of each side makes the ratio robust to other
    // load on a shared machine.
    for (int round = 0; round < a.rounds; ++round) {
      r.ours = std::max(r.ours, OursTokensPerSecond(w, a));
      if (a.torch) r.torch = std::max(r.torch, TorchTokensPerSecond(w.config, a));
    }
    std::printf("%-16s %-36s %6d %6d %12.0f %12.0f %7.2f\n", name.c_str(),
                w.config.ToString().c_str(), a.batch, a.seq, r.ours, r.torch,
                r.torch > 0 ? r.ours / r.torch : 0.0);
    std::fflush(stdout);
    rows.push_back(r);
  }
  if (!a.json.empty()) {
    nlohmann::json j;
    j["threads"] = a.threads;
    j["batch"] = a.batch;
    j["seq"] = a.seq;
    j["steps"] = a.steps;
    j["rounds"] = a.rounds;
    for (const Row& r : rows) {
      j["rows"].push_back({{"model", r.name},
                           {"shape", r.config.ToString()},
                           {"ours_tokens_per_s", r.ours},
                           {"torch_tokens_per_s", r.torch},
                           {"ratio", r.torch > 0 ? r.ours / r.torch : 0.0}});
    }
    std::ofstream(a.json) << j.dump(2) << "\n";
  }
  return 0;
}
