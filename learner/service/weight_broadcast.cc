#include "learner/service/weight_broadcast.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/check.h"

namespace treepo::learner {
namespace {

constexpr uint64_t kHeaderMagic = 0x7472656570776231ull;  // "treepwb1"

// The header's eight words (little-endian u64 on every host NCCL runs on).
struct Header {
  uint64_t magic = kHeaderMagic;
  uint64_t version = 0;
  uint64_t total_elements = 0;
  uint64_t dtype = 0;
  uint64_t bucket_bytes = 0;
  uint64_t n_buckets = 0;
  uint64_t fingerprint = 0;
  uint64_t reserved = 0;
};
static_assert(sizeof(Header) == 64);

Header HeaderOf(const WeightBucketPlan& plan, model::WeightDtype dtype, WeightVersion version) {
  Header h;
  h.version = version.value();
  h.total_elements = plan.total_elements;
  h.dtype = static_cast<uint64_t>(dtype);
  h.bucket_bytes = plan.bucket_bytes;
  h.n_buckets = plan.buckets.size();
  h.fingerprint = plan.Fingerprint();
  return h;
}

size_t WireBytes(model::WeightDtype d) { return d == model::WeightDtype::kBF16 ? 2 : 4; }

class CollectiveChannelImpl final : public WeightBroadcastChannel {
 public:
  explicit CollectiveChannelImpl(collective::Collective* c) : c_(c) {}
  int rank() const override { return c_->rank(); }
  Status BroadcastBytes(void* data, size_t bytes, int root) override {
    floats_.assign((bytes + sizeof(float) - 1) / sizeof(float), 0.0f);
    if (c_->rank() == root) std::memcpy(floats_.data(), data, bytes);
    TREEPO_RETURN_IF_ERROR(c_->Broadcast(floats_, root));
    if (c_->rank() != root) std::memcpy(data, floats_.data(), bytes);
    return OkStatus();
  }
  Status Abort(Status why) override { return why; }

 private:
  collective::Collective* c_;
  std::vector<float> floats_;
};

}  // namespace

Status WeightBroadcastOptions::Validate() const {
  if (dtype != model::WeightDtype::kF32 && dtype != model::WeightDtype::kBF16) {
    return InvalidArgument(std::string("weight broadcast: dtype ") + model::DtypeName(dtype) +
                           " is not supported on the wire (f32 | bf16)");
  }
  if (bucket_bytes < 4) {
    return InvalidArgument("weight broadcast: bucket_bytes " + std::to_string(bucket_bytes) +
                           " is smaller than one element");
  }
  return OkStatus();
}

std::unique_ptr<WeightBroadcastChannel> CollectiveChannel(collective::Collective* collective) {
  TREEPO_CHECK(collective != nullptr);
  return std::make_unique<CollectiveChannelImpl>(collective);
}

Result<WeightBroadcaster> WeightBroadcaster::Create(WeightBroadcastChannel* channel,
                                                    const model::ParamLayout& layout,
                                                    const WeightBroadcastOptions& options) {
  TREEPO_CHECK(channel != nullptr);
  TREEPO_RETURN_IF_ERROR(options.Validate());
  TREEPO_ASSIGN_OR_RETURN(WeightBucketPlan plan, PlanWeightBuckets(layout, options.bucket_bytes,
                                                                   WireBytes(options.dtype)));
  return WeightBroadcaster(channel, layout, options, std::move(plan));
}

WeightBroadcaster::WeightBroadcaster(WeightBroadcastChannel* channel,
                                     const model::ParamLayout& layout,
                                     const WeightBroadcastOptions& options, WeightBucketPlan plan)
    : channel_(channel), layout_(&layout), options_(options), plan_(std::move(plan)) {}

Status WeightBroadcaster::Send(WeightVersion version, std::span<const float> params) {
  if (channel_->rank() != 0) {
    return FailedPrecondition("weight broadcast: only rank 0 sends (this is rank " +
                              std::to_string(channel_->rank()) + ")");
  }
  if (params.size() != plan_.total_elements) {
    return InvalidArgument("weight broadcast: " + std::to_string(params.size()) +
                           " parameters, the layout has " + std::to_string(plan_.total_elements));
  }
  Header header = HeaderOf(plan_, options_.dtype, version);
  TREEPO_RETURN_IF_ERROR(channel_->BroadcastBytes(&header, sizeof(header), 0));

  const bool bf16 = options_.dtype == model::WeightDtype::kBF16;
  std::vector<uint64_t> checksums(plan_.buckets.size());
  for (size_t i = 0; i < plan_.buckets.size(); ++i) {
    const WeightBucket& b = plan_.buckets[i];
    const float* src = params.data() + b.offset;
    void* wire = const_cast<float*>(src);  // the root's buffer is only read
    size_t bytes = b.count * sizeof(float);
    if (bf16) {
      bf16_bucket_.resize(b.count);
      for (size_t j = 0; j < b.count; ++j) bf16_bucket_[j] = model::FloatToBf16(src[j]);
      wire = bf16_bucket_.data();
      bytes = b.count * sizeof(uint16_t);
    }
    checksums[i] = BucketChecksum(std::span(static_cast<const uint8_t*>(wire), bytes));
    TREEPO_RETURN_IF_ERROR(channel_->BroadcastBytes(wire, bytes, 0));
  }
  return channel_->BroadcastBytes(checksums.data(), checksums.size() * sizeof(uint64_t), 0);
}

Status WeightBroadcaster::Receive(ReceivedWeights& out) {
  if (channel_->rank() == 0) {
    return FailedPrecondition("weight broadcast: rank 0 sends, it does not receive");
  }
  Header header;
  TREEPO_RETURN_IF_ERROR(channel_->BroadcastBytes(&header, sizeof(header), 0));
  const Header mine = HeaderOf(plan_, options_.dtype, WeightVersion(header.version));
  if (std::memcmp(&header, &mine, sizeof(Header)) != 0) {
    // The next broadcasts would have other lengths here than at rank 0: stop them all.
    return channel_->Abort(FailedPrecondition(
        "weight broadcast: rank 0 sends another plan (its total " +
        std::to_string(header.total_elements) + " elements, dtype " + std::to_string(header.dtype) +
        ", " + std::to_string(header.n_buckets) + " buckets of " +
        std::to_string(header.bucket_bytes) + " bytes; here " +
        std::to_string(mine.total_elements) + ", " + std::to_string(mine.dtype) + ", " +
        std::to_string(mine.n_buckets) + " of " + std::to_string(mine.bucket_bytes) +
        "): the learner and the worker disagree on the model or the broadcast options"));
  }
  const bool bf16 = options_.dtype == model::WeightDtype::kBF16;
  out.version = WeightVersion(header.version);
  out.dtype = options_.dtype;
  uint8_t* base;
  if (bf16) {
    out.f32.clear();
    out.bf16.resize(plan_.total_elements);
    base = reinterpret_cast<uint8_t*>(out.bf16.data());
  } else {
    out.bf16.clear();
    out.f32.resize(plan_.total_elements);
    base = reinterpret_cast<uint8_t*>(out.f32.data());
  }
  const size_t elem = WireBytes(options_.dtype);
  for (const WeightBucket& b : plan_.buckets) {
    TREEPO_RETURN_IF_ERROR(channel_->BroadcastBytes(base + b.offset * elem, b.count * elem, 0));
  }
  std::vector<uint64_t> checksums(plan_.buckets.size());
  TREEPO_RETURN_IF_ERROR(
      channel_->BroadcastBytes(checksums.data(), checksums.size() * sizeof(uint64_t), 0));
  for (size_t i = 0; i < plan_.buckets.size(); ++i) {
    const WeightBucket& b = plan_.buckets[i];
    const uint64_t got = BucketChecksum(std::span(base + b.offset * elem, b.count * elem));
    if (got != checksums[i]) {
      return DataLoss("weight broadcast: version " + std::to_string(header.version) + " bucket " +
                      std::to_string(i) + " of " + std::to_string(plan_.buckets.size()) + " (" +
                      DescribeBucket(*layout_, b) + ") arrived with checksum " +
                      std::to_string(got) + ", rank 0 sent " + std::to_string(checksums[i]));
    }
  }
  return OkStatus();
}

}  // namespace treepo::learner
