// `treepo rollout`: a rollout on one machine. Starts the scheduler in this process and
// --workers N `treepo worker` processes on loopback (ephemeral port), rolls out a prompt file,
// writes the trees (--out) and a summary (--summary-out, also printed on stdout).
//
// Settings come from --config FILE (TOML), then the flags below, then --set key=value; keys
// are the flag names with '_' for '-' (scheduler/service/rollout_job.h, plus workers,
// worker_threads, worker_pages, page_size, worker_backend (cpu | cuda | auto), curve = true for
// ephemeral CURVE keys between the scheduler and its workers (docs/security.md), and
// debug_slow_worker_step_ms: worker-1 sleeps this long after each engine step, for placement
// benchmarks). An unknown key is an error.
#include <atomic>
#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "cluster/command.h"
#include "cluster/local_keys.h"
#include "cluster/plugins.h"
#include "common/compute/decoder_backend.h"
#include "common/config.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "scheduler/service/rollout_job.h"
#include "worker/kv/kv_cache.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_rollout_stop{false};
void OnRolloutSignal(int) { g_rollout_stop.store(true); }

// Flags that map one to one onto config keys.
constexpr const char* kFlagKeys[][2] = {
    {"model", "llama2.c .bin or Hugging Face directory (workers load it)"},
    {"tokenizer", "tokenizer.json or llama2.c tokenizer.bin (default: the model's)"},
    {"prompts", "prompt file: JSON lines {\"id\",\"prompt\",\"answer\"}"},
    {"workers", "worker processes to start (default 2)"},
    {"worker-threads", "BLAS threads per worker (default 1)"},
    {"worker-pages", "KV pages per worker (default 4096)"},
    {"page-size", "tokens per KV page (default 16)"},
    {"mode", "tree | sequential"},
    {"width", "leaves per query (w)"},
    {"segment-tokens", "tokens per segment (L)"},
    {"max-depth", "segments per path at most (d)"},
    {"branch", "branching factor (b)"},
    {"init-divergence", "fixed | more"},
    {"temperature", "sampling temperature"},
    {"top-p", "nucleus sampling mass"},
    {"seed", "run seed"},
    {"out", "tree file to write (JSON lines)"},
    {"summary-out", "summary JSON to write"},
    {"prompt-field", "prompt field name in the prompt file"},
    {"answer-field", "answer field name in the prompt file"},
    {"reward", "reward function name"},
    {"max-queries", "roll out only the first N prompts"},
    {"max-concurrent-queries", "queries in flight at once"},
    {"chat", "true: prompts as user messages rendered with the model's chat template"},
    {"system-prompt", "chat mode: system message"},
    {"instruction-suffix", "chat mode: appended to each prompt"},
    {"enable-thinking", "chat mode: the template's enable_thinking (true | false)"},
};

std::string KeyOf(std::string flag) {
  for (char& c : flag) {
    if (c == '-') c = '_';
  }
  return flag;
}

// The workers this command starts hold a copy of the weights and a KV pool each: refuse a
// run whose estimate exceeds the machine before any process starts.
Status CheckWorkersFitMemory(const std::string& model_path, int workers, int pages, int page_size) {
  worker::KvCacheOptions kv;
  kv.num_pages = pages;
  kv.page_size = page_size;
  TREEPO_RETURN_IF_ERROR(kv.Validate());
  TREEPO_ASSIGN_OR_RETURN(const model::ModelConfig c, model::LoadModelConfig(model_path));
  TREEPO_RETURN_IF_ERROR(
      model::CheckKvPoolFitsMemory(c, static_cast<int64_t>(pages) * workers, page_size)
          .WithContext(std::to_string(workers) + " workers"));
  // Workers keep a 16-bit checkpoint 16-bit.
  TREEPO_ASSIGN_OR_RETURN(const model::WeightDtype dtype, model::StoredWeightDtype(model_path));
  return model::CheckWeightsFitMemory(c, dtype == model::WeightDtype::kF32 ? 4 : 2);
}

struct RolloutCmdOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::map<std::string, std::string> flags;  // flag name -> value, when given
};

Status RunRolloutCmd(const RolloutCmdOptions& o) {
  Config config;
  if (!o.config_path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(config, Config::LoadTomlFile(o.config_path));
  }
  for (const auto& [flag, value] : o.flags) config.SetValue(KeyOf(flag), value);
  for (const std::string& s : o.sets) TREEPO_RETURN_IF_ERROR(config.Set(s));
  TREEPO_ASSIGN_OR_RETURN(const std::vector<std::string> plugins, LoadConfiguredPlugins(config));
  std::string worker_sampler = "default";  // token sampler of every worker
  TREEPO_RETURN_IF_ERROR(config.Get("worker_sampler", &worker_sampler));
  std::string worker_backend = "auto";  // compute backend of every worker: cpu | cuda | auto
  TREEPO_RETURN_IF_ERROR(config.Get("worker_backend", &worker_backend));
  TREEPO_RETURN_IF_ERROR(compute::ResolveBackend(worker_backend).status());
  int workers = 2, worker_threads = 1, worker_pages = 4096, page_size = 16;
  TREEPO_RETURN_IF_ERROR(config.Get("workers", &workers));
  TREEPO_RETURN_IF_ERROR(config.Get("worker_threads", &worker_threads));
  TREEPO_RETURN_IF_ERROR(config.Get("worker_pages", &worker_pages));
  TREEPO_RETURN_IF_ERROR(config.Get("page_size", &page_size));
  bool curve = false;  // ephemeral CURVE keys for the scheduler and its workers
  TREEPO_RETURN_IF_ERROR(config.Get("curve", &curve));
  // Benchmarks and tests: worker-1 sleeps this long after every engine step (a slow worker).
  int slow_step_ms = 0;
  TREEPO_RETURN_IF_ERROR(config.Get("debug_slow_worker_step_ms", &slow_step_ms));
  if (slow_step_ms < 0) return InvalidArgument("debug_slow_worker_step_ms must be >= 0");
  if (workers < 1 || workers > 1024) return InvalidArgument("workers must be in [1, 1024]");
  if (worker_threads < 1 || worker_threads > 1024) {
    return InvalidArgument("worker_threads must be in [1, 1024]");
  }
  scheduler::RolloutJobOptions job;
  TREEPO_RETURN_IF_ERROR(scheduler::LoadRolloutJobOptions(config, &job));
  std::unique_ptr<LocalCurveKeys> keys;
  if (curve) {
    TREEPO_ASSIGN_OR_RETURN(keys, LocalCurveKeys::Create());
    keys->ApplyTo(&job.service.security);
  }
  if (job.model_path.empty()) return InvalidArgument("rollout: --model is required");
  job.min_workers = workers;
  TREEPO_RETURN_IF_ERROR(CheckWorkersFitMemory(job.model_path, workers, worker_pages, page_size));

  Supervisor children;  // a worker that exits is reported at once; the last one ends the run
  job.liveness_probe = SupervisorProbe(&children);
  auto spawn = [&](const std::string& endpoint) -> Status {
    for (int i = 0; i < workers; ++i) {
      std::vector<std::string> argv = {SelfExecutable(), "worker",
                                       "--scheduler",    endpoint,
                                       "--model",        job.model_path,
                                       "--threads",      std::to_string(worker_threads),
                                       "--pages",        std::to_string(worker_pages),
                                       "--page-size",    std::to_string(page_size),
                                       "--name",         "worker-" + std::to_string(i + 1)};
      if (keys) {
        for (const std::string& f : keys->WorkerFlags()) argv.push_back(f);
      }
      if (i == 0 && slow_step_ms > 0) {
        argv.push_back("--debug-step-sleep-ms");
        argv.push_back(std::to_string(slow_step_ms));
      }
      argv.push_back("--sampler");
      argv.push_back(worker_sampler);
      argv.push_back("--backend");
      argv.push_back(worker_backend);
      for (const std::string& p : plugins) {
        argv.push_back("--plugin");
        argv.push_back(p);
      }
      TREEPO_ASSIGN_OR_RETURN(ChildProcess c, ChildProcess::Spawn(argv));
      children.Add("worker-" + std::to_string(i + 1), std::move(c), "", false);
    }
    return OkStatus();
  };
  Result<scheduler::RolloutOutput> out = scheduler::RunRolloutJob(job, spawn, &g_rollout_stop);
  children.WaitOrTerminateAll(3000);
  if (!out.ok()) return out.status();
  std::cout << scheduler::RolloutSummaryJson(*out, job) << std::endl;
  return OkStatus();
}

}  // namespace

void RegisterRollout(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<RolloutCmdOptions>();
  CLI::App* cmd = app.add_subcommand("rollout", "Roll out a prompt file on local worker processes");
  cmd->add_option("--config", opts->config_path, "TOML config with the same keys");
  cmd->add_option("--set", opts->sets, "override a config key: key=value (repeatable)");
  for (const auto& [flag, help] : kFlagKeys) {
    const std::string name = flag;
    cmd->add_option_function<std::string>(
        "--" + name, [opts, name](const std::string& v) { opts->flags[name] = v; }, help);
  }
  cmd->callback([opts, exit_code] {
    InitLogging("rollout");
    std::signal(SIGINT, OnRolloutSignal);
    std::signal(SIGTERM, OnRolloutSignal);
    const Status st = RunRolloutCmd(*opts);
    if (!st.ok()) {
      spdlog::error("rollout: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
