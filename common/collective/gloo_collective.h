// The Gloo backend of Collective (CPU buffers over TCP, FileStore rendezvous). Private to
// common/collective: callers use CreateCollective.
#pragma once

#include <memory>

#include "common/collective/collective.h"

namespace treepo::collective {

// Precondition: options validated, world_size > 1.
Result<std::unique_ptr<Collective>> CreateGlooCollective(const CollectiveOptions& options);

}  // namespace treepo::collective
