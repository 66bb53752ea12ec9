// Fuzz target: the worker's loop (RunWorker: registration, the receive path, the engine on
// the stories260K model) fed by a fake scheduler, a real Router on loopback TCP.
//
// Per input: a fresh worker registers and gets a RegisterAck; then every record (fuzz_input.h)
// is sent to it, op % 4 choosing how:
//   0  the bytes as one raw frame
//   1  the bytes as a message of two frames (the worker must drop it)
//   2  the bytes decoded as a message and re-encoded (raw when they do not decode)
//   3  a SegmentTaskBatch of one task whose fields come from the bytes
// then Shutdown. Every RegisterWorker (a fenced worker registers again) is acknowledged and
// followed by Shutdown. The worker must end (Shutdown, or the stop flag after a bound) with
// no crash; what it sends must decode.
//
// The model: $TREEPO_SHARED_DIR/models/stories260K/stories260K.bin (the target returns at
// once without it).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/testing/paths.h"
#include "protocols/codec.h"
#include "protocols/transport.h"
#include "tests/fuzz/fuzz_input.h"
#include "worker/service/worker_service.h"

namespace treepo::fuzz {
namespace {

namespace pr = protocols;
using SteadyClock = std::chrono::steady_clock;

std::string ModelPath() {
  static const std::string path =
      (std::filesystem::path(treepo::testing::SharedDir()) / "models/stories260K/stories260K.bin")
          .string();
  return path;
}

std::vector<uint8_t> Frame(pr::Payload payload) {
  pr::Message m;
  m.payload = std::move(payload);
  return pr::Encode(m);
}

uint32_t U32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(at + i < b.size() ? b[at + i] : 0) << (8 * i);
  return v;
}

// A task shaped by the bytes: tokens, children, lengths and sampling knobs.
pr::SegmentTask TaskFrom(const std::vector<uint8_t>& b, uint64_t n) {
  pr::SegmentTask t;
  t.task_id = TaskId(n);
  t.query_id = QueryId(1 + U32(b, 0) % 4);
  t.parent_node_id = NodeId(U32(b, 4) % 3 == 0 ? 0 : 1000 + U32(b, 4) % 8);
  const size_t prompt = b.size() > 8 ? b[8] % 24 : 3;
  for (size_t i = 0; i < prompt; ++i) {
    t.prefix_tokens.push_back(static_cast<int32_t>(U32(b, 9 + i) % 600) - 40);
  }
  const size_t children = 1 + (b.size() > 12 ? b[12] % 4 : 0);
  for (size_t i = 0; i < children; ++i) {
    t.child_node_ids.push_back(NodeId(1000 + (U32(b, 13) + i) % 16));
    t.child_seeds.push_back(U32(b, 17) + i);
  }
  t.max_new_tokens = 1 + U32(b, 21) % 40;
  t.temperature = b.size() > 25 ? static_cast<float>(b[25]) / 64.0f : 1.0f;
  t.top_p = b.size() > 26 ? static_cast<float>(b[26] % 101) / 100.0f : 1.0f;
  t.top_k = b.size() > 27 ? b[27] % 8 : 0;
  t.stop_at_eos = b.size() > 28 && (b[28] & 1);
  return t;
}

// Takes what the worker sent; answers registrations. False when nothing came in timeout_ms.
bool Serve(pr::Router& router, int timeout_ms, std::string* worker, uint64_t* registrations,
           bool shutdown_after_ack) {
  auto in = router.Recv(timeout_ms);
  if (!in.ok()) __builtin_trap();
  if (!*in) return false;
  if (!(*in)->malformed.ok()) __builtin_trap();  // the worker sends one frame per message
  Result<pr::Message> m = pr::Decode((*in)->frame);
  if (!m.ok()) __builtin_trap();  // the worker sent something that does not decode
  *worker = (*in)->peer;
  if (m->get_if<pr::RegisterWorker>() != nullptr) {
    ++*registrations;
    router.Send(*worker, Frame(pr::RegisterAck{1, *registrations, 1000, WeightVersion(0)}))
        .IgnoreError();
    if (shutdown_after_ack) router.Send(*worker, Frame(pr::Shutdown{"fuzz"})).IgnoreError();
  }
  return true;
}

}  // namespace
}  // namespace treepo::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace treepo;
  using namespace treepo::fuzz;
  static const bool have_model = [] {
    spdlog::set_level(spdlog::level::off);
    return std::filesystem::exists(ModelPath());
  }();
  if (!have_model || size > 16 * 1024) return 0;

  pr::Context ctx;
  auto router = pr::Router::Bind(ctx, "tcp://127.0.0.1:*");
  if (!router.ok()) __builtin_trap();
  worker::WorkerOptions o;
  o.scheduler_endpoint = router->endpoint();
  o.model_path = ModelPath();
  o.name = "fuzz";
  o.engine.kv.num_pages = 64;
  o.engine.kv.page_size = 16;
  o.engine.blas_threads = 1;
  o.heartbeat_interval_ms = 1000;
  o.scheduler_timeout_ms = 5000;
  o.register_retry_ms = 50;
  std::atomic<bool> stop{false};
  Status result;
  std::atomic<bool> done{false};
  std::thread t([&] {
    result = worker::RunWorker(o, &stop, /*stop_now=*/&stop);  // the stop flag: leave at once
    done.store(true);
  });

  std::string peer;
  uint64_t registrations = 0;
  const auto give_up = SteadyClock::now() + std::chrono::seconds(10);
  while (registrations == 0 && SteadyClock::now() < give_up) {
    Serve(*router, 50, &peer, &registrations, false);
    if (done.load()) break;
  }
  if (registrations > 0) {
    RecordReader reader(data, size);
    Record rec;
    uint64_t n = 1;
    while (reader.Next(&rec)) {
      Status st;
      switch (rec.op % 4) {
        case 0:
          st = router->Send(peer, rec.bytes);
          break;
        case 1: {
          const size_t half = rec.bytes.size() / 2;
          st = router->SendParts(peer,
                                 {std::vector<uint8_t>(rec.bytes.begin(), rec.bytes.begin() + half),
                                  std::vector<uint8_t>(rec.bytes.begin() + half, rec.bytes.end())});
          break;
        }
        case 2: {
          Result<pr::Message> m = pr::Decode(rec.bytes);
          st = router->Send(peer, m.ok() ? pr::Encode(*m) : rec.bytes);
          break;
        }
        default:
          st = router->Send(peer, Frame(pr::SegmentTaskBatch{{TaskFrom(rec.bytes, n++)}}));
          break;
      }
      (void)st;  // the worker may have ended already (a Shutdown in the input)
      while (Serve(*router, 0, &peer, &registrations, true)) {
      }
    }
    router->Send(peer, Frame(pr::Shutdown{"fuzz done"})).IgnoreError();
  }
  const auto stop_at = SteadyClock::now() + std::chrono::seconds(3);
  while (!done.load()) {
    Serve(*router, 10, &peer, &registrations, true);
    if (SteadyClock::now() > stop_at) stop.store(true);
  }
  t.join();
  // Errors the worker may end with: the scheduler went quiet (kUnavailable), or the fuzz
  // input refused its registration. Anything else was not expected.
  (void)result;
  return 0;
}
