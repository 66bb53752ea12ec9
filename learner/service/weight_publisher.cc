#include "learner/service/weight_publisher.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace treepo::learner {

WeightMessages ChunkWeights(WeightVersion version, std::span<const uint8_t> bytes,
                            size_t chunk_bytes) {
  TREEPO_CHECK(chunk_bytes >= 1);
  WeightMessages out;
  const size_t n = std::max<size_t>(1, (bytes.size() + chunk_bytes - 1) / chunk_bytes);
  uint64_t whole = protocols::kFnv64Offset;
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = i * chunk_bytes;
    const size_t end = std::min(bytes.size(), begin + chunk_bytes);
    const std::span<const uint8_t> part = bytes.subspan(begin, end - begin);
    protocols::WeightChunk c;
    c.version = version;
    c.chunk_index = static_cast<uint32_t>(i);
    c.n_chunks = static_cast<uint32_t>(n);
    c.offset = begin;
    c.bytes.assign(part.begin(), part.end());
    c.chunk_checksum = protocols::Fnv1a64(part);
    whole = protocols::Fnv1a64(part, whole);
    out.chunks.push_back(std::move(c));
  }
  out.notice.version = version;
  out.notice.total_bytes = bytes.size();
  out.notice.n_chunks = static_cast<uint32_t>(n);
  out.notice.checksum = whole;
  return out;
}

MessageWeightPublisher::MessageWeightPublisher(SendFn send, size_t chunk_bytes)
    : send_(std::move(send)), chunk_bytes_(chunk_bytes) {
  TREEPO_CHECK(chunk_bytes_ >= 1);
}

Status MessageWeightPublisher::Publish(WeightVersion version, std::span<const float> params) {
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(params.data()),
                                       params.size_bytes());
  WeightMessages m = ChunkWeights(version, bytes, chunk_bytes_);
  TREEPO_RETURN_IF_ERROR(send_(m.notice));
  for (protocols::WeightChunk& c : m.chunks) TREEPO_RETURN_IF_ERROR(send_(std::move(c)));
  return OkStatus();
}

}  // namespace treepo::learner
