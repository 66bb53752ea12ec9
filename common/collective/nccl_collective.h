// The NCCL backend of Collective (CUDA build only): host spans staged through the device by
// an NcclCommunicator. Private to common/collective: callers use CreateCollective.
#pragma once

#include <memory>

#include "common/collective/collective.h"

namespace treepo::collective {

// Precondition: options validated, world_size > 1.
Result<std::unique_ptr<Collective>> CreateNcclCollective(const CollectiveOptions& options);

}  // namespace treepo::collective
