#include "common/collective/nccl_collective.h"

#include <utility>

#include "common/collective/nccl_communicator.h"

namespace treepo::collective {
namespace {

class NcclCollective final : public Collective {
 public:
  explicit NcclCollective(std::unique_ptr<NcclCommunicator> comm) : comm_(std::move(comm)) {}

  std::string_view backend() const override { return "nccl"; }
  int rank() const override { return comm_->rank(); }
  int world_size() const override { return comm_->world_size(); }

  Status AllReduceSum(std::span<float> data) override {
    return comm_->AllReduceHost(data.data(), data.size(), NcclType::kFloat32, NcclReduce::kSum);
  }
  Status AllReduceSum(std::span<double> data) override {
    return comm_->AllReduceHost(data.data(), data.size(), NcclType::kFloat64, NcclReduce::kSum);
  }
  Status AllReduceMax(std::span<double> data) override {
    return comm_->AllReduceHost(data.data(), data.size(), NcclType::kFloat64, NcclReduce::kMax);
  }
  Status Broadcast(std::span<float> data, int root) override {
    return comm_->BroadcastHost(data.data(), data.size(), NcclType::kFloat32, root);
  }
  Status Barrier() override { return comm_->Barrier(); }

 private:
  std::unique_ptr<NcclCommunicator> comm_;
};

}  // namespace

Result<std::unique_ptr<Collective>> CreateNcclCollective(const CollectiveOptions& options) {
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                          NcclCommunicator::Create(options));
  return std::unique_ptr<Collective>(new NcclCollective(std::move(comm)));
}

}  // namespace treepo::collective
