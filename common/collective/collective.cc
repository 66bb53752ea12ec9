#include "common/collective/collective.h"

#include <algorithm>
#include <utility>

#include "common/collective/gloo_collective.h"
#if TREEPO_HAVE_NCCL
#include "common/collective/nccl_collective.h"
#endif

namespace treepo::collective {
namespace {

// world_size 1: nothing to exchange.
class SingleRank final : public Collective {
 public:
  explicit SingleRank(std::string backend) : backend_(std::move(backend)) {}
  std::string_view backend() const override { return backend_; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  Status AllReduceSum(std::span<float>) override { return OkStatus(); }
  Status AllReduceSum(std::span<double>) override { return OkStatus(); }
  Status AllReduceMax(std::span<double>) override { return OkStatus(); }
  Status Broadcast(std::span<float>, int root) override {
    return root == 0 ? OkStatus() : InvalidArgument("broadcast root out of range");
  }
  Status Barrier() override { return OkStatus(); }

 private:
  std::string backend_;
};

}  // namespace

Status CollectiveOptions::Validate() const {
  if (backend != "gloo" && backend != "nccl") {
    return InvalidArgument("collective backend '" + backend + "' is unknown (gloo | nccl)");
  }
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return InvalidArgument("collective: need 0 <= rank < world_size (rank " + std::to_string(rank) +
                           ", world_size " + std::to_string(world_size) + ")");
  }
  if (world_size > 1 && store_dir.empty()) {
    return InvalidArgument("collective: world_size " + std::to_string(world_size) +
                           " needs a rendezvous directory (store_dir)");
  }
  if (world_size > 1 && host.empty()) return InvalidArgument("collective: host is empty");
  if (timeout_ms < 1) return InvalidArgument("collective: timeout_ms must be >= 1");
  return OkStatus();
}

std::vector<std::string_view> CollectiveBackends() {
#if TREEPO_HAVE_NCCL
  return {"gloo", "nccl"};
#else
  return {"gloo"};
#endif
}

Result<std::unique_ptr<Collective>> CreateCollective(const CollectiveOptions& o) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
#if !TREEPO_HAVE_NCCL
  if (o.backend == "nccl") {
    return Unimplemented(
        "collective backend 'nccl' needs GPU buffers and the CUDA build's NCCL backend, which "
        "this build lacks; use 'gloo'");
  }
#endif
  if (o.world_size == 1) return std::unique_ptr<Collective>(new SingleRank(o.backend));
#if TREEPO_HAVE_NCCL
  if (o.backend == "nccl") return CreateNcclCollective(o);
#endif
  return CreateGlooCollective(o);
}

Result<bool> AllRanksEqual(Collective& c, uint64_t value) {
  // Four 16-bit pieces are exact in a double; max(v) == -max(-v) on every piece iff all equal.
  std::vector<double> v(8);
  for (int i = 0; i < 4; ++i) {
    const double piece = static_cast<double>((value >> (16 * i)) & 0xffff);
    v[i] = piece;
    v[4 + i] = -piece;
  }
  TREEPO_RETURN_IF_ERROR(c.AllReduceMax(v));
  for (int i = 0; i < 4; ++i) {
    if (v[i] != -v[4 + i]) return false;
  }
  return true;
}

}  // namespace treepo::collective
