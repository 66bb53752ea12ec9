// NCCL bus bandwidth and whole-model weight broadcast time between two ranks (processes).
//
//   nccl_bench [--max-mib N] [--models 0.5b,1.5b] [--json FILE]
//
// Broadcast and all-reduce of device buffers from 1 MiB to --max-mib (x4 steps), reported as
// nccl-tests does: algbw = bytes / time, busbw = algbw * 2(n-1)/n for all-reduce and algbw for
// broadcast. Then the learner's weight broadcast (WeightBroadcaster on an NCCL channel: host fp32
// in, bf16 on the wire in 64 MiB buckets, checksummed) of models of the Qwen2.5-0.5B and -1.5B
// shapes (random values). First, the host side of a version (bf16 rounding and checksums, no
// device needed); without a CUDA device it then says so and exits 0. With one device the two
// ranks share it over NCCL's socket transport (nccl_ranks.h): the figures are then a
// loopback socket's, not NVLink's, and the table says which.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/collective/nccl_communicator.h"
#include "common/testing/paths.h"
#include "learner/service/nccl_weight_broadcaster.h"
#include "protocols/messages.h"
#include "tests/gpu_nccl/nccl_ranks.h"

namespace treepo {
namespace {

using collective::NcclCommunicator;
using collective::NcclReduce;
using collective::NcclType;
using Clock = std::chrono::steady_clock;

constexpr int kWorld = 2;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

model::ModelConfig QwenShape(const std::string& name) {
  model::ModelConfig c;
  c.vocab_size = 151936;
  c.max_seq_len = 32768;
  c.n_kv_heads = 2;
  c.qkv_bias = true;
  c.tied_embeddings = true;
  if (name == "1.5b") {
    c.dim = 1536, c.hidden_dim = 8960, c.n_layers = 28, c.n_heads = 12;
  } else {
    c.dim = 896, c.hidden_dim = 4864, c.n_layers = 24, c.n_heads = 14;
  }
  return c;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

struct PeerArgs {
  int rank = 0;
  std::string store_dir, run_id, models, json, setup;
  size_t max_mib = 1024;
};

#define BENCH_CHECK(expr)                                                                         \
  do {                                                                                            \
    Status bench_status_ = (expr);                                                                \
    if (!bench_status_.ok()) {                                                                    \
      std::fprintf(stderr, "rank %d: %s: %s\n", a.rank, #expr, bench_status_.ToString().c_str()); \
      return 1;                                                                                   \
    }                                                                                             \
  } while (0)

int RunPeer(const PeerArgs& a) {
  collective::CollectiveOptions o;
  o.backend = "nccl";
  o.rank = a.rank;
  o.world_size = kWorld;
  o.store_dir = a.store_dir;
  o.run_id = a.run_id;
  o.timeout_ms = 300000;
  const auto join_start = Clock::now();
  Result<std::unique_ptr<NcclCommunicator>> made = NcclCommunicator::Create(o);
  BENCH_CHECK(made.status());
  NcclCommunicator& comm = **made;
  const double join_ms = Seconds(join_start, Clock::now()) * 1e3;
  nlohmann::json json = {{"nccl", collective::NcclVersionString()},
                         {"ranks", kWorld},
                         {"setup", a.setup},
                         {"join_ms", join_ms},
                         {"collectives", nlohmann::json::array()},
                         {"weights", nlohmann::json::array()}};
  if (a.rank == 0) {
    std::printf("nccl_bench: NCCL %s, %d ranks, %s\n", collective::NcclVersionString().c_str(),
                kWorld, a.setup.c_str());
    std::printf("communicator join (rank 0, from its id file to ready): %.1f ms\n\n", join_ms);
    std::printf("%-12s %10s %6s %12s %12s %12s\n", "collective", "bytes", "iters", "time_us",
                "algbw_GB/s", "busbw_GB/s");
  }

  void* buf = nullptr;
  const size_t max_bytes = a.max_mib << 20;
  if (cudaMalloc(&buf, max_bytes) != cudaSuccess) {
    std::fprintf(stderr, "rank %d: cudaMalloc of %zu bytes failed\n", a.rank, max_bytes);
    return 1;
  }
  (void)cudaMemset(buf, 0, max_bytes);
  (void)cudaDeviceSynchronize();
  for (const bool all_reduce : {false, true}) {
    for (size_t bytes = size_t{1} << 20; bytes <= max_bytes; bytes *= 4) {
      const size_t count = bytes / sizeof(float);
      const int iters = bytes <= (size_t{16} << 20) ? 20 : bytes <= (size_t{256} << 20) ? 5 : 3;
      auto op = [&] {
        return all_reduce ? comm.AllReduceDevice(buf, count, NcclType::kFloat32, NcclReduce::kSum)
                          : comm.BroadcastDevice(buf, count, NcclType::kFloat32, 0);
      };
      BENCH_CHECK(op());  // warm-up
      BENCH_CHECK(comm.Barrier());
      const auto t0 = Clock::now();
      for (int i = 0; i < iters; ++i) BENCH_CHECK(op());
      const double s = Seconds(t0, Clock::now()) / iters;
      const double algbw = static_cast<double>(bytes) / s / 1e9;
      const double busbw = all_reduce ? algbw * 2.0 * (kWorld - 1) / kWorld : algbw;
      const char* name = all_reduce ? "all_reduce" : "broadcast";
      if (a.rank == 0) {
        std::printf("%-12s %10zu %6d %12.1f %12.2f %12.2f\n", name, bytes, iters, s * 1e6, algbw,
                    busbw);
        std::fflush(stdout);
      }
      json["collectives"].push_back({{"op", name},
                                     {"bytes", bytes},
                                     {"iters", iters},
                                     {"time_us", s * 1e6},
                                     {"algbw_gbs", algbw},
                                     {"busbw_gbs", busbw}});
    }
  }
  (void)cudaFree(buf);

  if (a.rank == 0) {
    std::printf("\n%-14s %14s %10s %8s %10s %12s %8s\n", "weights", "params", "wire_MB", "buckets",
                "time_s", "wire_GB/s", "check");
  }
  for (const std::string& m : Split(a.models)) {
    const model::ModelConfig config = QwenShape(m);
    const model::ParamLayout layout(config);
    learner::WeightBroadcastOptions bo;  // bf16 in 64 MiB buckets
    const std::unique_ptr<learner::WeightBroadcastChannel> channel = learner::NcclChannel(&comm);
    Result<learner::WeightBroadcaster> b =
        learner::WeightBroadcaster::Create(channel.get(), layout, bo);
    BENCH_CHECK(b.status());
    std::vector<float> params;
    learner::ReceivedWeights got;
    if (a.rank == 0) {
      params.resize(layout.total());
      uint64_t x = 0x9e3779b97f4a7c15ull;
      for (float& p : params) {  // xorshift: random bits in [-0.05, 0.05)
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p = static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 - 0.5) * 0.1f;
      }
    }
    BENCH_CHECK(comm.Barrier());
    const auto t0 = Clock::now();
    Status s = a.rank == 0 ? b->Send(WeightVersion(1), params) : b->Receive(got);
    const double secs = Seconds(t0, Clock::now());
    // Rank 1 reports whether every bucket's checksum matched (0 ok, 1 not).
    int32_t bad = s.ok() ? 0 : 1;
    if (!s.ok()) std::fprintf(stderr, "rank %d: %s: %s\n", a.rank, m.c_str(), s.ToString().c_str());
    if (!comm.error().ok()) return 1;
    BENCH_CHECK(comm.AllReduceHost(&bad, 1, NcclType::kInt32, NcclReduce::kMax));
    const double wire_mb = static_cast<double>(layout.total()) * 2 / 1e6;
    if (a.rank == 0) {
      std::printf("%-14s %14zu %10.1f %8zu %10.3f %12.2f %8s\n", ("qwen2.5-" + m).c_str(),
                  layout.total(), wire_mb, b->plan().buckets.size(), secs, wire_mb / 1e3 / secs,
                  bad == 0 ? "ok" : "FAILED");
      std::fflush(stdout);
    }
    json["weights"].push_back({{"model", "qwen2.5-" + m},
                               {"params", layout.total()},
                               {"wire_mb", wire_mb},
                               {"buckets", b->plan().buckets.size()},
                               {"time_s", secs},
                               {"checksums_ok", bad == 0}});
    if (bad != 0) return 1;
  }
  if (a.rank == 0 && !a.json.empty()) std::ofstream(a.json) << json.dump(2) << "\n";
  return 0;
}

// The host side of a version, which needs no device: rank 0 rounds fp32 to bf16 and every
// rank checksums the buckets (one core each). Printed with the per-model cost it implies.
void RunHostSide(const std::vector<std::string>& models) {
  const size_t n = size_t{64} << 20;  // 256 MB of fp32
  std::vector<float> src(n);
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (float& p : src) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p = static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 - 0.5);
  }
  std::vector<uint16_t> half(n);
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) half[i] = model::FloatToBf16(src[i]);
  const double round_gbs = static_cast<double>(n * sizeof(float)) / Seconds(t0, Clock::now()) / 1e9;
  t0 = Clock::now();
  const uint64_t sum = learner::BucketChecksum(
      std::span(reinterpret_cast<const uint8_t*>(half.data()), n * sizeof(uint16_t)));
  const double sum_gbs =
      static_cast<double>(n * sizeof(uint16_t)) / Seconds(t0, Clock::now()) / 1e9;
  t0 = Clock::now();
  const uint64_t bytewise = protocols::Fnv1a64(
      std::span(reinterpret_cast<const uint8_t*>(half.data()), n * sizeof(uint16_t)));
  const double bytewise_gbs =
      static_cast<double>(n * sizeof(uint16_t)) / Seconds(t0, Clock::now()) / 1e9;
  std::printf("host side, one core (checksums %016llx, %016llx):\n",
              static_cast<unsigned long long>(sum), static_cast<unsigned long long>(bytewise));
  std::printf("  %-34s %8.2f GB/s of fp32 read\n", "fp32 -> bf16 rounding", round_gbs);
  std::printf("  %-34s %8.2f GB/s\n", "bucket checksum (word-wise FNV-1a)", sum_gbs);
  std::printf("  %-34s %8.2f GB/s\n", "chunk relay's byte-wise FNV-1a", bytewise_gbs);
  for (const std::string& m : models) {
    const double params = static_cast<double>(model::ParamLayout(QwenShape(m)).total());
    std::printf(
        "  qwen2.5-%-4s %5.0fM params: rank 0 %.2f s (round + checksum), receivers %.2f s\n",
        m.c_str(), params / 1e6, params * 4 / (round_gbs * 1e9) + params * 2 / (sum_gbs * 1e9),
        params * 2 / (sum_gbs * 1e9));
  }
  std::printf("\n");
  std::fflush(stdout);
}

int RunDriver(int argc, char** argv) {
  PeerArgs a;
  a.models = "0.5b,1.5b";
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--max-mib N] [--models 0.5b,1.5b] [--json FILE]\n", argv[0]);
      return 2;
    }
    if (f == "--max-mib") {
      a.max_mib = std::stoul(argv[++i]);
    } else if (f == "--models") {
      a.models = argv[++i];
    } else if (f == "--json") {
      a.json = argv[++i];
    } else {
      std::fprintf(stderr, "nccl_bench: unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  RunHostSide(Split(a.models));
  const int n_devices = collective::NcclDeviceCount();
  if (n_devices == 0) {
    std::printf("nccl_bench: no CUDA device visible, nothing to measure\n");
    return 0;
  }
  a.setup = n_devices >= kWorld
                ? "one device per rank"
                : "both ranks on one device over NCCL's socket transport (loopback; not NVLink)";
  const std::string dir = testing::FreshTempDir("nccl_bench");
  std::vector<std::string> args = {
      "--peer", dir, "bench", std::to_string(a.max_mib), a.models, a.json.empty() ? "-" : a.json,
      a.setup};
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  Result<testing::RankRun> run = testing::RunNcclRanks(self, kWorld, n_devices, args, dir, 540000);
  int rc = 0;
  if (!run.ok()) {
    std::fprintf(stderr, "nccl_bench: %s\n", run.status().ToString().c_str());
    return 1;
  }
  for (int r = 0; r < kWorld; ++r) {
    std::ifstream in(run->logs[r]);
    std::stringstream ss;
    ss << in.rdbuf();
    if (r == 0) {
      std::fputs(ss.str().c_str(), stdout);
    } else if (run->exit_codes[r] != 0) {
      std::fprintf(stderr, "--- rank %d ---\n%s", r, ss.str().c_str());
    }
    if (run->exit_codes[r] != 0) {
      std::fprintf(stderr, "nccl_bench: rank %d ended with exit code %d\n", r, run->exit_codes[r]);
      rc = 1;
    }
  }
  std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace
}  // namespace treepo

int main(int argc, char** argv) {
  // A rank: nccl_bench <rank> --peer <dir> <run_id> <max_mib> <models> <json|-> <setup>
  if (argc == 9 && std::strcmp(argv[2], "--peer") == 0) {
    treepo::PeerArgs a;
    a.rank = std::atoi(argv[1]);
    a.store_dir = argv[3];
    a.run_id = argv[4];
    a.max_mib = std::stoul(argv[5]);
    a.models = argv[6];
    a.json = std::strcmp(argv[7], "-") == 0 ? "" : argv[7];
    a.setup = argv[8];
    return treepo::RunPeer(a);
  }
  return treepo::RunDriver(argc, argv);
}
