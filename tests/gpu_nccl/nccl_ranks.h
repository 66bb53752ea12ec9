// Runs the ranks of an NCCL communicator as child processes, for the GPU tests and nccl_bench.
//
// NCCL refuses two ranks of one communicator on one GPU of one host ("Duplicate GPU
// detected", ncclInvalidUsage, since NCCL 2.5). With fewer devices than ranks each rank gets
// its own NCCL_HOSTID, so NCCL takes them for two hosts sharing the device and connects them
// over its socket transport on loopback (P2P, shared memory and InfiniBand off): correct, but
// the bandwidth is a loopback socket's, not NVLink's. With a device per rank nothing is set
// and NCCL picks its transports as in production.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "common/status.h"

namespace treepo::testing {

struct RankRun {
  std::vector<int> exit_codes;    // per rank; -1 when it was still running at the deadline
  std::vector<std::string> logs;  // per rank: its log file's path
  bool all_ok() const {
    for (int c : exit_codes) {
      if (c != 0) return false;
    }
    return true;
  }
};

// The environment (NAME=value) rank `rank` of `world` runs with on `n_devices` devices.
inline std::vector<std::string> NcclRankEnv(int rank, int world, int n_devices) {
  std::vector<std::string> env = {"NCCL_DEBUG=WARN"};
  if (n_devices >= world) return env;
  for (const char* v : {"NCCL_P2P_DISABLE=1", "NCCL_SHM_DISABLE=1", "NCCL_IB_DISABLE=1",
                        "NCCL_SOCKET_IFNAME=lo", "NCCL_NVLS_ENABLE=0", "NCCL_MNNVL_ENABLE=0"}) {
    env.push_back(v);
  }
  env.push_back("NCCL_HOSTID=treepo-rank-" + std::to_string(rank));
  return env;
}

// Starts `program rank args...` for every rank (through /usr/bin/env with NcclRankEnv), each
// logging to "<log_dir>/rank<r>.log", and waits up to timeout_ms for all of them; the ones
// still running then are killed (their exit code stays -1).
inline Result<RankRun> RunNcclRanks(const std::string& program, int world, int n_devices,
                                    const std::vector<std::string>& args,
                                    const std::string& log_dir, int timeout_ms) {
  std::vector<cluster::ChildProcess> children;
  RankRun run;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    for (std::string& e : NcclRankEnv(r, world, n_devices)) argv.push_back(std::move(e));
    argv.push_back(program);
    argv.push_back(std::to_string(r));
    argv.insert(argv.end(), args.begin(), args.end());
    run.logs.push_back(log_dir + "/rank" + std::to_string(r) + ".log");
    TREEPO_ASSIGN_OR_RETURN(cluster::ChildProcess c,
                            cluster::ChildProcess::Spawn(argv, run.logs.back()));
    children.push_back(std::move(c));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (cluster::ChildProcess& c : children) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (c.Wait(std::max<int>(0, static_cast<int>(left.count())))) {
      run.exit_codes.push_back(c.exit_code());
    } else {
      c.Terminate(1000);
      run.exit_codes.push_back(-1);
    }
  }
  return run;
}

}  // namespace treepo::testing
