// One NCCL communicator on one CUDA device: the wrapper of ncclComm_t and its stream (built
// in the CUDA build only, where NCCL is found). The NCCL backend of Collective sits on it, and
// so does the weight broadcaster, which needs byte buffers and bf16.
//
// Every call is checked, and no call hangs: the communicator is non-blocking
// (ncclConfig_t::blocking = 0), and every wait (the handshake, each collective) polls
// ncclCommGetAsyncError and the stream up to timeout_ms. A peer that died gives kUnavailable
// when NCCL notices it (its connection closed) or kDeadlineExceeded when the timeout passes
// first; either way the communicator is aborted (ncclCommAbort) and every later call returns
// the same error: build a new one (a new run_id) to go on.
//
// Buffers: the *Device calls take device memory on device(); the *Host calls take host memory
// and stage it through a device buffer of at most kNcclStagingBytes (copy in, collective,
// copy out, piece by piece), all on the communicator's stream.
//
// Thread-safety: none; one owner thread per rank. The header holds no CUDA or NCCL type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/collective/collective.h"
#include "common/status.h"

namespace treepo::collective {

enum class NcclType { kUint8, kInt32, kFloat32, kFloat64, kBFloat16 };
enum class NcclReduce { kSum, kMax };

size_t NcclTypeBytes(NcclType type);

// Bytes of the device buffer a *Host call stages through.
inline constexpr size_t kNcclStagingBytes = size_t{64} << 20;

// CUDA devices this process sees; 0 when there is no driver or no device.
int NcclDeviceCount();

// "2.28.9": the NCCL library this process loaded.
std::string NcclVersionString();

// A fresh communicator id (ncclGetUniqueId: 128 opaque bytes naming rank 0's bootstrap
// address). Needs no device.
Result<std::vector<uint8_t>> NewNcclUniqueId();

class NcclCommunicator {
 public:
  // Joins the communicator of options.run_id (CollectiveOptions: rank, world_size, store_dir,
  // timeout_ms; backend and host are not read) on CUDA device `device` (-1: rank modulo the
  // device count). Rank 0 creates the unique id and publishes it in store_dir; the others
  // wait for it up to timeout_ms. kFailedPrecondition when there is no CUDA device or the
  // device ordinal is out of range; kDeadlineExceeded when the ranks do not all join in time.
  static Result<std::unique_ptr<NcclCommunicator>> Create(const CollectiveOptions& options,
                                                          int device = -1);
  // The same with a unique id that reached every rank another way (NewNcclUniqueId at one
  // rank, then a message): store_dir is not read. kInvalidArgument for an id of another size.
  static Result<std::unique_ptr<NcclCommunicator>> CreateWithId(const CollectiveOptions& options,
                                                                std::span<const uint8_t> id,
                                                                int device = -1);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const;
  int world_size() const;
  int device() const;
  // OK while usable; the first failure once aborted.
  const Status& error() const;

  // In place on `count` elements of device memory (on device()).
  Status AllReduceDevice(void* data, size_t count, NcclType type, NcclReduce op);
  Status BroadcastDevice(void* data, size_t count, NcclType type, int root);
  // In place on `count` elements of host memory. A broadcast's root only reads its buffer.
  Status AllReduceHost(void* data, size_t count, NcclType type, NcclReduce op);
  Status BroadcastHost(void* data, size_t count, NcclType type, int root);
  // Returns once every rank called it (an all-reduce of one int).
  Status Barrier();
  // Aborts the communicator (its peers' pending collectives fail) and returns `why`, which
  // every later call returns too. For a rank that finds it cannot go on (a plan mismatch).
  Status Abort(Status why);

  struct Impl;

 private:
  static Result<std::unique_ptr<NcclCommunicator>> Join(const CollectiveOptions& options,
                                                        std::span<const uint8_t> id, int device,
                                                        int n_devices);
  explicit NcclCommunicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treepo::collective
