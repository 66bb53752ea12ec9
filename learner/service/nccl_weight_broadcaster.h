// The weight broadcast over NCCL (CUDA build only): a WeightBroadcastChannel on an
// NcclCommunicator, and the learner's WeightPublisher over it. See weight_broadcast.h for the
// protocol and docs/nccl.md for how it is meant to be wired into a running cluster.
#pragma once

#include <memory>
#include <span>

#include "common/collective/nccl_communicator.h"
#include "learner/service/weight_broadcast.h"
#include "learner/service/weight_publisher.h"

namespace treepo::learner {

// Byte broadcasts staged through the communicator's device buffer; Abort aborts the NCCL
// communicator, so the peers' pending broadcasts fail at once. `comm` is not owned.
std::unique_ptr<WeightBroadcastChannel> NcclChannel(collective::NcclCommunicator* comm);

// WeightPublisher over NCCL: the learner's side, rank 0 of its own communicator.
class NcclWeightPublisher final : public WeightPublisher {
 public:
  // kFailedPrecondition unless comm->rank() == 0; kInvalidArgument for bad options.
  static Result<std::unique_ptr<NcclWeightPublisher>> Create(
      std::unique_ptr<collective::NcclCommunicator> comm, const model::ParamLayout& layout,
      const WeightBroadcastOptions& options);
  Status Publish(WeightVersion version, std::span<const float> params) override;

 private:
  NcclWeightPublisher(std::unique_ptr<collective::NcclCommunicator> comm,
                      std::unique_ptr<WeightBroadcastChannel> channel,
                      WeightBroadcaster broadcaster);
  std::unique_ptr<collective::NcclCommunicator> comm_;
  std::unique_ptr<WeightBroadcastChannel> channel_;
  WeightBroadcaster broadcaster_;
};

}  // namespace treepo::learner
