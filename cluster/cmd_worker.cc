// `treepo worker`: an inference worker serving one scheduler (worker/service/worker_service.h).
// SIGINT/SIGTERM make it leave: it drains (no new tasks, running segments finish, held KV moves
// to other workers), deregisters and exits; a second signal makes it deregister and exit at
// once. The exit code is non-zero when it stopped on an error (for example a scheduler silent
// for too long).
#include <atomic>
#include <csignal>
#include <memory>
#include <string>

#include "cluster/command.h"
#include "cluster/plugins.h"
#include "common/log.h"
#include "worker/service/worker_service.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_worker_stop{false};
std::atomic<bool> g_worker_stop_now{false};

// The first signal drains, the second leaves at once.
void OnStopSignal(int) {
  if (g_worker_stop.exchange(true)) g_worker_stop_now.store(true);
}

}  // namespace

void RegisterWorker(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<worker::WorkerOptions>();
  auto plugins = std::make_shared<std::vector<std::string>>();
  opts->engine.blas_threads = 1;
  opts->engine.backend = "auto";
  CLI::App* cmd = app.add_subcommand("worker", "Run an inference worker for a scheduler");
  cmd->add_option("--scheduler", opts->scheduler_endpoint, "scheduler endpoint tcp://HOST:PORT")
      ->required();
  cmd->add_option("--model", opts->model_path, "llama2.c .bin or Hugging Face directory")
      ->required();
  cmd->add_option("--threads", opts->engine.blas_threads, "BLAS threads")->capture_default_str();
  cmd->add_option("--pages", opts->engine.kv.num_pages, "KV pages")->capture_default_str();
  cmd->add_option("--page-size", opts->engine.kv.page_size, "tokens per KV page")
      ->capture_default_str();
  cmd->add_option("--max-step-tokens", opts->engine.max_step_tokens, "rows per engine step")
      ->capture_default_str();
  cmd->add_option("--name", opts->name, "name in logs (default worker-<pid>)");
  cmd->add_option("--sampler", opts->engine.sampler,
                  "token sampler: default, or one a plug-in registers (docs/plugins.md)")
      ->capture_default_str();
  cmd->add_option("--backend", opts->engine.backend,
                  "compute backend: cpu, cuda, or auto (cuda where this build has it and a "
                  "device is present)")
      ->capture_default_str();
  cmd->add_option("--device", opts->engine.device, "CUDA device ordinal (backend cuda)")
      ->capture_default_str();
  cmd->add_option("--plugin", *plugins, "plug-in library to load first (repeatable)");
  cmd->add_option("--heartbeat-ms", opts->heartbeat_interval_ms,
                  "heartbeat period (0: the scheduler's)")
      ->capture_default_str();
  cmd->add_option("--scheduler-timeout-ms", opts->scheduler_timeout_ms,
                  "exit when the scheduler is silent this long")
      ->capture_default_str();
  cmd->add_option("--rejoin-timeout-ms", opts->rejoin_timeout_ms,
                  "keep registering (backing off) this long while the scheduler is away, e.g. "
                  "restarting (0: exit after --scheduler-timeout-ms)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout-ms", opts->drain_timeout_ms,
                  "on SIGTERM: leave after this long even if not drained")
      ->capture_default_str();
  cmd->add_flag("--debug-drop-tasks", opts->debug_drop_tasks,
                "testing: never run or answer tasks (heartbeats go on)");
  cmd->add_option("--peer-bind", opts->peer_bind,
                  "endpoint for KV pages from other workers (subtree migration); '' = none")
      ->capture_default_str();
  cmd->add_option("--debug-step-sleep-ms", opts->debug_step_sleep_ms,
                  "testing/benchmarks: sleep this long after every engine step (a slow worker)")
      ->capture_default_str();
  cmd->add_option("--scheduler-key", opts->keys.scheduler_key_file,
                  "the scheduler's CURVE public key file (NAME.pub; docs/security.md)");
  cmd->add_option("--key", opts->keys.key_file, "this worker's CURVE key file (NAME.key)");
  cmd->add_flag("--insecure", opts->keys.insecure,
                "talk to a non-loopback scheduler without keys (warned on every start)");
  cmd->callback([opts, plugins, exit_code] {
    InitLogging(opts->name.empty() ? "worker" : opts->name);
    std::signal(SIGINT, OnStopSignal);
    std::signal(SIGTERM, OnStopSignal);
    Status st = LoadPluginFiles(*plugins);
    if (st.ok()) st = worker::RunWorker(*opts, &g_worker_stop, &g_worker_stop_now);
    if (!st.ok()) {
      spdlog::error("worker: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
