// Collectives between data-parallel learner ranks: one interface, one implementation per
// backend. Gloo (CPU buffers, TCP) is built in; NCCL (GPU buffers) belongs to the CUDA backend
// and is chosen by the same name-based factory, so callers never name a library (NCCL:
// nccl_communicator.h, built where CUDA and NCCL are found).
//
// Every rank calls the same collectives in the same order with buffers of the same length;
// a call returns once every rank has contributed (or the timeout passed: kDeadlineExceeded,
// or a peer is gone: kUnavailable). After a failed call the collective is unusable.
//
// Rendezvous: ranks find each other through a store every rank can reach; here a directory
// (Gloo's FileStore: the local disk for one machine, a shared file system for several).
// `run_id` keeps the keys of two runs sharing that directory apart.
//
// Thread-safety: none; one owner thread per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treepo::collective {

struct CollectiveOptions {
  std::string backend = "gloo";    // gloo | nccl (the CUDA build only)
  int rank = 0;                    // 0 <= rank < world_size
  int world_size = 1;              // 1: no peers, every collective is a no-op
  std::string store_dir;           // rendezvous directory every rank can reach (world_size > 1)
  std::string run_id;              // key prefix inside store_dir; the same on every rank
  std::string host = "127.0.0.1";  // address this rank's transport binds (its peers dial it)
  int timeout_ms = 300000;         // per collective and for the rendezvous (Gloo's file store waits
                                   // at least its own 30 s for a rank's address)

  Status Validate() const;
};

class Collective {
 public:
  virtual ~Collective() = default;
  virtual std::string_view backend() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In place: data[i] becomes the sum (max) of data[i] over ranks.
  virtual Status AllReduceSum(std::span<float> data) = 0;
  virtual Status AllReduceSum(std::span<double> data) = 0;
  virtual Status AllReduceMax(std::span<double> data) = 0;
  // In place: every rank's data becomes root's.
  virtual Status Broadcast(std::span<float> data, int root) = 0;
  virtual Status Barrier() = 0;
};

// Backends this build can create.
std::vector<std::string_view> CollectiveBackends();

// Connects every rank (blocks until all world_size ranks joined, or timeout_ms). world_size 1
// needs no store and no peers. kInvalidArgument for bad options or an unknown backend,
// kUnimplemented for a backend this build lacks, kDeadlineExceeded / kUnavailable when the
// ranks do not meet.
Result<std::unique_ptr<Collective>> CreateCollective(const CollectiveOptions& options);

// True when every rank passed the same `value` (one all-reduce of its 16-bit pieces, max of
// v and of -v). For checks that the ranks' weights agree (a hash of them).
Result<bool> AllRanksEqual(Collective& collective, uint64_t value);

}  // namespace treepo::collective
