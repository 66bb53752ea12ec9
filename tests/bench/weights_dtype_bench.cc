// weights_dtype_bench: memory and speed of a model whose weights stay bf16 (or f16) against
// the same model in fp32, side by side.
//
// The model is random with a real shape (default: Qwen2.5-0.5B's widths and vocabulary with
// fewer layers, so that it runs in seconds). It is written as a BF16 checkpoint, then loaded
// twice as a worker loads it: once widened to fp32, once kept 16-bit (LoadHfModel's
// keep_16bit). For each it prints the bytes of parameter storage, the process's resident
// memory growth while loading (RSS, /proc/self/statm), decode tokens/s at batch 1 and 8 and
// prefill tokens/s (best of --reps), and checks that the two give the same logits up to bf16
// rounding of nothing: the fp32 model is the exact widening of the bf16 one, so the logits are
// bitwise equal.
//
// Usage: weights_dtype_bench [--layers N] [--dim N] [--hidden N] [--heads N] [--kv-heads N]
//        [--vocab N] [--threads N] [--reps N] [--dtype bf16|f16] [--json FILE]
//
// RSS growth is exact for the first model loaded in the process; the second may reuse pages
// the first freed. --rss-check fp32|16 loads that one alone and prints its RSS growth.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/model/safetensors.h"
#include "worker/engine/engine.h"

namespace {

using treepo::NodeId;
using treepo::TaskId;
using treepo::WeightVersion;
using namespace treepo::worker;
namespace model = treepo::model;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

// Resident set size of this process, in bytes.
size_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::vector<int32_t> Tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = static_cast<int32_t>(rng() % vocab);
  return t;
}

std::unique_ptr<Engine> MakeEngine(std::shared_ptr<const model::ModelWeights> w, int pages,
                                   int threads) {
  EngineOptions o;
  o.kv.num_pages = pages;
  o.max_step_tokens = 1024;
  o.blas_threads = threads;
  auto e = Engine::Create(std::move(w), WeightVersion(0), o);
  if (!e.ok()) {
    std::fprintf(stderr, "engine: %s\n", e.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(e).value();
}

// Decode tokens/s of `batch` children of a 32-token prefix, `steps` tokens each.
double DecodeRate(std::shared_ptr<const model::ModelWeights> w, int batch, int steps, int threads) {
  auto e = MakeEngine(w, (batch + 1) * ((32 + steps) / 16 + 2), threads);
  SegmentRequest r;
  r.task = TaskId(1);
  r.prefix_tokens = Tokens(32, w->config.vocab_size, 1);
  for (int i = 0; i < batch; ++i) {
    r.children.push_back(NodeId(10 + i));
    r.seeds.push_back(i);
  }
  r.max_new_tokens = steps;
  r.sampling.stop_at_eos = false;
  r.keep_kv = false;
  if (!e->Submit(r).ok()) std::exit(1);
  e->Step();  // prefill
  const auto t0 = Clock::now();
  e->RunUntilIdle();
  return batch * steps / Seconds(t0);
}

// Prefill tokens/s of one `n`-token prompt; also returns its last logits row.
double PrefillRate(std::shared_ptr<const model::ModelWeights> w, int n, int threads,
                   std::vector<float>* logits) {
  auto e = MakeEngine(w, n / 16 + 4, threads);
  SegmentRequest r;
  r.task = TaskId(1);
  r.prefix_tokens = Tokens(n, w->config.vocab_size, 2);
  r.children = {NodeId(2)};
  r.seeds = {0};
  r.max_new_tokens = 1;
  r.sampling.temperature = 0.0f;
  r.return_logits = true;
  r.keep_kv = false;
  if (!e->Submit(r).ok()) std::exit(1);
  const auto t0 = Clock::now();
  auto results = e->RunUntilIdle();
  const double secs = Seconds(t0);
  *logits = results.at(0).children.at(0).logits;
  return n / secs;
}

struct Row {
  std::string name;
  size_t storage = 0, rss_growth = 0;
  double decode1 = 0, decode8 = 0, prefill = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int layers = 4, dim = 896, hidden = 4864, heads = 14, kv_heads = 2, vocab = 151936;
  int threads = 1, reps = 2;
  std::string dtype_name = "bf16", json_path, rss_check;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--layers") {
      layers = std::stoi(v);
    } else if (a == "--dim") {
      dim = std::stoi(v);
    } else if (a == "--hidden") {
      hidden = std::stoi(v);
    } else if (a == "--heads") {
      heads = std::stoi(v);
    } else if (a == "--kv-heads") {
      kv_heads = std::stoi(v);
    } else if (a == "--vocab") {
      vocab = std::stoi(v);
    } else if (a == "--threads") {
      threads = std::stoi(v);
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--dtype") {
      dtype_name = v;
    } else if (a == "--json") {
      json_path = v;
    } else if (a == "--rss-check") {
      rss_check = v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const model::WeightDtype dtype =
      dtype_name == "f16" ? model::WeightDtype::kF16 : model::WeightDtype::kBF16;
  model::ModelConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.vocab_size = vocab;
  c.max_seq_len = 4096;
  c.rope_theta = 1000000.0f;
  c.norm_eps = 1e-6f;
  c.rope_layout = model::RopeLayout::kRotateHalf;
  c.qkv_bias = true;
  c.tied_embeddings = true;
  c.bos_id = 0;
  c.eos_id = 1;

  // A 16-bit checkpoint on disk, as Hugging Face ships them.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("treepo_dtype_bench_" + std::to_string(getpid()));
  {
    auto w = model::ModelWeights::Random(c, 1);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
      return 1;
    }
    const model::ModelWeights half = model::ModelWeights::ToHalf(*w, dtype);
    if (!model::SaveHfModel(half, dir.string()).ok()) return 1;
  }
  std::printf("model: %s, %.0fM parameters, checkpoint %s\n", c.ToString().c_str(),
              c.ParamCount() / 1e6, model::DtypeName(dtype));

  if (!rss_check.empty()) {
    const size_t rss0 = RssBytes();
    auto loaded = model::LoadHfModel(dir.string(), rss_check != "fp32");
    const size_t growth = RssBytes() - rss0;
    std::filesystem::remove_all(dir);
    if (!loaded.ok()) return 1;
    std::printf("%s alone: storage %.1f MB, RSS growth %.1f MB\n", rss_check.c_str(),
                loaded->StorageBytes() / 1e6, growth / 1e6);
    return 0;
  }
  std::vector<Row> rows;
  std::vector<std::vector<float>> logits(2);
  for (int keep = 0; keep < 2; ++keep) {
    Row row;
    row.name = keep ? std::string(model::DtypeName(dtype)) + " kept" : "fp32 (widened)";
    const size_t rss0 = RssBytes();
    auto loaded = model::LoadHfModel(dir.string(), keep == 1);
    if (!loaded.ok()) {
      std::fprintf(stderr, "load: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    auto w = std::make_shared<const model::ModelWeights>(std::move(loaded).value());
    row.rss_growth = RssBytes() - rss0;
    row.storage = w->StorageBytes();
    for (int r = 0; r < reps; ++r) {
      row.decode1 = std::max(row.decode1, DecodeRate(w, 1, 16, threads));
      row.decode8 = std::max(row.decode8, DecodeRate(w, 8, 16, threads));
      row.prefill = std::max(row.prefill, PrefillRate(w, 128, threads, &logits[keep]));
    }
    rows.push_back(row);
  }
  std::filesystem::remove_all(dir);
  const bool same = logits[0] == logits[1];

  std::printf("\n%-16s %14s %14s %12s %12s %14s\n", "weights", "storage MB", "RSS growth MB",
              "decode b=1", "decode b=8", "prefill tok/s");
  for (const Row& r : rows) {
    std::printf("%-16s %14.1f %14.1f %12.2f %12.2f %14.1f\n", r.name.c_str(), r.storage / 1e6,
                r.rss_growth / 1e6, r.decode1, r.decode8, r.prefill);
  }
  std::printf("ratio (16-bit / fp32): storage %.3f, decode b=1 %.2fx, b=8 %.2fx, prefill %.2fx\n",
              static_cast<double>(rows[1].storage) / rows[0].storage,
              rows[1].decode1 / rows[0].decode1, rows[1].decode8 / rows[0].decode8,
              rows[1].prefill / rows[0].prefill);
  std::printf("last-position logits bitwise equal: %s\n", same ? "yes" : "NO");
  if (!json_path.empty()) {
    nlohmann::json j;
    j["config"] = c.ToString();
    j["threads"] = threads;
    for (const Row& r : rows) {
      j["rows"].push_back({{"weights", r.name},
                           {"storage_bytes", r.storage},
                           {"rss_growth_bytes", r.rss_growth},
                           {"decode_b1_tokens_per_s", r.decode1},
                           {"decode_b8_tokens_per_s", r.decode8},
                           {"prefill_tokens_per_s", r.prefill}});
    }
    j["logits_equal"] = same;
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return same ? 0 : 1;
}
