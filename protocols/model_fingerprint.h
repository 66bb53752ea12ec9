// The model fingerprint a worker sends in RegisterWorker: a hash of the model's
// configuration (shapes, vocabulary, ...), not of its weights, so it stays the same across
// weight versions. The scheduler compares it with the model it expects (docs/security.md).
#pragma once

#include <cstdint>

#include "common/model/config.h"

namespace treepo::protocols {

uint64_t ModelFingerprint(const model::ModelConfig& config);

}  // namespace treepo::protocols
