#include "protocols/model_fingerprint.h"

#include <string>

#include "protocols/messages.h"

namespace treepo::protocols {

uint64_t ModelFingerprint(const model::ModelConfig& config) {
  const std::string s = config.ToString();
  return Fnv1a64({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

}  // namespace treepo::protocols
