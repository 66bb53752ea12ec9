// The worker process: one thread owns a Dealer connected to the scheduler and an Engine.
//
// Protocol (docs/scheduler.md): RegisterWorker -> RegisterAck (retried, backing off, until the
// deadline);
// then SegmentTaskBatch in, SegmentResultBatch out (every task finished in one engine step
// goes in one batch), TaskRejected for tasks the engine refuses (the Status code travels:
// kResourceExhausted when out of KV pages), ReleaseNodes frees KV, WeightVersionNotice +
// WeightChunk install a new weight version between segments (WeightAck), Shutdown drains and
// returns. A Heartbeat with load figures goes out every interval; the scheduler echoes it, and
// a scheduler silent for longer than scheduler_timeout_ms ends the worker with kUnavailable.
// An ErrorReply with kFailedPrecondition means the scheduler declared this registration dead
// (fenced): the worker drops its sequences and KV, keeps its weights, and registers again.
// Leaving: on *stop the worker sends Deregister{drain} and keeps serving (running segments
// finish, KvMigrate(send) moves its held subtrees to other workers) until the scheduler's
// Shutdown, then sends Deregister{!drain} and returns; the scheduler forgets it at once.
// An ErrorReply with kInvalidArgument to RegisterWorker (a key of another role, another model)
// ends the worker with that error. Whatever else arrives (frames that do not decode, multipart
// messages, unexpected types) is logged with a bound and dropped.
//
// Heartbeats and result batches report the KV pool (total and free pages) and how many task
// batches arrived, for the scheduler's page accounting. Migration: KvMigrate(send) exports
// held nodes and sends them in checksummed KvChunks straight to the destination worker's
// peer endpoint; KvMigrate(expect) arms the destination, which imports the pages once every
// chunk is in and answers the scheduler with KvMigrated (either side answers a failure).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "protocols/curve_keys.h"
#include "worker/engine/engine.h"

namespace treepo::worker {

struct WorkerOptions {
  std::string scheduler_endpoint;  // "tcp://HOST:PORT" of the scheduler's Router
  std::string name;                // shown in logs; "" = "worker-<pid>"
  std::string model_path;          // llama2.c .bin or a Hugging Face directory
  EngineOptions engine;            // page size, number of pages, rows per step, BLAS threads
  // Heartbeat period; 0 = the one the scheduler gives in RegisterAck.
  int heartbeat_interval_ms = 0;
  // Give up when nothing came from the scheduler for this long (registration included).
  int scheduler_timeout_ms = 15000;
  int register_retry_ms = 1000;  // resend RegisterWorker when no RegisterAck came in this time
  // Keep registering (again) for this long, resends backing off from register_retry_ms to
  // 5 s, when the scheduler is not there yet or went silent (a head that is restarted on the
  // same endpoint, `treepo train --resume`); the worker then drops its tasks and KV, keeps its
  // weights (claiming no version for them: the new head sends it the version its tasks carry)
  // and joins the new head. 0: give up after scheduler_timeout_ms.
  int rejoin_timeout_ms = 0;
  // Leaving (*stop, SIGTERM): the worker tells the scheduler it drains (Deregister{drain}),
  // finishes its running segments and sends held KV where the scheduler asks; when told to go
  // (Shutdown) it deregisters and exits. After this long it deregisters anyway.
  int drain_timeout_ms = 60000;
  // Testing only: take task batches and never run or answer them (heartbeats go on), the
  // way a wedged engine would; the scheduler's task deadlines must recover from it.
  bool debug_drop_tasks = false;
  // Where other workers send this one KV pages for subtree migration (KvChunk; the scheduler
  // orders moves with KvMigrate, docs/placement.md). "tcp://HOST:*" picks a free port; empty:
  // this worker takes part in no migration. With CURVE keys migrations are off (the peer
  // socket has no keys of its own yet), and so they are when the scheduler is remote and this
  // endpoint is loopback (other hosts could not reach it).
  std::string peer_bind = "tcp://127.0.0.1:*";
  // Testing and benchmarks only: sleep this long after every engine step (a slow worker).
  int debug_step_sleep_ms = 0;
  // CURVE keys (docs/security.md): required when the scheduler is not on loopback.
  protocols::ClientKeyOptions keys;

  Status Validate() const;
};

// Runs the worker until Shutdown (OkStatus), a leave (`*stop` becomes true: drained, then
// deregistered; OkStatus), `*stop_now` becomes true (deregisters at once; OkStatus), or a
// fatal error: model load failure, a silent scheduler (kUnavailable, unless rejoin_timeout_ms
// lets it register again). `stop` and `stop_now` may be null.
Status RunWorker(const WorkerOptions& options, std::atomic<bool>* stop,
                 std::atomic<bool>* stop_now = nullptr);

}  // namespace treepo::worker
