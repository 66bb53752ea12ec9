// One rank of the GPU tests' NCCL scenarios (nccl_gpu_test runs one process per rank, see
// nccl_ranks.h). Exits 0 when the rank saw what the scenario expects; says what it saw.
//
//   nccl_test_peer <rank> collective <world> <store_dir> <run_id>
//   nccl_test_peer <rank> weights <world> <store_dir> <run_id> <f32|bf16> <bucket_bytes>
//                  <dim> <n_layers> <vocab> <versions>
//   nccl_test_peer <rank> dead-peer <world> <store_dir> <run_id> <timeout_ms>
//   nccl_test_peer <rank> mismatch <world> <store_dir> <run_id>
//   nccl_test_peer <rank> env <world> <store_dir> <run_id>     (prints its NCCL_* variables)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/collective/collective.h"
#include "common/collective/nccl_communicator.h"
#include "common/model/weights.h"
#include "learner/service/nccl_weight_broadcaster.h"

namespace treepo {
namespace {

using collective::CollectiveOptions;
using collective::NcclCommunicator;

struct Args {
  int rank = 0;
  std::string scenario;
  int world = 2;
  std::string store_dir;
  std::string run_id;
  std::vector<std::string> rest;
};

CollectiveOptions Options(const Args& a, int timeout_ms) {
  CollectiveOptions o;
  o.backend = "nccl";
  o.rank = a.rank;
  o.world_size = a.world;
  o.store_dir = a.store_dir;
  o.run_id = a.run_id;
  o.timeout_ms = timeout_ms;
  return o;
}

int Fail(const Args& a, const std::string& what) {
  std::printf("rank %d: FAIL: %s\n", a.rank, what.c_str());
  return 1;
}

// All-reduce (float over more than one staging piece, double, max), broadcast from the last
// rank, barrier and AllRanksEqual, through CreateCollective as the learner calls it.
int RunCollective(const Args& a) {
  Result<std::unique_ptr<collective::Collective>> c = CreateCollective(Options(a, 60000));
  if (!c.ok()) return Fail(a, "create: " + c.status().ToString());
  collective::Collective& col = **c;
  if (col.backend() != "nccl") return Fail(a, "backend is " + std::string(col.backend()));

  // (rank + 1) * (i % 1000): exact in float, the sum over ranks is known.
  const size_t n = collective::kNcclStagingBytes / sizeof(float) * 5 / 4 + 3;
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>((a.rank + 1) * (i % 1000));
  Status s = col.AllReduceSum(std::span<float>(f));
  if (!s.ok()) return Fail(a, "all-reduce float: " + s.ToString());
  const float ranks_sum = static_cast<float>(a.world * (a.world + 1) / 2);
  for (size_t i = 0; i < n; ++i) {
    if (f[i] != ranks_sum * static_cast<float>(i % 1000)) {
      return Fail(a,
                  "all-reduce float: element " + std::to_string(i) + " is " + std::to_string(f[i]));
    }
  }
  std::vector<double> d = {0.25 * (a.rank + 1), -1.0 * a.rank, 1e300 / (a.rank + 1)};
  s = col.AllReduceSum(std::span<double>(d));
  if (!s.ok()) return Fail(a, "all-reduce double: " + s.ToString());
  if (d[0] != 0.25 * ranks_sum || d[1] != -(ranks_sum - a.world)) {
    return Fail(a, "all-reduce double gave " + std::to_string(d[0]) + ", " + std::to_string(d[1]));
  }
  std::vector<double> m = {static_cast<double>(a.rank), -static_cast<double>(a.rank)};
  s = col.AllReduceMax(std::span<double>(m));
  if (!s.ok()) return Fail(a, "all-reduce max: " + s.ToString());
  if (m[0] != a.world - 1 || m[1] != 0) return Fail(a, "all-reduce max gave the wrong values");

  const int root = a.world - 1;
  std::vector<float> b(1000, -1.0f);
  if (a.rank == root) {
    for (size_t i = 0; i < b.size(); ++i) b[i] = 0.5f * static_cast<float>(i);
  }
  s = col.Broadcast(std::span<float>(b), root);
  if (!s.ok()) return Fail(a, "broadcast: " + s.ToString());
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] != 0.5f * static_cast<float>(i)) return Fail(a, "broadcast: wrong element");
  }
  s = col.Barrier();
  if (!s.ok()) return Fail(a, "barrier: " + s.ToString());
  Result<bool> same = collective::AllRanksEqual(col, 0x1234567890abcdefull);
  if (!same.ok() || !*same) return Fail(a, "AllRanksEqual of one value is not true");
  same = collective::AllRanksEqual(col, static_cast<uint64_t>(a.rank));
  if (!same.ok() || *same) return Fail(a, "AllRanksEqual of the ranks is not false");
  std::printf("rank %d: collective ok (%zu floats all-reduced)\n", a.rank, n);
  return 0;
}

model::ModelConfig Config(int dim, int n_layers, int vocab) {
  model::ModelConfig c;
  c.dim = dim;
  c.hidden_dim = dim * 8 / 3;
  c.n_layers = n_layers;
  c.n_heads = dim / 32 > 0 ? dim / 32 : 1;
  c.n_kv_heads = c.n_heads;
  c.vocab_size = vocab;
  c.max_seq_len = 256;
  c.tied_embeddings = false;
  return c;
}

// Rank 0 sends `versions` random models (seed = version); every other rank receives them and
// compares each bit with the same model made here.
int RunWeights(const Args& a) {
  if (a.rest.size() != 6) return Fail(a, "weights needs 6 arguments");
  learner::WeightBroadcastOptions bo;
  bo.dtype = a.rest[0] == "bf16" ? model::WeightDtype::kBF16 : model::WeightDtype::kF32;
  bo.bucket_bytes = std::stoull(a.rest[1]);
  const model::ModelConfig config =
      Config(std::stoi(a.rest[2]), std::stoi(a.rest[3]), std::stoi(a.rest[4]));
  const int versions = std::stoi(a.rest[5]);
  if (Status v = config.Validate(); !v.ok()) return Fail(a, "config: " + v.ToString());

  Result<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(Options(a, 60000));
  if (!comm.ok()) return Fail(a, "create: " + comm.status().ToString());
  const model::ParamLayout layout(config);
  const std::unique_ptr<learner::WeightBroadcastChannel> channel =
      learner::NcclChannel(comm->get());
  Result<learner::WeightBroadcaster> b =
      learner::WeightBroadcaster::Create(channel.get(), layout, bo);
  if (!b.ok()) return Fail(a, "broadcaster: " + b.status().ToString());

  learner::ReceivedWeights got;
  for (int v = 1; v <= versions; ++v) {
    Result<model::ModelWeights> w = model::ModelWeights::Random(config, 1000 + v);
    if (!w.ok()) return Fail(a, "random weights: " + w.status().ToString());
    if (a.rank == 0) {
      Status s = b->Send(WeightVersion(v), w->data);
      if (!s.ok()) return Fail(a, "send: " + s.ToString());
      continue;
    }
    Status s = b->Receive(got);
    if (!s.ok()) return Fail(a, "receive: " + s.ToString());
    if (got.version != WeightVersion(v)) return Fail(a, "received another version");
    if (bo.dtype == model::WeightDtype::kF32) {
      if (got.f32.size() != w->data.size() ||
          std::memcmp(got.f32.data(), w->data.data(), w->data.size() * sizeof(float)) != 0) {
        return Fail(a, "version " + std::to_string(v) + ": fp32 weights differ");
      }
    } else {
      if (got.bf16.size() != w->data.size()) return Fail(a, "bf16 weights of the wrong size");
      for (size_t i = 0; i < w->data.size(); ++i) {
        if (got.bf16[i] != model::FloatToBf16(w->data[i])) {
          return Fail(a, "version " + std::to_string(v) + ": bf16 element " + std::to_string(i) +
                             " differs");
        }
      }
    }
  }
  std::printf("rank %d: weights ok (%d versions, %zu params, %zu buckets, %s)\n", a.rank, versions,
              layout.total(), b->plan().buckets.size(), a.rest[0].c_str());
  return 0;
}

// Rank 1 dies (SIGKILL) once joined; rank 0's all-reduce must fail, not hang.
int RunDeadPeer(const Args& a) {
  if (a.rest.size() != 1) return Fail(a, "dead-peer needs <timeout_ms>");
  const int timeout_ms = std::stoi(a.rest[0]);
  Result<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(Options(a, timeout_ms));
  if (!comm.ok()) return Fail(a, "create: " + comm.status().ToString());
  if (a.rank != 0) {
    std::printf("rank %d: joined, now dying\n", a.rank);
    std::fflush(stdout);
    ::raise(SIGKILL);
  }
  std::vector<float> data(size_t{4} << 20, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  Status s = (*comm)->AllReduceHost(data.data(), data.size(), collective::NcclType::kFloat32,
                                    collective::NcclReduce::kSum);
  const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("rank 0: all-reduce with a dead peer returned after %ld ms: %s\n", ms,
              s.ToString().c_str());
  if (s.ok()) return Fail(a, "the all-reduce succeeded without its peer");
  if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kDeadlineExceeded) {
    return Fail(a, "expected kUnavailable or kDeadlineExceeded");
  }
  if (ms > timeout_ms + 5000) return Fail(a, "the error came long after the timeout");
  s = (*comm)->Barrier();
  if (s.ok()) return Fail(a, "the communicator is usable after a failure");
  return 0;
}

// Rank 1 plans other buckets than rank 0: it must refuse at the header, and rank 0 must get
// an error (from the broadcast or the barrier after it) instead of hanging.
int RunMismatch(const Args& a) {
  Result<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(Options(a, 15000));
  if (!comm.ok()) return Fail(a, "create: " + comm.status().ToString());
  const model::ModelConfig config = Config(64, 2, 512);
  const model::ParamLayout layout(config);
  learner::WeightBroadcastOptions bo;
  bo.bucket_bytes = a.rank == 0 ? 64 << 10 : 32 << 10;
  const std::unique_ptr<learner::WeightBroadcastChannel> channel =
      learner::NcclChannel(comm->get());
  Result<learner::WeightBroadcaster> b =
      learner::WeightBroadcaster::Create(channel.get(), layout, bo);
  if (!b.ok()) return Fail(a, "broadcaster: " + b.status().ToString());
  Status s;
  if (a.rank == 0) {
    Result<model::ModelWeights> w = model::ModelWeights::Random(config, 1);
    s = b->Send(WeightVersion(1), w->data);
    // The buckets may all fit in NCCL's buffers before rank 1 aborts; then the next
    // collective is where rank 0 finds it gone.
    if (s.ok()) s = (*comm)->Barrier();
  } else {
    learner::ReceivedWeights got;
    s = b->Receive(got);
  }
  std::printf("rank %d: %s\n", a.rank, s.ToString().c_str());
  if (s.ok()) return Fail(a, "a mismatched plan went through");
  if (a.rank != 0 && s.code() != StatusCode::kFailedPrecondition) {
    return Fail(a, "expected kFailedPrecondition at the receiver");
  }
  return 0;
}

}  // namespace
}  // namespace treepo

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s <rank> <scenario> <world> <store_dir> <run_id> [args]\n",
                 argv[0]);
    return 2;
  }
  treepo::Args a;
  a.rank = std::atoi(argv[1]);
  a.scenario = argv[2];
  a.world = std::atoi(argv[3]);
  a.store_dir = argv[4];
  a.run_id = argv[5];
  for (int i = 6; i < argc; ++i) a.rest.push_back(argv[i]);
  if (a.scenario == "collective") return treepo::RunCollective(a);
  if (a.scenario == "weights") return treepo::RunWeights(a);
  if (a.scenario == "dead-peer") return treepo::RunDeadPeer(a);
  if (a.scenario == "mismatch") return treepo::RunMismatch(a);
  if (a.scenario == "env") {
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "NCCL_", 5) == 0) std::printf("rank %d: %s\n", a.rank, *e);
    }
    return 0;
  }
  std::fprintf(stderr, "unknown scenario %s\n", a.scenario.c_str());
  return 2;
}
