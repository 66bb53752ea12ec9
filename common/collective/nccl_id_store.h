// NCCL's rendezvous through the collective store directory: rank 0 creates the communicator's
// unique id (ncclUniqueId: opaque bytes, 128 in NCCL 2.x) and publishes it under the run_id
// key; every other rank waits for it. Plain C++ without NCCL, so it is built and tested on
// every machine.
//
// The file is "<store_dir>/<run_id>.nccl-id", written atomically (AtomicFile): a reader sees
// the whole id or none. A run_id names one communicator generation: reuse one only after the
// old file is gone (rank 0 removes it once its communicator is up, when every rank has read
// it), or a late rank may read a stale id and time out in the NCCL handshake.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::collective {

// "<store_dir>/<run_id>.nccl-id"; an empty run_id is "treepo". kInvalidArgument when run_id
// holds anything but [A-Za-z0-9._-] (it becomes a file name).
Result<std::string> NcclIdPath(const std::string& store_dir, const std::string& run_id);

// Rank 0: writes `id` (creating store_dir when missing). kInvalidArgument / kFailedPrecondition
// naming the path when the directory cannot be created or written.
Status PublishNcclId(const std::string& store_dir, const std::string& run_id,
                     std::span<const uint8_t> id);

// Ranks 1..n-1: waits up to timeout_ms for the file, then reads exactly `id_bytes` bytes.
// kDeadlineExceeded naming the path when it does not appear; kDataLoss when it holds
// something else than an id of that size.
Result<std::vector<uint8_t>> WaitNcclId(const std::string& store_dir, const std::string& run_id,
                                        size_t id_bytes, int timeout_ms);

// Rank 0, once every rank joined: removes the file (a missing file is fine).
void RemoveNcclId(const std::string& store_dir, const std::string& run_id);

}  // namespace treepo::collective
