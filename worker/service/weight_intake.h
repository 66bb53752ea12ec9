// Assembles a weight version streamed as WeightVersionNotice + WeightChunk messages into a
// flat fp32 buffer and checks it (bounds, every chunk present, total size, whole-buffer FNV-1a
// checksum) before handing out a ModelWeights ready for Engine::SwapWeights.
//
// Thread-safety: none; owned by the worker thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/ids.h"
#include "common/model/weights.h"
#include "common/status.h"
#include "protocols/messages.h"

namespace treepo::worker {

class WeightIntake {
 public:
  // Starts (or restarts) assembling `notice.version`; a transfer in progress is dropped.
  // kInvalidArgument when the size does not match `like` (the current weights' shape).
  Status Begin(const protocols::WeightVersionNotice& notice, const model::ModelWeights& like);
  // Copies a chunk in. kFailedPrecondition for a version not being assembled, kInvalidArgument
  // for a chunk out of bounds, duplicated or disagreeing with the notice.
  Status Add(const protocols::WeightChunk& chunk);
  // True when every chunk of the current version has arrived.
  bool Complete() const;
  // Verifies the checksum and returns the weights (config and layout of `like`); ends the
  // transfer either way. kDataLoss on a checksum mismatch. Precondition: Complete().
  Result<std::shared_ptr<const model::ModelWeights>> Finish(const model::ModelWeights& like);
  // The version being assembled, if any.
  std::optional<WeightVersion> version() const;

 private:
  std::optional<protocols::WeightVersionNotice> notice_;
  std::vector<uint8_t> bytes_;
  std::vector<bool> received_;
  uint32_t n_received_ = 0;
};

}  // namespace treepo::worker
