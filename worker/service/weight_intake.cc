#include "worker/service/weight_intake.h"

#include <cstring>
#include <string>

namespace treepo::worker {

Status WeightIntake::Begin(const protocols::WeightVersionNotice& notice,
                           const model::ModelWeights& like) {
  notice_.reset();
  bytes_.clear();
  received_.clear();
  n_received_ = 0;
  const uint64_t expected = static_cast<uint64_t>(like.layout.total()) * sizeof(float);
  if (notice.total_bytes != expected) {
    return InvalidArgument("weight version " + std::to_string(notice.version.value()) + " has " +
                           std::to_string(notice.total_bytes) + " bytes, the model needs " +
                           std::to_string(expected));
  }
  if (notice.n_chunks == 0) return InvalidArgument("weight notice with zero chunks");
  notice_ = notice;
  bytes_.assign(notice.total_bytes, 0);
  received_.assign(notice.n_chunks, false);
  return OkStatus();
}

Status WeightIntake::Add(const protocols::WeightChunk& chunk) {
  if (!notice_ || chunk.version != notice_->version) {
    return FailedPrecondition("weight chunk of version " + std::to_string(chunk.version.value()) +
                              " without a notice");
  }
  if (chunk.n_chunks != notice_->n_chunks || chunk.chunk_index >= notice_->n_chunks) {
    return InvalidArgument("weight chunk index/count disagrees with the notice");
  }
  if (chunk.offset > bytes_.size() || chunk.bytes.size() > bytes_.size() - chunk.offset) {
    return InvalidArgument("weight chunk out of bounds");
  }
  if (received_[chunk.chunk_index]) return InvalidArgument("duplicate weight chunk");
  if (!chunk.bytes.empty()) {
    std::memcpy(bytes_.data() + chunk.offset, chunk.bytes.data(), chunk.bytes.size());
  }
  received_[chunk.chunk_index] = true;
  ++n_received_;
  return OkStatus();
}

bool WeightIntake::Complete() const { return notice_ && n_received_ == notice_->n_chunks; }

Result<std::shared_ptr<const model::ModelWeights>> WeightIntake::Finish(
    const model::ModelWeights& like) {
  const protocols::WeightVersionNotice notice = *notice_;
  std::vector<uint8_t> bytes = std::move(bytes_);
  notice_.reset();
  bytes_.clear();
  received_.clear();
  n_received_ = 0;
  if (protocols::Fnv1a64(bytes) != notice.checksum) {
    return DataLoss("weight version " + std::to_string(notice.version.value()) +
                    ": checksum mismatch");
  }
  auto weights = std::make_shared<model::ModelWeights>();
  weights->config = like.config;
  weights->layout = like.layout;
  weights->data.resize(like.layout.total());
  std::memcpy(weights->data.data(), bytes.data(), bytes.size());
  bytes = {};
  // A worker that holds 16-bit weights keeps them 16-bit: the learner's fp32 update is rounded.
  if (like.dtype != model::WeightDtype::kF32) {
    return std::make_shared<const model::ModelWeights>(
        model::ModelWeights::ToHalf(*weights, like.dtype));
  }
  return std::shared_ptr<const model::ModelWeights>(std::move(weights));
}

std::optional<WeightVersion> WeightIntake::version() const {
  if (!notice_) return std::nullopt;
  return notice_->version;
}

}  // namespace treepo::worker
