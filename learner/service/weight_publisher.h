// Weight sync: how a learner hands a new weight version to the inference workers.
//
// Callers see one small interface, WeightPublisher. The implementation here streams the flat
// fp32 buffer as a WeightVersionNotice followed by checksummed WeightChunks over the
// learner's connection to the scheduler, which relays them to every worker (CPU clusters).
// NcclWeightPublisher (nccl_weight_broadcaster.h, CUDA build) implements it as a bucketed
// NCCL broadcast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "protocols/messages.h"

namespace treepo::learner {

class WeightPublisher {
 public:
  virtual ~WeightPublisher() = default;
  // Makes `params` (the model's flat buffer) available to workers as `version`. Returns once
  // the transfer is handed to the transport (not once workers installed it).
  virtual Status Publish(WeightVersion version, std::span<const float> params) = 0;
};

inline constexpr size_t kDefaultWeightChunkBytes = size_t{1} << 20;

// A version as messages: the notice (whole-buffer FNV-1a chained over the chunks in offset
// order) and the chunks (each chunk_bytes long except the last, each with its own checksum).
struct WeightMessages {
  protocols::WeightVersionNotice notice;
  std::vector<protocols::WeightChunk> chunks;
};
// Precondition: chunk_bytes >= 1. An empty buffer gives one empty chunk.
WeightMessages ChunkWeights(WeightVersion version, std::span<const uint8_t> bytes,
                            size_t chunk_bytes);

// Sends the notice and chunks through `send` (one payload per call, in order); the first
// failed send ends the publish with its status.
class MessageWeightPublisher final : public WeightPublisher {
 public:
  using SendFn = std::function<Status(protocols::Payload)>;
  MessageWeightPublisher(SendFn send, size_t chunk_bytes = kDefaultWeightChunkBytes);
  Status Publish(WeightVersion version, std::span<const float> params) override;

 private:
  SendFn send_;
  size_t chunk_bytes_;
};

}  // namespace treepo::learner
