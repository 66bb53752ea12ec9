#include "learner/service/nccl_weight_broadcaster.h"

#include <utility>

#include "common/check.h"

namespace treepo::learner {
namespace {

class NcclChannelImpl final : public WeightBroadcastChannel {
 public:
  explicit NcclChannelImpl(collective::NcclCommunicator* comm) : comm_(comm) {}
  int rank() const override { return comm_->rank(); }
  Status BroadcastBytes(void* data, size_t bytes, int root) override {
    return comm_->BroadcastHost(data, bytes, collective::NcclType::kUint8, root);
  }
  Status Abort(Status why) override { return comm_->Abort(std::move(why)); }

 private:
  collective::NcclCommunicator* comm_;
};

}  // namespace

std::unique_ptr<WeightBroadcastChannel> NcclChannel(collective::NcclCommunicator* comm) {
  TREEPO_CHECK(comm != nullptr);
  return std::make_unique<NcclChannelImpl>(comm);
}

Result<std::unique_ptr<NcclWeightPublisher>> NcclWeightPublisher::Create(
    std::unique_ptr<collective::NcclCommunicator> comm, const model::ParamLayout& layout,
    const WeightBroadcastOptions& options) {
  TREEPO_CHECK(comm != nullptr);
  if (comm->rank() != 0) {
    return FailedPrecondition("nccl weight publisher: the learner is rank 0 (this is rank " +
                              std::to_string(comm->rank()) + ")");
  }
  std::unique_ptr<WeightBroadcastChannel> channel = NcclChannel(comm.get());
  TREEPO_ASSIGN_OR_RETURN(WeightBroadcaster b,
                          WeightBroadcaster::Create(channel.get(), layout, options));
  return std::unique_ptr<NcclWeightPublisher>(
      new NcclWeightPublisher(std::move(comm), std::move(channel), std::move(b)));
}

NcclWeightPublisher::NcclWeightPublisher(std::unique_ptr<collective::NcclCommunicator> comm,
                                         std::unique_ptr<WeightBroadcastChannel> channel,
                                         WeightBroadcaster broadcaster)
    : comm_(std::move(comm)), channel_(std::move(channel)), broadcaster_(std::move(broadcaster)) {}

Status NcclWeightPublisher::Publish(WeightVersion version, std::span<const float> params) {
  return broadcaster_.Send(version, params);
}

}  // namespace treepo::learner
