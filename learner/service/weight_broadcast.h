// Bucketed weight broadcast: the learner, rank 0 of a communicator, sends a weight version to
// ranks 1..n (the workers) bucket by bucket, following a WeightBucketPlan every rank computes
// from the same layout and options. The communicator is a WeightBroadcastChannel: NCCL on GPUs
// (nccl_weight_broadcaster.h, CUDA build) or any collective::Collective (Gloo on CPUs).
//
// One version on the wire, every message a broadcast from rank 0:
//   1. a 64-byte header: magic, version, total elements, wire dtype, bucket bytes, bucket
//      count and the plan's fingerprint; a receiver whose own plan differs aborts the channel
//      (kFailedPrecondition here; an error at rank 0, not a hang) rather than receive
//      buffers of another length;
//   2. each bucket, in the wire dtype (fp32, or bf16 rounded to nearest even on rank 0, one
//      bucket at a time);
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

#include "common/collective/collective.h"
#include "common/ids.h"
#include "common/model/dtype.h"
#include "common/model/weights.h"
#include "learner/service/weight_buckets.h"

namespace treepo::learner {

// What the broadcast needs from a communicator.
class WeightBroadcastChannel {
 public:
  virtual ~WeightBroadcastChannel() = default;
  virtual int rank() const = 0;
  // In place: root's `bytes` bytes reach every rank; the root's buffer is only read.
  virtual Status BroadcastBytes(void* data, size_t bytes, int root) = 0;
  // Stops the channel for every rank where the transport can (their pending broadcasts
  // fail); returns `why`.
  virtual Status Abort(Status why) = 0;
};

// A channel over a Collective (not owned; outlives the channel): bytes go as float
// broadcasts (padded to whole floats). Abort cannot reach the peers here: they time out.
std::unique_ptr<WeightBroadcastChannel> CollectiveChannel(collective::Collective* collective);

struct WeightBroadcastOptions {
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

class WeightBroadcaster {
 public:
  // `channel` and `layout` are not owned and outlive the broadcaster. kInvalidArgument for
  // bad options.
  static Result<WeightBroadcaster> Create(WeightBroadcastChannel* channel,
                                          const model::ParamLayout& layout,
                                          const WeightBroadcastOptions& options);

  // Rank 0: broadcasts `params` (layout.total() fp32 values) as `version`.
  Status Send(WeightVersion version, std::span<const float> params);
  // Ranks 1..n: receives the next version; `out` is resized and reused across versions.
  Status Receive(ReceivedWeights& out);

  const WeightBucketPlan& plan() const { return plan_; }

 private:
  WeightBroadcaster(WeightBroadcastChannel* channel, const model::ParamLayout& layout,
                    const WeightBroadcastOptions& options, WeightBucketPlan plan);

  WeightBroadcastChannel* channel_;
  const model::ParamLayout* layout_;
  WeightBroadcastOptions options_;
  WeightBucketPlan plan_;
  std::vector<uint16_t> bf16_bucket_;  // rank 0, kBF16: one bucket rounded for the wire
};

}  // namespace treepo::learner
