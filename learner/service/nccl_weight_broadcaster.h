// Weight sync over NCCL (CUDA build only): the learner, rank 0 of a communicator, broadcasts
// a weight version to ranks 1..n (the GPU workers) bucket by bucket, following a
// WeightBucketPlan every rank computes from the same layout and options.
//
// One version on the wire, all broadcasts from rank 0:
//   1. a 64-byte header: magic, version, total elements, wire dtype, bucket bytes, bucket
//      count and the plan's fingerprint; a receiver whose own plan differs aborts the
//      communicator (kFailedPrecondition here, kUnavailable or kDeadlineExceeded at rank 0)
//      rather than receive buffers of the wrong length;
//   2. each bucket, in the wire dtype (fp32, or bf16 rounded to nearest even on rank 0);
//   3. the table of the buckets' checksums (BucketChecksum of their wire bytes); a receiver
//      checks every bucket and returns kDataLoss naming the bucket and its tensors.
// Every rank must be in Send / Receive for the same version: a worker learns that one is
// coming from a notice on the control plane (docs/nccl.md).
//
// Thread-safety: none; one owner thread per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/collective/nccl_communicator.h"
#include "common/ids.h"
#include "common/model/dtype.h"
#include "common/model/weights.h"
#include "learner/service/weight_buckets.h"
#include "learner/service/weight_publisher.h"

namespace treepo::learner {

struct NcclWeightBroadcastOptions {
  size_t bucket_bytes = size_t{64} << 20;                // per broadcast, in wire bytes
  model::WeightDtype dtype = model::WeightDtype::kBF16;  // on the wire: kF32 | kBF16

  Status Validate() const;
};

// A version as a receiver holds it: `f32` (kF32) or `bf16` (kBF16), layout.total() elements.
struct ReceivedWeights {
  WeightVersion version;
  model::WeightDtype dtype = model::WeightDtype::kF32;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
};

class NcclWeightBroadcaster {
 public:
  // `comm` is not owned and outlives the broadcaster. kInvalidArgument for bad options.
  static Result<NcclWeightBroadcaster> Create(collective::NcclCommunicator* comm,
                                              const model::ParamLayout& layout,
                                              const NcclWeightBroadcastOptions& options);

  // Rank 0: broadcasts `params` (layout.total() fp32 values) as `version`.
  Status Send(WeightVersion version, std::span<const float> params);
  // Ranks 1..n: receives the next version; `out` is resized and reused across versions.
  Status Receive(ReceivedWeights& out);

  const WeightBucketPlan& plan() const { return plan_; }

 private:
  NcclWeightBroadcaster(collective::NcclCommunicator* comm, const model::ParamLayout& layout,
                        const NcclWeightBroadcastOptions& options, WeightBucketPlan plan);

  collective::NcclCommunicator* comm_;
  const model::ParamLayout* layout_;
  NcclWeightBroadcastOptions options_;
  WeightBucketPlan plan_;
  std::vector<uint16_t> bf16_bucket_;  // rank 0, kBF16: one bucket rounded for the wire
};

// WeightPublisher over NCCL: the learner's side. Owns its communicator (rank 0).
class NcclWeightPublisher final : public WeightPublisher {
 public:
  // Precondition: comm->rank() == 0.
  static Result<std::unique_ptr<NcclWeightPublisher>> Create(
      std::unique_ptr<collective::NcclCommunicator> comm, const model::ParamLayout& layout,
      const NcclWeightBroadcastOptions& options);
  Status Publish(WeightVersion version, std::span<const float> params) override;

 private:
  NcclWeightPublisher(std::unique_ptr<collective::NcclCommunicator> comm,
                      NcclWeightBroadcaster broadcaster);
  std::unique_ptr<collective::NcclCommunicator> comm_;
  NcclWeightBroadcaster broadcaster_;
};

}  // namespace treepo::learner
