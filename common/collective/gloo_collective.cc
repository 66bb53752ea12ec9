#include "common/collective/gloo_collective.h"

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

namespace treepo::collective {
namespace {

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

// Gloo reports failures by exceptions; each becomes a Status naming the operation.
template <typename F>
Status Guard(const char* what, F&& f) {
  try {
    f();
    return OkStatus();
  } catch (const gloo::IoException& e) {
    // Timeouts are IoExceptions too ("Timed out ...", "Wait timeout for key(s) ...").
    const std::string m = e.what();
    if (m.find("imed out") != std::string::npos || m.find("imeout") != std::string::npos) {
      return DeadlineExceeded(std::string("gloo ") + what + ": " + m);
    }
    return Unavailable(std::string("gloo ") + what + ": a peer rank is gone: " + m);
  } catch (const std::exception& e) {
    const std::string m = e.what();
    if (m.find("imeout") != std::string::npos) {
      return DeadlineExceeded(std::string("gloo ") + what + ": " + m);
    }
    return Internal(std::string("gloo ") + what + ": " + m);
  }
}

class GlooCollective final : public Collective {
 public:
  GlooCollective(std::shared_ptr<gloo::rendezvous::Context> context, int timeout_ms)
      : context_(std::move(context)), timeout_(timeout_ms) {}

  std::string_view backend() const override { return "gloo"; }
  int rank() const override { return context_->rank; }
  int world_size() const override { return context_->size; }

  Status AllReduceSum(std::span<float> data) override {
    return AllReduce(data, static_cast<ReduceFn>(&gloo::sum<float>), "all-reduce sum");
  }
  Status AllReduceSum(std::span<double> data) override {
    return AllReduce(data, static_cast<ReduceFn>(&gloo::sum<double>), "all-reduce sum");
  }
  Status AllReduceMax(std::span<double> data) override {
    return AllReduce(data, static_cast<ReduceFn>(&gloo::max<double>), "all-reduce max");
  }

  Status Broadcast(std::span<float> data, int root) override {
    if (root < 0 || root >= world_size()) return InvalidArgument("broadcast root out of range");
    if (data.empty()) return OkStatus();
    return Guard("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(data.data(), data.size());
      opts.setRoot(root);
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  Status Barrier() override {
    return Guard("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

 private:
  template <typename T>
  Status AllReduce(std::span<T> data, ReduceFn fn, const char* what) {
    if (data.empty()) return OkStatus();
    return Guard(what, [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data.data(), data.size());
      opts.setReduceFunction(fn);
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

Result<std::unique_ptr<Collective>> CreateGlooCollective(const CollectiveOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.store_dir, ec);
  if (ec) {
    return InvalidArgument("collective store_dir " + o.store_dir + ": " + ec.message());
  }
  std::shared_ptr<gloo::rendezvous::Context> context;
  Status st = Guard("rendezvous", [&] {
    gloo::transport::tcp::attr attr;
    attr.hostname = o.host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    gloo::rendezvous::FileStore file_store(o.store_dir);
    gloo::rendezvous::PrefixStore store(o.run_id.empty() ? "treepo" : o.run_id, file_store);
    context = std::make_shared<gloo::rendezvous::Context>(o.rank, o.world_size);
    context->setTimeout(std::chrono::milliseconds(o.timeout_ms));
    context->connectFullMesh(store, device);
  });
  if (!st.ok()) {
    return Status(st.code(), "rank " + std::to_string(o.rank) + " of " +
                                 std::to_string(o.world_size) + " could not meet its peers in " +
                                 o.store_dir + ": " + st.message());
  }
  return std::unique_ptr<Collective>(new GlooCollective(std::move(context), o.timeout_ms));
}

}  // namespace treepo::collective
